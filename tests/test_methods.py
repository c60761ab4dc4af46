"""Every method over the real socket: its happy path and its errors.

Each error is checked for its code and for the words that tell the user what to do.
Cancellation of process trees, crash recovery and progress are in test_jobs.py;
subscriptions in test_subscribe.py.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from kitplay.daemon.protocol.registry import METHODS

from tests.helpers import FIXTURES, Daemon, create_and_build, wait_for
from tests.rawconn import RawConn

NAME_RULE_WORDS = ("not a valid app name", "lowercase", "dot-separated", "my_company.my_app")


def _err(d: Daemon, method: str, params: Any) -> dict[str, Any]:
    with RawConn(d.socket) as c:
        return c.error(method, params)


def _ok(d: Daemon, method: str, params: Any = None) -> Any:
    with RawConn(d.socket) as c:
        return c.result(method, params)


# -- daemon.status, rpc.discover ------------------------------------------------------------


def test_daemon_status(daemon: Daemon) -> None:
    st = _ok(daemon, "daemon.status")
    for key in ("version", "api_version", "pid", "uptime_s", "socket", "state_dir",
                "workspace", "toolchain", "toolchains", "jobs", "limits"):
        assert key in st, key
    assert st["pid"] == daemon.proc.pid  # type: ignore[union-attr]
    assert st["socket"] == str(daemon.socket)
    assert st["state_dir"] == str(daemon.state)
    assert st["workspace"] == str(daemon.workspace)
    assert st["toolchain"]["kind"] == "builtin"
    assert {"builtin", "kit-app-template"} <= set(st["toolchains"])
    assert st["jobs"] == {}
    assert st["uptime_s"] >= 0
    assert st["limits"]["max_line_bytes"] == 1024 * 1024
    job = _ok(daemon, "templates.create", {"template": "console_app", "name": "st.app"})["job"]
    daemon.wait_job(job["id"])
    again = _ok(daemon, "daemon.status")
    assert again["jobs"] == {"succeeded": 1}
    assert again["uptime_s"] >= st["uptime_s"]


def test_rpc_discover_lists_every_method_with_its_params(daemon: Daemon) -> None:
    doc = _ok(daemon, "rpc.discover")
    assert doc["openrpc"].startswith("1.")
    assert doc["info"]["title"] == "kitplayd"
    by_name = {m["name"]: m for m in doc["methods"]}
    assert list(by_name) == list(METHODS)
    for name, method in METHODS.items():
        entry = by_name[name]
        assert entry["description"] == method.doc
        assert [p["name"] for p in entry["params"]] == [p.name for p in method.params]
        assert [p["required"] for p in entry["params"]] == [p.required for p in method.params]
        assert all(p["schema"]["type"] == s.type for p, s in zip(entry["params"], method.params))
        assert entry["result"]["schema"] == method.result
    # Every $ref points into the document's own components.
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                refs.append(node["$ref"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc["methods"])
    assert refs
    for ref in refs:
        assert ref.startswith("#/components/schemas/")
        assert ref.rsplit("/", 1)[1] in doc["components"]["schemas"]
    codes = {e["code"] for e in doc["components"]["errors"].values()}
    assert {-32700, -32600, -32601, -32602, -32603, -32001, -32002, -32800} <= codes


# -- templates -------------------------------------------------------------------------------


def test_templates_list(daemon: Daemon) -> None:
    res = _ok(daemon, "templates.list")
    names = [t["name"] for t in res["templates"]]
    assert {"console_app", "gui_app", "service_app"} <= set(names)
    for t in res["templates"]:
        assert t["type"] == "application"
        assert t["display_name"] and t["description"]
    assert res["toolchain"]["kind"] == "builtin"


def test_templates_list_of_a_kit_app_template_workspace(daemon: Daemon) -> None:
    res = _ok(daemon, "templates.list", {"workspace": str(FIXTURES / "kit_app_template")})
    assert res["toolchain"]["kind"] == "kit-app-template"
    names = {t["name"] for t in res["templates"]}
    assert {"kit_base_editor", "omni_usd_viewer"} <= names


def test_templates_get(daemon: Daemon) -> None:
    t = _ok(daemon, "templates.get", {"name": "console_app"})["template"]
    assert t["name"] == "console_app" and t["type"] == "application"
    assert "kitapp.toml" in t["files"] and "app.py" in t["files"]
    assert t["variables"]["version"]


def test_templates_get_unknown_lists_the_available_ones(daemon: Daemon) -> None:
    err = _err(daemon, "templates.get", {"name": "consol_app"})
    assert err["code"] == -32001
    assert "no template named 'consol_app'" in err["message"]
    assert "available:" in err["message"]
    for name in ("console_app", "gui_app", "service_app"):
        assert name in err["message"]


def test_templates_get_bad_name(daemon: Daemon) -> None:
    err = _err(daemon, "templates.get", {"name": "../etc/passwd"})
    assert err["code"] == -32602 and "'name'" in err["message"]


def test_templates_create(daemon: Daemon) -> None:
    job = _ok(daemon, "templates.create", {
        "template": "console_app", "name": "acme.hello", "display_name": "Hello There",
        "version": "1.2.3"})["job"]
    assert job["kind"] == "create" and job["status"] in ("queued", "running")
    assert job["params"]["workspace"] == str(daemon.workspace)
    done = daemon.wait_job(job["id"])
    assert done["status"] == "succeeded", daemon.job_log(job["id"])
    app_dir = daemon.workspace / "source" / "apps" / "acme.hello"
    assert done["result"]["app"] == "acme.hello"
    assert done["result"]["path"] == str(app_dir)
    for rel in done["result"]["files"]:
        assert (daemon.workspace / rel).is_file()
    toml = (app_dir / "kitapp.toml").read_text()
    assert "Hello There" in toml and "1.2.3" in toml and "{{" not in toml
    apps = {a["name"]: a for a in _ok(daemon, "apps.list")["apps"]}
    assert apps["acme.hello"]["display_name"] == "Hello There"
    assert apps["acme.hello"]["version"] == "1.2.3"
    assert apps["acme.hello"]["built"] is False


@pytest.mark.parametrize("name", ["My.App", "noDot", "a..b", "../x", "a.b/../../c", ".a.b",
                                  "a.b.", "1a.b", "a.b c", "a-b.c", "", "a." * 60 + "b"])
def test_templates_create_refuses_bad_names(daemon: Daemon, name: str) -> None:
    err = _err(daemon, "templates.create", {"template": "console_app", "name": name})
    assert err["code"] == -32602, err
    for w in NAME_RULE_WORDS:
        assert w in err["message"]
    assert err["data"]["param"] == "name"
    assert not (daemon.workspace / "source").exists()  # nothing written anywhere
    assert not (daemon.base / "c").exists() and not (daemon.base / "x").exists()
    assert _ok(daemon, "jobs.list")["jobs"] == []  # refused before a job exists


def test_templates_create_existing_app(daemon: Daemon) -> None:
    create_and_build(daemon, name="dup.app")
    before = (daemon.workspace / "source/apps/dup.app/kitapp.toml").read_text()
    err = _err(daemon, "templates.create", {"template": "gui_app", "name": "dup.app"})
    assert err["code"] == -32002
    assert "already exists" in err["message"]
    assert "choose another name" in err["message"]
    assert (daemon.workspace / "source/apps/dup.app/kitapp.toml").read_text() == before


def test_templates_create_workspace_errors(daemon: Daemon) -> None:
    base = {"template": "console_app", "name": "w.app"}
    err = _err(daemon, "templates.create", {**base, "workspace": "relative/ws"})
    assert err["code"] == -32602
    assert "'workspace'" in err["message"] and "absolute path" in err["message"]
    missing = daemon.base / "no-such-ws"
    err = _err(daemon, "templates.create", {**base, "workspace": str(missing)})
    assert err["code"] == -32001
    assert "does not exist" in err["message"] and "create it" in err["message"]
    assert not missing.exists()
    err = _err(daemon, "templates.create", {**base, "workspace": "/tmp/x\x00y"})
    assert err["code"] == -32602 and "NUL" in err["message"]


def test_templates_create_in_another_workspace(daemon: Daemon) -> None:
    other = daemon.base / "other-ws"
    other.mkdir()
    job = _ok(daemon, "templates.create", {"template": "console_app", "name": "o.app",
                                           "workspace": str(other)})["job"]
    assert daemon.wait_job(job["id"])["status"] == "succeeded"
    assert (other / "source/apps/o.app/kitapp.toml").is_file()
    assert not (daemon.workspace / "source/apps/o.app").exists()


def test_templates_create_refuses_a_path_leaving_the_workspace(daemon: Daemon) -> None:
    outside = daemon.base / "outside"
    outside.mkdir()
    (daemon.workspace / "source").mkdir()
    os.symlink(outside, daemon.workspace / "source" / "apps")
    err = _err(daemon, "templates.create", {"template": "console_app", "name": "esc.app"})
    assert err["code"] == -32602
    assert "leaves the workspace" in err["message"]
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize(("params", "words"), [
    ({"template": "nope_app", "name": "a.b"}, ["no template named 'nope_app'", "available:"]),
    ({"template": "console_app", "name": "a.b", "version": "1.0"}, ["version", "1.2.3"]),
    ({"template": "console_app", "name": "a.b", "display_name": 'say "hi"'},
     ["display_name", "quotes"]),
    ({"template": "console_app", "name": "a.b", "layers": ["x"]}, ["layers", "leave out"]),
])
def test_templates_create_other_errors(daemon: Daemon, params: dict[str, Any],
                                       words: list[str]) -> None:
    err = _err(daemon, "templates.create", params)
    assert err["code"] in (-32001, -32602)
    for w in words:
        assert w in err["message"]


# -- apps, build, launch ----------------------------------------------------------------------


def test_build_with_nothing_to_build(daemon: Daemon) -> None:
    err = _err(daemon, "build", {})
    assert err["code"] == -32002
    assert "nothing to build" in err["message"] and "create an app first" in err["message"]


def test_build_unknown_app(daemon: Daemon) -> None:
    err = _err(daemon, "build", {"app": "no.such"})
    assert err["code"] == -32001
    assert "no app named 'no.such'" in err["message"] and "templates create" in err["message"]


def test_build_all_and_clean(daemon: Daemon) -> None:
    for name in ("b.one", "b.two"):
        job = _ok(daemon, "templates.create", {"template": "console_app", "name": name})["job"]
        daemon.wait_job(job["id"])
    job = _ok(daemon, "build", {})["job"]
    done = daemon.wait_job(job["id"])
    assert done["status"] == "succeeded", daemon.job_log(job["id"])
    assert sorted(done["result"]["apps"]) == ["b.one", "b.two"]
    assert all(a["built"] for a in _ok(daemon, "apps.list")["apps"])
    job = _ok(daemon, "build", {"app": "b.one", "clean": True})["job"]
    done = daemon.wait_job(job["id"])
    assert done["status"] == "succeeded" and done["result"]["apps"] == ["b.one"]
    assert "cleaned b.one" in daemon.job_log(job["id"])


def test_build_failure_reports_the_failing_step(daemon: Daemon) -> None:
    job = _ok(daemon, "templates.create", {"template": "console_app", "name": "f.app"})["job"]
    daemon.wait_job(job["id"])
    test_file = daemon.workspace / "source/apps/f.app/test_app.py"
    test_file.write_text("raise SystemExit('self test broke: 42')\n" + test_file.read_text())
    job = _ok(daemon, "build", {"app": "f.app"})["job"]
    done = daemon.wait_job(job["id"])
    assert done["status"] == "failed"
    assert done["error"]["step"] == "f.app: test"
    assert "step 'f.app: test' exited with code 1" in done["error"]["message"]
    assert "self test broke: 42" in done["error"]["tail"]  # the step's output, in the error
    assert "self test broke: 42" in daemon.job_log(job["id"])


def test_launch_unknown_app(daemon: Daemon) -> None:
    err = _err(daemon, "launch", {"app": "no.such"})
    assert err["code"] == -32001
    assert "no app named 'no.such'" in err["message"] and "templates create" in err["message"]
    err = _err(daemon, "launch", {"app": "Bad Name"})
    assert err["code"] == -32602 and "not a valid app name" in err["message"]


def test_launch_runs_the_app_with_its_args(daemon: Daemon) -> None:
    name = create_and_build(daemon)
    job = _ok(daemon, "launch", {"app": name, "args": ["--lines", "3", "extra word"]})["job"]
    assert job["kind"] == "launch"
    done = daemon.wait_job(job["id"])
    assert done["status"] == "succeeded" and done["exit_code"] == 0
    log = daemon.job_log(job["id"])
    assert "line 3" in log and "'extra word'" in log
    job = _ok(daemon, "launch", {"app": name, "args": ["--exit-code", "3"]})["job"]
    done = daemon.wait_job(job["id"])
    assert done["status"] == "failed" and done["exit_code"] == 3
    assert done["error"]["message"]


def test_launch_display_headless(daemon: Daemon) -> None:
    name = create_and_build(daemon)
    job = _ok(daemon, "launch", {"app": name, "display": "headless", "args": ["--lines", "1"]})
    assert daemon.wait_job(job["job"]["id"])["status"] == "succeeded"


def test_launch_gui_app_natively_without_a_display(make_daemon: type[Daemon]) -> None:
    d = make_daemon()
    d.env.pop("DISPLAY", None)
    d.env.pop("WAYLAND_DISPLAY", None)
    d.start()
    create_and_build(d, template="gui_app", name="g.app")
    err = _err(d, "launch", {"app": "g.app"})
    assert err["code"] == -32005
    assert "needs a display" in err["message"]
    assert "'xpra'" in err["message"] and "'headless'" in err["message"]  # what to do


def test_launch_display_xpra_is_not_a_crash(daemon: Daemon) -> None:
    # Whether Xpra works here is tested with the display module; this only checks that the
    # daemon answers with a job or a clear "not supported" error, never an internal error.
    name = create_and_build(daemon)
    with RawConn(daemon.socket) as c:
        resp = c.request("launch", {"app": name, "display": "xpra", "args": ["--forever"]})
    if "error" in resp:
        assert resp["error"]["code"] == -32005, resp
        assert "xpra" in resp["error"]["message"].lower()
    else:
        job = resp["result"]["job"]
        assert job["kind"] == "launch" and job["params"]["display"] == "xpra"
        wait_for(lambda: _ok(daemon, "jobs.get", [job["id"]])["job"]["status"] != "queued",
                 what="the xpra launch to start")
        if _ok(daemon, "jobs.get", [job["id"]])["job"]["status"] == "running":
            _ok(daemon, "jobs.cancel", {"job_id": job["id"], "grace_s": 5})
    assert _ok(daemon, "daemon.status")["pid"] == daemon.proc.pid  # type: ignore[union-attr]
    assert isinstance(_ok(daemon, "sessions.list")["sessions"], list)


# -- jobs -------------------------------------------------------------------------------------


def _jobs(d: Daemon, **params: Any) -> list[dict[str, Any]]:
    return _ok(d, "jobs.list", params)["jobs"]


def test_jobs_list_filters_and_order(daemon: Daemon) -> None:
    assert _jobs(daemon) == []
    name = create_and_build(daemon)  # one create, one build
    ok = _ok(daemon, "launch", {"app": name, "args": ["--lines", "1"]})["job"]
    daemon.wait_job(ok["id"])
    bad = _ok(daemon, "launch", {"app": name, "args": ["--exit-code", "2"]})["job"]
    daemon.wait_job(bad["id"])

    everything = _jobs(daemon)
    assert [j["kind"] for j in everything] == ["launch", "launch", "build", "create"]
    assert everything[0]["id"] == bad["id"] and everything[1]["id"] == ok["id"]
    created = [j["created_at"] for j in everything]
    assert created == sorted(created, reverse=True)  # newest first

    assert [j["id"] for j in _jobs(daemon, kind="launch")] == [bad["id"], ok["id"]]
    assert [j["kind"] for j in _jobs(daemon, kind="create")] == ["create"]
    assert [j["id"] for j in _jobs(daemon, status="failed")] == [bad["id"]]
    assert len(_jobs(daemon, status="succeeded")) == 3
    assert _jobs(daemon, status="running") == []
    assert [j["id"] for j in _jobs(daemon, status="succeeded", kind="launch")] == [ok["id"]]
    assert [j["id"] for j in _jobs(daemon, limit=1)] == [bad["id"]]
    assert [j["id"] for j in _jobs(daemon, limit=2)] == [bad["id"], ok["id"]]
    # The records are the same as jobs.get's.
    for j in everything:
        assert _ok(daemon, "jobs.get", {"job_id": j["id"]})["job"] == j


def test_jobs_list_bad_filters(daemon: Daemon) -> None:
    err = _err(daemon, "jobs.list", {"status": "done"})
    assert err["code"] == -32602 and "succeeded" in err["message"]  # lists the valid ones
    err = _err(daemon, "jobs.list", {"kind": "deploy"})
    assert err["code"] == -32602 and "launch" in err["message"]
    err = _err(daemon, "jobs.list", {"limit": 0})
    assert err["code"] == -32602 and "at least 1" in err["message"]


def test_jobs_get(daemon: Daemon) -> None:
    job = _ok(daemon, "templates.create", {"template": "console_app", "name": "g.et"})["job"]
    rec = daemon.wait_job(job["id"])
    got = _ok(daemon, "jobs.get", [job["id"]])["job"]
    assert got == rec
    for key in ("id", "kind", "status", "params", "created_at", "started_at", "finished_at",
                "exit_code", "result", "error"):
        assert key in got
    assert got["started_at"] >= got["created_at"] and got["finished_at"] >= got["started_at"]
    assert got["log_size"] == len(daemon.job_log(job["id"]).encode())


def test_jobs_get_unknown(daemon: Daemon) -> None:
    err = _err(daemon, "jobs.get", {"job_id": "nonexistent-id"})
    assert err["code"] == -32001
    assert "no job with id 'nonexistent-id'" in err["message"]
    assert "jobs list" in err["message"]
    err = _err(daemon, "jobs.get", {"job_id": "../../etc/passwd"})
    assert err["code"] == -32602 and "'job_id'" in err["message"]


def test_jobs_cancel_of_a_finished_job(daemon: Daemon) -> None:
    job = _ok(daemon, "templates.create", {"template": "console_app", "name": "c.app"})["job"]
    daemon.wait_job(job["id"])
    err = _err(daemon, "jobs.cancel", {"job_id": job["id"]})
    assert err["code"] == -32002
    assert "already ended (succeeded)" in err["message"] and "nothing to cancel" in err["message"]
    assert _ok(daemon, "jobs.get", [job["id"]])["job"]["status"] == "succeeded"
    err = _err(daemon, "jobs.cancel", {"job_id": "nonexistent-id"})
    assert err["code"] == -32001


def test_jobs_wait(daemon: Daemon) -> None:
    name = create_and_build(daemon)
    job = _ok(daemon, "launch", {"app": name, "args": ["--forever"]})["job"]
    try:
        res = _ok(daemon, "jobs.wait", {"job_id": job["id"], "timeout_s": 0.2})
        assert res["timed_out"] is True
        assert res["job"]["status"] in ("queued", "running")
        res = _ok(daemon, "jobs.wait", {"job_id": job["id"], "timeout_s": 0})
        assert res["timed_out"] is True
    finally:
        _ok(daemon, "jobs.cancel", {"job_id": job["id"], "grace_s": 5})
    res = _ok(daemon, "jobs.wait", {"job_id": job["id"], "timeout_s": 0})
    assert res == {"job": res["job"], "timed_out": False}
    assert res["job"]["status"] == "cancelled"
    err = _err(daemon, "jobs.wait", {"job_id": job["id"], "timeout_s": -1})
    assert err["code"] == -32602 and "'timeout_s'" in err["message"]
    err = _err(daemon, "jobs.wait", {"job_id": "nonexistent-id"})
    assert err["code"] == -32001


def test_jobs_logs_offsets_limit_eof(daemon: Daemon) -> None:
    name = create_and_build(daemon)
    job = _ok(daemon, "launch", {"app": name, "args": ["--lines", "50"]})["job"]
    daemon.wait_job(job["id"])
    full = (daemon.state / "logs" / f"{job['id']}.log").read_bytes()
    assert b"line 50" in full

    whole = _ok(daemon, "jobs.logs", {"job_id": job["id"]})
    assert whole["data"].encode() == full
    assert whole["offset"] == 0 and whole["next_offset"] == len(full) and whole["eof"] is True

    pieces: list[str] = []
    offset = 0
    while True:
        res = _ok(daemon, "jobs.logs", {"job_id": job["id"], "offset": offset, "limit": 37})
        assert res["offset"] == offset
        assert res["next_offset"] - offset == len(res["data"].encode()) <= 37
        pieces.append(res["data"])
        offset = res["next_offset"]
        if res["eof"]:
            break
        assert res["data"]
    assert "".join(pieces).encode() == full
    assert len(pieces) == -(-len(full) // 37)

    end = _ok(daemon, "jobs.logs", {"job_id": job["id"], "offset": len(full)})
    assert end == {"data": "", "offset": len(full), "next_offset": len(full), "eof": True}
    err = _err(daemon, "jobs.logs", {"job_id": job["id"], "offset": len(full) + 1})
    assert err["code"] == -32602
    assert f"past the end of the log ({len(full)} bytes)" in err["message"]
    err = _err(daemon, "jobs.logs", {"job_id": job["id"], "limit": 0})
    assert err["code"] == -32602 and "'limit'" in err["message"]


def test_jobs_logs_of_a_running_job_is_not_eof(daemon: Daemon) -> None:
    name = create_and_build(daemon)
    job = _ok(daemon, "launch", {"app": name, "args": ["--forever"]})["job"]
    try:
        wait_for(lambda: "tick 1" in _ok(daemon, "jobs.logs", [job["id"]])["data"],
                 what="the first tick")
        res = _ok(daemon, "jobs.logs", [job["id"]])
        assert res["eof"] is False
        again = _ok(daemon, "jobs.logs", [job["id"], res["next_offset"]])
        assert again["offset"] == res["next_offset"] and again["eof"] is False
    finally:
        _ok(daemon, "jobs.cancel", {"job_id": job["id"], "grace_s": 5})
    assert _ok(daemon, "jobs.logs", [job["id"]])["eof"] is True


def test_sessions_list_and_apps_list(daemon: Daemon) -> None:
    assert _ok(daemon, "sessions.list") == {"sessions": []}
    assert _ok(daemon, "apps.list")["apps"] == []
    create_and_build(daemon, name="l.app")
    [app] = _ok(daemon, "apps.list")["apps"]
    assert app["name"] == "l.app" and app["built"] is True
    assert Path(app["path"]) == daemon.workspace / "source" / "apps" / "l.app"
