"""Fixtures; and tests/require_all.py's CI rule (KITPLAY_REQUIRE_ALL=1: a skip fails)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.helpers import Daemon
from tests.require_all import (
    pytest_make_collect_report,
    pytest_runtest_makereport,
    pytest_sessionfinish,
    pytest_sessionstart,
)

__all__ = [  # hooks for pytest
    "pytest_make_collect_report", "pytest_runtest_makereport", "pytest_sessionfinish",
    "pytest_sessionstart",
]


@pytest.fixture
def daemon() -> Iterator[Daemon]:
    """A real kitplayd on a temporary socket; stopped and cleaned up after the test."""
    d = Daemon().start()
    try:
        yield d
    finally:
        d.cleanup()


@pytest.fixture
def make_daemon() -> Iterator[type[Daemon]]:
    """For tests that configure their daemon: ``make_daemon(config=...).start()``."""
    made: list[Daemon] = []

    class Tracked(Daemon):
        def __init__(self, *a, **kw) -> None:  # type: ignore[no-untyped-def]
            super().__init__(*a, **kw)
            made.append(self)

    try:
        yield Tracked
    finally:
        for d in made:
            d.cleanup()


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The test process runs under umask 022, as a login shell leaves it."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)
