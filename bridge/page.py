"""The playground page, its API reference page and their static files.

- ``GET /`` is the playground, ``GET /reference`` the API reference rendered in the browser
  from ``GET /api/openapi.json``; both are static documents that hold no secret (the page
  signs in from its URL's ``#code=``, or joins an open tab's sign-in) and carry the strict
  page headers (CSP: scripts and styles from this origin only, no inline script, no eval).
- They, and every static file, answer on the page's own origin only (``on_page_host``: the
  bridge's per-start ``kp-<random>.localhost`` name); any other address gets 421 and a page
  saying where the playground is.
- ``GET /static/<path>`` serves the files under ``static/`` (the page's own ES modules and
  ``vendor/``, its bundled third-party code). They are listed once when the app is made:
  regular files only, no dot files, known types; a request's path is looked up in that list
  and never reaches the filesystem, so no ``..``, symlink or odd name can lead anywhere else.
- Every answer carries the page headers, ``Cache-Control: no-store`` included: nothing the
  page runs is ever taken from a cache, where something else could have left it. A browser
  that accepts gzip gets the file gzip-compressed (compressed once, on the first request for
  it): the page's assets are ~1 MB as they are, ~0.25 MB compressed, which matters through a
  forwarded port.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quart import Quart, Response, request

__all__ = ["STATIC", "StaticFile", "add_page_routes", "elsewhere", "html_page", "static_files"]

STATIC = Path(__file__).resolve().parent / "static"
TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".html": "text/html; charset=utf-8",
}
DOCUMENTS = {"/": "index.html", "/reference": "reference.html"}
COMPRESS = frozenset({".js", ".css", ".svg", ".json", ".txt", ".html"})


@dataclass
class StaticFile:
    body: bytes
    content_type: str
    compressible: bool
    _gzipped: bytes | None = field(default=None, repr=False)

    def gzipped(self) -> bytes:
        if self._gzipped is None:
            # mtime=0: the same bytes every time (no timestamp in the header).
            self._gzipped = gzip.compress(self.body, compresslevel=6, mtime=0)
        return self._gzipped


def static_files(root: Path = STATIC) -> dict[str, StaticFile]:
    """Every servable file under ``root``, by its "/"-separated path relative to it."""
    out: dict[str, StaticFile] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            suffix = path.suffix.lower()
            if name.startswith(".") or suffix not in TYPES or path.is_symlink() \
                    or not path.is_file():
                continue
            body = path.read_bytes()
            rel = path.relative_to(root).as_posix()
            out[rel] = StaticFile(body, TYPES[suffix], suffix in COMPRESS)
    return out


def _accepts_gzip() -> bool:
    for part in request.headers.get("Accept-Encoding", "").split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() == "gzip":
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def _serve(f: StaticFile, headers: dict[str, str]) -> Response:
    out = {**headers, "Vary": "Accept-Encoding"}
    body = f.body
    if f.compressible and _accepts_gzip():
        body = f.gzipped()
        out["Content-Encoding"] = "gzip"
    return Response(body, content_type=f.content_type, headers=out)


def html_page(status: int, title: str, text: str, headers: dict[str, str]) -> Response:
    """A small HTML page of its own (``text`` is trusted markup)."""
    body = (f"<!doctype html><meta charset=utf-8><title>{title}</title>"
            f"<body><h1>{title}</h1><p>{text}</p>")
    return Response(body, status=status, content_type="text/html; charset=utf-8",
                    headers=headers)


def elsewhere(headers: dict[str, str]) -> Response:
    """The answer to a request for the page (or its files) on another address than its own."""
    return html_page(421, "The playground is not here",
                     "The playground lives on its own address, new at every start of the "
                     "bridge: open the URL kitplay-bridge printed, or run <code>kitplay "
                     "open --browser</code>.", headers)


def add_page_routes(app: Quart, headers: dict[str, str],
                    on_page_host: Callable[[Any], bool] = lambda _headers: True) -> None:
    """The page, the reference page and ``/static/<path>``, each with ``headers``."""
    files = static_files()

    def document_view(name: str) -> Callable[[], Awaitable[Response]]:
        async def view() -> Response:
            if not on_page_host(request.headers):
                return elsewhere(headers)
            return _serve(files[name], headers)
        return view

    for route, name in DOCUMENTS.items():
        app.add_url_rule(route, f"page:{name}", document_view(name), methods=["GET"])

    @app.get("/static/<path:name>")
    async def static_file(name: str) -> Response:
        if not on_page_host(request.headers):
            return elsewhere(headers)
        f = files.get(name)
        if f is None or name in DOCUMENTS.values():
            return html_page(404, "Not found", "No such file.", headers)
        return _serve(f, headers)
