"""API and CLI agree: every method called three ways on the same daemon gives the same result.

The three ways: the raw socket (``Client``), ``kitplay ... --json`` (a subprocess), and REST
through a real bridge. Read-only methods are compared exactly (``daemon.status`` without its
uptime); methods that start jobs are compared after removing what differs between any two
jobs (id, times, the app name chosen for each call). ``jobs.subscribe`` is compared as the
log it delivers (socket notifications vs the WebSocket); the connection-scoped
``jobs.unsubscribe`` has no REST route, and neither is a CLI command (a command's connection
ends with it: ``--follow`` streams instead). Errors agree too: the same code, message, HTTP
status and exit code, and ``kitplay --json`` prints the REST error body on stderr.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from typing import Any

import trio
from kitplay.daemon.protocol.client import Client
from kitplay.daemon.protocol.errors import KitplayError, NotFound
from kitplay.daemon.protocol.registry import METHODS, Method

from tests.bridge_helpers import (  # noqa: F401
    Bridge,
    bridge_fixture,
    make_bridge_fixture,
    open_stream,
    read_stream,
)
from tests.helpers import ROOT, Daemon, create_and_build

APP = "my_company.agree_app"
JOB_VOLATILE = {"id", "created_at", "started_at", "finished_at", "pid", "log_size", "status",
                "exit_code", "error", "result", "progress", "restarts", "duration_s"}


def cli_args(m: Method, params: dict[str, Any]) -> list[str]:
    """The documented CLI contract: words of the method, --param-name value, --json."""
    args = list(m.cli_words)
    for name, value in params.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            if value:
                args.append(flag)
        elif isinstance(value, list):
            args += [f"{flag}={v}" for v in value]
        else:
            args.append(f"{flag}={value}")
    return [*args, "--json"]


def cli(d: Daemon, m: Method, params: dict[str, Any]) -> tuple[int, Any, str]:
    r = subprocess.run(
        [sys.executable, "-m", "kitplay.cli_client",
         "--socket", str(d.socket), *cli_args(m, params)],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
        timeout=120)
    out = json.loads(r.stdout) if r.stdout.strip() else None
    return r.returncode, out, r.stderr


def rest(b: Bridge, m: Method, params: dict[str, Any]) -> tuple[int, Any]:
    assert m.http is not None
    verb, path = m.http
    query = dict(params)
    for key in list(query):
        if "{" + key + "}" in path:
            path = path.replace("{" + key + "}", str(query.pop(key)))
    if verb == "POST":
        r = b.http.post("/api" + path, json=query)
    else:
        r = b.http.request(verb, "/api" + path, params={
            k: (str(v).lower() if isinstance(v, bool) else v) for k, v in query.items()})
    return r.status_code, r.json()


def socket_call(d: Daemon, method: str, params: dict[str, Any]) -> Any:
    with d.client() as c:
        return c.call(method, params)


def three_ways(d: Daemon, b: Bridge, method: str, params: dict[str, Any]) -> list[Any]:
    m = METHODS[method]
    code, out, err = cli(d, m, params)
    assert code == 0, err
    status, body = rest(b, m, params)
    assert status == 200, body
    return [socket_call(d, method, params), out, body]


def normal_job(job: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in job.items() if k not in JOB_VOLATILE}
    out["params"] = {k: v for k, v in job["params"].items() if k != "name"}
    return out


def test_every_method_is_covered() -> None:
    covered = set(READ_ONLY) | {"templates.create", "build", "launch", "jobs.cancel",
                                "jobs.subscribe", "jobs.unsubscribe", "test", "package",
                                "apps.modify", "package_container", "files.write",
                                "files.delete", "apps.clean", "apps.delete",
                                "templates.icon", "jobs.prune"}
    assert covered == set(METHODS)


def test_the_icon_agrees(daemon: Daemon, bridge: Bridge) -> None:
    """templates.icon: the socket's and the CLI's result is the image as base64; REST answers
    the image's bytes themselves, with its type."""
    m = METHODS["templates.icon"]
    params = {"name": "gui_app"}
    result = socket_call(daemon, m.name, params)
    code, out, err = cli(daemon, m, params)
    assert code == 0 and out == result, err
    r = bridge.http.get("/api/templates/icon/gui_app")
    assert r.status_code == 200
    assert r.content == base64.b64decode(result["data_base64"])
    assert r.headers["content-type"] == result["content_type"] == "image/svg+xml"


READ_ONLY: dict[str, dict[str, Any]] = {
    "daemon.status": {}, "rpc.discover": {}, "templates.list": {},
    "templates.get": {"name": "console_app"}, "apps.list": {}, "jobs.list": {"limit": 50},
    "jobs.get": {"job_id": "<build>"}, "jobs.wait": {"job_id": "<build>", "timeout_s": 5},
    "jobs.logs": {"job_id": "<build>", "offset": 3, "limit": 100000}, "sessions.list": {},
    # Changes nothing: lists the ended jobs it would remove.
    "jobs.prune": {"keep": 0, "dry_run": True},
    "files.list": {"app": APP}, "files.read": {"path": f"source/apps/{APP}/app.py"},
}


def test_read_only_methods_agree(daemon: Daemon, bridge: Bridge) -> None:
    create_and_build(daemon, name=APP)
    build = daemon.call("jobs.list", {"kind": "build"})["jobs"][0]["id"]
    for method, params in READ_ONLY.items():
        params = {k: (build if v == "<build>" else v) for k, v in params.items()}
        results = three_ways(daemon, bridge, method, params)
        if method == "daemon.status":
            for r in results:
                r.pop("uptime_s")
        assert results[0] == results[1] == results[2], method


def test_job_starting_methods_agree(daemon: Daemon, bridge: Bridge) -> None:
    created = []
    for i, way in enumerate(("socket", "cli", "rest")):
        params = {"template": "console_app", "name": f"{APP}{i}", "display_name": "Agree",
                  "version": "1.2.3"}
        m = METHODS["templates.create"]
        if way == "socket":
            created.append(socket_call(daemon, m.name, params))
        elif way == "cli":
            code, out, err = cli(daemon, m, params)
            assert code == 0, err
            created.append(out)
        else:
            status, body = rest(bridge, m, params)
            assert status == 200, body
            created.append(body)
    for r in created:
        assert daemon.wait_job(r["job"]["id"])["status"] == "succeeded"
    assert len({json.dumps(normal_job(r["job"]), sort_keys=True) for r in created}) == 1

    builds = three_ways(daemon, bridge, "build", {"app": f"{APP}0", "clean": True})
    assert len({json.dumps(normal_job(r["job"]), sort_keys=True) for r in builds}) == 1
    for r in builds:
        assert daemon.wait_job(r["job"]["id"])["status"] == "succeeded"

    for method, params in (("test", {"app": f"{APP}0"}), ("package", {"app": f"{APP}0"})):
        jobs = three_ways(daemon, bridge, method, params)
        assert len({json.dumps(normal_job(r["job"]), sort_keys=True) for r in jobs}) == 1
        finished = [daemon.wait_job(r["job"]["id"]) for r in jobs]
        assert {j["status"] for j in finished} == {"succeeded"}
        assert len({json.dumps(j["result"], sort_keys=True) for j in finished}) == 1

    launches = three_ways(daemon, bridge, "launch",
                          {"app": f"{APP}0", "args": ["--forever", "x y"], "display": "native"})
    assert len({json.dumps(normal_job(r["job"]), sort_keys=True) for r in launches}) == 1
    assert launches[1]["job"]["params"]["args"] == ["--forever", "x y"]
    ids = [r["job"]["id"] for r in launches]
    cancel = METHODS["jobs.cancel"]
    results = [socket_call(daemon, cancel.name, {"job_id": ids[0], "grace_s": 5})]
    code, out, err = cli(daemon, cancel, {"job_id": ids[1], "grace_s": 5})
    assert code == 0, err
    results.append(out)
    status, body = rest(bridge, cancel, {"job_id": ids[2], "grace_s": 5})
    assert status == 200, body
    results.append(body)
    assert len({json.dumps(normal_job(r["job"]), sort_keys=True) for r in results}) == 1
    assert {daemon.wait_job(i)["status"] for i in ids} == {"cancelled"}


def test_file_and_app_methods_agree(daemon: Daemon, bridge: Bridge) -> None:
    """Each way writes and deletes its own file, cleans and deletes its own app."""
    apps = [f"{APP}{i}" for i in range(3)]
    for app in apps:
        create_and_build(daemon, name=app)
    outcomes: dict[str, list[Any]] = {}
    for i, way in enumerate(("socket", "cli", "rest")):
        base = f"source/apps/{apps[i]}"
        for method, params in (
                ("files.write", {"path": f"{base}/notes.txt", "text": "agree\n"}),
                ("files.delete", {"path": f"{base}/notes.txt"}),
                ("apps.clean", {"app": apps[i]}),
                ("apps.delete", {"app": apps[i], "confirm": apps[i]})):
            m = METHODS[method]
            if way == "socket":
                result = socket_call(daemon, method, params)
            elif way == "cli":
                code, result, err = cli(daemon, m, params)
                assert code == 0, err
            else:
                status, result = rest(bridge, m, params)
                assert status == 200, result
            text = json.dumps(result, sort_keys=True).replace(apps[i], "APP")
            outcomes.setdefault(method, []).append(
                {k: v for k, v in json.loads(text).items() if k not in ("etag", "mtime")})
    for method, results in outcomes.items():
        assert results[0] == results[1] == results[2], method
    assert outcomes["apps.clean"][0]["removed"] == ["source/apps/APP/__pycache__"]
    assert not any((daemon.workspace / "source" / "apps" / a).exists() for a in apps)


def test_subscription_methods_agree(daemon: Daemon, bridge: Bridge) -> None:
    create_and_build(daemon, name=APP)
    job = daemon.call("launch", {"app": APP, "args": ["--lines", "40"]})["job"]
    daemon.wait_job(job["id"])
    subscribe = METHODS["jobs.subscribe"]
    # The socket: the result, then notifications carrying the log.
    with daemon.client() as c:
        sock_result = c.call("jobs.subscribe", {"job_id": job["id"], "offset": 5})
        notes: list[dict[str, Any]] = []
        while not notes or not notes[-1]["params"].get("final"):
            notes.append(c.next_notification())
    sock_log = "".join(n["params"]["data"] for n in notes if n["method"] == "jobs.output")
    # The CLI has no such command (its connection, and so the subscription, would end with
    # it): a usage error, saying which subcommands there are.
    code, out, err = cli(daemon, subscribe, {"job_id": job["id"], "offset": 5})
    assert code == 2 and out is None
    assert "invalid choice: 'subscribe'" in json.loads(err)["error"]["message"]
    assert set(sock_result) == {"subscription"}

    # REST: the WebSocket stream delivers the same log and the same final job.
    async def ws() -> list[dict[str, Any]]:
        with trio.fail_after(30):
            async with open_stream(bridge, job["id"], offset=5) as s:
                return await read_stream(s)

    messages = trio.run(ws)
    assert "".join(m["data"] for m in messages if m["type"] == "output") == sock_log
    assert sock_log == daemon.job_log(job["id"])[5:]
    assert messages[-1]["job"] == notes[-1]["params"]["job"]

    # jobs.unsubscribe is connection-scoped: no REST route; elsewhere, NotFound alike.
    unsub = METHODS["jobs.unsubscribe"]
    assert unsub.http is None
    try:
        socket_call(daemon, unsub.name, {"subscription": sock_result["subscription"]})
    except NotFound as e:
        assert e.exit_code == NotFound.exit_code
    else:
        raise AssertionError("unsubscribed from another connection's subscription")
    code, out, err = cli(daemon, unsub, {"subscription": sock_result["subscription"]})
    assert code == 2 and "invalid choice: 'unsubscribe'" in err


def test_errors_agree(daemon: Daemon, bridge: Bridge) -> None:
    cases: list[tuple[str, dict[str, Any]]] = [
        ("jobs.get", {"job_id": "0nosuchjob"}), ("templates.get", {"name": "nope"}),
        ("launch", {"app": "no.such_app"}), ("jobs.list", {"limit": 0}),
        ("apps.modify", {"app": "no.such_app", "layers": ["x"]}),
        ("package_container", {"app": "no.such_app"}), ("test", {"app": "no.such_app"}),
        ("files.read", {"path": "../etc/passwd"}), ("files.list", {"path": "nowhere"}),
        ("files.write", {"path": "no/such/dir/f.txt", "text": "x"}),
        ("files.delete", {"path": "gone.txt"}), ("apps.clean", {"app": "no.such_app"}),
        ("apps.delete", {"app": "no.such_app"})]
    for method, params in cases:
        m = METHODS[method]
        try:
            with Client.connect(daemon.socket) as c:
                c.call(method, params)
        except KitplayError as e:
            err = e
        else:
            raise AssertionError(f"{method} {params} succeeded")
        code, out, stderr = cli(daemon, m, params)
        assert code == err.exit_code and out is None, (method, code, stderr)
        status, body = rest(bridge, m, params)
        assert status == err.http_status, method
        assert body == {"error": {"code": err.code, "message": err.message, "data": err.data}}
        # kitplay --json: the same error object, alone on stderr.
        assert json.loads(stderr) == body, (method, stderr)
