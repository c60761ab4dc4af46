"""``jobs.prune``: ended jobs go by age or count, with their logs; nothing else is touched.

Real daemon, real jobs.  What is checked: the result says what is (or, with ``dry_run``,
would be) removed; the records and every file of a removed job are gone, and the store's
counts agree with the table; running and queued jobs stay whatever the criteria; a call that
names no criterion is refused and removes nothing; ``kitplay jobs prune`` says the same in
words; the daemon restarts on the pruned store.
"""

from __future__ import annotations

import os
import subprocess
import sys

from tests.helpers import ROOT, Daemon, wait_for, write_app

FOREVER = "import time\nwhile True:\n    print('tick', flush=True)\n    time.sleep(0.2)\n"


def _ended_jobs(d: Daemon, n: int) -> list[str]:
    write_app(d.workspace, "t.quick", launch=["{python}", "-c", "print('hello')"])
    ids = []
    for _ in range(n):
        job = d.call("launch", {"app": "t.quick", "display": "headless"})["job"]
        d.wait_job(job["id"])
        ids.append(job["id"])
    return ids


def _files(d: Daemon, job_id: str) -> list[str]:
    return sorted(p.name for p in (d.state / "logs").glob(f"{job_id}.*"))


def test_prune_by_count_and_age_with_logs(daemon: Daemon) -> None:
    old = _ended_jobs(daemon, 4)  # oldest first
    write_app(daemon.workspace, "t.forever", launch=["{python}", "-c", FOREVER])
    running = daemon.call("launch", {"app": "t.forever"})["job"]["id"]
    wait_for(lambda: "tick" in daemon.job_log(running), 30, "the app to run")
    try:
        assert all(_files(daemon, j) for j in old)
        # Nothing named: refused, nothing removed.
        with daemon.client() as c:
            try:
                c.call("jobs.prune", {})
            except Exception as e:
                assert getattr(e, "code", None) == -32602 and "older_than_s" in str(e)
            else:
                raise AssertionError("jobs.prune {} removed something")
        # A dry run lists the two oldest (keep the newest two ended), removes nothing.
        dry = daemon.call("jobs.prune", {"keep": 2, "dry_run": True})
        assert dry["dry_run"] is True and dry["count"] == 2
        assert [j["id"] for j in dry["removed"]] == [old[1], old[0]]  # newest first
        assert {j["app"] for j in dry["removed"]} == {"t.quick"}
        assert dry["log_bytes"] == sum(j["log_bytes"] for j in dry["removed"]) > 0
        assert all(_files(daemon, j) for j in old)
        # Both criteria: beyond the newest two AND ended more than an hour ago: none.
        assert daemon.call("jobs.prune", {"keep": 2, "older_than_s": 3600})["count"] == 0
        # For real.
        done = daemon.call("jobs.prune", {"keep": 2})
        assert done["count"] == 2 and done["dry_run"] is False
        for j in old[:2]:
            assert _files(daemon, j) == []
            with daemon.client() as c:
                try:
                    c.call("jobs.get", {"job_id": j})
                except Exception as e:
                    assert getattr(e, "code", None) == -32001
                else:
                    raise AssertionError(f"{j} is still there")
        listed = [j["id"] for j in daemon.call("jobs.list")["jobs"]]
        assert listed == [running, old[3], old[2]]
        status = daemon.call("daemon.status")["jobs"]
        assert status == {"running": 1, "succeeded": 2}
        # By age: everything ended before now (the running job stays, whatever the criteria).
        gone = daemon.call("jobs.prune", {"older_than_s": 0, "keep": 0})
        assert sorted(j["id"] for j in gone["removed"]) == sorted(old[2:])
        assert [j["id"] for j in daemon.call("jobs.list")["jobs"]] == [running]
        assert daemon.call("jobs.get", {"job_id": running})["job"]["status"] == "running"
    finally:
        daemon.call("jobs.cancel", {"job_id": running, "grace_s": 5})
    # The daemon starts again on the pruned store, and its counts are the table's.
    daemon.stop()
    daemon.start()
    assert daemon.call("daemon.status")["jobs"] == {"cancelled": 1}


def test_kitplay_jobs_prune_says_what_it_removes(daemon: Daemon) -> None:
    ids = _ended_jobs(daemon, 3)
    env = {**os.environ, "KITPLAY_SOCKET": str(daemon.socket), "PYTHONPATH": str(ROOT)}

    def kitplay(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "kitplay.cli_client", *args], env=env,
                              capture_output=True, text=True, timeout=60)

    r = kitplay("jobs", "prune")
    assert r.returncode == 2 and "--older-than-s" in r.stderr
    r = kitplay("jobs", "prune", "--keep", "1", "--dry-run")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("would remove 2 ended jobs and ") and lines[0].endswith(
        "of logs:")
    assert lines[1].split() == ["ID", "KIND", "STATUS", "ENDED", "APP"]
    assert [ln.split()[0] for ln in lines[2:]] == [ids[1], ids[0]]
    r = kitplay("jobs", "prune", "--keep", "1")
    assert r.returncode == 0 and r.stdout.startswith("removed 2 ended jobs"), r.stdout
    r = kitplay("jobs", "prune", "--keep", "1", "-q")
    assert r.returncode == 0 and r.stdout == ""
    r = kitplay("jobs", "prune", "--keep", "1")
    assert r.stdout.strip() == "no ended job matches: nothing removed"


def test_prune_forgets_the_idempotency_keys_of_the_jobs_it_removes(daemon: Daemon) -> None:
    write_app(daemon.workspace, "t.quick", launch=["{python}", "-c", "print('hello')"])

    def launch(key: str) -> str:
        job_id: str = daemon.call("launch", {"app": "t.quick", "display": "headless",
                                             "idempotency_key": key})["job"]["id"]
        daemon.wait_job(job_id)
        return job_id

    first, kept = launch("prune-me"), launch("keep-me")
    assert launch("prune-me") == first  # the key names its job
    done = daemon.call("jobs.prune", {"keep": 1})
    assert [j["id"] for j in done["removed"]] == [first]
    # The key went with its job: a retry starts a new one (no error about a missing job).
    again = launch("prune-me")
    assert again not in (first, kept)
    assert launch("keep-me") == kept  # a kept job's key still names it
