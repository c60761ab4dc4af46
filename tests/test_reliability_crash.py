"""SIGKILL the daemon at random moments while jobs are submitted, write output and change state.

One daemon, killed and restarted 24 times on the same state dir.  A workload thread keeps
submitting launches (each prints numbered lines tagged with its own name) and builds (two
steps, each printing its lines), cancels some, and reads records; it stops when the daemon
dies.  The kill comes after a seeded random delay, so it lands anywhere: in a submission, a
state change, a spawn, a cancel, between steps.

After each kill, before the restart: the database opens and passes SQLite's integrity check,
and every acknowledged job (its ``launch``/``build`` call returned) is in it.  After each restart:
every job that was running is, within seconds, either finished or running with a live monitor
process.  At the end, once every job has finished: each acknowledged cancel is recorded as
cancelled, no job is left running and no process of any job survives, and every log holds its
job's lines in order, each exactly once: all of them for a job that succeeded, a prefix for one
that did not.
"""

from __future__ import annotations

import functools
import random
import re
import sqlite3
import threading
import time
import uuid
from typing import Any

import psutil
import pytest
from kitplay.daemon.protocol.errors import DaemonUnreachable, KitplayError
from kitplay.daemon.protocol.schemas import TERMINAL_STATUSES

from tests.helpers import Daemon, wait_for, write_app

pytestmark = pytest.mark.reliability

SEED = 7321
ITERATIONS = 24
PRINTER = """
import sys, time
tag, n, pause = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
for i in range(1, n + 1):
    print(f"{tag} {i}", flush=True)
    time.sleep(pause)
print(f"{tag} end", flush=True)
"""
BUILD_LINES = 12


class Workload:
    """Submits, cancels and reads until the daemon goes away; records what was acknowledged."""

    def __init__(self, d: Daemon, rng: random.Random, token: str) -> None:
        self.d, self.rng, self.token = d, rng, token
        self.jobs: dict[str, dict[str, Any]] = {}   # acknowledged: id -> what it should print
        self.cancelled: set[str] = set()            # acknowledged cancels
        self.count = 0
        self.errors: list[KitplayError] = []

    def run_once(self, stop: threading.Event) -> None:
        try:
            with self.d.client(timeout=30) as c:
                while not stop.is_set():
                    self._step(c)
        except (DaemonUnreachable, OSError):
            pass  # the daemon was killed under us
        except KitplayError as e:
            self.errors.append(e)

    def _step(self, c: Any) -> None:
        r = self.rng.random()
        if r < 0.55 and self._live() < 12:
            self.count += 1
            tag = f"j{self.count}"
            n = self.rng.randint(3, 40)
            pause = self.rng.choice(["0", "0.002", "0.01"])
            job = c.call("launch", {"app": "t.printer", "display": "headless",
                                    "args": [tag, str(n), pause, self.token]})["job"]
            self.jobs[job["id"]] = {"kind": "launch", "tags": [(tag, n)]}
        elif r < 0.62 and self._live() < 12:
            job = c.call("build", {"app": "t.printer"})["job"]
            self.jobs[job["id"]] = {"kind": "build",
                                    "tags": [("step1", BUILD_LINES), ("step2", BUILD_LINES)]}
        elif r < 0.72 and self.jobs:
            job_id = self.rng.choice(sorted(self.jobs))
            try:
                done = c.call("jobs.cancel", {"job_id": job_id, "grace_s": 0.2})["job"]
            except KitplayError as e:
                if e.code != -32002:  # "already ended" is fine
                    raise
            else:
                if done["status"] == "cancelled":
                    self.cancelled.add(job_id)
        else:
            c.call("jobs.list", {"limit": 20})
        time.sleep(self.rng.choice([0, 0.001, 0.01]))

    def _live(self) -> int:
        return sum(1 for p in psutil.process_iter(["cmdline"])
                   if self.token in (p.info["cmdline"] or []))


def _db_rows(d: Daemon) -> dict[str, dict[str, Any]]:
    db = sqlite3.connect(f"file:{d.state / 'kitplay.db'}?mode=ro", uri=True)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        db.row_factory = sqlite3.Row
        return {r["id"]: dict(r) for r in db.execute("SELECT id, status, pid FROM jobs")}
    finally:
        db.close()


def _settled(d: Daemon, job_id: str) -> bool:
    """Finished, or running with a live job monitor (``daemon.shim``) as its recorded pid."""
    job = d.call("jobs.get", [job_id])["job"]
    if job["status"] in TERMINAL_STATUSES:
        return True
    try:
        p = psutil.Process(job["pid"])
        return p.status() != psutil.STATUS_ZOMBIE and "kitplay.daemon.shim" in p.cmdline()
    except (psutil.Error, TypeError, ValueError):
        return False


def _check_log(text: str, tags: list[tuple[str, int]], complete: bool, job_id: str) -> None:
    for tag, n in tags:
        got = [m for m in re.findall(rf"^{tag} (\d+|end)$", text, re.M)]
        want = [str(i) for i in range(1, n + 1)] + ["end"]
        assert got == want[: len(got)], f"job {job_id}: {tag} lines out of order: {got[:50]}"
        if complete:
            assert got == want, f"job {job_id}: {tag} lines missing: {len(got)} of {n + 1}"
    own = "|".join(re.escape(tag) for tag, _ in tags)
    bad = [line for line in text.splitlines()
           if line and not line.startswith("[kitplay]")
           and not re.match(rf"^({own}) (\d+|end)$", line)]
    assert not bad, f"job {job_id}: foreign or torn lines in its log: {bad[:5]}"


def test_sigkill_at_random_moments(make_daemon: type[Daemon]) -> None:
    rng = random.Random(SEED)
    token = f"kp-{uuid.uuid4().hex}"
    d = make_daemon(config="max_concurrent_jobs = 2\ncancel_grace_s = 0.5\n")
    write_app(d.workspace, "t.printer",
              launch=["{python}", "printer.py"],
              build=[["{python}", "printer.py", s, str(BUILD_LINES), "0.005", token]
                     for s in ("step1", "step2")],
              files={"printer.py": PRINTER})
    work = Workload(d, rng, token)
    d.start()
    for i in range(ITERATIONS):
        stop = threading.Event()
        t = threading.Thread(target=work.run_once, args=(stop,))
        before = len(work.jobs)
        t.start()
        # A few submissions first, however loaded the machine: then the random moment.
        wait_for(lambda n=before + 2: len(work.jobs) >= n or work.errors, 60,
                 f"iteration {i}: the workload to submit")
        time.sleep(rng.uniform(0.02, 0.5))  # the random moment of the fault
        d.kill9()
        stop.set()
        t.join(30)
        assert not t.is_alive()
        assert not work.errors, f"iteration {i}: calls failed: {work.errors}"

        rows = _db_rows(d)  # opens, intact, nothing acknowledged lost
        lost = set(work.jobs) - set(rows)
        assert not lost, f"iteration {i}: acknowledged jobs missing after SIGKILL: {lost}"
        was_running = [j for j, r in rows.items() if r["status"] == "running"]

        d.start()
        for job_id in was_running:
            wait_for(functools.partial(_settled, d, job_id), 10,
                     f"iteration {i}: job {job_id} running without a process")

    # Let everything finish, then check every record and log.
    wait_for(lambda: all(d.call("jobs.get", [j])["job"]["status"] in TERMINAL_STATUSES
                         for j in work.jobs), 120, "every job to finish")
    assert len(work.jobs) >= 30, f"the workload hardly ran: {len(work.jobs)} jobs"
    assert d.call("jobs.list", {"status": "running"})["jobs"] == []
    for job_id, spec in work.jobs.items():
        job = d.call("jobs.get", [job_id])["job"]
        if job_id in work.cancelled:
            assert job["status"] == "cancelled", (job_id, job)
        if job["status"] == "interrupted":  # killed before its process started
            assert job["error"]["message"].startswith("interrupted: "), job
            log = d.job_log(job_id)
            assert log.endswith("[kitplay] job interrupted: kitplayd restarted and its process "
                                "is gone and left no exit status\n"), log[-300:]
            if spec["kind"] == "launch":  # a process that ran would have been re-adopted
                assert not re.search(rf"^{spec['tags'][0][0]} ", log, re.M), log[-300:]
        _check_log(d.job_log(job_id), spec["tags"], job["status"] == "succeeded", job_id)
    assert not [p.pid for p in psutil.process_iter(["cmdline"])
                if token in (p.info["cmdline"] or [])]
    statuses = {d.call("jobs.get", [j])["job"]["status"] for j in work.jobs}
    assert "succeeded" in statuses
    d.stop()


GATED_PRINTER = """
import os, sys, time
tag, n, gate = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for i in range(1, n + 1):
    print(f"{tag} {i}", flush=True)
    while i == 3 and not os.path.exists(gate):  # held here until the test has looked
        time.sleep(0.01)
print(f"{tag} end", flush=True)
"""


def test_a_monitor_whose_pid_was_never_recorded_is_readopted(daemon: Daemon) -> None:
    """The kill lands between spawning a step's monitor and recording its pid (found by the
    test above): the restarted daemon finds the monitor by its log path and adopts it, instead
    of calling the job interrupted while its process keeps running and writing.  The app
    waits at its third line until the test has seen it adopted, however slow the machine."""
    gate = daemon.base / "go"
    write_app(daemon.workspace, "t.printer", launch=["{python}", "printer.py"],
              files={"printer.py": GATED_PRINTER})
    job = daemon.call("launch", {"app": "t.printer", "display": "headless",
                                 "args": ["r1", "60", str(gate)]})["job"]
    wait_for(lambda: "r1 3\n" in daemon.job_log(job["id"]), what="output")
    daemon.kill9()
    db = sqlite3.connect(daemon.state / "kitplay.db")
    with db:  # what the database holds when the kill came before the pid was recorded
        db.execute("UPDATE jobs SET pid = NULL, pid_start = NULL WHERE id = ?", (job["id"],))
    db.close()
    daemon.start()
    rec = daemon.call("jobs.get", [job["id"]])["job"]
    assert rec["status"] == "running" and rec["pid"] is not None, rec
    assert "kitplay.daemon.shim" in psutil.Process(rec["pid"]).cmdline()
    gate.touch()
    done = daemon.wait_job(job["id"])
    assert done["status"] == "succeeded", done
    _check_log(daemon.job_log(job["id"]), [("r1", 60)], True, job["id"])

