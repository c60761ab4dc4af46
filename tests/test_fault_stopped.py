"""A stopped process never hangs a cancel or a daemon stop (issue 20, fault 1).

``kill -STOP`` on a job's app, on its whole process group (monitor included), or on its
monitor alone: a stopped process keeps a SIGTERM pending until it is continued, and only
SIGKILL ends it.  Cancel sends SIGCONT with SIGTERM, so the app still gets to stop gracefully
(it prints "graceful stop"), and SIGKILLs every member of the tree, the monitor included,
when the grace runs out.  Each case also runs on a job the daemon re-adopted after a crash
(not its child: it waits on a pidfd).  A daemon stop ends within its documented bound
(``shutdown_grace_s`` plus a few seconds) with a stopped build tree.
"""

from __future__ import annotations

import os
import signal
import uuid

import psutil
import pytest

from tests.helpers import Daemon, pid_alive, tree, wait_for, write_app

# Stops gracefully on SIGTERM (once it runs again); argv[1] is the test's token.
APP = """
import os, signal, sys, time
def bye(*_):
    print("graceful stop", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, bye)
print("ready", os.getpid(), flush=True)
while True:
    time.sleep(0.05)
"""


def _stopped(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_STOPPED
    except psutil.Error:
        return False


def _stop(what: str, monitor: int, app: int) -> None:
    if what == "app":
        os.kill(app, signal.SIGSTOP)
        wait_for(lambda: _stopped(app), 10, "the app to stop")
    elif what == "group":
        os.killpg(monitor, signal.SIGSTOP)
        wait_for(lambda: _stopped(app) and _stopped(monitor), 10, "the group to stop")
    else:
        os.kill(monitor, signal.SIGSTOP)
        wait_for(lambda: _stopped(monitor), 10, "the monitor to stop")


def _kill_all(token: str, *pids: int) -> None:
    """Never leave a stopped process behind, whatever failed."""
    for p in tree(token):
        p.kill()
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _running_app(d: Daemon, job_id: str, token: str) -> tuple[int, int]:
    """(monitor pid, app pid) once the app says it is ready."""
    wait_for(lambda: "ready" in d.job_log(job_id), 30, "the app to be ready")
    monitor = d.call("jobs.get", [job_id])["job"]["pid"]
    apps = [p.pid for p in tree(token) if p.pid != monitor]
    assert monitor and len(apps) == 1, (monitor, apps)
    return monitor, apps[0]


@pytest.mark.parametrize("adopted", [False, True], ids=["child", "adopted"])
@pytest.mark.parametrize("what", ["app", "group", "monitor"])
def test_cancel_reaches_a_stopped_tree(daemon: Daemon, what: str, adopted: bool) -> None:
    token = f"kp-{uuid.uuid4().hex}"
    write_app(daemon.workspace, "t.stoppable", launch=["{python}", "app.py"],
              files={"app.py": APP})
    job = daemon.call("launch", {"app": "t.stoppable", "display": "headless",
                                 "args": [token]})["job"]
    monitor, app = _running_app(daemon, job["id"], token)
    if adopted:  # the next daemon re-adopts the job: not its child
        daemon.kill9()
        daemon.start()
        assert daemon.call("jobs.get", [job["id"]])["job"]["status"] == "running"
    _stop(what, monitor, app)
    try:
        with daemon.client(timeout=60) as c:  # a hang fails here, not forever
            done = c.call("jobs.cancel", {"job_id": job["id"], "grace_s": 1})["job"]
        assert done["status"] == "cancelled", done
        assert not pid_alive(monitor) and not pid_alive(app)
        assert tree(token) == []
        # SIGCONT came with SIGTERM: the app stopped on its own terms, within the grace.
        assert "graceful stop" in daemon.job_log(job["id"])
    finally:
        _kill_all(token, monitor, app)


def test_daemon_stop_ends_with_a_stopped_build_tree(make_daemon: type[Daemon]) -> None:
    d = make_daemon(config="shutdown_grace_s = 1.0\n").start()
    token = f"kp-{uuid.uuid4().hex}"
    write_app(d.workspace, "t.stoppable", build=[["{python}", "app.py", token]],
              files={"app.py": APP})
    job = d.call("build", {"app": "t.stoppable"})["job"]
    monitor, app = _running_app(d, job["id"], token)
    _stop("group", monitor, app)
    try:
        # The documented bound is shutdown_grace_s + 3 s; 30 s only keeps a hang from
        # hanging the test (the helper SIGKILLs the daemon then, and the code is -9).
        assert d.stop(timeout=30) == 0
        assert tree(token) == []
        d.start()
        rec = d.call("jobs.get", [job["id"]])["job"]
        assert rec["status"] == "cancelled", rec
    finally:
        _kill_all(token, monitor, app)
