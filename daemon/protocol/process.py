"""Process-wide settings kitplayd and kitplay-bridge take at start (standard library only)."""

from __future__ import annotations

import os
import resource

__all__ = ["harden_process", "user_umask"]

_user_umask = -1  # the umask the process started with, before harden_process (-1: unknown)


def user_umask() -> int:
    """The umask this process had before ``harden_process`` (-1 when it was not called): the
    processes of jobs get it back, so a build's or an app's files come out as the user's
    umask says, not as the daemon keeps its own."""
    return _user_umask


def harden_process() -> int:
    """umask 077 (nothing we create is readable by others unless chmod says so) and the fd
    soft limit raised to the hard limit (the default 1024 made 2,000 connections deafen the
    bridge). Returns the fd limit now in force."""
    global _user_umask
    old = os.umask(0o077)
    if _user_umask < 0:  # bridge --with-daemon hardens twice: keep the user's
        _user_umask = old
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft
