"""Process-tree helpers for the job runner: signalling a job's tree, recognising a process.

A job step's tree is rooted at its shim (session and group leader, child subreaper), so
``psutil``'s view of the shim's descendants includes processes that left the group.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import psutil

__all__ = ["alive", "find_shim", "is_shim", "same_process", "signal_tree", "DEVNULL", "NICE_ENV",
           "SHIM_MODULE"]

# A job's monitor runs as `python -P -m kitplay.daemon.shim LOG ...`; monitors started by
# kitplay before its imports moved under `kitplay` ran `python -m daemon.shim LOG ...` and are
# still recognised, so a daemon upgraded under running apps re-adopts them.
SHIM_MODULE = "kitplay.daemon.shim"
_SHIM_MODULES = (SHIM_MODULE, "daemon.shim")

DEVNULL = subprocess.DEVNULL
# The niceness a job's monitor adds to itself before it starts the command (config job_nice).
NICE_ENV = "KITPLAY_JOB_NICE"


def is_shim(cmdline: list[str], log_path: str | None = None) -> bool:
    """True when ``cmdline`` is a job monitor's (of the job logging to ``log_path``, if given):
    the interpreter, its own options, ``-m`` and a monitor module, then the log's path."""
    for i in range(1, min(len(cmdline), 3)):
        arg = cmdline[i]
        if arg == "-m":
            return (len(cmdline) > i + 2 and cmdline[i + 1] in _SHIM_MODULES
                    and (log_path is None or cmdline[i + 2] == log_path))
        if not arg.startswith("-"):
            return False
    return False


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def same_process(pid: int, start: float | None) -> bool:
    """True when ``pid`` is still the process that started at ``start`` (not a reused pid)."""
    try:
        p = psutil.Process(pid)
        return (start is not None and abs(p.create_time() - start) < 0.01
                and p.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def find_shim(log_path: Path) -> tuple[int, float] | None:
    """(pid, start time) of a live job monitor writing ``log_path``, if there is one.

    For recovery: a daemon killed between spawning a step's shim and recording its pid left a
    running job with no (or a stale) pid; the shim's argv names the job's log.
    """
    target = str(log_path)
    for p in psutil.process_iter(["cmdline", "create_time", "status"]):
        cmd = p.info["cmdline"] or []
        if is_shim(cmd, target) and p.info["status"] != psutil.STATUS_ZOMBIE:
            return p.pid, p.info["create_time"]
    return None


def signal_tree(root_pid: int, sig: int, *, root: bool = False) -> None:
    """Signal the process group led by ``root_pid`` and every descendant (even setsid ones).

    A stopped process (``kill -STOP``) keeps a SIGTERM pending until it runs again, so SIGTERM
    comes with SIGCONT.  The shim at the root ignores SIGTERM (it records the exit status);
    SIGKILL skips it unless ``root`` is true.
    """
    try:
        top = psutil.Process(root_pid)
        kids = top.children(recursive=True)
    except psutil.Error:
        top, kids = None, []
    if sig == signal.SIGKILL:
        for p in kids:
            try:
                p.send_signal(sig)
            except psutil.Error:
                pass
        if root and top is not None:
            try:
                top.send_signal(sig)  # psutil checks the pid was not reused
            except psutil.Error:
                pass
        return
    in_group: set[int] = set()
    try:
        os.killpg(root_pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
    else:
        in_group = {p.pid for p in kids if _pgid(p.pid) == root_pid}
    for p in kids:
        if p.pid in in_group:
            continue  # signalled once through the group: a second SIGTERM can interrupt
            # the first one's handler (Python restores default handlers while exiting)
        try:
            p.send_signal(sig)
        except psutil.Error:
            pass
    if sig != signal.SIGCONT:
        signal_tree(root_pid, signal.SIGCONT)


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None
