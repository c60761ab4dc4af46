"""Process-wide settings kitplayd and kitplay-bridge take at start (standard library only)."""

from __future__ import annotations

import os
import resource

__all__ = ["harden_process"]


def harden_process() -> int:
    """umask 077 (nothing we create is readable by others unless chmod says so) and the fd
    soft limit raised to the hard limit (the default 1024 made 2,000 connections deafen the
    bridge). Returns the fd limit now in force."""
    os.umask(0o077)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft
