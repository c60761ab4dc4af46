"""Recovery decides from what is known (issue 20, faults 4, 5 and 8).

- A build whose daemon died between two steps (the last step's exit status read, the next
  one not started yet) resumes at the next step: no step runs twice, none is skipped, and the
  job is not called interrupted.  The daemon dies at named points through its failpoints
  (``daemon/failpoints.py``): the window is milliseconds wide, too narrow to hit at random.
- A launch whose daemon died in a restart backoff uses up no restart: the restart counter
  advances when a run starts.
- A cancel is recorded before its signals go out: the daemon dying in the grace period leaves
  a job that the next daemon records as cancelled (finishing the cancel if the app still runs),
  not "failed: killed by signal 15".
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from kitplay.daemon.protocol.errors import DaemonUnreachable, KitplayError

from tests.helpers import Daemon, wait_for, write_app

# Appends its name to the runs file, prints a few lines.
STEP = """
import sys
name, runs = sys.argv[1], sys.argv[2]
with open(runs, "a") as f:
    f.write(name + "\\n")
for i in range(3):
    print(name, i, flush=True)
"""


def _crashed(d: Daemon) -> bool:
    return d.proc is not None and d.proc.poll() is not None


@pytest.mark.parametrize("point", ["step.ended", "step.spawn"])
def test_build_killed_between_steps_resumes_at_the_next_step(make_daemon: type[Daemon],
                                                             point: str) -> None:
    d = make_daemon(env={"KITPLAY_FAILPOINT": point})
    runs = d.base / "runs.txt"
    write_app(d.workspace, "t.steps",
              build=[["{python}", "step.py", f"step{i}", str(runs)] for i in (1, 2, 3)],
              files={"step.py": STEP})
    d.start()
    job = d.call("build", {"app": "t.steps"})["job"]
    wait_for(lambda: _crashed(d), 60, f"the daemon to die at failpoint {point}")
    d.proc = None
    assert runs.read_text() == "step1\n"  # it died after step 1, before step 2 ran
    d.env.pop("KITPLAY_FAILPOINT")
    d.start()
    done = d.wait_job(job["id"])
    assert done["status"] == "succeeded", (done, d.job_log(job["id"]))
    assert runs.read_text() == "step1\nstep2\nstep3\n"
    log = d.job_log(job["id"])
    assert [f"step{i} 2" in log for i in (1, 2, 3)] == [True] * 3
    assert "interrupted" not in log


# Fails at once on every run; each run appends a line to the runs file first.
CRASHER = """
import sys
with open(sys.argv[1], "a") as f:
    f.write("run\\n")
print("crash", flush=True)
sys.exit(3)
"""


def test_a_crash_in_the_restart_backoff_uses_no_restart(make_daemon: type[Daemon]) -> None:
    d = make_daemon(config="restart_backoff_initial_s = 600.0\nrestart_backoff_max_s = 600.0\n")
    runs = d.base / "runs.txt"
    write_app(d.workspace, "t.crash", launch=["{python}", "crash.py", str(runs)],
              files={"crash.py": CRASHER})
    d.start()
    job = d.call("launch", {"app": "t.crash", "display": "headless", "restart": "on-failure",
                            "max_restarts": 2})["job"]
    wait_for(lambda: "restart 1/2 in" in d.job_log(job["id"]), 30, "the first backoff")
    # In the backoff the restart has not started: it is not counted yet.
    assert d.call("jobs.get", [job["id"]])["job"]["restarts"] == 0
    d.kill9()
    # The next daemon starts the pending restart (with a short backoff, for the test).
    d.config.write_text("restart_backoff_initial_s = 0.05\nrestart_backoff_max_s = 0.05\n")
    d.start()
    done = d.wait_job(job["id"])
    assert done["status"] == "failed" and done["exit_code"] == 3, done
    assert done["restarts"] == 2, done
    assert runs.read_text().count("run") == 3  # the first run and both restarts
    assert "after 2 restarts, the limit" in done["error"]["message"]


# On SIGTERM it says so, takes a moment to stop, then dies of the signal.
SLOW_STOP = """
import os, signal, sys, time
def term(*_):
    print("got SIGTERM", flush=True)
    time.sleep(1.0)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)
signal.signal(signal.SIGTERM, term)
print("ready", flush=True)
while True:
    time.sleep(0.05)
"""

# On SIGTERM it says so and never stops: only SIGKILL ends it.
HANGS = """
import signal, time
def term(*_):
    print("got SIGTERM", flush=True)
    while True:
        time.sleep(0.05)
signal.signal(signal.SIGTERM, term)
print("ready", flush=True)
while True:
    time.sleep(0.05)
"""


@pytest.mark.parametrize("app", ["slow_stop", "hangs"])
def test_a_cancel_survives_a_crash(make_daemon: type[Daemon], app: str) -> None:
    d = make_daemon().start()
    write_app(d.workspace, "t.app", launch=["{python}", "app.py"],
              files={"app.py": SLOW_STOP if app == "slow_stop" else HANGS})
    job = d.call("launch", {"app": "t.app", "display": "headless"})["job"]
    wait_for(lambda: "ready" in d.job_log(job["id"]), 30, "the app to be ready")
    answer: dict[str, Any] = {}

    def cancel() -> None:
        try:
            with d.client(timeout=60) as c:
                answer["job"] = c.call("jobs.cancel", {"job_id": job["id"], "grace_s": 5})
        except (DaemonUnreachable, KitplayError, OSError) as e:
            answer["error"] = e

    t = threading.Thread(target=cancel)
    t.start()
    wait_for(lambda: "got SIGTERM" in d.job_log(job["id"]), 30, "the SIGTERM")
    d.kill9()  # in the grace period: the cancel was acknowledged by nobody
    t.join(30)
    assert "error" in answer, answer
    d.start()  # it finishes the cancel: SIGKILL when what is left of the 5 s grace is over
    done = d.wait_job(job["id"], timeout=60)
    assert done["status"] == "cancelled", done
    assert "signal" not in done["error"]["message"], done
    assert done["pid"] is None
