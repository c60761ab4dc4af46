"""Each refusal of the bridge, and the same request done right succeeding.

Real bridge subprocess, real daemon; requests are made with httpx (sync) and trio-websocket.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from kitplay.bridge.security import RateLimiter

from tests.bridge_helpers import (  # noqa: F401
    Bridge,
    bridge_fixture,
    make_bridge_fixture,
    open_stream,
    read_stream,
)
from tests.helpers import ROOT, Daemon, wait_for


def anon(b: Bridge) -> httpx.Client:
    return httpx.Client(base_url=b.url, timeout=30)


def bearer(b: Bridge) -> dict[str, str]:
    return {"Authorization": f"Bearer {b.token}"}


def test_token_is_required_and_checked(bridge: Bridge) -> None:
    with anon(bridge) as c:
        r = c.get("/api/daemon/status")
        assert r.status_code == 401 and r.json()["error"]["data"]["reason"] == "token"
        assert r.headers["www-authenticate"].startswith("Bearer")
        r = c.get("/api/daemon/status", headers={"Authorization": "Bearer " + "x" * 43})
        assert r.status_code == 401
        r = c.get("/api/daemon/status", headers={"Authorization": f"Basic {bridge.token}"})
        assert r.status_code == 401
        # Near misses: the whole value is compared, not a prefix, and no other spelling.
        t = bridge.token

        def other(c: str) -> str:
            return "A" if c != "A" else "B"

        for near in (t + "x", t + t, t[:-1], t[:-1] + other(t[-1]), other(t[0]) + t[1:],
                     t.swapcase(), t + "%C3%A9", t + "%00", " " + t + " x"):
            r = c.get("/api/daemon/status", headers={"Authorization": f"Bearer {near}"})
            assert r.status_code == 401, near
        # Unknown routes are not revealed without the token either.
        assert c.get("/api/nothing").status_code == 401
        r = c.get("/api/daemon/status", headers=bearer(bridge))
        assert r.status_code == 200 and r.json()["pid"] > 0


def test_token_has_at_least_128_bits(bridge: Bridge) -> None:
    assert len(bridge.token) >= 43  # secrets.token_urlsafe(32): 256 bits


def test_host_allowlist_refuses_dns_rebinding(bridge: Bridge) -> None:
    with anon(bridge) as c:
        for host in ("attacker.example", f"attacker.example:{bridge.port}",
                     f"127.0.0.1:{bridge.port + 1}", "127.0.0.1", f"0.0.0.0:{bridge.port}"):
            r = c.get("/api/daemon/status", headers={**bearer(bridge), "Host": host})
            assert r.status_code == 403, host
            assert r.json()["error"]["data"]["reason"] == "host"
        # The page too: a rebinding page never gets even the 401 page.
        assert c.get("/", headers={"Host": "attacker.example"}).status_code == 403
        for host in (f"127.0.0.1:{bridge.port}", f"localhost:{bridge.port}",
                     f"[::1]:{bridge.port}", f"LOCALHOST:{bridge.port}"):
            r = c.get("/api/daemon/status", headers={**bearer(bridge), "Host": host})
            assert r.status_code == 200, host


def test_page_signs_in_with_a_one_time_code_and_no_cookie(bridge: Bridge) -> None:
    assert "#code=" in bridge.login_url and bridge.token not in bridge.login_url
    assert bridge.login_url.startswith(bridge.page_url + "/#code=")
    with bridge.page_client() as c:
        page = c.get("/")  # the page holds no secret: it signs in from its #fragment
        assert page.status_code == 200 and "kitplay playground" in page.text
        assert "set-cookie" not in page.headers
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert page.headers["referrer-policy"] == "no-referrer"
        assert page.headers["cache-control"] == "no-store"
        js = c.get("/static/app.js")
        assert js.headers["content-type"].startswith("text/javascript")
        assert js.headers["cache-control"] == "no-store"  # never served from a cache
        code = bridge.login_url.partition("#code=")[2]
        r = c.post("/api/login", json={"code": code})
        assert r.status_code == 200 and "set-cookie" not in r.headers
        assert r.headers["clear-site-data"] == '"cache"'
        session = r.json()["session"]
        assert session != bridge.token and len(session) >= 43
        # The code works once.
        r = c.post("/api/login", json={"code": code})
        assert r.status_code == 401 and r.json()["error"]["data"]["reason"] == "code"
        for junk in ({"code": "x" * 43}, {"code": bridge.token}, {"code": 5}, {}):
            assert c.post("/api/login", json=junk).status_code == 401, junk
        auth = {"Authorization": f"Bearer {session}"}
        assert c.get("/api/templates/list", headers=auth).status_code == 200
        # A session cannot mint login codes: that takes the master token.
        assert c.post("/api/login-codes", json={}, headers=auth).status_code == 401
        # An old-style ?token= link grants nothing.
        r = c.get(f"/?token={bridge.token}")
        assert r.status_code == 200 and "set-cookie" not in r.headers
    # `kitplay open`'s way: a new code from the master token, and it works once too.
    url = bridge.new_login_url()
    assert url.startswith(f"{bridge.page_url}/#code=") and url != bridge.login_url
    bridge.session(url)
    with pytest.raises(AssertionError):
        bridge.session(url)
    # A page on another origin cannot trade a code it stole.
    with bridge.page_client(Origin=f"http://127.0.0.1:{bridge.port}") as c:
        r = c.post("/api/login", json={"code": bridge.new_login_url().partition("=")[2]})
        assert r.status_code == 403 and r.json()["error"]["data"]["reason"] == "origin"


def test_the_page_and_sign_in_live_on_the_pages_own_origin_only(bridge: Bridge) -> None:
    """A squatter could have served pages for http://127.0.0.1:PORT (or localhost, [::1])
    while the bridge was down: the page, its files and the sign-in are not there."""
    assert bridge.page_host.startswith("kp-") and bridge.page_host.endswith(
        f".localhost:{bridge.port}")
    code = bridge.new_login_url().partition("#code=")[2]
    for host in (f"127.0.0.1:{bridge.port}", f"localhost:{bridge.port}",
                 f"[::1]:{bridge.port}"):
        origin = f"http://{host}"
        with bridge.page_client(Host=host, Origin=origin) as c:
            for path in ("/", "/static/app.js", "/static/style.css"):
                r = c.get(path)
                assert r.status_code == 421 and "kitplay open" in r.text, (host, path)
                assert "<script" not in r.text
            r = c.post("/api/login", json={"code": code})  # its Origin: refused first
            assert r.status_code == 403, (host, r.text)
            r = c.post("/api/login", json={"code": code}, headers={"Origin": bridge.page_url})
            assert r.status_code == 403 and r.json()["error"]["data"]["reason"] == "host"
            # API clients keep the loopback literals, with the master token.
            assert c.get("/api/jobs", headers=bearer(bridge)).status_code == 200
    bridge.session(f"{bridge.page_url}/#code={code}")  # refusals did not use the code up
    # Another kp-*.localhost name (a previous start's) is no longer the page's: not allowed.
    with bridge.page_client(Host=f"kp-0123456789abcdef01234567.localhost:{bridge.port}") as c:
        assert c.get("/").status_code == 403
        assert c.get("/api/jobs", headers=bearer(bridge)).status_code == 403


def test_every_start_has_a_new_page_origin(make_bridge: Any, daemon: Daemon) -> None:
    first = make_bridge(daemon)
    page_url, port = first.page_url, first.port
    assert first.stop() == 0
    second = make_bridge(daemon, "--bind", f"127.0.0.1:{port}")
    assert second.port == port and second.page_url != page_url


def test_no_cookie_grants_anything(bridge: Bridge) -> None:
    """Browsers send a host's cookies to every port: a cookie must never be a credential."""
    with anon(bridge) as c:
        cookie = {"Cookie": f"kitplay_token_{bridge.port}={bridge.token}"}
        r = c.get("/api/daemon/status", headers=cookie)
        assert r.status_code == 401
        r = c.post("/api/build", json={}, headers={
            **cookie, "Origin": bridge.page_url})
        assert r.status_code == 401
        # A tossed junk cookie changes nothing for the real credential.
        junk = {"Cookie": f"kitplay_token_{bridge.port}=junk; kitplay_session=junk"}
        r = c.get("/api/daemon/status", headers={**junk, **bearer(bridge)})
        assert r.status_code == 200


def test_login_codes_and_tickets_expire() -> None:
    """Fixed numbers, not the module's constants: a lifetime made longer must fail here."""
    from kitplay.bridge.credentials import Credentials

    now = [0.0]
    cred = Credentials("m" * 43, clock=lambda: now[0])
    code, late_code = cred.mint_code(), cred.mint_code()
    ticket, late_ticket = cred.mint_ticket(), cred.mint_ticket()
    now[0] = 29.9
    assert cred.redeem_ticket(ticket)
    now[0] = 30.1
    assert not cred.redeem_ticket(late_ticket)
    now[0] = 119.9
    assert cred.redeem_code(code) is not None
    now[0] = 120.1
    assert cred.redeem_code(late_code) is None
    assert cred.identify("m" * 43) == "master" and cred.identify("m" * 44) is None


def test_the_api_states_the_lifetimes(bridge: Bridge) -> None:
    assert bridge.post("/api/v1/login-codes").json()["expires_in_s"] == 120
    assert bridge.post("/api/v1/stream-tickets").json()["expires_in_s"] == 30


@contextmanager
def _session_client(b: Bridge) -> Iterator[httpx.Client]:
    """A client signed in as the page is: a session token in the Authorization header."""
    with httpx.Client(base_url=b.url, timeout=30,
                      headers={"Authorization": f"Bearer {b.session()}"}) as c:
        yield c


def test_origin_is_checked_on_state_changing_requests(bridge: Bridge) -> None:
    same = bridge.page_url
    body = {"template": "no_such_template", "name": "a.b"}  # refused by the daemon: 404
    with _session_client(bridge) as c:
        r = c.post("/api/templates/create", json=body, headers={"Origin": "http://evil.example"})
        assert r.status_code == 403 and r.json()["error"]["data"]["reason"] == "origin"
        r = c.post("/api/templates/create", json=body, headers={"Origin": "null"})
        assert r.status_code == 403
        r = c.post("/api/templates/create", json=body, headers={"Origin": same})
        assert r.status_code == 404 and r.json()["error"]["code"] == -32001  # reached the daemon
        # GET changes nothing: no Origin needed.
        assert c.get("/api/jobs", headers={"Origin": "http://evil.example"}).status_code == 200
        # DELETE changes state: a foreign Origin is refused before the daemon sees it.
        for origin in ("http://evil.example", f"http://127.0.0.1:{bridge.port + 1}", "null"):
            r = c.delete("/api/jobs/j-nope", headers={"Origin": origin})
            assert r.status_code == 403 and r.json()["error"]["data"]["reason"] == "origin"
        r = c.delete("/api/jobs/j-nope", headers={"Origin": same})
        assert r.status_code == 404  # reached the daemon
    with anon(bridge) as c:
        r = c.post("/api/templates/create", json=body,
                   headers={**bearer(bridge), "Origin": "http://evil.example"})
        assert r.status_code == 403
        # A bearer client (curl, a script) sends no Origin: fine.
        r = c.post("/api/templates/create", json=body, headers=bearer(bridge))
        assert r.status_code == 404


def test_form_encoded_cross_site_post_is_refused(bridge: Bridge) -> None:
    form = {"template": "console_app", "name": "evil.app"}
    with _session_client(bridge) as c:
        r = c.post("/api/templates/create", data=form, headers={"Origin": "http://evil.example"})
        assert r.status_code == 403
        # Same origin but not JSON: still refused, 415.
        same = bridge.page_url
        r = c.post("/api/templates/create", data=form, headers={"Origin": same})
        assert r.status_code == 415 and r.json()["error"]["data"]["reason"] == "content-type"
        r = c.post("/api/build", content=b"{}", headers={"Origin": same,
                                                          "Content-Type": "text/plain"})
        assert r.status_code == 415
        r = c.post("/api/build", headers={"Origin": same})  # no body, no type
        assert r.status_code == 415
    with anon(bridge) as c:
        r = c.post("/api/templates/create", data=form, headers=bearer(bridge))
        assert r.status_code == 415
    assert bridge.ok("GET", "/api/apps/list")["apps"] == []  # nothing was created


def test_no_wildcard_cors(bridge: Bridge) -> None:
    with anon(bridge) as c:
        for r in (
            c.get("/api/jobs", headers={**bearer(bridge), "Origin": "http://evil.example"}),
            c.options("/api/build", headers={"Origin": "http://evil.example",
                                             "Access-Control-Request-Method": "POST"}),
        ):
            assert not any(h.lower().startswith("access-control-") for h in r.headers), r.headers
        # No preflight is ever approved.
        assert c.options("/api/build", headers=bearer(bridge)).status_code == 405


def test_body_size_limit(make_bridge: Any, daemon: Daemon) -> None:
    b = make_bridge(daemon, "--max-body", "200")
    r = b.post("/api/build", {"app": "x" * 300})
    assert r.status_code == 413 and r.json()["error"]["code"] == -32006
    r = b.http.post("/api/build", content=iter([b'{"app": "', b"y" * 300, b'"}']),
                    headers={"Content-Type": "application/json"})  # chunked: no length
    assert r.status_code == 413
    r = b.post("/api/build", {"app": "no.such_app"})
    assert r.status_code == 404  # small enough: reached the daemon


def test_rate_limit_per_client(make_bridge: Any, daemon: Daemon) -> None:
    b = make_bridge(daemon, "--rate-limit", "0.5", "--rate-burst", "3")
    codes = [b.get("/api/jobs").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    r = b.get("/api/jobs")
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert r.json()["error"]["data"]["reason"] == "rate"


def test_anonymous_flood_never_uses_the_users_budget(make_bridge: Any,
                                                     daemon: Daemon) -> None:
    cfg = daemon.base / "bridge.toml"
    cfg.write_text("[bridge]\nrate_limit_per_s = 0.5\nrate_limit_burst = 5\n"
                   "anon_rate_per_s = 0.5\nanon_burst = 3\n")
    b = make_bridge(daemon, config=cfg)
    with anon(b) as c:
        codes = [c.get("/api/jobs").status_code for _ in range(6)]
        codes += [c.get("/api/jobs", headers={"Authorization": "Bearer " + "x" * 43}).status_code
                  for _ in range(2)]
    with b.page_client() as c:
        codes += [c.post("/api/login", json={"code": "guess"}).status_code]
    assert codes[:3] == [401, 401, 401] and set(codes[3:]) == {429}
    # The token holder still has all of their own budget.
    assert [b.get("/api/jobs").status_code for _ in range(5)] == [200] * 5
    assert b.get("/api/jobs").status_code == 429  # and it is a real limit
    # A valid login code is no anonymous request: the flood does not lock the page out.
    b.session(b.login_url)


def test_rate_limiter_refills() -> None:
    now = [0.0]
    rl = RateLimiter(2, 2, clock=lambda: now[0])
    assert rl.check("a") is None and rl.check("a") is None
    wait = rl.check("a")
    assert wait is not None and wait == pytest.approx(0.5)
    assert rl.check("b") is None  # per client
    now[0] += 0.5
    assert rl.check("a") is None


def test_rate_limit_from_config_file(make_bridge: Any, daemon: Daemon) -> None:
    cfg = daemon.base / "bridge.toml"
    cfg.write_text("[bridge]\nrate_limit_per_s = 0.5\nrate_limit_burst = 2\n")
    b = make_bridge(daemon, config=cfg)
    assert [b.get("/api/jobs").status_code for _ in range(3)] == [200, 200, 429]


def _run_bridge(daemon: Daemon, *args: str, env: dict[str, str] | None = None,
                ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kitplay.bridge", "--socket", str(daemon.socket),
         "--config", str(daemon.config), *args],
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True, text=True, timeout=60)


def test_bad_configuration_is_refused_clearly(daemon: Daemon) -> None:
    r = _run_bridge(daemon, "--bind", "0.0.0.0:0")
    assert r.returncode == 2 and "--allow-remote" in r.stderr
    r = _run_bridge(daemon, "--bind", "nonsense")
    assert r.returncode == 2 and "HOST:PORT" in r.stderr
    r = _run_bridge(daemon, "--bind", "127.0.0.1:0", env={"KITPLAY_BRIDGE_TOKEN": "short"})
    assert r.returncode == 2 and "too short" in r.stderr
    cfg = daemon.base / "bad.toml"
    cfg.write_text("[bridge]\nrate_limit = 5\n")
    r = _run_bridge(daemon, "--config", str(cfg))
    assert r.returncode == 2 and "unknown [bridge] key 'rate_limit'" in r.stderr


def test_allow_remote_warns(daemon: Daemon) -> None:
    b = Bridge(daemon.socket, "--allow-remote", bind="0.0.0.0:0", config=daemon.config)
    try:
        b.start()
        assert b.url.startswith("http://127.0.0.1:")
        assert b.get("/api/jobs").status_code == 200
    finally:
        assert b.stop() == 0
    assert "WARNING" in b.stderr() and "reachable from other machines" in b.stderr()


def test_env_token_and_bridge_json(make_bridge: Any, daemon: Daemon) -> None:
    token = "t" * 40
    b = make_bridge(daemon, env={"KITPLAY_BRIDGE_TOKEN": token})
    assert b.token == token
    info = json.loads(b.info_path.read_text())
    assert info == {"url": b.url + "/", "page_url": b.page_url + "/", "port": b.port,
                    "listen": [f"127.0.0.1:{b.port}", f"[::1]:{b.port}"], "token": token,
                    "pid": b.proc.pid}
    assert stat.S_IMODE(b.info_path.stat().st_mode) == 0o600
    assert b.stop() == 0
    assert not b.info_path.exists()
    assert token not in b.stderr() and token not in b.login_url


def test_master_token_is_kept_across_restarts_until_rotated(make_bridge: Any,
                                                              daemon: Daemon) -> None:
    first = make_bridge(daemon)
    token = first.token
    token_file = daemon.socket.parent / "bridge.token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    session = first.session()
    assert first.stop() == 0
    second = make_bridge(daemon)
    assert second.token == token
    # Page sessions end with the bridge; the master token does not.
    r = second.get("/api/jobs", headers={"Authorization": f"Bearer {session}"})
    assert r.status_code == 401
    assert second.get("/api/jobs").status_code == 200
    assert second.stop() == 0
    third = make_bridge(daemon, "--rotate-token")
    assert third.token != token and len(third.token) >= 43
    r = third.get("/api/jobs", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401
    assert token not in token_file.read_text()
    assert token not in (third.stderr() + third.login_url)


async def _ws(b: Bridge, job_id: str, headers: list[tuple[str, str]]) -> dict[str, Any]:
    with trio.fail_after(30):
        async with open_stream(b, job_id, headers=headers) as ws:
            messages = await read_stream(ws)
    assert ws.closed is not None and ws.closed.code == 1000
    return messages[-1]


async def test_websocket_needs_token_and_same_origin(daemon: Daemon, bridge: Bridge) -> None:
    job = daemon.call("templates.create", {"template": "console_app", "name": "ws.app"})["job"]
    daemon.wait_job(job["id"])
    path = f"/api/stream/{job['id']}"
    auth = {"Authorization": f"Bearer {bridge.token}"}
    cookie = {"Cookie": f"kitplay_token_{bridge.port}={bridge.token}"}
    same = bridge.page_url
    used = bridge.ticket()
    assert bridge.upgrade(f"{path}?ticket={used}", {"Origin": "http://evil.example"},
                          token=False).status_code == 403
    for where, headers, status, reason in (
        (path, {}, 401, "token"),
        (path, {"Authorization": "Bearer wrong-token-wrong-token-wrong"}, 401, "token"),
        (path, {**auth, "Origin": "http://evil.example"}, 403, "origin"),
        (path, {**auth, "Origin": f"http://localhost:{bridge.port + 1}"}, 403, "origin"),
        (path, {**auth, "Host": "attacker.example"}, 403, "host"),
        (path, {**cookie, "Origin": same}, 401, "token"),  # cookies grant nothing
        (f"{path}?ticket={used}", {"Origin": same}, 401, "ticket"),  # one use only
        (f"{path}?ticket={'t' * 43}", {"Origin": same}, 401, "ticket"),
    ):
        r = bridge.upgrade(where, headers, token=False)
        assert r.status_code == status, (where, headers)
        assert r.json()["error"]["data"]["reason"] == reason
    end = await _ws(bridge, job["id"], [("Authorization", auth["Authorization"]),
                                        ("Origin", same)])
    assert end["job"]["status"] == "succeeded"
    # The page's way: a session mints a one-time ticket; the WebSocket carries no header.
    ticket = bridge.ticket(bridge.session())
    with trio.fail_after(30):
        async with open_stream(bridge, job["id"], headers=[("Origin", same)],
                               query=f"?ticket={ticket}") as ws:
            messages = await read_stream(ws)
    assert messages[-1]["type"] == "end"


async def test_websocket_offset_takes_ascii_digits_only(daemon: Daemon, bridge: Bridge) -> None:
    job = daemon.call("templates.create", {"template": "console_app", "name": "ws.off"})["job"]
    daemon.wait_job(job["id"])
    for raw in ("\u00b2", "\u0661", "1\u00b2", "-1", "+1", "0x10", " 1"):
        r = bridge.upgrade(f"/api/stream/{job['id']}?offset={raw}")
        assert r.status_code == 400, raw
        assert r.json()["error"]["data"]["param"] == "offset"


def test_sigterm_removes_bridge_json(make_bridge: Any, daemon: Daemon) -> None:
    b = make_bridge(daemon)
    assert b.info_path.exists()
    proc = b.proc
    assert proc is not None
    proc.terminate()
    wait_for(lambda: proc.poll() is not None, 20, "bridge exit")
    assert proc.returncode == 0
    assert not b.info_path.exists()


def test_symlinks_planted_at_the_bridge_files_are_never_followed(make_bridge: Any,
                                                                 daemon: Daemon) -> None:
    rundir = daemon.socket.parent
    victim = daemon.base / "victim.txt"
    victim.write_text("keep me")
    (rundir / "bridge.json").symlink_to(victim)
    b = make_bridge(daemon)
    assert victim.read_text() == "keep me"  # the link was replaced, not written through
    assert not (rundir / "bridge.json").is_symlink()
    assert stat.S_IMODE(os.lstat(rundir / "bridge.json").st_mode) == 0o600
    assert b.stop() == 0
    token = rundir / "bridge.token"
    token.unlink()
    token.symlink_to(victim)
    r = _run_bridge(daemon, "--bind", "127.0.0.1:0")
    assert r.returncode != 0 and "symlink" in r.stderr, r.stderr
    assert victim.read_text() == "keep me"
    # A loose token file (another user could read it) is refused, not used.
    token.unlink()
    token.write_text("t" * 43)
    os.chmod(token, 0o644)
    r = _run_bridge(daemon, "--bind", "127.0.0.1:0")
    assert r.returncode != 0 and "chmod 600" in r.stderr, r.stderr


def _proc_fd_limit(pid: int) -> tuple[int, int]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no fd limit line")


def test_the_bridge_raises_its_fd_limit(make_bridge: Any, daemon: Daemon) -> None:
    """At start the soft fd limit goes up to the hard one (the usual soft 1024 would hold
    about 480 connections); the connection cap itself: test_bridge_fairness."""
    b = make_bridge(daemon, "--max-connections", "100")
    assert b.proc is not None
    soft, hard = _proc_fd_limit(b.proc.pid)
    assert soft == hard


def test_two_thousand_connections_do_not_deafen_the_bridge(make_bridge: Any,
                                                           daemon: Daemon) -> None:
    import resource
    import socket

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 4096:
        pytest.skip(f"needs a hard fd limit of 4096 or more (it is {hard})")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 4096), hard))
    b = make_bridge(daemon)
    held: list[socket.socket] = []
    try:
        for _ in range(2000):
            held.append(socket.create_connection(("127.0.0.1", b.port), timeout=30))
        with httpx.Client(base_url=b.url, timeout=20) as c:
            # An answer, never silence; and since none of those connections ever signed in,
            # one of them is closed to make room for this one.
            r = c.get("/api/jobs", headers=bearer(b))
            assert r.status_code == 200, r.status_code
    finally:
        for s in held:
            s.close()
    with httpx.Client(base_url=b.url, timeout=20) as c:
        wait_for(lambda: c.get("/api/jobs", headers=bearer(b)).status_code == 200, 30,
                 "service after the flood")
