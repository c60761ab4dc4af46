"""Process-wide settings kitplayd and kitplay-bridge take at start (standard library only)."""

from __future__ import annotations

import os
import resource

__all__ = ["NOFILE_ENV", "Bursts", "bound_malloc", "harden_process", "release_memory",
           "user_nofile", "user_umask"]

# What the process started with, before harden_process (-1: unknown): jobs get them back.
_user_umask = -1
_user_nofile = -1
NOFILE_ENV = "KITPLAY_JOB_NOFILE"  # tells a job's monitor (daemon.shim) the fd soft limit


def user_umask() -> int:
    """The umask this process had before ``harden_process`` (-1 when it was not called): the
    processes of jobs get it back, so a build's or an app's files come out as the user's
    umask says, not as the daemon keeps its own."""
    return _user_umask


def user_nofile() -> int:
    """The fd soft limit this process had before ``harden_process`` (-1 when not called).

    Jobs get it back, as systemd gives its services' children 1024: a program that uses
    select(), or closes every fd up to the limit, breaks or crawls with a raised one."""
    return _user_nofile


def harden_process() -> int:
    """umask 077 (nothing we create is readable by others unless chmod says so) and the fd
    soft limit raised to the hard limit (the default 1024 made 2,000 connections deafen the
    bridge). Returns the fd limit now in force."""
    global _user_umask, _user_nofile
    old = os.umask(0o077)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if _user_umask < 0:  # bridge --with-daemon hardens twice: keep the user's
        _user_umask, _user_nofile = old, soft
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def bound_malloc() -> None:
    """Two malloc arenas (glibc only): worker threads share them instead of each keeping a
    heap of its own, so a long-lived process stays near its idle size after bursts.

    No fixed mmap threshold: it did return big buffers (256 KiB log chunks) to the system at
    once, but mapping and zeroing them again for every chunk cost the daemon a third more CPU
    per followed megabyte and the bridge five times more (bench/bridge.py); ``release_memory``
    after a burst gives the memory back instead.
    """
    try:
        import ctypes

        ctypes.CDLL(None).mallopt(-8, 2)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


def release_memory() -> None:
    """After a burst (hundreds of connections just closed): collect their reference cycles
    now, not at some later full collection, and hand the heap's free pages back to the system
    (glibc keeps them otherwise: bench/bridge_memory.py measured 84 MB left where 60 MB was
    in use).  Costs tens of milliseconds: for the end of a burst, not every request."""
    import gc

    gc.collect()
    try:
        import ctypes

        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


class Bursts:
    """Connections open now; and, a moment after a burst of them has ended (hundreds of
    clients or followers), ``release_memory``: the process returns near its idle size."""

    BURST = 64
    SETTLE_S = 1.0

    def __init__(self) -> None:
        import trio  # here: the rest of this module is for `kitplay` too, which has no trio

        self.active = self.total = self.released_at = 0
        self._ended = trio.Event()

    def opened(self) -> None:
        self.active += 1
        self.total += 1

    def closed(self) -> None:
        self.active -= 1
        if self.active == 0 and self.total - self.released_at >= self.BURST:
            self._ended.set()

    async def settle(self) -> None:
        """Run for the process's life: release memory after each burst."""
        import trio

        while True:
            await self._ended.wait()
            self._ended = trio.Event()
            await trio.sleep(self.SETTLE_S)
            if self.active == 0:
                self.released_at = self.total
                release_memory()
