"""The CI rule: with KITPLAY_REQUIRE_ALL=1 a skipped test is a failed test.

Tests skip where a tool they need is missing (xpra, chromium, systemd, ...).  On a
developer's machine that is a convenience; in CI (``.ci/run`` sets the variable) it would let
a missing tool pass silently, so there every skip is reported as a failure with its reason.
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
