"""REST routes of the bridge, derived from the registry, against a real daemon and bridge."""

from __future__ import annotations

import json
import socket
from typing import Any

import httpx
from kitplay.bridge.rest import PREFIXES, convert, quart_rule, rest_methods
from kitplay.daemon.protocol.errors import DaemonUnreachable, InvalidParams
from kitplay.daemon.protocol.framing import dumps, request
from kitplay.daemon.protocol.registry import METHODS

from tests.bridge_helpers import Bridge, bridge_fixture, make_bridge_fixture  # noqa: F401
from tests.helpers import Daemon, create_and_build, short_tmpdir

APP = "my_company.rest_app"


def raw_result_line(d: Daemon, method: str, params: dict[str, Any]) -> bytes:
    """The daemon's raw response line for one call."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(str(d.socket))
    try:
        s.sendall(dumps(request(method, params, 7)))
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(1 << 20)
            assert chunk
            buf += chunk
        return buf
    finally:
        s.close()


def test_every_http_method_has_a_route_under_both_prefixes(bridge: Bridge) -> None:
    """Each registry method with a route answers (not 404/405) under /api and /api/v1."""
    for m in rest_methods():
        assert m.http is not None
        verb, path = m.http
        concrete = path.replace("{job_id}", "0nosuchjob").replace("{name}", "console_app")
        for prefix in PREFIXES:
            r = bridge.http.request(verb, prefix + concrete,
                                    json={} if verb == "POST" else None)
            assert r.status_code not in (405, 415), (m.name, prefix, r.text)
            if m.http_media and r.status_code == 200:  # the image itself (templates.icon)
                assert r.headers["content-type"].startswith("image/"), m.name
                continue
            body = r.json()
            if r.status_code == 404:
                # The daemon's NotFound (-32001), never "no route" (-32601).
                assert body["error"]["code"] == -32001, (m.name, body)


def test_no_get_route_changes_state() -> None:
    for m in METHODS.values():
        if m.mutates:
            assert m.http is None or m.http[0] != "GET", m.name


def test_success_body_is_the_socket_result_byte_for_byte(daemon: Daemon, bridge: Bridge) -> None:
    job = daemon.call("templates.create", {"template": "console_app", "name": APP})["job"]
    daemon.wait_job(job["id"])
    line = raw_result_line(daemon, "jobs.get", {"job_id": job["id"]})
    r = bridge.get(f"/api/jobs/{job['id']}")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert b'"result":' + r.content.rstrip(b"\n") + b',"id":7}' in line
    r1 = bridge.get("/api/v1/templates/list")
    assert r1.content == bridge.get("/api/templates/list").content
    assert r1.json() == daemon.call("templates.list")


def test_create_build_wait_logs_over_rest(daemon: Daemon, bridge: Bridge) -> None:
    job = bridge.ok("POST", "/api/templates/create",
                    {"template": "console_app", "name": APP, "display_name": "Rest App"})["job"]
    assert job["kind"] == "create" and job["params"]["display_name"] == "Rest App"
    done = bridge.ok("GET", f"/api/jobs/{job['id']}/wait?timeout_s=60")
    assert done == {"job": done["job"], "timed_out": False}
    assert done["job"]["status"] == "succeeded"
    build = bridge.ok("POST", "/api/build", {"app": APP})["job"]
    assert bridge.ok("GET", f"/api/v1/jobs/{build['id']}/wait?timeout_s=60")["job"]["status"] \
        == "succeeded"
    logs = bridge.ok("GET", f"/api/jobs/{build['id']}/logs?offset=0&limit=100000")
    assert logs["data"] == daemon.job_log(build["id"])
    tail = bridge.ok("GET", f"/api/jobs/{build['id']}/logs?offset=10")
    assert tail["offset"] == 10 and tail["data"] == logs["data"][10:]
    apps = bridge.ok("GET", "/api/apps/list")["apps"]
    assert [a["name"] for a in apps] == [APP] and apps[0]["built"] is True
    listed = bridge.ok("GET", "/api/jobs?kind=build&status=succeeded&limit=5")["jobs"]
    assert [j["id"] for j in listed] == [build["id"]]


def test_cancel_with_delete_and_its_refusal_when_ended(daemon: Daemon, bridge: Bridge) -> None:
    create_and_build(daemon, name=APP)
    job = bridge.ok("POST", "/api/launch", {"app": APP, "args": ["--forever"]})["job"]
    cancelled = bridge.http.request("DELETE", f"/api/jobs/{job['id']}?grace_s=5")
    assert cancelled.status_code == 200, cancelled.text
    assert daemon.wait_job(job["id"])["status"] == "cancelled"
    again = bridge.http.request("DELETE", f"/api/jobs/{job['id']}")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == -32002


def test_query_parameters_are_converted_and_checked(bridge: Bridge) -> None:
    assert bridge.ok("GET", "/api/jobs?limit=3") == {"jobs": []}
    cases = {
        "/api/jobs?limit=abc": ("limit", "must be an integer"),
        "/api/jobs?limit=0": ("limit", "at least 1"),
        "/api/jobs?limit=1&limit=2": ("limit", "given 2 times"),
        "/api/jobs?status=bogus": ("status", "must be one of"),
        "/api/jobs?colour=red": ("colour", "no parameter"),
        "/api/jobs/0nosuchjob/wait?timeout_s=soon": ("timeout_s", "must be a number"),
        "/api/jobs/Bad!Id": ("job_id", "invalid format"),
    }
    for url, (param, words) in cases.items():
        r = bridge.get(url)
        assert r.status_code == 400, (url, r.text)
        err = r.json()["error"]
        assert err["code"] == -32602 and words in err["message"], (url, err)
        assert err["data"]["param"] == param


def test_convert_types() -> None:
    spec = METHODS["jobs.wait"].param("timeout_s")
    assert spec is not None
    assert convert(spec, "2") == 2 and convert(spec, "0.5") == 0.5
    for bad in ("nan", "inf", "1e", "", " 1"):
        try:
            convert(spec, bad)
        except InvalidParams:
            continue
        raise AssertionError(f"{bad!r} accepted")
    flag = METHODS["build"].param("clean")
    assert flag is not None
    assert convert(flag, "true") is True and convert(flag, "0") is False
    assert quart_rule("/jobs/{job_id}/wait") == "/jobs/<job_id>/wait"


def test_bad_bodies_are_precise_errors(bridge: Bridge) -> None:
    def post(content: bytes) -> dict[str, Any]:
        r = bridge.http.post("/api/build", content=content,
                             headers={"Content-Type": "application/json"})
        assert r.status_code == 400, r.text
        return r.json()["error"]

    assert post(b"{not json")["code"] == -32700
    assert post(b'{"clean": NaN}')["code"] == -32700
    assert "JSON object" in post(b"[1, 2]")["message"]
    err = post(b'{"clean": "yes"}')
    assert err["code"] == -32602 and err["data"]["param"] == "clean"
    err = post(b'{"colour": 1}')
    assert "no parameter 'colour'" in err["message"]
    r = bridge.http.post("/api/templates/create?template=x", json={})
    assert r.status_code == 400 and "JSON body" in r.json()["error"]["message"]
    r = bridge.post("/api/templates/create", {"template": "no_such_template",
                                             "name": "a.b"})
    assert r.status_code == 404 and r.json()["error"]["code"] == -32001
    r = bridge.post("/api/launch", {})
    assert r.status_code == 400 and r.json()["error"]["data"] == {"param": "app"}


def test_unknown_route_and_method(bridge: Bridge) -> None:
    r = bridge.get("/api/nothing/here")
    assert r.status_code == 404 and r.json()["error"]["code"] == -32601
    r = bridge.http.put("/api/jobs/abc", json={})
    assert r.status_code == 405
    assert set(r.headers["allow"].replace(" ", "").split(",")) >= {"GET", "DELETE"}
    r = bridge.get("/api/build")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    assert r.json()["error"]["data"]["reason"] == "method"


def test_daemon_unreachable_is_503(make_bridge: Any) -> None:
    ghost = Daemon(base=short_tmpdir())  # never started: nothing listens on its socket
    try:
        ghost.socket.parent.mkdir(parents=True, exist_ok=True)
        b = make_bridge(ghost)
        r = b.get("/api/daemon/status")
        assert r.status_code == DaemonUnreachable.http_status == 503
        err = r.json()["error"]
        assert err["code"] == -32099 and "kitplayd" in err["message"]
        b.stop()
    finally:
        ghost.cleanup()


def test_bridge_survives_a_daemon_restart(daemon: Daemon, bridge: Bridge) -> None:
    before = bridge.ok("GET", "/api/daemon/status")["pid"]
    daemon.stop()
    assert bridge.get("/api/daemon/status").status_code == 503
    daemon.start()
    after = bridge.ok("GET", "/api/daemon/status")["pid"]
    assert after != before and after == daemon.proc.pid  # type: ignore[union-attr]


def test_openapi_served_under_both_prefixes(bridge: Bridge) -> None:
    a = bridge.get("/api/openapi.json")
    b = bridge.get("/api/v1/openapi.json")
    assert a.status_code == 200 and a.json() == b.json()
    assert a.json()["openapi"].startswith("3.1")
    # No credential needed for the document (docs/api.md); the API itself still wants one.
    assert httpx.get(bridge.url + "/api/openapi.json").status_code == 200
    assert httpx.get(bridge.url + "/api/jobs").status_code == 401
    assert json.loads(a.content)["paths"]["/jobs/{job_id}"].keys() == {"get", "delete"}
