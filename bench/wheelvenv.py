"""kitplay installed as users install it: a wheel in a venv of its own, made as pipx makes one.

The development venv is no place to time a command's start: its editable install adds an
import-path finder, and setuptools' ``.pth`` files run at every start, so its bare
interpreter starts about twice as slowly as a user's (42 ms against 19 ms, measured when this
was written).  pipx makes ``python -m venv --without-pip`` and installs into it with a pip of
its own; so does this: the wheel built from a copy of the project (``pip wheel --no-deps``,
nothing left in the checkout), its dependencies at the tested versions (``constraints.txt``).
pip byte-compiles everything on install, as it does for users.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from .procs import ROOT

__all__ = ["PACKAGES", "wheel_venv"]

PACKAGES = ("daemon", "bridge", "cli_client")


def _run(argv: list[str | Path]) -> None:
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv[:4]))} failed: "
                           f"{(r.stderr or r.stdout).strip()[-400:]}")


def wheel_venv(base: Path) -> Path:
    """Build kitplay's wheel and install it into a fresh venv under ``base``; the venv."""
    src = base / "src"
    src.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, src / pkg,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", base / "dist", src])
    (wheel,) = (base / "dist").glob("kitplay-*.whl")
    venv = base / "venv"
    # The interpreter the bench runs on (not this venv's python: its own bare start).
    base_python = getattr(sys, "_base_executable", sys.executable)
    _run([base_python, "-m", "venv", "--without-pip", venv])
    _run([sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "-q",
          "-c", ROOT / "constraints.txt", wheel])
    return venv
