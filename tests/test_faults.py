"""Faults the daemon must survive (issue 10): a SIGKILL during a burst of submissions, and a
state directory that fills up while jobs end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kitplay.daemon.protocol.schemas import TERMINAL_STATUSES

from tests.helpers import Daemon, wait_for, write_app
from tests.rawconn import RawConn

TOUCH = "import pathlib, sys; p = pathlib.Path(sys.argv[1]) / sys.argv[2]; p.write_text('x')"
BURST = 40


def _burst(d: Daemon, marks: Path) -> list[str]:
    """BURST launches sent at once on one connection; returns the acknowledged ids."""
    with RawConn(d.socket) as c:
        c.send_raw(b"".join(
            (json.dumps({"jsonrpc": "2.0", "id": i, "method": "launch",
                         "params": {"app": "burst.app", "display": "headless",
                                    "args": [str(i)]}}) + "\n").encode()
            for i in range(BURST)))
        acks = [c.recv() for _ in range(BURST)]
    assert all("result" in a for a in acks), acks
    return [a["result"]["job"]["id"] for a in acks]


def test_sigkill_during_a_burst_loses_and_interrupts_nothing_never_started(
        make_daemon: Any) -> None:
    d: Daemon = make_daemon(config="max_concurrent_jobs = 2\n").start()
    marks = d.base / "marks"
    marks.mkdir()
    write_app(d.workspace, "burst.app", launch=["{python}", "-c", TOUCH, str(marks)])
    ids = _burst(d, marks)
    d.kill9()  # right after the last acknowledgement: most jobs have not started
    d.start()
    final: dict[str, Any] = {}

    def all_ended() -> bool:
        for job_id in ids:
            if job_id not in final:
                job = d.call("jobs.get", {"job_id": job_id})["job"]
                if job["status"] in TERMINAL_STATUSES:
                    final[job_id] = job
        return len(final) == len(ids)

    wait_for(all_ended, 120, "every job to end")
    statuses = [final[j]["status"] for j in ids]
    interrupted = [j for j in ids if final[j]["status"] == "interrupted"]
    # Only a job whose process was lost may be interrupted: one that never started runs now.
    for job_id in interrupted:
        assert "process is gone" in final[job_id]["error"]["message"]
        assert "[kitplay] run" in d.job_log(job_id) or d.job_log(job_id), job_id
    assert statuses.count("succeeded") + len(interrupted) == BURST, statuses
    ran = {p.name for p in marks.iterdir()}
    assert len(ran) >= statuses.count("succeeded")
    assert not interrupted, [(j, d.job_log(j)) for j in interrupted]


WAITER = """
import pathlib, sys, time
go = pathlib.Path(sys.argv[1])
deadline = time.monotonic() + 120
while not go.exists() and time.monotonic() < deadline:
    time.sleep(0.02)
print("app done", flush=True)
"""


def _ended(d: Daemon, job_id: str) -> dict[str, Any] | None:
    job: dict[str, Any] = d.call("jobs.get", {"job_id": job_id})["job"]
    return job if job["status"] in TERMINAL_STATUSES else None


def test_state_dir_fills_while_a_job_ends(make_daemon: Any) -> None:
    """A tmpfs over the whole state dir, filled while a job ends: the daemon keeps serving,
    the job's outcome is kept, daemon.status says why, and it is written once space is back."""
    import sqlite3

    from tests.tmpfs import fill, small_tmpfs

    d: Daemon = make_daemon()
    go = d.base / "go"
    write_app(d.workspace, "waiter.app", launch=["{python}", "-c", WAITER, str(go)])
    with small_tmpfs(d.state, "4m"):
        d.start()
        job = d.call("launch", {"app": "waiter.app", "display": "headless"})["job"]
        wait_for(lambda: d.call("jobs.get", {"job_id": job["id"]})["job"]["status"]
                 == "running", 30, "the job to run")
        ballast = fill(d.state)
        go.write_text("go")  # the job ends now, on a full disk
        # Its outcome (its monitor reserved the space for its exit status at the start) is
        # kept in memory, not lost.
        kept = wait_for(lambda: _ended(d, job["id"]), 60, "the outcome, kept in memory")
        assert kept["status"] == "succeeded" and kept["exit_code"] == 0, kept
        assert d.proc is not None and d.proc.poll() is None  # the daemon lives
        status = d.call("daemon.status")
        assert status["state"]["ok"] is False and status["state"]["unsaved_jobs"] == 1
        assert "full" in status["state"]["error"].lower() or "space" in \
            status["state"]["error"].lower()
        # New work is refused with the reason, and nothing else breaks.
        from kitplay.daemon.protocol.errors import KitplayError

        try:
            d.call("launch", {"app": "waiter.app", "display": "headless"})
            raised = None
        except KitplayError as e:
            raised = e
        assert raised is not None and "space" in raised.message
        assert d.call("jobs.list", {})["jobs"][0]["status"] == kept["status"]
        ballast.unlink()  # space is back: the outcome reaches the database

        def written() -> bool:
            db = sqlite3.connect(f"file:{d.state / 'kitplay.db'}?mode=ro", uri=True)
            try:
                row = db.execute("SELECT status FROM jobs WHERE id=?", (job["id"],)).fetchone()
            finally:
                db.close()
            return row is not None and row[0] == kept["status"]

        wait_for(written, 30, "the kept outcome to be written")
        assert d.call("daemon.status")["state"]["ok"] is True
        d.stop()
        d.start()  # after a restart the job keeps its outcome: not interrupted
        after = d.call("jobs.get", {"job_id": job["id"]})["job"]
        assert after["status"] == kept["status"] and after["error"] == kept["error"]
        d.stop()
