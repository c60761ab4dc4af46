"""Jobs run at a lower CPU priority than the daemon (issue 20, fault 11).

With builds using every core, the daemon competed with its own jobs and answered submissions
at a third of its idle rate.  A job's monitor now adds ``job_nice`` (default 10) to its own
niceness, and its session's scheduler group the same nice value, before it starts the
command, so the daemon's share of the CPU stays; bench/jobs.py
measures the submission rate beside a build that uses both cores.
"""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from tests.helpers import Daemon, write_app

SAYS = ("import os; print('nice', os.nice(0), flush=True)\n"
        "if os.path.exists('/proc/self/autogroup'):\n"
        "    print('autogroup', open('/proc/self/autogroup').read().split()[-1], flush=True)\n")
# Linux's scheduler autogroups (sched(7)): a job's session is a group of its own, which only
# the group's nice value ranks against the daemon's group.
AUTOGROUPS = (Path("/proc/sys/kernel/sched_autogroup_enabled").exists()
              and Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1")


@pytest.mark.parametrize("config,added", [("", 10), ("job_nice = 4\n", 4), ("job_nice = 0\n", 0)])
def test_a_job_runs_nicer_than_the_daemon(make_daemon: type[Daemon], config: str,
                                          added: int) -> None:
    d = make_daemon(config=config).start()
    assert d.proc is not None
    mine = psutil.Process(d.proc.pid).nice()
    write_app(d.workspace, "t.nice", launch=["{python}", "-c", SAYS],
              build=[["{python}", "-c", SAYS]])
    for method in ("launch", "build"):
        job = d.call(method, {"app": "t.nice", **({"display": "headless"}
                                                  if method == "launch" else {})})["job"]
        assert d.wait_job(job["id"])["status"] == "succeeded"
        assert f"nice {min(19, mine + added)}\n" in d.job_log(job["id"]), d.job_log(job["id"])
        if AUTOGROUPS:
            assert f"autogroup {added}\n" in d.job_log(job["id"]), d.job_log(job["id"])
    assert psutil.Process(d.proc.pid).nice() == mine  # the daemon itself is left alone
