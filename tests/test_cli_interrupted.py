"""``kitplay jobs wait`` and every ``--follow`` exit 1 for an interrupted job, as for a failed one.

A job is interrupted when its process was lost while no daemon watched it and left no exit
status: a script that waited for it must not go on as if it had succeeded. Both the clients
that were waiting when it happened (they ride through the daemon's restart) and those that
ask afterwards see it.
"""

from __future__ import annotations

import os
import subprocess
import sys

import psutil

from tests.helpers import ROOT, Daemon, wait_for, write_app


def _kitplay(d: Daemon, *args: str) -> list[str]:
    return [sys.executable, "-m", "kitplay.cli_client", "--socket", str(d.socket),
            "--reconnect-s", "60", *args]


ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def test_wait_and_follow_exit_1_on_an_interrupted_job(daemon: Daemon) -> None:
    write_app(daemon.workspace, "t.victim",
              launch=["{python}", "-c", "import time; print('up', flush=True); time.sleep(60)"])
    job = daemon.call("launch", {"app": "t.victim"})["job"]
    job_id = job["id"]
    wait_for(lambda: "\nup\n" in daemon.job_log(job_id), what="app up")
    waiting = [subprocess.Popen(_kitplay(daemon, *args), env=ENV, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
               for args in (["jobs", "wait", job_id, "--timeout-s", "600"],
                            ["jobs", "logs", job_id, "--follow"],
                            ["jobs", "get", job_id, "--follow"])]
    try:
        wait_for(lambda: _clients(daemon) >= 3, 30, "the three clients to connect")
        shim = daemon.call("jobs.get", [job_id])["job"]["pid"]
        daemon.kill9()
        tree = [psutil.Process(shim), *psutil.Process(shim).children(recursive=True)]
        for p in tree:
            p.kill()  # the monitor dies too: nobody records an exit status
        psutil.wait_procs(tree, timeout=10)
        daemon.start()
        assert daemon.call("jobs.get", [job_id])["job"]["status"] == "interrupted"
        for proc in waiting:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 1, (proc.args, proc.returncode, out, err)
    finally:
        for proc in waiting:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    # Asked afterwards: the same.
    for args in (["jobs", "wait", job_id], ["jobs", "logs", job_id, "--follow"],
                 ["jobs", "get", job_id, "--follow"], ["jobs", "wait", job_id, "--json"]):
        r = subprocess.run(_kitplay(daemon, *args), env=ENV, capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 1, (args, r.returncode, r.stdout, r.stderr)


def _clients(d: Daemon) -> int:
    """How many connections the daemon has accepted on its socket (its listener aside)."""
    assert d.proc is not None
    conns = psutil.Process(d.proc.pid).net_connections(kind="unix")
    return sum(1 for c in conns if c.laddr == str(d.socket)) - 1
