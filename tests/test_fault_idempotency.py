"""A client can retry a submission safely (issue 20, fault 9).

Every job-creating method takes ``idempotency_key``: a retry with the same key within a day
returns the first job instead of a new one, over the socket, REST and the CLI.  The key is
committed with the job, so a daemon that dies between the commit and the answer still knows
it: the client, which heard nothing, retries and learns the job's id.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from kitplay.daemon.protocol.errors import DaemonUnreachable, InvalidParams
from kitplay.daemon.protocol.registry import METHODS
from kitplay.daemon.store import Store

from tests.bridge_helpers import Bridge, bridge_fixture, make_bridge_fixture  # noqa: F401
from tests.helpers import Daemon, wait_for, write_app
from tests.rawconn import RawConn

TOUCH = "import pathlib, sys; (pathlib.Path(sys.argv[1]) / sys.argv[2]).write_text('x')"
JOB_CREATING = ("templates.create", "apps.modify", "build", "launch", "test", "package",
                "package_container")


def test_every_job_creating_method_takes_a_key() -> None:
    for name in JOB_CREATING:
        p = METHODS[name].param("idempotency_key")
        assert p is not None and p.type == "string", name
    assert METHODS["jobs.get"].param("idempotency_key") is None


def test_a_retry_with_the_same_key_returns_the_first_job(daemon: Daemon) -> None:
    marks = daemon.base / "marks"
    marks.mkdir()
    write_app(daemon.workspace, "t.touch", launch=["{python}", "-c", TOUCH, str(marks)])
    params = {"app": "t.touch", "display": "headless", "args": ["one"],
              "idempotency_key": "try-" + uuid.uuid4().hex}
    first = daemon.call("launch", params)["job"]
    assert "idempotency_key" not in first["params"]
    daemon.wait_job(first["id"])
    again = daemon.call("launch", params)["job"]
    assert again["id"] == first["id"] and again["status"] == "succeeded"
    assert [p.name for p in marks.iterdir()] == ["one"]  # it ran once
    # Another key is another job; the same key with other parameters is refused.
    other = daemon.call("launch", {**params, "idempotency_key": "other"})["job"]
    assert other["id"] != first["id"]
    with pytest.raises(InvalidParams) as e:
        daemon.call("launch", {**params, "args": ["two"]})
    assert first["id"] in e.value.message and e.value.data["param"] == "idempotency_key"
    with pytest.raises(InvalidParams):
        daemon.call("build", {"app": "t.touch", "idempotency_key": params["idempotency_key"]})
    # The CLI flag, from the registry.
    cli = [sys.executable, "-m", "kitplay.cli_client", "--socket", str(daemon.socket)]
    out = [json.loads(subprocess.run(
        [*cli, "launch", "t.touch", "--display", "headless", "--args", "three",
         "--idempotency-key", "cli-key", "--json"], capture_output=True, text=True,
        check=True, timeout=60).stdout)["job"]["id"] for _ in range(2)]
    assert out[0] == out[1]
    ids = [j["id"] for j in daemon.call("jobs.list", {})["jobs"]]
    assert sorted(ids) == sorted({first["id"], other["id"], out[0]})


def test_rest_takes_the_key(daemon: Daemon, bridge: Bridge) -> None:
    write_app(daemon.workspace, "t.touch", launch=["{python}", "-c", "pass"])
    body = {"app": "t.touch", "display": "headless", "idempotency_key": "rest-1"}
    first = bridge.ok("POST", "/api/launch", body)["job"]
    assert bridge.ok("POST", "/api/launch", body)["job"]["id"] == first["id"]
    r = bridge.post("/api/launch", {**body, "args": ["other"]})
    assert r.status_code == 400 and first["id"] in r.json()["error"]["message"]
    r = bridge.post("/api/launch", {**body, "idempotency_key": "has space"})
    assert r.status_code == 400 and r.json()["error"]["data"]["param"] == "idempotency_key"


def test_a_key_survives_a_crash_between_commit_and_answer(make_daemon: type[Daemon]) -> None:
    d = make_daemon(env={"KITPLAY_FAILPOINT": "submit.committed"})
    marks = d.base / "marks"
    marks.mkdir()
    write_app(d.workspace, "t.touch", launch=["{python}", "-c", TOUCH, str(marks)])
    d.start()
    params = {"app": "t.touch", "display": "headless", "args": ["once"],
              "idempotency_key": "k1"}
    with pytest.raises(DaemonUnreachable):
        d.call("launch", params)  # committed, then the daemon died before answering
    assert d.proc is not None and d.proc.wait(30) == -9
    d.proc = None
    d.env.pop("KITPLAY_FAILPOINT")
    d.start()
    job = d.call("launch", params)["job"]  # the retry names the first try
    assert d.wait_job(job["id"])["status"] == "succeeded"
    assert [j["id"] for j in d.call("jobs.list", {})["jobs"]] == [job["id"]]
    assert [p.name for p in marks.iterdir()] == ["once"]


def test_a_burst_retried_after_a_sigkill_runs_each_job_once(make_daemon: type[Daemon]) -> None:
    """40 keyed launches on one connection, the daemon SIGKILLed while they are answered; the
    client retries every one with its key: each ran exactly once, 40 jobs in all."""
    d = make_daemon().start()
    marks = d.base / "marks"
    marks.mkdir()
    write_app(d.workspace, "t.touch", launch=["{python}", "-c", TOUCH, str(marks)])

    def frame(i: int) -> bytes:
        return (json.dumps({"jsonrpc": "2.0", "id": i, "method": "launch", "params": {
            "app": "t.touch", "display": "headless", "args": [f"m{i}"],
            "idempotency_key": f"burst-{i}"}}) + "\n").encode()

    heard: dict[int, str] = {}
    with RawConn(d.socket) as c:
        c.send_raw(b"".join(frame(i) for i in range(40)))
        first = c.recv()  # at least one committed: kill while the rest are answered
        heard[first["id"]] = first["result"]["job"]["id"]
        d.kill9()
        try:
            while True:
                msg = c.recv()
                if "result" in msg:
                    heard[msg["id"]] = msg["result"]["job"]["id"]
        except (OSError, ValueError, EOFError, ConnectionError):
            pass
    d.start()
    got: dict[int, str] = {}
    with RawConn(d.socket) as c:
        for i in range(40):
            got[i] = c.result("launch", json.loads(frame(i))["params"])["job"]["id"]
    assert all(got[i] == job_id for i, job_id in heard.items())  # what was heard is kept
    assert len(set(got.values())) == 40
    wait_for(lambda: len(list(marks.iterdir())) == 40, 60, "every job to run")
    for job_id in got.values():
        assert d.wait_job(job_id)["status"] == "succeeded"
    assert sorted(p.name for p in marks.iterdir()) == sorted(f"m{i}" for i in range(40))
    assert len(d.call("jobs.list", {"limit": 1000})["jobs"]) == 40


def test_keys_are_forgotten_after_a_day(tmp_path: Path) -> None:
    store = Store(tmp_path / "kitplay.db")
    now = time.time()
    job: dict[str, Any] = {
        "id": "j1", "kind": "build", "status": "queued", "params": {}, "workspace": "/w",
        "toolchain": "builtin", "created_at": now}
    store.insert_many([job], {"j1": "k"})
    assert store.find_key("k", now) == "j1"
    assert store.find_key("k", now + 86400 + 1) is None
    store.close()
