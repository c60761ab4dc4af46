"""Test helpers for the bridge: a real ``kitplay-bridge`` subprocess in front of a real daemon.

The same rules as ``tests/helpers.py``: real processes, loopback only, port 0 (a free port),
readiness is the bridge's "open URL" line on stdout (printed once it is serving and has written
bridge.json), every wait has a deadline, and everything started is stopped at teardown.

Test modules use the fixtures with
``from tests.bridge_helpers import bridge_fixture, make_bridge_fixture  # noqa: F401``.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

from tests.helpers import ROOT, Daemon, terminate

__all__ = [
    "Bridge", "big_log_job", "bridge_fixture", "make_bridge_fixture", "open_stream",
    "read_stream", "wait_until",
]


class Bridge:
    """A kitplay-bridge subprocess; ``.http`` is an httpx client with the master token.

    ``.url`` is where API clients reach it (a loopback literal), ``.page_url`` the page's own
    origin (``http://kp-<random>.localhost:PORT``, which browsers resolve to loopback and
    httpx does not: ``page_client()`` talks to ``.url`` with the page's Host). ``.token`` is
    the master token (from bridge.json), ``.login_url`` the one-time page URL the bridge
    printed; ``new_login_url()`` mints another (as ``kitplay open`` does) and ``session()``
    signs in as the page does, returning a session token.
    """

    def __init__(self, socket: Path, *args: str, env: dict[str, str] | None = None,
                 config: Path | None = None, bind: str = "127.0.0.1:0") -> None:
        self.socket = socket
        self.bind = bind
        self.err_text = ""
        self.args = list(args)
        self.env = {**os.environ, **(env or {})}
        self.env["PYTHONPATH"] = str(ROOT) + os.pathsep + self.env.get("PYTHONPATH", "")
        self.env.pop("KITPLAY_SOCKET", None)
        self.config = config or socket.parent.parent / "config.toml"
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.page_url = ""
        self.login_url = ""
        self.token = ""
        self.port = 0
        self.stdout = b""
        self._http: httpx.Client | None = None

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "kitplay.bridge", "--socket", str(self.socket),
                "--bind", self.bind, "--config", str(self.config), *self.args]

    def start(self, timeout: float = 20.0) -> Bridge:
        self.proc = subprocess.Popen(self.argv(), env=self.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        line = self._read_line(timeout)
        if not line.startswith(b"kitplay-bridge: open "):
            self.stop()
            raise AssertionError(f"bridge did not start: {line!r}\n{self.stderr()}")
        self.login_url = line.split(b" open ", 1)[1].decode().strip()
        info = json.loads(self.info_path.read_text())
        self.url, self.page_url = info["url"].rstrip("/"), info["page_url"].rstrip("/")
        assert self.login_url.startswith(self.page_url + "/#code="), (self.login_url, info)
        self.port = int(self.url.rsplit(":", 1)[1])
        self.token = info["token"]
        return self

    @property
    def page_host(self) -> str:
        return self.page_url.removeprefix("http://")

    def page_client(self, **headers: str) -> httpx.Client:
        """An httpx client for the page's origin: ``.url``'s address, the page's Host (and
        Origin, as a browser's same-origin POST carries)."""
        return httpx.Client(base_url=self.url, timeout=30, headers={
            "Host": self.page_host, "Origin": self.page_url, **headers})

    def new_login_url(self) -> str:
        """A fresh one-time page URL, minted with the master token (as ``kitplay open``)."""
        r = self.http.post("/api/v1/login-codes", json={})
        assert r.status_code == 200, (r.status_code, r.text)
        url: str = r.json()["url"]
        return url

    def session(self, login_url: str | None = None) -> str:
        """Trade a login URL's code for a session token, as the page does."""
        code = (login_url or self.new_login_url()).partition("#code=")[2]
        with self.page_client() as c:
            r = c.post("/api/v1/login", json={"code": code})
        assert r.status_code == 200, (r.status_code, r.text)
        session: str = r.json()["session"]
        return session

    def ticket(self, bearer: str | None = None) -> str:
        """A one-time stream ticket (for a WebSocket without an Authorization header)."""
        r = self.http.post("/api/v1/stream-tickets", json={},
                           headers={"Authorization": f"Bearer {bearer or self.token}"})
        assert r.status_code == 200, (r.status_code, r.text)
        ticket: str = r.json()["ticket"]
        return ticket

    def _read_line(self, timeout: float) -> bytes:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self.stdout:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"bridge not ready in {timeout} s")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                self.stdout += chunk
        line, _, self.stdout = self.stdout.partition(b"\n")
        return line

    def stderr(self) -> str:
        """Everything the bridge wrote to stderr (once it has exited)."""
        if self.proc is not None and self.proc.stderr is not None and \
                self.proc.poll() is not None:
            self.err_text += self.proc.stderr.read().decode(errors="replace")
        return self.err_text

    @property
    def info_path(self) -> Path:
        return self.socket.parent / "bridge.json"

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(base_url=self.url, timeout=60,
                                      headers={"Authorization": f"Bearer {self.token}"})
        return self._http

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.get(path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> httpx.Response:
        return self.http.post(path, json=body if body is not None else {}, **kw)

    def ok(self, verb: str, path: str, body: Any = None) -> Any:
        r = self.http.request(verb, path, json=body) if body is not None else \
            self.http.request(verb, path)
        assert r.status_code == 200, (r.status_code, r.text)
        return r.json()

    def upgrade(self, path: str, headers: dict[str, str] | None = None,
                token: bool = True) -> httpx.Response:
        """A WebSocket upgrade request with the token; the bridge's answer when it refuses.

        (trio-websocket leaks its socket on a refused handshake, so refusals are tested so.)
        """
        auth = {"Authorization": f"Bearer {self.token}"} if token else {}
        with httpx.Client(base_url=self.url, timeout=30) as c:
            return c.get(path, headers={
                "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", **auth, **(headers or {})})

    def ws_url(self, path: str) -> str:
        return self.url.replace("http://", "ws://") + path

    def stop(self, timeout: float = 20.0) -> int | None:
        if self._http is not None:
            self._http.close()
            self._http = None
        if self.proc is None:
            return None
        code = terminate(self.proc, timeout)
        self.stderr()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        self.proc = None
        return code


@pytest.fixture(name="make_bridge")
def make_bridge_fixture() -> Iterator[Any]:
    """``make_bridge(daemon, *flags, env=..., config=...)``: started bridges, stopped after."""
    made: list[Bridge] = []

    def make(daemon: Daemon, *args: str, **kw: Any) -> Bridge:
        b = Bridge(daemon.socket, *args, **kw)
        made.append(b)
        return b.start()

    try:
        yield make
    finally:
        for b in made:
            b.stop()


@pytest.fixture(name="bridge")
def bridge_fixture(daemon: Daemon, make_bridge: Any) -> Bridge:
    """A bridge in front of the ``daemon`` fixture, with a generous rate limit."""
    bridge: Bridge = make_bridge(daemon, "--rate-limit", "10000", "--rate-burst", "10000",
                                 "--anon-rate", "10000", "--anon-burst", "10000")
    return bridge


BIG_LOG_APP = "kitplay_test.big_log"


def big_log_job(d: Daemon, megabytes: int, line: int = 100) -> dict[str, Any]:
    """A finished launch job whose log holds ``megabytes`` MB of numbered lines, written fast.

    A console app is created from the builtin template, then its launch command is replaced
    by one that writes the lines in large blocks.
    """
    app_dir = d.workspace / "source" / "apps" / BIG_LOG_APP
    if not app_dir.exists():
        job = d.call("templates.create", {"template": "console_app", "name": BIG_LOG_APP})["job"]
        assert d.wait_job(job["id"])["status"] == "succeeded"
    code = (
        "import sys\n"
        f"n, w = {megabytes} * 1000 * 1000 // {line}, {line} - 1\n"
        "out = sys.stdout.buffer\n"
        "for s in range(0, n, 10000):\n"
        "    out.write(b''.join(b'%0*d\\n' % (w, i) for i in range(s, min(n, s + 10000))))\n"
    )
    toml = app_dir / "kitapp.toml"
    text = toml.read_text()
    head = text.split("[launch]")[0]
    toml.write_text(head + "[launch]\nargv = " + json.dumps(["{python}", "-c", code]) + "\n")
    job = d.call("launch", {"app": BIG_LOG_APP})["job"]
    done = d.wait_job(job["id"], timeout=300)
    assert done["status"] == "succeeded", d.job_log(job["id"])[-2000:]
    return done


@asynccontextmanager
async def open_stream(b: Bridge, job_id: str, offset: int | None = None,
                      headers: list[tuple[str, str]] | None = None, query: str = "",
                      ) -> AsyncIterator[WebSocketConnection]:
    """``WS /api/stream/<job_id>`` with the bearer token.

    trio-websocket 0.12 leaves its TCP stream open when the server closes first (as the bridge
    does after ``end``); it is closed here.
    """
    if offset is not None:
        query = f"?offset={offset}" + query.replace("?", "&", 1)
    if headers is None:
        headers = [("Authorization", f"Bearer {b.token}")]
    async with open_websocket_url(
            b.ws_url(f"/api/stream/{job_id}{query}"),
            extra_headers=[(k.encode(), v.encode()) for k, v in headers]) as ws:
        try:
            yield ws
        finally:
            stream = ws._stream
    await stream.aclose()


async def wait_until(cond: Callable[[], Any], what: str, deadline_s: float = 10.0) -> None:
    """Poll ``cond`` (cheap, non-blocking) until true; fail after ``deadline_s`` seconds."""
    delay = 0.005
    with trio.move_on_after(deadline_s):
        while not cond():
            await trio.sleep(delay)
            delay = min(delay * 2, 0.1)
        return
    raise AssertionError(f"timed out after {deadline_s} s waiting for {what}")


async def read_stream(ws: WebSocketConnection, limit: int | None = None) -> list[dict[str, Any]]:
    """Messages until the server closes (or ``limit`` messages)."""
    out: list[dict[str, Any]] = []
    while limit is None or len(out) < limit:
        try:
            out.append(json.loads(await ws.get_message()))
        except ConnectionClosed:
            break
    return out
