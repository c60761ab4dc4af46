"""A job monitor is recognised by its command line: recovery finds monitors whose pid was never
recorded, and cleanup must never signal one by mistake. Monitors started before kitplay's
imports moved under ``kitplay`` (``python -m daemon.shim``) still count, so a daemon upgraded
under running apps re-adopts them."""

from __future__ import annotations

import pytest
from kitplay.daemon.procs import SHIM_MODULE, is_shim


@pytest.mark.parametrize("cmdline", [
    ["/venv/bin/python", "-P", "-m", SHIM_MODULE, "/s/logs/j1.log", "/s/logs/j1.exit"],
    ["/usr/bin/python3", "-m", "daemon.shim", "/s/logs/j1.log", "/s/logs/j1.exit"],
])
def test_a_monitor_of_this_job_is_recognised(cmdline: list[str]) -> None:
    assert is_shim(cmdline)
    assert is_shim(cmdline, "/s/logs/j1.log")
    assert not is_shim(cmdline, "/s/logs/j2.log")


@pytest.mark.parametrize("cmdline", [
    ["python", "app.py"], ["python", "-m"], ["python", "-P", "-m"], [],
    ["python", "-m", "kitplay.daemon", "--socket", "/s/logs/j1.log"],
    ["python", "app.py", "-m", SHIM_MODULE, "/s/logs/j1.log"],  # not the interpreter's -m
])
def test_other_command_lines_are_not_monitors(cmdline: list[str]) -> None:
    assert not is_shim(cmdline)
    assert not is_shim(cmdline, "/s/logs/j1.log")
