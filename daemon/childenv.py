"""The environment of every process the daemon starts: the user's own, without kitplay's.

Builds, tests, packages, launched apps, their job monitors, Xpra and the Xvfb it starts, and
the probes that check for them all get their environment from ``child_environment``. It is
the environment the daemon started with, less what belongs to kitplay itself:

- ``KITPLAY_*`` variables, above all ``KITPLAY_BRIDGE_TOKEN`` (the bridge's master token, in
  this process when the bridge runs the daemon with ``--with-daemon``): anything a child can
  read, its own children, a crash report or ``xpra info`` can show. Only the two that say
  where this daemon lives stay, so a build that calls ``kitplay`` reaches the same daemon;
- the service manager's handles to the daemon (``NOTIFY_SOCKET``, ``LISTEN_*``): they are
  the daemon's, not a job's.

What a caller adds (``extra``: a step's own variables, an Xpra session's password for Xpra
itself) comes on top.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["KEPT_KITPLAY_VARS", "child_environment", "is_kitplay_private"]

KEPT_KITPLAY_VARS = frozenset({"KITPLAY_SOCKET", "KITPLAY_STATE_DIR"})
DAEMON_ONLY_VARS = frozenset({"NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"})


def is_kitplay_private(name: str) -> bool:
    """True for a variable no child of the daemon may inherit."""
    return ((name.startswith("KITPLAY_") and name not in KEPT_KITPLAY_VARS)
            or name in DAEMON_ONLY_VARS)


def child_environment(extra: Mapping[str, str] | None = None,
                      base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) without kitplay's own variables, then
    ``extra``."""
    env = {k: v for k, v in (os.environ if base is None else base).items()
           if not is_kitplay_private(k)}
    if extra:
        env.update(extra)
    return env
