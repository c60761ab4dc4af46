"""``/display/<session>/``: each Xpra session's HTML5 client and WebSocket, through the bridge.

The daemon runs every Xpra session on a Unix socket of its own, ``displays/<session>.sock``
beside the daemon's socket (the user's private runtime directory; ``daemon/displays.py``).
Here the bridge serves, on its own origin:

- ``GET /display/<session>/``: Xpra's ``index.html``, fetched from the session's socket, with
  one script added right after ``js/Client.js``: ``kitplay-display.js`` (from
  ``display_client/``), which admits the client (below);
- ``GET /display/<session>/<file>``: the client's static files, from the same socket, and
  only those an allowlist names (its scripts, styles, icons and fonts): never ``/Info`` or
  ``/Status`` (the server's details), ``connect.html`` (a form for any server) or anything
  else Xpra would answer;
- ``WS /display/<session>/``: the client's WebSocket, relayed to Xpra's on the socket.

Admission: a browser cannot put a header on an iframe's navigation or on a WebSocket, so the
WebSocket opens with a one-time ticket, as the log stream's (``POST /api/v1/stream-tickets``,
any valid credential: a page session or the master token); the bridge's WebSocket guard
checks Host, the ticket (or an ``Authorization`` header) and Origin as for every WebSocket.
The added script gets that ticket with the page's session token, which the page keeps in
``sessionStorage``: a same-origin iframe shares its page's, and a tab the page opens with
``window.open`` starts with a copy.  Xpra's client builds its WebSocket URL as
``ws://`` + host + ``:`` + port + ``path`` in ``XpraClient.open_protocol`` (js/Client.js), where
``path`` is the URL's ``path`` parameter or the page's own pathname (index.html
``init_client``); the script wraps ``open_protocol`` to fetch a ticket first and put it in
``path``, for the first connection and for every reconnection.  It also replaces the
client's ``callback_close``, which would send the frame to ``connect.html``.

A session whose Xpra is still starting (the daemon keeps a ``<session>.starting`` file beside
its socket meanwhile) is waited for: its page comes from the kept files and its WebSocket is
relayed once Xpra listens, so a browser loads the client while Xpra starts.  A session with
neither file is gone (404 at once).  The socket must be of this user (lstat), and so must the
process listening on it (``SO_PEERCRED``).

The client's files are the same for every session and hold no secret (they are the files of
Debian's ``xpra`` package): they are served without a credential, to anyone who can reach the
bridge, who learns only whether a random 16-character session id is live.  Every response gets
a CSP that lets the client run (its one inline script by hash, its worker, WebSocket and
images) and be framed by the bridge's own origin only.

The relay uses trio-websocket's client over a trio Unix stream (``wrap_client_stream``): the
python-trio project's WebSocket library on wsproto (which Hypercorn uses already), with the
opening handshake, message reassembly, ping/pong and the closing handshake done for us; the
browser side is Quart's WebSocket.  Each direction is one task, with a bounded queue between
Xpra and the browser (``message_queue_size``), so a slow browser slows Xpra, not memory.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import socket
import stat
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h11
import trio
from kitplay.daemon.protocol.displays import SESSION_ID, session_socket, starting_marker
from kitplay.daemon.protocol.errors import InvalidRequest, KitplayError, NotFound
from quart import Quart, Response, request, websocket
from trio_websocket import ConnectionClosed, HandshakeError, wrap_client_stream

from .errors import error_response

__all__ = ["CLIENT_SCRIPT", "add_display_routes", "display_csp"]

CLIENT_DIR = Path(__file__).resolve().parent / "display_client"
CLIENT_SCRIPT = "kitplay-display.js"
# Where the script goes: right after the client's own code, before index.html's inline script
# builds the client (at DOMContentLoaded, after every script of the page ran).
_AFTER = re.compile(rb'<script[^>]*\ssrc="js/Client\.js"[^>]*>\s*</script>')
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.S)

# The client's static files (Xpra 3.1.3's www/: index.html's scripts and styles, the worker
# js/Protocol.js and js/lib/wsworker_check.js, css/icon.css's fonts, the window icons).
_NAME = r"[A-Za-z0-9_][A-Za-z0-9_.-]*"
ALLOWED = re.compile(
    rf"(js/(lib/((aurora|broadway)/)?)?{_NAME}\.js|css/{_NAME}\.css"
    rf"|icons/{_NAME}\.(png|svg|woff2?|ttf)|favicon\.(png|ico))")
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".html": "text/html; charset=utf-8", ".png": "image/png", ".ico": "image/x-icon",
         ".svg": "image/svg+xml", ".woff": "font/woff", ".woff2": "font/woff2",
         ".ttf": "font/ttf"}
MAX_FILE_BYTES = 8 * 1024 * 1024  # the largest client file (js/lib/forge.js) is 0.9 MB
MAX_MESSAGE_BYTES = 256 * 1024 * 1024  # one Xpra packet: a window's pixels can be large
QUEUE = 4  # messages from Xpra waiting for the browser
START_WAIT_S = 120.0  # a starting session: as long as the daemon waits for it
WS_SUBPROTOCOL = "binary"  # js/Protocol.js: new WebSocket(uri, 'binary')


def display_csp(script_hashes: tuple[str, ...] = ()) -> str:
    """The display pages' policy: Xpra's client runs (its scripts, its one inline script by
    hash, its worker; its WebSocket and ticket requests to this origin; window pixels as
    data: and blob: images; inline style attributes) and only this origin may frame it."""
    scripts = " ".join(["'self'", *(f"'sha256-{h}'" for h in script_hashes)])
    return (f"default-src 'none'; script-src {scripts}; worker-src 'self'; "
            "connect-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
            "style-src 'self' 'unsafe-inline'; font-src 'self'; frame-ancestors 'self'; "
            "base-uri 'none'; form-action 'none'")


def _headers(csp: str, *, cache: str) -> dict[str, str]:
    return {"Content-Security-Policy": csp, "X-Frame-Options": "SAMEORIGIN",
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
            "Cross-Origin-Resource-Policy": "same-origin", "Cache-Control": cache}


class Gone(NotFound):
    """No live session with this id (it ended, or never was)."""


class Session:
    """Where a session's Xpra listens, and how to reach it."""

    def __init__(self, daemon_socket: Path, session: str) -> None:
        if not SESSION_ID.fullmatch(session):
            raise Gone(f"no display session {session[:40]!r}: session ids are 16 characters "
                       "(sessions.list has them)", {"session": session[:40]})
        self.id = session
        self.socket = session_socket(daemon_socket, session)
        self.marker = starting_marker(self.socket)

    def starting(self) -> bool:
        """The daemon has started its Xpra, which does not answer yet (lstat: a regular file
        of ours, never a link)."""
        try:
            st = os.lstat(self.marker)
        except OSError:
            return False
        return stat.S_ISREG(st.st_mode) and st.st_uid == os.getuid()

    async def try_connect(self) -> trio.SocketStream | None:
        """A connection to its Xpra now, or None when nothing listens there (yet)."""
        try:
            st = os.lstat(self.socket)
        except OSError:
            return None
        if not stat.S_ISSOCK(st.st_mode) or st.st_uid != os.getuid():
            return None
        try:
            stream = await trio.open_unix_socket(str(self.socket))
        except (FileNotFoundError, ConnectionRefusedError):
            return None  # not bound yet, or bound and not listening yet: Xpra is starting
        # The listener must be this user's too (SO_PEERCRED: pid, uid, gid).
        cred = stream.socket.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                        struct.calcsize("3i"))
        if struct.unpack("3i", cred)[1] != os.getuid():
            await stream.aclose()
            return None
        return stream

    async def connect(self) -> trio.SocketStream:
        """A connection to its Xpra, waiting while the session starts; Gone when it ended
        (or never was)."""
        delay = 0.005
        with trio.move_on_after(START_WAIT_S):
            while True:
                stream = await self.try_connect()
                if stream is not None:
                    return stream
                if not self.starting():
                    break
                await trio.sleep(delay)
                delay = min(delay * 2, 0.02)
        raise Gone(f"no display session {self.id!r}: it ended (or never was); "
                   "sessions.list has the live ones", {"session": self.id})


class ClientFiles:
    """The client's static files, kept once fetched: they are the same for every session of
    one Xpra installation (Debian's package files), and serving them from memory lets a
    page load in a few milliseconds instead of some forty round trips to Xpra's HTTP server.
    Each served ``index.html`` says which installation it came from (its ``Last-Modified``
    and size): when that changes (Xpra was upgraded), what was kept is dropped."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.origin: tuple[str, int] | None = None

    async def index(self, session: Session) -> bytes:
        """Xpra's index.html: from the session when it answers (noting which installation it
        came from), the kept one while the session starts (so the page loads meanwhile)."""
        stream = await session.try_connect()
        if stream is None and session.starting() and "index.html" in self.files:
            return self.files["index.html"]
        if stream is None:
            stream = await session.connect()
        status, html, headers = await fetch(stream, "/index.html")
        if status != 200:
            raise Gone(f"the display session {session.id!r} did not serve its client "
                       f"(HTTP {status})")
        origin = (headers.get("last-modified", ""), len(html))
        if origin != self.origin:
            self.files.clear()
            self.origin = origin
        self.files["index.html"] = html
        return html

    async def get(self, session: Session, name: str) -> bytes | None:
        """The file ``name``, kept or fetched from the session (waiting while it starts).

        A kept file is served even when the session has ended: Xpra's client loads
        js/lib/wsworker_check.js again to reconnect, and waits for it forever when it does
        not come; it then fails at the WebSocket, says so, and stops."""
        body = self.files.get(name)
        if body is None:
            status, body, _ = await fetch(await session.connect(), "/" + name)
            if status != 200:
                return None
            if self.origin is not None:  # files of an installation whose index was seen
                self.files[name] = body
        return body


async def fetch(stream: trio.SocketStream, target: str) -> tuple[int, bytes, dict[str, str]]:
    """``GET target`` from the Xpra server at the other end of ``stream`` (closed after):
    status, body, headers."""
    conn = h11.Connection(h11.CLIENT)
    status, body, headers = 0, bytearray(), {}
    async with stream:
        with trio.fail_after(30):
            await stream.send_all(conn.send(h11.Request(
                method="GET", target=target,
                headers=[("Host", "localhost"), ("Connection", "close")])) or b"")
            await stream.send_all(conn.send(h11.EndOfMessage()) or b"")
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await stream.receive_some(65536))
                elif isinstance(event, h11.Response):
                    status = event.status_code
                    headers = {k.decode("latin-1"): v.decode("latin-1")
                               for k, v in event.headers}
                elif isinstance(event, h11.Data):
                    body += event.data
                    if len(body) > MAX_FILE_BYTES:
                        raise InvalidRequest(f"{target} is over {MAX_FILE_BYTES} bytes")
                elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                    return status, bytes(body), headers


def prepare_index(html: bytes) -> tuple[bytes, tuple[str, ...]]:
    """Xpra's index.html with kitplay's script added; the hashes of its inline scripts."""
    found = _AFTER.search(html)
    if found is None:
        raise KitplayError("this Xpra's HTML5 client has no js/Client.js script: kitplay "
                           "cannot admit it (Xpra 3.1's client is known)")
    tag = f'\n\t\t<script type="text/javascript" src="{CLIENT_SCRIPT}"></script>'.encode()
    html = html[:found.end()] + tag + html[found.end():]
    hashes = tuple(base64.b64encode(hashlib.sha256(m.group(1)).digest()).decode()
                   for m in _INLINE_SCRIPT.finditer(html))
    return html, hashes


def add_display_routes(app: Quart, daemon_socket: Path,
                       elsewhere: Callable[[Any], Response | None]) -> None:
    """The routes above; the app's guards (Host, WebSocket admission, Origin) run first.
    ``elsewhere(headers)`` refuses a page or file request that is not on the page's own
    origin (the client shares the page's sessionStorage only there), else is None."""
    plain_csp = display_csp()
    script = (CLIENT_DIR / CLIENT_SCRIPT).read_bytes()
    files = ClientFiles()
    app.extensions.setdefault("kitplay", {})["display_files"] = files

    async def client_page(session: str) -> Response:
        refused = elsewhere(request.headers)
        if refused is not None:
            return refused
        try:
            page, hashes = prepare_index(await files.index(Session(daemon_socket, session)))
        except (KitplayError, OSError, trio.TooSlowError, h11.ProtocolError) as e:
            return _refused(e)
        return Response(page, content_type=TYPES[".html"],
                        headers=_headers(display_csp(hashes), cache="no-store"))

    async def client_file(session: str, name: str) -> Response:
        refused = elsewhere(request.headers)
        if refused is not None:
            return refused
        if name == CLIENT_SCRIPT:
            return Response(script, content_type=TYPES[".js"],
                            headers=_headers(plain_csp, cache="no-store"))
        if not ALLOWED.fullmatch(name):
            return error_response(NotFound(
                f"{name[:100]!r} is not a file of the display client",
                {"session": session[:40]}))
        try:
            body = await files.get(Session(daemon_socket, session), name)
        except (KitplayError, OSError, trio.TooSlowError, h11.ProtocolError) as e:
            return _refused(e)
        if body is None:
            return error_response(NotFound(f"the display client has no {name[:100]!r}"))
        ctype = TYPES[os.path.splitext(name)[1]]
        return Response(body, content_type=ctype, headers=_headers(plain_csp, cache="no-store"))

    async def relay(session: str) -> Response | None:
        try:
            stream = await Session(daemon_socket, session).connect()
        except (KitplayError, OSError) as e:
            return _refused(e)
        async with stream, trio.open_nursery() as nursery:
            try:
                xpra = await wrap_client_stream(
                    nursery, stream, "localhost", "/", subprotocols=[WS_SUBPROTOCOL],
                    message_queue_size=QUEUE, max_message_size=MAX_MESSAGE_BYTES)
            except HandshakeError as e:
                nursery.cancel_scope.cancel()
                return _refused(Gone(f"the display session {session!r} refused the "
                                     f"connection ({type(e).__name__})"))
            wanted = websocket.requested_subprotocols
            await websocket.accept(subprotocol=WS_SUBPROTOCOL if WS_SUBPROTOCOL in wanted
                                   else None)
            await _pump(xpra)
            nursery.cancel_scope.cancel()
        return None

    rule = "/display/<session>/"
    app.add_url_rule(rule, "display:page", client_page, methods=["GET"])
    app.add_url_rule(rule + "index.html", "display:index", client_page, methods=["GET"])
    app.add_url_rule(rule + "<path:name>", "display:file", client_file, methods=["GET"])
    app.add_websocket(rule, "display:relay", relay)


def _refused(e: BaseException) -> Response:
    if isinstance(e, KitplayError):
        return error_response(e)
    err = Gone(f"the display session does not answer ({type(e).__name__}: {e})")
    err.http_status = 502
    return error_response(err)


async def _pump(xpra: Any) -> None:
    """Relay messages both ways until either side closes."""
    async with trio.open_nursery() as nursery:

        async def from_browser() -> None:
            try:
                while True:
                    data = await websocket.receive()
                    await xpra.send_message(data)
            except ConnectionClosed:
                pass
            finally:
                nursery.cancel_scope.cancel()

        async def to_browser() -> None:
            try:
                while True:
                    message = await xpra.get_message()
                    await websocket.send(message)
                    await trio.lowlevel.checkpoint()
            except ConnectionClosed as e:
                reason = e.reason
                code = reason.code if reason is not None and reason.code else 1000
                with contextlib.suppress(Exception):
                    await websocket.close(1000 if code in (1005, 1006) else code,
                                          "the display session closed")
            finally:
                nursery.cancel_scope.cancel()

        nursery.start_soon(from_browser)
        nursery.start_soon(to_browser)
