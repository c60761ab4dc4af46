"""Where display sessions live: what the daemon and the bridge agree on.

The daemon runs each Xpra session on a Unix socket ``displays/<session>.sock`` in the
directory of its own socket (the user's private runtime directory, 0700); while the session's
Xpra starts, an empty ``<session>.starting`` file lies beside it.  The bridge serves the
session at ``/display/<session>/``.  Standard library only: the bridge imports it.
"""

from __future__ import annotations

import re
from pathlib import Path

from .paths import runtime_dir

__all__ = ["DISPLAY_PATH", "SESSION_ID", "session_socket", "sockets_dir", "starting_marker"]

DISPLAY_PATH = "/display/{session}/"
SESSION_ID = re.compile(r"[A-Za-z0-9_-]{16}")  # secrets.token_urlsafe(12): 96 random bits


def sockets_dir(daemon_socket: Path) -> Path:
    """Where the sessions' Xpra sockets live: beside the daemon's socket."""
    return runtime_dir(daemon_socket) / "displays"


def session_socket(daemon_socket: Path, session: str) -> Path:
    return sockets_dir(daemon_socket) / f"{session}.sock"


def starting_marker(sock: Path) -> Path:
    """Beside a session's socket while its Xpra starts: the bridge waits for a session that
    has one (and answers 404 at once for one that has neither)."""
    return sock.with_suffix(".starting")
