"""Launch supervision without Xpra: display modes, the restart policy, cancel in a backoff.

Real daemon, real apps (the builtin templates and hand-made ones); backoff is asserted from
what the daemon logs and records, never from wall-clock time.
"""

from __future__ import annotations

import re

import pytest
from kitplay.daemon.protocol.errors import Unsupported

from tests.helpers import Daemon, create_and_build, wait_for, write_app

# Exits with 1 at once: what a crashing app looks like to the restart policy.
CRASHER = ["{python}", "-c", "import sys; print('crash', flush=True); sys.exit(1)"]


def _backoffs(log: str) -> list[str]:
    return re.findall(r"restart \d+/\d+ in ([0-9.]+) s", log)


def test_native_without_display_is_a_clear_error(make_daemon: type[Daemon]) -> None:
    d = make_daemon()
    for var in ("DISPLAY", "WAYLAND_DISPLAY"):
        d.env.pop(var, None)
    d.start()
    name = create_and_build(d, "gui_app", "my_company.window")
    with pytest.raises(Unsupported) as e:
        d.call("launch", {"app": name, "display": "native"})
    assert "needs a display" in e.value.message
    assert "'xpra'" in e.value.message and "'headless'" in e.value.message
    assert d.call("jobs.list", {"kind": "launch"})["jobs"] == []  # no job was created
    # An app that needs no display launches natively all the same.
    console = create_and_build(d, "console_app", "my_company.console")
    job = d.call("launch", {"app": console, "display": "native", "args": ["--lines", "1"]})
    assert d.wait_job(job["job"]["id"])["status"] == "succeeded"


def test_headless_runs_the_apps_headless_mode(daemon: Daemon) -> None:
    name = create_and_build(daemon, "gui_app", "my_company.window")
    job = daemon.call("launch", {"app": name, "display": "headless"})["job"]
    wait_for(lambda: "running headless" in daemon.job_log(job["id"]), what="headless app up")
    done = daemon.call("jobs.cancel", {"job_id": job["id"], "grace_s": 5})["job"]
    assert done["status"] == "cancelled"
    assert "received SIGTERM" in daemon.job_log(job["id"])  # stopped gracefully


def test_xpra_missing_says_how_to_install(make_daemon: type[Daemon]) -> None:
    d = make_daemon(env={"PATH": "/nonexistent"})
    d.start()
    job = d.call("templates.create", {"template": "gui_app", "name": "my_company.window"})
    assert d.wait_job(job["job"]["id"])["status"] == "succeeded"
    with pytest.raises(Unsupported) as e:
        d.call("launch", {"app": "my_company.window", "display": "xpra"})
    assert "sudo apt-get install xpra" in e.value.message
    assert d.call("jobs.list", {"kind": "launch"})["jobs"] == []


def test_on_failure_restarts_with_doubling_capped_backoff_then_fails(
        make_daemon: type[Daemon]) -> None:
    d = make_daemon(config="restart_backoff_initial_s = 0.05\nrestart_backoff_max_s = 0.15\n")
    d.start()
    write_app(d.workspace, "t.crash", launch=CRASHER)
    job = d.call("launch", {"app": "t.crash", "restart": "on-failure",
                            "max_restarts": 4})["job"]
    done = d.wait_job(job["id"])
    log = d.job_log(job["id"])
    assert done["status"] == "failed" and done["exit_code"] == 1
    assert done["restarts"] == 4
    assert "after 4 restarts, the limit" in done["error"]["message"]
    assert log.count("[kitplay] launching t.crash") == 5 and log.count("crash\n") == 5
    assert _backoffs(log) == ["0.05", "0.10", "0.15", "0.15"]  # doubled, then capped


def test_backoff_resets_after_a_stable_run(make_daemon: type[Daemon]) -> None:
    # Every run counts as stable (restart_stable_s = 0): the backoff never grows.
    d = make_daemon(config="restart_backoff_initial_s = 0.05\nrestart_stable_s = 0.0\n")
    d.start()
    write_app(d.workspace, "t.crash", launch=CRASHER)
    job = d.call("launch", {"app": "t.crash", "restart": "on-failure",
                            "max_restarts": 3})["job"]
    assert d.wait_job(job["id"])["restarts"] == 3
    assert _backoffs(d.job_log(job["id"])) == ["0.05", "0.05", "0.05"]


def test_never_policy_and_clean_exit(daemon: Daemon) -> None:
    write_app(daemon.workspace, "t.crash", launch=CRASHER)
    job = daemon.call("launch", {"app": "t.crash"})["job"]
    done = daemon.wait_job(job["id"])
    assert done["status"] == "failed" and done["exit_code"] == 1 and done["restarts"] == 0
    assert _backoffs(daemon.job_log(job["id"])) == []
    write_app(daemon.workspace, "t.ok", launch=["{python}", "-c", "print('fine')"])
    job = daemon.call("launch", {"app": "t.ok", "restart": "on-failure"})["job"]
    done = daemon.wait_job(job["id"])
    assert done["status"] == "succeeded" and done["result"]["restarts"] == 0


def test_cancel_during_backoff_stops_for_good(make_daemon: type[Daemon]) -> None:
    d = make_daemon(config="restart_backoff_initial_s = 600.0\nrestart_backoff_max_s = 600.0\n")
    d.start()
    write_app(d.workspace, "t.crash", launch=CRASHER)
    job = d.call("launch", {"app": "t.crash", "restart": "on-failure",
                            "max_restarts": 5})["job"]
    wait_for(lambda: "restart 1/5 in 600.00 s" in d.job_log(job["id"]), what="in backoff")
    # A restart counts once it starts (a daemon dying in the backoff must not use one up).
    assert d.call("jobs.get", [job["id"]])["job"]["restarts"] == 0
    done = d.call("jobs.cancel", {"job_id": job["id"]})["job"]
    assert done["status"] == "cancelled" and done["restarts"] == 0
    # Nothing relaunches later: a restarted daemon does not pick the job up again.
    d.stop()
    d.start()
    rec = d.call("jobs.get", [job["id"]])["job"]
    assert rec["status"] == "cancelled"
    assert d.job_log(job["id"]).count("[kitplay] launching") == 1


def test_restarts_continue_after_daemon_restart(make_daemon: type[Daemon]) -> None:
    """A crash-looping app re-adopted by a new daemon keeps its restart count."""
    d = make_daemon(config="restart_backoff_initial_s = 0.05\n")
    d.start()
    gate = d.base / "crash-now"
    write_app(d.workspace, "t.gated", launch=[
        "{python}", "-c",
        f"import os, sys, time\nprint('up', flush=True)\n"
        f"while not os.path.exists({str(gate)!r}): time.sleep(0.02)\nsys.exit(3)"])
    job = d.call("launch", {"app": "t.gated", "restart": "on-failure",
                            "max_restarts": 2})["job"]
    wait_for(lambda: "up\n" in d.job_log(job["id"]), what="first run up")
    d.kill9()
    d.start()
    assert d.call("jobs.get", [job["id"]])["job"]["status"] == "running"
    gate.touch()  # every run from now on exits with 3 at once
    done = d.wait_job(job["id"])
    assert done["status"] == "failed" and done["exit_code"] == 3 and done["restarts"] == 2
    assert d.job_log(job["id"]).count("[kitplay] launching") == 3
