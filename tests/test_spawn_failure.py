"""A launch whose process cannot be started after its Xpra session was reserved.

The operating system refuses the exec (here E2BIG: one argument over Linux's 128 KiB
MAX_ARG_STRLEN, and Xpra's ``--start-child`` carries the app's whole command line as one
argument).  The job fails with that OS error named, not as a "kitplayd internal error", and
the session's socket and directory are released at once, not at the next daemon start.
"""

from __future__ import annotations

import shutil

import pytest

from tests.helpers import Daemon, create_and_build

pytestmark = [
    pytest.mark.xpra,
    pytest.mark.skipif(shutil.which("xpra") is None,
                       reason="xpra is not installed (sudo apt-get install xpra)"),
]

APP = "my_company.window"


def test_an_exec_refused_after_the_session_was_reserved_fails_clearly_and_frees_it(
        make_daemon: type[Daemon]) -> None:
    d = make_daemon().start()
    create_and_build(d, "gui_app", APP)
    job = d.call("launch", {"app": APP, "display": "xpra", "args": ["x" * 200_000]})["job"]
    rec = d.wait_job(job["id"])
    assert rec["status"] == "failed", rec
    message = rec["error"]["message"]
    assert "internal error" not in message, message
    assert "Argument list too long" in message, message
    sessions = d.state / "sessions"
    assert not (sessions / f"{job['id']}.json").exists()
    assert not (sessions / job["id"]).exists()
    displays = d.socket.parent / "displays"
    assert not displays.exists() or list(displays.iterdir()) == []
    assert d.call("daemon.status")["pid"] == d.proc.pid  # type: ignore[union-attr]
