"""The CI rules, on with KITPLAY_REQUIRE_ALL=1 (``.ci/run`` sets it):

- a skipped test is a failed test.  Tests skip where a tool they need is missing (xpra,
  chromium, systemd, ...); on a developer's machine that is a convenience, in CI it would let
  a missing tool pass silently, so there every skip is reported as a failure with its reason;
- the run fails when it leaves anything of ours (``kp*``, ``kitplay*``) in /tmp or /dev/shm
  that was not there when it started: tests clean up after themselves.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import pytest

REQUIRE_ALL = os.environ.get("KITPLAY_REQUIRE_ALL", "") not in ("", "0")


def _fail_skip(report: Any) -> None:
    if REQUIRE_ALL and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped, and KITPLAY_REQUIRE_ALL is set: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Generator[None, Any, None]:
    outcome = yield
    _fail_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, Any, None]:
    outcome = yield
    _fail_skip(outcome.get_result())


TEMP_DIRS = ("/tmp", "/dev/shm")
PREFIXES = ("kp", "kitplay")
_before: set[str] = set()


def _ours() -> set[str]:
    found = set()
    for d in TEMP_DIRS:
        try:
            names = os.listdir(d)
        except OSError:
            continue
        found.update(os.path.join(d, n) for n in names if n.startswith(PREFIXES))
    return found


def pytest_sessionstart(session: pytest.Session) -> None:
    _before.update(_ours())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not REQUIRE_ALL:
        return
    left = sorted(_ours() - _before)
    if left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"KITPLAY_REQUIRE_ALL: the tests left {len(left)} entries in "
                                f"temporary directories: {', '.join(left[:20])}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
