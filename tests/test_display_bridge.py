"""Display sessions through the bridge, without a browser: a real daemon, a real bridge and a
real Xpra session of the builtin gui_app.

The bridge serves each session's HTML5 client under ``/display/<session>/`` from the session's
Unix socket: only the client's own files (an allowlist), each with a CSP that lets it run and
be framed by the bridge's origin only; its WebSocket is admitted as every bridge WebSocket
(Host, then a one-time ticket or a bearer credential, then Origin) and relayed to Xpra.
The browser side is tests/test_xpra_browser.py.
"""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import trio
from trio_websocket import open_websocket_url

from tests.bridge_helpers import Bridge, bridge_fixture, make_bridge_fixture  # noqa: F401
from tests.helpers import Daemon, create_and_build, wait_for

pytestmark = [
    pytest.mark.xpra,
    pytest.mark.skipif(shutil.which("xpra") is None,
                       reason="xpra is not installed (sudo apt-get install xpra)"),
]

APP = "my_company.window"
WWW = Path("/usr/share/xpra/www")


@pytest.fixture
def session(daemon: Daemon, bridge: Bridge) -> dict[str, Any]:
    """A running launch job's display: {"job", "session", "path"}."""
    create_and_build(daemon, "gui_app", APP)
    job = bridge.ok("POST", "/api/launch", {"app": APP, "display": "xpra"})["job"]

    def display() -> Any:
        rec = bridge.ok("GET", f"/api/jobs/{job['id']}")["job"]
        assert rec["status"] in ("queued", "running"), daemon.job_log(job["id"])
        return (rec.get("result") or {}).get("display")

    d = wait_for(display, 60, "the display session")
    return {"job": job["id"], **d}


def test_the_client_files_are_an_allowlist_each_with_its_csp(bridge: Bridge,
                                                              session: dict[str, Any]) -> None:
    path = session["path"]
    assert path == f"/display/{session['session']}/"
    page_origin = bridge.page_client()  # the page's origin: no credential, public files
    page = page_origin.get(path)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "frame-ancestors 'self'" in csp and "connect-src 'self'" in csp
    assert "default-src 'none'" in csp and "unsafe-eval" not in csp
    assert page.headers["x-frame-options"] == "SAMEORIGIN"
    assert page.headers["cache-control"] == "no-store"
    # Xpra's own page with kitplay's script right after the client's code; its one inline
    # script is allowed by hash (the hash of the installed file's script).
    html = page.text
    assert html.index('src="js/Client.js"') < html.index('src="kitplay-display.js"')
    inline = re.search(rb"<script>(.*?)</script>", (WWW / "index.html").read_bytes(), re.S)
    assert inline is not None
    digest = base64.b64encode(hashlib.sha256(inline.group(1)).digest()).decode()
    assert f"'sha256-{digest}'" in csp

    for name, ctype in (("js/Client.js", "text/javascript"), ("kitplay-display.js",
                                                              "text/javascript"),
                        ("js/lib/wsworker_check.js", "text/javascript"),
                        ("css/client.css", "text/css"), ("icons/close.png", "image/png")):
        r = page_origin.get(path + name)
        assert r.status_code == 200, (name, r.text[:200])
        assert r.headers["content-type"].startswith(ctype)
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["cross-origin-resource-policy"] == "same-origin"
        assert "frame-ancestors 'self'" in r.headers["content-security-policy"]
        if name.startswith(("js/", "css/", "icons/")):
            assert r.content == (WWW / name).read_bytes()
    # Nothing else Xpra answers: its server details, its connect form, a path outside.
    for name in ("Info", "Status", "connect.html", "LICENSE", "js/Client.js.map",
                 "css/bootstrap.css.map", "js/lib/broadway/AUTHORS", "audio.mp3",
                 "..%2f..%2fetc%2fpasswd", "js/../connect.html", ".hidden.js"):
        r = page_origin.get(path + name)
        assert r.status_code == 404, (name, r.status_code)
        assert "Xpra-WebSocket-Server" not in r.text and "xpra" not in r.headers.get(
            "server", "").lower()
    # Sessions that are not live, or names that are no session id.
    for other in ("AAAAAAAAAAAAAAAA", "short", "%2e%2e", session["session"] + "x"):
        assert page_origin.get(f"/display/{other}/").status_code == 404, other
    # Host is checked as on every route (DNS rebinding); the client pages belong to the
    # page's own origin (the loopback literals are for API clients).
    assert page_origin.get(path, headers={"Host": "evil.example:80"}).status_code == 403
    assert bridge.http.get(path).status_code == 421
    assert bridge.http.get(path + "js/Client.js").status_code == 421
    page_origin.close()
    # The page frames only its own origin.
    with bridge.page_client() as c:
        page_csp = c.get("/").headers["content-security-policy"]
    assert "frame-src 'self'" in page_csp and "127.0.0.1:*" not in page_csp


def test_the_websocket_is_admitted_like_every_bridge_websocket(
        bridge: Bridge, session: dict[str, Any]) -> None:
    path = session["path"]
    origin = {"Origin": bridge.page_url}
    refused = {
        "no credential": bridge.upgrade(path, origin, token=False),
        "a wrong ticket": bridge.upgrade(path + "?ticket=nope", origin, token=False),
        "a foreign origin": bridge.upgrade(path + f"?ticket={bridge.ticket()}",
                                           {"Origin": "http://127.0.0.1:1"}, token=False),
        "a foreign host": bridge.upgrade(path + f"?ticket={bridge.ticket()}",
                                         {**origin, "Host": "evil.example"}, token=False),
    }
    assert {k: r.status_code for k, r in refused.items()} == {
        "no credential": 401, "a wrong ticket": 401, "a foreign origin": 403,
        "a foreign host": 403}
    ticket = bridge.ticket(bridge.session())  # a page session's ticket
    assert bridge.upgrade("/display/AAAAAAAAAAAAAAAA/?ticket=" + ticket, origin,
                          token=False).status_code == 404

    async def relayed(query: str, headers: list[tuple[str, str]]) -> str | None:
        async with open_websocket_url(bridge.ws_url(path + query), subprotocols=["binary"],
                                      extra_headers=[(k.encode(), v.encode())
                                                     for k, v in headers]) as ws:
            stream = ws._stream
            protocol = ws.subprotocol
        await stream.aclose()
        return protocol

    ticket = bridge.ticket(bridge.session())
    assert trio.run(relayed, f"?ticket={ticket}", [("Origin", bridge.page_url)]) == "binary"
    assert bridge.upgrade(path + f"?ticket={ticket}", origin, token=False).status_code == 401
    assert trio.run(relayed, "", [("Authorization", f"Bearer {bridge.token}")]) == "binary"


def test_an_ended_session_is_gone_from_the_bridge(bridge: Bridge, daemon: Daemon,
                                                  session: dict[str, Any]) -> None:
    path = session["path"]
    page_origin = bridge.page_client()
    assert page_origin.get(path).status_code == 200
    wait_for(lambda: "Hello from" in daemon.job_log(session["job"]), 30, "the app's greeting")
    done = bridge.ok("DELETE", f"/api/jobs/{session['job']}")["job"]
    assert done["status"] == "cancelled" and "display" not in (done["result"] or {})
    assert page_origin.get(path).status_code == 404
    assert page_origin.get(path + "js/Client.js").status_code == 404
    page_origin.close()
    r = bridge.upgrade(path + f"?ticket={bridge.ticket()}", {"Origin": bridge.page_url},
                       token=False)
    assert r.status_code == 404
    assert bridge.ok("GET", "/api/sessions") == {"sessions": []}
    # Xpra's own log stays readable, apart from the app's output; only such a job has one.
    xlog = bridge.ok("GET", f"/api/jobs/{session['job']}/logs?log=display")["data"]
    assert "xpra is ready" in xlog and "Hello from" not in xlog
    assert "Hello from" in bridge.ok("GET", f"/api/jobs/{session['job']}/logs")["data"]
    other = bridge.ok("POST", "/api/launch", {"app": APP, "display": "headless"})["job"]
    r = bridge.get(f"/api/jobs/{other['id']}/logs?log=display")
    assert r.status_code == 400 and "no display log" in r.json()["error"]["message"]
    bridge.ok("DELETE", f"/api/jobs/{other['id']}")
