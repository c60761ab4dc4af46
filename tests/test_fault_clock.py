"""Job ids and durations do not depend on the wall clock going forward (issue 20, fault 12).

Ids are documented as sorting in creation order: they are a sequence that starts from the
clock and never goes back.  Durations are measured on the monotonic clock (the system's, so a
daemon that re-adopts a job on the same boot measures it too), never as finished_at minus
started_at, which a backward clock step makes negative.  The machine's clock is shared, so the
tests step it back in the one place the daemon reads it: a record written "in the future".
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import pytest
from kitplay.daemon import jobs

from tests.helpers import Daemon, wait_for, write_app


def test_ids_sort_in_creation_order_when_the_clock_steps_back(
        monkeypatch: pytest.MonkeyPatch) -> None:
    now = [2_000_000_000.0]
    monkeypatch.setattr(jobs.time, "time", lambda: now[0])
    ids = []
    for step in (0.0, 0.001, -3600.0, 0.0, 0.5, -0.5, 7200.0, -86400.0):
        now[0] += step
        ids.append(jobs.new_job_id())
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def _future_record(d: Daemon, hours: float) -> str:
    """A finished job created ``hours`` from now (the clock has since stepped back)."""
    from kitplay.daemon.store import Store

    ms = int((time.time() + hours * 3600) * 1000)
    job_id = f"{jobs._b36(ms)}-abcdef"
    d.state.mkdir(parents=True, exist_ok=True)
    store = Store(d.state / "kitplay.db")
    at = time.time() + hours * 3600
    store.insert({"id": job_id, "kind": "build", "status": "succeeded", "params": {},
                  "workspace": str(d.workspace), "toolchain": "builtin", "created_at": at,
                  "started_at": at, "finished_at": at, "exit_code": 0})
    store.close()
    return job_id


def test_a_daemon_continues_the_sequence_after_a_backward_step(
        make_daemon: type[Daemon]) -> None:
    d = make_daemon()
    future = _future_record(d, 2.0)
    write_app(d.workspace, "t.short", launch=["{python}", "-c", "pass"])
    d.start()
    new = [d.call("launch", {"app": "t.short", "display": "headless"})["job"]["id"]
           for _ in range(3)]
    assert sorted([future, *new]) == [future, *new], (future, new)
    listed = [j["id"] for j in d.call("jobs.list", {})["jobs"]]
    assert listed == sorted(listed, reverse=True)  # newest first, by id too


GATED = """
import pathlib, sys, time
print("up", flush=True)
while not pathlib.Path(sys.argv[1]).exists():
    time.sleep(0.02)
"""


def test_a_duration_is_never_negative(make_daemon: type[Daemon]) -> None:
    d = make_daemon()
    gate = d.base / "gate"
    write_app(d.workspace, "t.gated", launch=["{python}", "-c", GATED, str(gate)])
    d.start()
    job = d.call("launch", {"app": "t.gated", "display": "headless"})["job"]
    wait_for(lambda: "up\n" in d.job_log(job["id"]), 30, "the app to run")
    t0 = time.monotonic()
    d.kill9()
    # As if the wall clock stepped back an hour since the job started: its started_at is
    # an hour after any finished_at the next daemon can write.
    db = sqlite3.connect(d.state / "kitplay.db")
    with db:
        db.execute("UPDATE jobs SET started_at = started_at + 3600 WHERE id = ?", (job["id"],))
    db.close()
    d.start()
    gate.touch()
    done: dict[str, Any] = d.wait_job(job["id"])
    elapsed = time.monotonic() - t0
    assert done["status"] == "succeeded"
    assert done["finished_at"] < done["started_at"]  # what the wall clock says
    # What the daemon measured: it started before t0 and ended after ``elapsed``.
    assert elapsed <= done["duration_s"] < elapsed + 60, (done["duration_s"], elapsed)
