"""Jobs against a real daemon: process trees, crashes, concurrency, logs, the job store."""

from __future__ import annotations

import sqlite3
import time

import pytest
from kitplay.daemon.store import Store

from tests.helpers import Daemon, pid_alive, wait_for, write_app

# A launch command that leaves a grandchild in its own session, ignoring SIGTERM, and
# prints that grandchild's pid; then waits to be stopped.
ESCAPER = """
import os, signal, subprocess, sys, time
g = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"],
    start_new_session=True)
print("grandchild", g.pid, flush=True)
if os.fork() == 0:          # a double-forked daemon too
    if os.fork() == 0:
        os.setsid(); signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("daemonized", os.getpid(), flush=True); time.sleep(600)
    os._exit(0)
print("ready", flush=True)
time.sleep(600)
"""


def _pids(log: str, word: str) -> list[int]:
    return [int(line.split()[1]) for line in log.splitlines() if line.startswith(word + " ")]


def test_cancel_reaches_setsid_and_double_forked_descendants(daemon: Daemon) -> None:
    write_app(daemon.workspace, "t.escaper", launch=["{python}", "escaper.py"],
              files={"escaper.py": ESCAPER})
    job = daemon.call("launch", {"app": "t.escaper", "display": "headless"})["job"]
    wait_for(lambda: "ready" in daemon.job_log(job["id"]) and "daemonized"
             in daemon.job_log(job["id"]), what="escaper ready")
    log = daemon.job_log(job["id"])
    victims = _pids(log, "grandchild") + _pids(log, "daemonized")
    shim = daemon.call("jobs.get", [job["id"]])["job"]["pid"]
    assert len(victims) == 2 and all(pid_alive(p) for p in victims)
    done = daemon.call("jobs.cancel", {"job_id": job["id"], "grace_s": 0.5})["job"]
    assert done["status"] == "cancelled"
    assert done["finished_at"] is not None
    for pid in [*victims, shim]:
        assert not pid_alive(pid), f"pid {pid} survived the cancel"


def test_cancel_queued_job_and_finished_job(make_daemon: type[Daemon]) -> None:
    d = make_daemon(config="max_concurrent_jobs = 1\n").start()
    write_app(d.workspace, "t.slow", build=[["{python}", "-c", "import time; time.sleep(60)"]])
    first = d.call("build", {"app": "t.slow"})["job"]
    second = d.call("build", {"app": "t.slow"})["job"]
    assert d.call("jobs.get", [second["id"]])["job"]["status"] == "queued"
    assert d.call("jobs.cancel", [second["id"]])["job"]["status"] == "cancelled"
    assert d.call("jobs.cancel", {"job_id": first["id"], "grace_s": 0})["job"]["status"] \
        == "cancelled"
    from kitplay.daemon.protocol.errors import InvalidState

    with pytest.raises(InvalidState, match="already ended"):
        d.call("jobs.cancel", [first["id"]])


def test_builds_of_one_workspace_run_one_at_a_time(daemon: Daemon) -> None:
    # Each build step records whether another build was inside the critical section.
    script = ("import os, sys, time\n"
              "p = os.path.join(os.environ.get('TMPDIR', '/tmp'), sys.argv[1])\n"
              "fd = os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY)\n"
              "time.sleep(0.2)\nos.close(fd); os.unlink(p)\n")
    lock = f"kitplay-serial-{time.monotonic_ns()}"
    write_app(daemon.workspace, "t.serial", build=[["{python}", "step.py", lock]],
              files={"step.py": script})
    jobs = [daemon.call("build", {"app": "t.serial"})["job"]["id"] for _ in range(3)]
    results = [daemon.wait_job(j) for j in jobs]
    assert [r["status"] for r in results] == ["succeeded"] * 3
    spans = sorted((r["started_at"], r["finished_at"]) for r in results)
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert start >= end, "two builds of one workspace overlapped"


def test_log_cap_writes_visible_marker(make_daemon: type[Daemon]) -> None:
    d = make_daemon(config="log_cap_bytes = 10000\n").start()
    write_app(d.workspace, "t.chatty",
              launch=["{python}", "-c", "print('x' * 99 + '\\n', end='') or [print('y' * 99) "
                      "for _ in range(1000)]"])
    job = d.call("launch", {"app": "t.chatty"})["job"]
    assert d.wait_job(job["id"])["status"] == "succeeded"
    log = d.job_log(job["id"])
    assert "log truncated" in log and "10000-byte cap" in log
    assert len(log) < 11000


def test_daemon_killed_during_build_readopts_and_finishes(daemon: Daemon) -> None:
    marker = daemon.base / "go"
    write_app(daemon.workspace, "t.build", build=[
        ["{python}", "-c", "print('step one', flush=True)"],
        ["{python}", "-c",
         f"import os, time\nprint('waiting', flush=True)\n"
         f"while not os.path.exists({str(marker)!r}): time.sleep(0.02)\nprint('step two done')"],
        ["{python}", "-c", "print('step three')"],
    ])
    job = daemon.call("build", {"app": "t.build"})["job"]
    wait_for(lambda: "waiting" in daemon.job_log(job["id"]), what="step two running")
    daemon.kill9()
    marker.touch()  # step two ends while no daemon watches; the shim records its status
    daemon.start()
    done = daemon.wait_job(job["id"])
    assert done["status"] == "succeeded", daemon.job_log(job["id"])
    log = daemon.job_log(job["id"])
    assert "step two done" in log and "step three" in log
    assert log.count("step one") == 1  # not rerun


def test_daemon_killed_during_launch_readopts_and_records_exit(daemon: Daemon) -> None:
    write_app(daemon.workspace, "t.app", launch=[
        "{python}", "-u", "-c",
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(7))\n"
        "print('up', flush=True)\nwhile True: time.sleep(0.05)"])
    job = daemon.call("launch", {"app": "t.app"})["job"]
    wait_for(lambda: "\nup\n" in daemon.job_log(job["id"]), what="app up")
    before = daemon.call("jobs.get", [job["id"]])["job"]
    daemon.kill9()
    assert pid_alive(before["pid"]), "the launched app died with the daemon"
    daemon.start()
    after = daemon.call("jobs.get", [job["id"]])["job"]
    assert after["status"] == "running", after
    assert after["pid"] == before["pid"]
    assert after["log_size"] >= before["log_size"]
    done = daemon.call("jobs.cancel", {"job_id": job["id"], "grace_s": 5})["job"]
    assert done["status"] == "cancelled" and done["exit_code"] == 7


def test_daemon_stop_leaves_launches_running_and_cancels_builds(daemon: Daemon) -> None:
    write_app(daemon.workspace, "t.both",
              build=[["{python}", "-c", "import time; print('b', flush=True); time.sleep(60)"]],
              launch=["{python}", "-c", "import time; print('l', flush=True); time.sleep(60)"])
    b = daemon.call("build", {"app": "t.both"})["job"]
    la = daemon.call("launch", {"app": "t.both"})["job"]
    wait_for(lambda: daemon.job_log(b["id"]).endswith("b\n")
             and daemon.job_log(la["id"]).endswith("l\n"), what="both running")
    assert daemon.stop() == 0
    db = Store(daemon.state / "kitplay.db")
    try:
        assert db.get(b["id"])["status"] == "cancelled"
        rec = db.get(la["id"])
        assert rec["status"] == "running" and pid_alive(rec["pid"])
    finally:
        db.close()
    daemon.start()
    done = daemon.call("jobs.cancel", {"job_id": la["id"], "grace_s": 2})["job"]
    assert done["status"] == "cancelled"


def test_dead_process_without_status_becomes_interrupted(daemon: Daemon) -> None:
    write_app(daemon.workspace, "t.victim",
              launch=["{python}", "-c", "import time; print('up', flush=True); time.sleep(60)"])
    job = daemon.call("launch", {"app": "t.victim"})["job"]
    wait_for(lambda: "\nup\n" in daemon.job_log(job["id"]), what="app up")
    shim = daemon.call("jobs.get", [job["id"]])["job"]["pid"]
    daemon.kill9()
    import psutil

    tree = [psutil.Process(shim), *psutil.Process(shim).children(recursive=True)]
    for p in tree:
        p.kill()  # the monitor dies too: nobody records an exit status
    psutil.wait_procs(tree, timeout=10)
    daemon.start()
    rec = daemon.call("jobs.get", [job["id"]])["job"]
    assert rec["status"] == "interrupted"
    assert "no exit status" in rec["error"]["message"]


def test_ten_thousand_jobs_list_uses_indexes(make_daemon: type[Daemon]) -> None:
    d = make_daemon()
    d.state.mkdir(parents=True)
    store = Store(d.state / "kitplay.db")
    now = time.time()
    store.db.execute("BEGIN")
    for i in range(10_000):
        store.insert({"id": f"old-{i:05d}", "kind": ("build", "launch")[i % 2],
                      "status": ("succeeded", "failed")[i % 3 == 0], "params": {},
                      "workspace": "/w", "toolchain": "builtin", "created_at": now + i,
                      "finished_at": now + i})
    store.db.execute("COMMIT")
    store.close()
    d.start()
    jobs = d.call("jobs.list", {"limit": 50})["jobs"]
    assert [j["id"] for j in jobs[:2]] == ["old-09999", "old-09998"]
    failed = d.call("jobs.list", {"status": "failed", "kind": "launch", "limit": 5})["jobs"]
    assert all(j["status"] == "failed" and j["kind"] == "launch" for j in failed)
    assert len(failed) == 5
    # The queries the daemon runs never scan the table nor sort in a temp b-tree.
    db = sqlite3.connect(d.state / "kitplay.db")
    for sql, args in [("SELECT * FROM jobs ORDER BY seq DESC LIMIT ?", (50,)),
                      ("SELECT * FROM jobs WHERE status=? ORDER BY seq DESC LIMIT ?",
                       ("failed", 5)),
                      ("SELECT * FROM jobs WHERE id=?", ("old-00001",))]:
        plan = " ".join(r[3] for r in db.execute("EXPLAIN QUERY PLAN " + sql, args))
        assert "TEMP B-TREE" not in plan and not plan.startswith("SCAN jobs "), plan
    db.close()
    assert d.call("daemon.status")["jobs"]["failed"] == 3334


def test_log_retention_removes_old_logs_visibly(make_daemon: type[Daemon]) -> None:
    d = make_daemon(config="log_retention_jobs = 2\n").start()
    write_app(d.workspace, "t.quick", launch=["{python}", "-c", "print('hi')"])
    ids = []
    for _ in range(25):
        ids.append(d.call("launch", {"app": "t.quick"})["job"]["id"])
        d.wait_job(ids[-1])
        assert "log_removed" not in d.call("jobs.get", [ids[-1]])["job"]  # ended: cached
        listed = d.call("jobs.list", {"limit": 30})["jobs"]  # ended ones cached here too
        assert listed[0]["id"] == ids[-1] and listed[0]["status"] == "succeeded"
    oldest = d.call("jobs.get", [ids[0]])["job"]
    assert oldest.get("log_removed") is True
    listed = {j["id"]: j for j in d.call("jobs.list", {"limit": 30})["jobs"]}
    assert listed[ids[0]].get("log_removed") is True  # the cache saw the retention pass
    assert "log_removed" not in listed[ids[-1]]
    from kitplay.daemon.protocol.errors import NotFound

    with pytest.raises(NotFound, match="retention"):
        d.call("jobs.logs", [ids[0]])
    assert "hi" in d.call("jobs.logs", [ids[-1]])["data"]


def test_progress_is_reported_for_steps(daemon: Daemon) -> None:
    job = daemon.call("templates.create", {"template": "console_app", "name": "p.app"})["job"]
    states = []
    with daemon.client() as c:
        for note in c.follow(job["id"]):
            if note["method"] == "jobs.state":
                states.append(note["params"]["job"]["progress"])
    steps = [s["step"] for s in states if s]
    assert steps == sorted(steps) and steps[-1] == 3
    assert states[-1]["message"] == "done"


def _processes_under(root: str, job_ids: list[str]) -> list[str]:
    """Live processes started from ``root`` or whose command line names one of the jobs."""
    import psutil

    found = []
    for p in psutil.process_iter(["cmdline", "cwd", "status"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if p.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if (p.info["cwd"] or "").startswith(root) or any(j in cmd for j in job_ids):
            found.append(f"{p.pid}: {cmd}")
    return found


def test_cancel_right_after_start_leaves_no_process(daemon: Daemon) -> None:
    """A cancel that arrives while the step's process is being started (the job is already
    `running`, its pid not yet known) still stops that process and all it started."""
    write_app(daemon.workspace, "t.forever", launch=["{python}", "forever.py"],
              files={"forever.py": "import time\nprint('up', flush=True)\ntime.sleep(600)\n"})
    ids = []
    for _ in range(6):  # the window is short: try it several times
        job_id = daemon.call("launch", {"app": "t.forever", "display": "headless"})["job"]["id"]
        ids.append(job_id)
        wait_for(lambda j=job_id: daemon.call("jobs.get", [j])["job"]["status"] != "queued",
                 what="the launch to start")
        done = daemon.call("jobs.cancel", {"job_id": job_id, "grace_s": 0.5})["job"]
        assert done["status"] == "cancelled"
    assert _processes_under(str(daemon.workspace), ids) == []
