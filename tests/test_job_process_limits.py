"""Job processes run with the user's umask, fd limit and environment, not the daemon's own.

kitplayd (and kitplay-bridge) set umask 077 for the files they keep; the builds, tests,
packages and apps they start make the user's files (``_build/``, archives, created sources),
which must come out as the user's umask says, as they would from a terminal.
"""

from __future__ import annotations

import resource
import stat
from collections.abc import Iterator

import pytest

from tests.helpers import Daemon, write_app


def test_a_job_gets_the_umask_the_daemon_started_with(make_daemon: type[Daemon],
                                                      umask_022: None) -> None:
    d = make_daemon().start()
    write_app(d.workspace, "t.umask", launch=["sh", "-c", "umask; : > made.txt"])
    job = d.call("launch", {"app": "t.umask", "display": "headless"})["job"]
    assert d.wait_job(job["id"])["status"] == "succeeded", d.job_log(job["id"])
    assert "0022" in d.job_log(job["id"]), d.job_log(job["id"])
    made = d.workspace / "source" / "apps" / "t.umask" / "made.txt"
    assert stat.S_IMODE(made.stat().st_mode) == 0o644
    # The daemon's own files stay private.
    for own in (d.state / "kitplay.db", d.state / "logs" / f"{job['id']}.log"):
        assert stat.S_IMODE(own.stat().st_mode) & 0o077 == 0, own


@pytest.fixture
def nofile_1024() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 1024:
        pytest.skip(f"the fd hard limit is {hard}: nothing for the daemon to raise")
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_job_gets_the_fd_limit_the_daemon_started_with(make_daemon: type[Daemon],
                                                         nofile_1024: None) -> None:
    """The daemon raises its own soft limit to the hard one (thousands of connections); a job
    gets 1024 back, as systemd does for its services' children: programs that use select(),
    or close every fd up to the limit, break or crawl with a million."""
    d = make_daemon().start()
    write_app(d.workspace, "t.nofile", launch=["sh", "-c", "echo nofile=$(ulimit -n)"])
    job = d.call("launch", {"app": "t.nofile", "display": "headless"})["job"]
    assert d.wait_job(job["id"])["status"] == "succeeded", d.job_log(job["id"])
    assert "nofile=1024\n" in d.job_log(job["id"]), d.job_log(job["id"])


def test_a_job_gets_the_daemons_environment_without_the_monitors_additions(
        make_daemon: type[Daemon]) -> None:
    """The job monitor (``python -m daemon.shim``) needs kitplay's package on PYTHONPATH; the
    job does not: a Kit app's Python, or an app's own venv, would import kitplay's venv's
    packages first (built for another Python, other versions)."""
    d = make_daemon().start()
    code = ("import os; print('PP=' + repr(os.environ.get('PYTHONPATH'))); "
            "print('KP=' + ','.join(sorted(k for k in os.environ if k.startswith('KITPLAY_JOB'))))")
    write_app(d.workspace, "t.env", launch=["{python}", "-c", code])
    job = d.call("launch", {"app": "t.env", "display": "headless"})["job"]
    assert d.wait_job(job["id"])["status"] == "succeeded", d.job_log(job["id"])
    log = d.job_log(job["id"])
    assert f"PP={d.env['PYTHONPATH']!r}\n" in log, log
    assert "KP=\n" in log, log
