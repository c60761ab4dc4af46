"""An app's window through Xpra in a real browser, served by the bridge: drawn, clicked, quit.

The readiness the daemon checks (Xpra answers on its socket) is not what a user sees: without
Pillow in xpra's Python the HTML5 client connects, then shows "server error" and no window.
So these tests open the session's display path on the bridge in Debian's chromium, signed in
as the page signs in, wait until the Tk app's window is in the page with its title and its
text drawn on the canvas (two bands of dark pixels: the greeting and the Quit button's
label), click Quit through the browser, and see the launch job end ``succeeded`` with the
app's own exit status. A tab that is not signed in is never admitted; and one forwarded port
(as ``ssh -L`` makes) serves the page and the display.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.bridge_helpers import Bridge, bridge_fixture, make_bridge_fixture  # noqa: F401
from tests.browser_helpers import chromium, click_canvas, needs_chromium, xpra_window
from tests.helpers import Daemon, wait_for

pytestmark = [
    pytest.mark.xpra, pytest.mark.browser, needs_chromium,
    pytest.mark.skipif(shutil.which("xpra") is None,
                       reason="xpra is not installed (sudo apt-get install xpra)"),
]

APP = "my_company.pixels"
TITLE = "Pixel Proof"
SIGNED_IN = "() => sessionStorage.getItem('kitplay.session')"


def make_app(d: Daemon) -> None:
    job = d.call("templates.create", {"template": "gui_app", "name": APP,
                                      "display_name": TITLE})["job"]
    assert d.wait_job(job["id"])["status"] == "succeeded"
    build = d.call("build", {"app": APP})["job"]
    assert d.wait_job(build["id"])["status"] == "succeeded", d.job_log(build["id"])


def display_path(d: Daemon, job_id: str) -> str:
    def path() -> Any:
        job = d.call("jobs.get", {"job_id": job_id})["job"]
        assert job["status"] in ("queued", "running"), d.job_log(job_id)
        return ((job.get("result") or {}).get("display") or {}).get("path")
    return str(wait_for(path, 60, "the session's display"))


def test_the_window_is_drawn_through_the_bridge_and_quits_from_it(
        daemon: Daemon, bridge: Bridge, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    make_app(daemon)
    launch = bridge.ok("POST", "/api/launch", {"app": APP, "display": "xpra"})["job"]
    path = display_path(daemon, launch["id"])
    with chromium(1000, 700) as page:
        urls: list[str] = []
        page.on("request", lambda r: urls.append(r.url))
        page.on("websocket", lambda ws: urls.append(ws.url))
        page.goto(bridge.login_url)  # signs in as the page does (its sessionStorage)
        page.wait_for_function(SIGNED_IN)
        page.goto(bridge.page_url + path)
        window = xpra_window(page, TITLE, bands=2)
        page.screenshot(path=str(tmp_path / "window.png"))
        greeting, button = window["bands"][0], window["bands"][-1]
        # "Hello from Pixel Proof 0.1.0" above a much shorter "Quit".
        assert greeting["y1"] < button["y0"]
        assert greeting["x1"] - greeting["x0"] > 3 * (button["x1"] - button["x0"])

        click_canvas(page, window, (button["x0"] + button["x1"]) / 2,
                     (button["y0"] + button["y1"]) / 2)
        done = daemon.wait_job(launch["id"], timeout=60)
        # The client says its session ended (it would go to Xpra's connect.html otherwise).
        expect(page.locator("#kitplay-closed")).to_contain_text("The display closed")
    log = daemon.job_log(launch["id"])
    assert done["status"] == "succeeded", log
    assert done["exit_code"] == 0
    assert "quitting" in log  # the app's own Quit path, not a signal
    assert daemon.call("sessions.list")["sessions"] == []
    # Everything came from the bridge's origin; the WebSocket went there with a ticket; no
    # password anywhere.
    ws_host = bridge.page_url.replace("http://", "ws://")
    assert all(u.startswith((bridge.page_url + "/", ws_host + "/")) for u in urls), urls
    sockets = [u for u in urls if u.startswith(ws_host)]
    # The client may connect more than once (it starts while Xpra is still starting, and
    # retries): each time to this display, each time with a ticket of its own.
    assert {u.split("?ticket=")[0] for u in sockets} == {ws_host + path}, sockets
    tickets = [u.split("?ticket=")[1] for u in sockets]
    assert all(tickets) and len(set(tickets)) == len(tickets), sockets
    assert not [u for u in urls if "password" in u.lower()]


def test_a_tab_without_the_page_sign_in_is_not_admitted(daemon: Daemon,
                                                        bridge: Bridge) -> None:
    from playwright.sync_api import expect

    make_app(daemon)
    launch = bridge.ok("POST", "/api/launch", {"app": APP, "display": "xpra"})["job"]
    path = display_path(daemon, launch["id"])
    with chromium(1000, 700) as page:
        sockets: list[str] = []
        page.on("websocket", lambda ws: sockets.append(ws.url))
        page.goto(bridge.page_url + path)  # the path alone, as another tab or a link would
        expect(page.locator("#kitplay-closed")).to_contain_text("Not signed in")
        assert sockets == []
    xlog = daemon.call("jobs.logs", {"job_id": launch["id"], "log": "display"})["data"]
    assert "Handshake complete" not in xlog  # no client ever reached Xpra
    bridge.ok("DELETE", f"/api/jobs/{launch['id']}")


REQUEST_LINE = re.compile(rb"(?:^|\r\n)((?:GET|POST|DELETE) \S+ HTTP/1\.1)\r\n")


class Forwarder:
    """Port ``port`` of this machine's 127.0.0.1 and ::1, forwarded to the Unix socket
    ``target`` (ssh -L forwards to another host; ``NetnsBridge`` stands for that host);
    ``requests`` holds the request lines the browser sent through it."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.requests: list[bytes] = []
        self.sockets: list[socket.socket] = []
        self.threads: list[threading.Thread] = []
        for _ in range(20):  # a port free on both loopback addresses
            v4 = socket.create_server(("127.0.0.1", 0))
            self.port = v4.getsockname()[1]
            try:
                v6 = socket.create_server(("::1", self.port), family=socket.AF_INET6)
            except OSError:
                v4.close()
                continue
            self.listeners = [v4, v6]
            break
        else:
            raise AssertionError("no port free on both 127.0.0.1 and ::1")
        for listener in self.listeners:
            self._start(self._accept, listener)

    def _start(self, fn: Any, *args: Any) -> None:
        t = threading.Thread(target=fn, args=args, daemon=True)
        self.threads.append(t)
        t.start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            up = socket.socket(socket.AF_UNIX)
            try:
                up.connect(self.target)
            except OSError:
                conn.close()
                up.close()
                continue
            self.sockets += [conn, up]
            self._start(self._pump, conn, up, True)
            self._start(self._pump, up, conn, False)

    def _pump(self, src: socket.socket, dst: socket.socket, upstream: bool) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                if upstream:
                    self.requests += REQUEST_LINE.findall(data)
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        for listener in self.listeners:
            listener.close()
        for s in self.sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        for t in self.threads:
            t.join(timeout=10)


class NetnsBridge(Bridge):
    """A bridge in a network namespace of its own: its 127.0.0.1 and ::1 are not this
    machine's, as those of a bridge on another host are not."""

    def argv(self) -> list[str]:
        return ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
                *super().argv()]


def test_one_forwarded_port_serves_the_page_and_the_display(daemon: Daemon,
                                                            tmp_path: Path) -> None:
    """The bridge on "another host" (a network namespace of its own), reached only through
    one forwarded port, as ``ssh -L P:127.0.0.1:P`` makes (the same port number: the page's
    origin carries it): the page signs in, starts the launch and shows the display, every
    byte through that port."""
    for tool in ("unshare", "nsenter", "ip", "socat"):
        assert shutil.which(tool), f"needs {tool} (util-linux, iproute2, socat)"
    make_app(daemon)
    fwd = Forwarder(str(tmp_path / "tunnel.sock"))
    b = NetnsBridge(daemon.socket, bind=f"127.0.0.1:{fwd.port}")
    tunnel = None
    try:
        b.start()
        assert b.proc is not None
        # The far end of the tunnel, inside the bridge's namespace: as sshd connects there.
        tunnel = subprocess.Popen(
            ["nsenter", f"--net=/proc/{b.proc.pid}/ns/net", "socat",
             f"UNIX-LISTEN:{fwd.target},fork,mode=600", f"TCP:127.0.0.1:{b.port}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: os.path.exists(fwd.target), 10, "the tunnel's far end")
        _forwarded(daemon, b, fwd)
    finally:
        if tunnel is not None:
            tunnel.terminate()
            tunnel.wait(timeout=10)
        b.stop()
        fwd.close()


def _forwarded(daemon: Daemon, b: Bridge, fwd: Forwarder) -> None:
    assert b.port == fwd.port and b.page_url.endswith(f".localhost:{fwd.port}")
    with chromium(1000, 700) as page:
        urls: list[str] = []
        page.on("request", lambda r: urls.append(r.url))
        page.on("websocket", lambda ws: urls.append(ws.url))
        page.goto(b.login_url)
        page.wait_for_function(SIGNED_IN)
        job = page.evaluate("""async () => {
            const r = await fetch("/api/v1/launch", {method: "POST", headers: {
                "Content-Type": "application/json",
                Authorization: "Bearer " + sessionStorage.getItem("kitplay.session")},
                body: JSON.stringify({app: "my_company.pixels", display: "xpra"})});
            return (await r.json()).job; }""")
        path = display_path(daemon, job["id"])
        page.goto(b.page_url + path)
        xpra_window(page, TITLE, bands=2)
    ws_page = b.page_url.replace("http://", "ws://")
    assert all(u.startswith((b.page_url + "/", ws_page + "/")) for u in urls), urls
    lines = fwd.requests
    assert b"POST /api/v1/login HTTP/1.1" in lines and b"POST /api/v1/launch HTTP/1.1" in lines
    assert f"GET {path}js/Client.js HTTP/1.1".encode() in lines
    assert any(line.startswith(f"GET {path}?ticket=".encode()) for line in lines), lines
    daemon.call("jobs.cancel", {"job_id": job["id"]})
