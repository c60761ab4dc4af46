"""What each display backend needs on this machine, and what is missing (by Debian package).

An Xpra session that answers ``GET /`` with 200 is not yet a session a browser can show:

- ``xpra`` itself, at a version this code knows (its flags and config are those of 3.1);
- ``Xvfb``, the X server Xpra starts for each session (Debian ``xvfb``);
- the HTML5 client's files, which Xpra serves from ``<prefix>/share/xpra/www`` (Xpra 3.1.3's
  ``server_core.init_html_proxy`` looks in the resources dir, then ``/usr/share/xpra/www`` and
  ``/usr/local/share/xpra/www``); Debian bookworm's ``xpra`` 3.1.3 ships them, later Xpra
  releases moved them to ``xpra-html5``.  Debian links some of them to its shared
  JavaScript packages (bookworm: ``www/js/lib/jquery.js`` -> ``/usr/share/javascript/jquery/``
  of ``libjs-jquery``, which ``xpra`` does not even recommend): without it the page loads and
  never connects, so every link must resolve;
- Pillow importable by xpra's *own* Python (the interpreter on the first line of the ``xpra``
  script): without it every HTML5 connection fails with "error accepting new connection"
  while ``GET /`` still answers 200.  Debian's ``python3-pil`` is only a Recommends of ``xpra``,
  so ``apt-get install --no-install-recommends xpra`` leaves it out.

``check_xpra`` runs these checks (about 0.1 s: two short subprocesses) and returns a report:
``{"available": bool, "version": str|None, "python": str|None, "missing": [{"what",
"package"}]}``.  The daemon runs it at start and again before refusing a launch, so installing
the missing package needs no daemon restart.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from .childenv import child_environment
from .protocol.errors import Unsupported

__all__ = ["check_headless", "check_native", "check_xpra", "refusal", "xpra_python"]

MIN_XPRA = (3, 1)  # the flags and config in displays.py are Xpra 3.1's
PROBE_TIMEOUT_S = 20.0
WWW_DIRS = ("/usr/share/xpra", "/usr/local/share/xpra")


def _missing(what: str, package: str) -> dict[str, str]:
    return {"what": what, "package": package}


def xpra_python(xpra: str) -> str | None:
    """The interpreter named on the first line of the ``xpra`` script (``#!/usr/bin/python3``,
    or ``#!/usr/bin/env python3``), or None when it names none."""
    try:
        with open(xpra, "rb") as f:
            first = f.readline(512).decode("utf-8", "replace")
    except OSError:
        return None
    if not first.startswith("#!"):
        return None
    words = first[2:].split()
    if words and os.path.basename(words[0]) == "env":
        words = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
        return shutil.which(words[0]) if words else None
    return words[0] if words else None


def _version(xpra: str) -> tuple[str | None, str | None]:
    """(version, problem) from ``xpra --version`` (prints ``xpra v3.1.3``)."""
    try:
        proc = subprocess.run([xpra, "--version"], capture_output=True, text=True,
                              timeout=PROBE_TIMEOUT_S, stdin=subprocess.DEVNULL,
                              env=child_environment())
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"`xpra --version` did not run ({type(e).__name__})"
    found = re.search(r"\bv?(\d+)\.(\d+)(?:\.(\d+))?", proc.stdout + proc.stderr)
    if proc.returncode != 0 or found is None:
        out = " ".join((proc.stdout + proc.stderr).split())[:160]
        return None, f"`xpra --version` failed (exit {proc.returncode}: {out})"
    return ".".join(g for g in found.groups() if g is not None), None


def _www_dir(xpra: str) -> str | None:
    prefix = Path(os.path.realpath(xpra)).parent.parent / "share" / "xpra"
    for base in (str(prefix), *WWW_DIRS):
        for sub in ("html5", "www"):
            if (Path(base) / sub / "index.html").is_file():
                return str(Path(base) / sub)
    return None


def _dangling_links(www: str) -> list[dict[str, str]]:
    """The HTML5 client's symlinks that lead nowhere, each with the package that holds its
    target (Debian installs shared JavaScript as ``libjs-<name>`` in /usr/share/javascript)."""
    out = []
    for parent, dirs, files in os.walk(www):
        for name in sorted(dirs + files):
            path = os.path.join(parent, name)
            if os.path.islink(path) and not os.path.exists(path):
                target = os.path.realpath(path)
                lib = re.match(r"/usr/share/javascript/([^/]+)/", target)
                package = f"libjs-{lib.group(1)}" if lib else "xpra"
                rel = os.path.relpath(path, www)
                out.append(_missing(f"the HTML5 client's {rel} (a link to {target[:120]})",
                                    package))
    return out


def _imports_pillow(python: str) -> str | None:
    """None when ``python`` imports PIL.Image, else why not (one short line)."""
    try:
        proc = subprocess.run([python, "-c", "import PIL.Image"], capture_output=True,
                              text=True, timeout=PROBE_TIMEOUT_S, stdin=subprocess.DEVNULL,
                              env={k: v for k, v in child_environment().items()
                                   if k not in ("PYTHONPATH", "PYTHONHOME")})
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"{python} did not run ({type(e).__name__})"
    if proc.returncode == 0:
        return None
    lines = proc.stderr.strip().splitlines()
    return lines[-1][:160] if lines else f"exit {proc.returncode}"


def check_xpra(python: str | None = None) -> dict[str, Any]:
    """What an Xpra session needs here; ``python`` overrides xpra's own interpreter."""
    report: dict[str, Any] = {"available": False, "version": None, "python": None,
                              "www": None, "missing": []}
    missing: list[dict[str, str]] = report["missing"]
    xpra = shutil.which("xpra")
    if xpra is None:
        missing.append(_missing("xpra (the display server; its HTML5 client is included)",
                                "xpra"))
    else:
        version, problem = _version(xpra)
        report["version"] = version
        if problem:
            missing.append(_missing(f"a working xpra: {problem}", "xpra"))
        elif version and tuple(int(x) for x in version.split(".")[:2]) < MIN_XPRA:
            missing.append(_missing(f"xpra {'.'.join(map(str, MIN_XPRA))} or later "
                                    f"(found {version})", "xpra"))
        report["www"] = _www_dir(xpra)
        if report["www"] is None:
            new = bool(version) and int(str(version).split(".")[0]) >= 4
            missing.append(_missing("the Xpra HTML5 client (share/xpra/www/index.html)",
                                    "xpra-html5" if new else "xpra"))
        else:
            missing += _dangling_links(report["www"])
        report["python"] = python or xpra_python(xpra)
        if report["python"] is None:
            missing.append(_missing(f"a Python interpreter on the first line of {xpra}",
                                    "xpra"))
        else:
            why = _imports_pillow(report["python"])
            if why:
                missing.append(_missing(f"Pillow for xpra's Python {report['python']} ({why})",
                                        "python3-pil"))
    if shutil.which("Xvfb") is None:
        missing.append(_missing("Xvfb (the X server of each session)", "xvfb"))
    report["available"] = not missing
    return report


def check_native() -> dict[str, Any]:
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return {"available": True, "missing": []}
    return {"available": False, "missing": [
        {"what": "a desktop session for the daemon (DISPLAY or WAYLAND_DISPLAY)",
         "package": None}]}


def check_headless() -> dict[str, Any]:
    return {"available": True, "missing": []}


def refusal(report: dict[str, Any]) -> Unsupported:
    """The error for a launch with display 'xpra' on a machine that lacks something."""
    missing = report.get("missing") or []
    packages = sorted({m["package"] for m in missing if m.get("package")})
    install = f"sudo apt-get install {' '.join(packages)}" if packages else None
    lines = "; ".join(f"{m['what']} (package {m['package']})" for m in missing)
    return Unsupported(
        f"display 'xpra' cannot show an app on this machine, it lacks: {lines}. "
        + (f"Install with `{install}`, then launch again" if install else "Fix that, then "
           "launch again") + "; or use display 'headless'",
        {"display": "xpra", "missing": missing, "packages": packages, "install": install})
