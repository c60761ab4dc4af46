"""What the page ships: its own modules, the vendored bundle, and how the bridge serves them.

- bridge/static/vendor/vendor.js is built from bridge/frontend's lockfile by build.mjs: the
  versions it names and versions.json match package-lock.json, LICENSES.txt carries each
  bundled package's licence, and building again from the lockfile (``npm ci``, needs the npm
  registry) gives the very same bytes;
- every module and file the page loads exists, and nothing comes from another origin;
- the bridge serves the files never to be cached, gzip-compressed when asked, with the page's
  CSP, and nothing outside its list (no path from a request reaches the filesystem).
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.bridge_helpers import Bridge, bridge_fixture, make_bridge_fixture  # noqa: F401
from tests.helpers import ROOT

FRONTEND = ROOT / "bridge" / "frontend"
STATIC = ROOT / "bridge" / "static"
VENDOR = STATIC / "vendor"


def lock_versions() -> dict[str, dict[str, str]]:
    lock = json.loads((FRONTEND / "package-lock.json").read_text())
    out = {}
    for key, meta in lock["packages"].items():
        if key.startswith("node_modules/"):
            out[key.removeprefix("node_modules/").split("/node_modules/")[-1]] = meta
    return out


def test_the_bundle_is_the_lockfiles_with_its_licences() -> None:
    locked = lock_versions()
    shipped = json.loads((VENDOR / "versions.json").read_text())
    assert shipped, "versions.json lists no package"
    for name, version in shipped.items():
        assert name in locked, f"{name} is in the bundle but not in package-lock.json"
        assert locked[name]["version"] == version, (name, version, locked[name]["version"])
        assert not locked[name].get("dev"), f"{name} is a dev dependency, yet bundled"
    # The direct dependencies are pinned exactly, and each one is in the bundle.
    pkg = json.loads((FRONTEND / "package.json").read_text())
    for name, spec in pkg["dependencies"].items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", spec), f"{name} is not pinned: {spec}"
        assert shipped.get(name) == spec, (name, spec, shipped.get(name))
    # The bundle's first line names exactly these packages and versions.
    head = (VENDOR / "vendor.js").read_text().split("\n", 1)[0]
    named = dict(m.rsplit("@", 1) for m in re.findall(r"(@?[\w./-]+@\d+\.\d+\.\d+)", head))
    assert named == shipped
    # One licence section per package, with the licence its lockfile entry declares.
    licences = (VENDOR / "LICENSES.txt").read_text()
    sections = re.findall(r"^={78}\n(\S+) (\S+) \(([^)]*)\)\n(\S+)\n={78}\n\n(.*?)(?=\n={78}\n|\Z)",
                          licences, re.S | re.M)
    assert {s[0]: s[1] for s in sections} == shipped
    for name, _version, kind, path, text in sections:
        assert kind == locked[name].get("license"), (name, kind)
        assert len(text.strip()) > 200 and "Copyright" in text, name
        assert path.startswith("node_modules/")


def test_the_page_loads_only_its_own_files() -> None:
    refs: set[str] = set()
    for html in ("index.html", "reference.html"):
        text = (STATIC / html).read_text()
        refs |= set(re.findall(r'(?:src|href)="/static/([^"]+)"', text))
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), f"inline script in {html}"
        assert not re.search(r"<[^>]*\son[a-z]+\s*=", text), f"inline handler in {html}"
        assert "style=" not in text, f"inline style in {html}"
        assert not re.search(r'(?:src|href)="(?:https?:)?//', text), html
    for js in STATIC.glob("*.js"):
        text = js.read_text()
        for mod in re.findall(r'(?:from|import)\s*\(?\s*"(\./[^"]+)"', text):
            assert (STATIC / mod).is_file(), f"{js.name} imports {mod}, which is not there"
        assert not re.search(r'(?:from|import\()\s*"https?:', text), js.name
        assert "eval(" not in text and "new Function" not in text, js.name
    for ref in refs:
        assert (STATIC / ref).is_file(), ref


@pytest.mark.skipif(shutil.which("npm") is None or shutil.which("node") is None,
                    reason="needs node and npm (Debian: apt-get install nodejs npm)")
def test_building_again_from_the_lockfile_gives_the_same_bytes(tmp_path: Path) -> None:
    work = tmp_path / "bridge"
    shutil.copytree(FRONTEND, work / "frontend", ignore=shutil.ignore_patterns("node_modules"))
    (work / "static").mkdir()
    for argv in (["npm", "ci", "--no-audit", "--no-fund"], ["node", "build.mjs"]):
        got = subprocess.run(argv, cwd=work / "frontend", capture_output=True, text=True,
                             timeout=600)
        assert got.returncode == 0, (argv, got.stderr[-2000:])
    for name in ("vendor.js", "versions.json", "LICENSES.txt"):
        assert (work / "static" / "vendor" / name).read_bytes() == (VENDOR / name).read_bytes(), \
            f"{name} differs from a build from the lockfile: run `npm ci && node build.mjs` " \
            "in bridge/frontend and commit the result"


def test_static_files_compress_and_stay_in_their_list(bridge: Bridge) -> None:
    with bridge.page_client() as c:
        page = c.get("/")
        csp = page.headers["content-security-policy"]
        for directive in ("script-src 'self'", "style-src 'self'", "object-src 'none'",
                          "frame-ancestors 'none'"):
            assert directive in csp, csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert "frame-src 'self';" in csp  # frames from this origin only (the displays)
        ref = c.get("/reference")
        assert ref.status_code == 200 and ref.headers["content-security-policy"] == csp
        assert "kitplay API reference" in ref.text

        plain = c.get("/static/vendor/vendor.js", headers={"Accept-Encoding": "identity"})
        assert plain.status_code == 200 and "content-encoding" not in plain.headers
        assert plain.headers["content-type"].startswith("text/javascript")
        assert plain.content == (VENDOR / "vendor.js").read_bytes()
        assert plain.headers["cache-control"] == "no-store"
        raw = c.send(c.build_request("GET", "/static/vendor/vendor.js",
                                     headers={"Accept-Encoding": "gzip"}), stream=True)
        body = b"".join(raw.iter_raw())  # the bytes as sent (httpx would decode them)
        raw.close()
        assert raw.headers["content-encoding"] == "gzip" and len(body) < len(plain.content) / 2
        assert gzip.decompress(body) == plain.content
        assert c.get("/static/licences").status_code == 404
        # Only on the page's own origin: the loopback literal (the API's) gets 421.
        with httpx.Client(base_url=bridge.url, timeout=30) as api_side:
            for path in ("/", "/reference", "/static/app.js", "/static/vendor/vendor.js"):
                assert api_side.get(path).status_code == 421, path
        assert c.get("/static/vendor/LICENSES.txt").headers["content-type"].startswith(
            "text/plain")
        # Nothing outside the list: traversal, encoded traversal, dot files, odd types.
        for path in ("/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2fpage.py",
                     "/static/vendor/../../page.py", "/static/.hidden.js",
                     "/static/frontend/build.mjs", "/static//etc/passwd", "/static/index.html"):
            r = c.get(path)
            if r.status_code in (301, 308):  # "//" merged: where it leads is no file either
                r = c.get(httpx.URL(r.headers["location"]).raw_path.decode())
            assert r.status_code == 404, (path, r.status_code)
