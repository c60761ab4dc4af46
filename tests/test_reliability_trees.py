"""Process trees: cancel (and a job's end) leaves nothing behind, however the tree hides.

Each case is a tiny workspace app whose launch (or build step) runs a script that builds a
hostile tree: children in the job's group that ignore SIGTERM, a double-forked daemon with its
stdio closed, ``setsid`` escapers, a loop that keeps forking, a deep chain.  Every process of the
tree carries a per-test token in its command line, so "nothing survives" is checked by scanning
every process on the machine for the token, right when ``jobs.cancel`` returns.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import psutil
import pytest

from tests.helpers import Daemon, tree, wait_for, write_app

pytestmark = pytest.mark.reliability

# Common prelude: the token is argv[1]; ``spawn`` starts a python child carrying it.
PRELUDE = """
import os, signal, subprocess, sys, time
TOKEN = sys.argv[1]
HOLD = "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
def spawn(code=HOLD, **kw):
    return subprocess.Popen([sys.executable, "-c", code, TOKEN], **kw)
def ignore_term():
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
"""

SCRIPTS = {
    # Three children in the job's own group, all ignoring SIGTERM (as is the parent).
    "ignore_term": """
ignore_term()
kids = [spawn() for _ in range(3)]
print("ready", flush=True)
time.sleep(600)
""",
    # A classic daemon: fork, setsid, fork, close stdio, ignore SIGTERM.
    "double_fork": """
ignore_term()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        ignore_term()
        fd = os.open(os.devnull, os.O_RDWR)
        for n in (0, 1, 2):
            os.dup2(fd, n)
        time.sleep(600)
        os._exit(0)
    os._exit(0)
os.wait()
print("ready", flush=True)
time.sleep(600)
""",
    # Children that leave the session: setsid() in the child, and start_new_session.
    "setsid": """
spawn(start_new_session=True)
spawn("import os, signal, time; os.setsid(); signal.signal(signal.SIGTERM, signal.SIG_IGN); "
      "time.sleep(600)")
if os.fork() == 0:
    os.setsid(); ignore_term(); time.sleep(600); os._exit(0)
print("ready", flush=True)
time.sleep(600)
""",
    # Keeps forking while it is being stopped.
    "forker": """
ignore_term()
print("ready", flush=True)
for i in range(400):
    spawn()
    time.sleep(0.01)
time.sleep(600)
""",
    # A chain six deep, each level ignoring SIGTERM; the deepest leaves the session.
    "chain": """
ignore_term()
code = ("import os, signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        " n = int(sys.argv[2]);"
        " (os.setsid() if n == 0 else subprocess.Popen([sys.executable, '-c', sys.argv[3],"
        " sys.argv[1], str(n - 1), sys.argv[3]]));"
        " time.sleep(600)")
subprocess.Popen([sys.executable, "-c", code, TOKEN, "5", code])
print("ready", flush=True)
time.sleep(600)
""",
}
# How many processes carrying the token each tree has once ready (the script included).
EXPECTED = {"ignore_term": 4, "double_fork": 2, "setsid": 4, "forker": 5, "chain": 7}


def _app(d: Daemon, case: str, build_token: str | None = None) -> str:
    """The case's app; its build step (if ``build_token``) runs the same script."""
    name = f"t.{case}"
    argv = ["{python}", "tree.py"]
    write_app(d.workspace, name, launch=argv,
              build=[[*argv, build_token]] if build_token else None,
              files={"tree.py": PRELUDE + SCRIPTS[case]})
    return name


def _ready(d: Daemon, job_id: str, token: str, case: str) -> Callable[[], bool]:
    return lambda: "ready" in d.job_log(job_id) and len(tree(token)) >= EXPECTED[case]


@pytest.mark.parametrize("case", sorted(SCRIPTS))
def test_cancel_leaves_no_process_of_the_tree(daemon: Daemon, case: str) -> None:
    token = f"kp-{uuid.uuid4().hex}"
    app = _app(daemon, case)
    job = daemon.call("launch", {"app": app, "display": "headless", "args": [token]})["job"]
    wait_for(_ready(daemon, job["id"], token, case), 30, f"{case} tree ready")
    shim = daemon.call("jobs.get", [job["id"]])["job"]["pid"]
    done = daemon.call("jobs.cancel", {"job_id": job["id"], "grace_s": 0.3})["job"]
    assert done["status"] == "cancelled", done
    survivors = [(p.pid, p.info["cmdline"]) for p in tree(token)]
    assert survivors == [], f"{case}: survived the cancel: {survivors}"
    assert not psutil.pid_exists(shim) or psutil.Process(shim).status() == psutil.STATUS_ZOMBIE


def test_job_that_ends_leaves_no_daemonized_descendant(daemon: Daemon) -> None:
    """The command exits 0 but left a double-forked daemon: the job's monitor stops it."""
    token = f"kp-{uuid.uuid4().hex}"
    write_app(daemon.workspace, "t.leaver", launch=["{python}", "leaver.py"],
              files={"leaver.py": PRELUDE + """
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        ignore_term(); time.sleep(600)
    os._exit(0)
spawn(start_new_session=True)
print("leaving", flush=True)
"""})
    job = daemon.call("launch", {"app": "t.leaver", "display": "headless", "args": [token]})["job"]
    done = daemon.wait_job(job["id"])
    assert done["status"] == "succeeded", done
    assert "leaving" in daemon.job_log(job["id"])
    assert tree(token) == []


def test_cancel_of_a_build_step_reaches_its_tree(make_daemon: type[Daemon]) -> None:
    d = make_daemon().start()
    token = f"kp-{uuid.uuid4().hex}"
    app = _app(d, "setsid", build_token=token)
    job = d.call("build", {"app": app})["job"]
    wait_for(_ready(d, job["id"], token, "setsid"), 30, "build tree ready")
    assert d.call("jobs.cancel", {"job_id": job["id"], "grace_s": 0.3})["job"]["status"] \
        == "cancelled"
    assert tree(token) == []


def test_cancel_after_the_daemon_was_killed_and_restarted(daemon: Daemon) -> None:
    """A re-adopted job (not the new daemon's child) is still cancelled as a whole tree."""
    token = f"kp-{uuid.uuid4().hex}"
    app = _app(daemon, "chain")
    job = daemon.call("launch", {"app": app, "display": "headless", "args": [token]})["job"]
    wait_for(_ready(daemon, job["id"], token, "chain"), 30, "chain ready")
    daemon.kill9()
    assert len(tree(token)) >= EXPECTED["chain"]  # the job outlived its daemon
    daemon.start()
    assert daemon.call("jobs.get", [job["id"]])["job"]["status"] == "running"
    done = daemon.call("jobs.cancel", {"job_id": job["id"], "grace_s": 0.3})["job"]
    assert done["status"] == "cancelled", done
    assert tree(token) == []


def test_daemon_stop_cancels_build_trees(make_daemon: type[Daemon]) -> None:
    d = make_daemon(config="shutdown_grace_s = 0.3\n").start()
    token = f"kp-{uuid.uuid4().hex}"
    app = _app(d, "ignore_term", build_token=token)
    job = d.call("build", {"app": app})["job"]
    wait_for(_ready(d, job["id"], token, "ignore_term"), 30, "build tree ready")
    assert d.stop() == 0
    assert tree(token) == []
