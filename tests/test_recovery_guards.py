"""Guards that a plausible change could break without any other test noticing.

- a live process that holds a job's recorded pid but started at another time (a reused pid)
  is never adopted, so it is never followed, and never killed with the job's tree;
- a build re-adopted after a daemon crash runs each remaining step exactly once;
- ``jobs.cancel`` signals descendants that left the job's process group itself, honouring the
  caller's ``grace_s``: seen from the descendant, SIGTERM arrives while the job's main process
  is still alive (the job monitor's own sweep runs only after that process has ended).

Real daemon, real processes, real SIGKILLs.  Every wait has a deadline.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import psutil

from tests.helpers import Daemon, pid_alive, wait_for, write_app

# Prints a line every 10 ms until killed.
TICKER = ["{python}", "-u", "-c",
          "import itertools, time\n"
          "for i in itertools.count():\n"
          "    print(f'line {i}', flush=True)\n"
          "    time.sleep(0.01)\n"]


def _kill_tree(pid: int) -> None:
    root = psutil.Process(pid)
    procs = [*root.children(recursive=True), root]
    for p in procs:
        p.kill()
    psutil.wait_procs(procs, timeout=10)


def test_a_reused_pid_is_never_adopted(daemon: Daemon) -> None:
    write_app(daemon.workspace, "my_company.ticker", launch=TICKER)
    job = daemon.call("launch", {"app": "my_company.ticker", "display": "headless"})["job"]
    rec = wait_for(lambda: (r := daemon.call("jobs.get", [job["id"]])["job"])["pid"] and r,
                   30, "the job's pid")
    daemon.kill9()
    _kill_tree(rec["pid"])  # the job's processes are gone and left no exit status
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        # The record now names a live process, as if the pid had been reused: same pid,
        # another start time.
        with sqlite3.connect(daemon.state / "kitplay.db") as db:
            db.execute("UPDATE jobs SET pid=?, pid_start=? WHERE id=?",
                       (stranger.pid, psutil.Process(stranger.pid).create_time() - 5.0,
                        job["id"]))
        daemon.start()
        done = daemon.wait_job(job["id"], timeout=30)
        assert done["status"] == "interrupted", done
        assert "gone" in done["error"]["message"]
        assert pid_alive(stranger.pid)  # never adopted, never signalled
    finally:
        stranger.kill()
        stranger.wait()


def _step(marks: Path, n: int, wait_for_file: Path | None = None) -> list[str]:
    code = (f"import os, sys, time\nopen({str(marks)!r}, 'a').write('{n}')\n")
    if wait_for_file is not None:
        code += (f"print('step {n} waiting', flush=True)\n"
                 f"while not os.path.exists({str(wait_for_file)!r}):\n    time.sleep(0.02)\n")
    return ["{python}", "-c", code]


def test_a_readopted_build_runs_each_remaining_step_once(daemon: Daemon,
                                                         tmp_path: Path) -> None:
    marks, release = tmp_path / "ran", tmp_path / "release"
    write_app(daemon.workspace, "my_company.steps",
              build=[_step(marks, 1), _step(marks, 2, release), _step(marks, 3)])
    job = daemon.call("build", {"app": "my_company.steps"})["job"]
    wait_for(lambda: "step 2 waiting" in daemon.job_log(job["id"]), 30, "step 2 to run")
    daemon.kill9()  # the step's monitor keeps running; the next daemon re-adopts it
    daemon.start()
    release.touch()
    done = daemon.wait_job(job["id"])
    assert done["status"] == "succeeded", daemon.job_log(job["id"])
    assert marks.read_text() == "123"  # step 1 and 2 not run again, 3 run once


ESCAPER = r"""
import os, signal, subprocess, sys, time
marks = sys.argv[1]
def path(name):
    return os.path.join(marks, name)
child = r'''
import os, signal, sys, time
marks, main_pid = sys.argv[1], int(sys.argv[2])
def main_alive():
    try:
        with open(f"/proc/{main_pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in "ZX"
    except OSError:
        return False
def mark(name, text):  # whole or not at all: the test reads it as soon as it exists
    tmp = os.path.join(marks, name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, os.path.join(marks, name))
def on_term(signum, frame):
    # Cleanup that takes as long as the test says: SIGKILL before it ends loses "clean".
    mark("term", f"main_alive={main_alive()}")
    while not os.path.exists(os.path.join(marks, "release")):
        time.sleep(0.02)
    mark("clean", "done")
    os._exit(0)
signal.signal(signal.SIGTERM, on_term)
mark("escaped", str(os.getpid()))
while True:
    time.sleep(1)
'''
subprocess.Popen([sys.executable, "-c", child, marks, str(os.getpid())],
                 start_new_session=True)  # leaves the job's process group and session
# The main process outlives SIGTERM until the escaped one has cleaned up.
signal.signal(signal.SIGTERM, lambda *a: None)
while not os.path.exists(path("clean")):
    time.sleep(0.02)
"""


def test_cancel_signals_escaped_descendants_with_the_callers_grace(
        daemon: Daemon, tmp_path: Path) -> None:
    write_app(daemon.workspace, "my_company.escaper", launch=["{python}", "escaper.py",
                                                              str(tmp_path)],
              files={"escaper.py": ESCAPER})
    job = daemon.call("launch", {"app": "my_company.escaper", "display": "headless"})["job"]
    wait_for(lambda: (tmp_path / "escaped").exists(), 30, "the escaped descendant")
    escaped = int((tmp_path / "escaped").read_text())
    result: dict[str, Any] = {}

    def cancel() -> None:
        result.update(daemon.call("jobs.cancel", {"job_id": job["id"], "grace_s": 120}))

    t = threading.Thread(target=cancel)
    t.start()
    try:
        # SIGTERM reached the escaped process from the daemon, not from the monitor's sweep
        # after the main process ended.
        wait_for(lambda: (tmp_path / "term").exists(), 30, "SIGTERM at the escaped process")
        assert (tmp_path / "term").read_text() == "main_alive=True"
        # Within the caller's grace it may finish its cleanup: no SIGKILL came early.
        (tmp_path / "release").touch()
        wait_for(lambda: (tmp_path / "clean").exists(), 30, "the escaped process's cleanup")
    finally:
        (tmp_path / "release").touch()
        t.join(60)
    assert result["job"]["status"] == "cancelled"
    assert not pid_alive(escaped)
