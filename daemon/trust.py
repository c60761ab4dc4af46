"""Which files the daemon may act on: the user's own, which no other user can change.

A workspace decides what the daemon runs (``kitapp.toml``'s commands, ``repo.sh``), so a
workspace another user owns or can write to would let them run code as this user. The rules,
in the spirit of OpenSSH's StrictModes:

- the path and everything under the workspace on the way to it belong to this user (or root),
  and are not writable by other users: not world-writable, and group-writable only when the
  group is the user's own private group (its name is the user's, it is the user's primary
  group, and no other user belongs to it: neither listed as a member nor holding it as their
  own primary group);
- every directory above the workspace belongs to this user or root and is not writable by
  others, unless it is sticky (like /tmp): then others cannot rename or remove what is ours.
"""

from __future__ import annotations

import functools
import grp
import os
import pwd
import stat
from pathlib import Path

from .protocol.errors import InvalidParams

__all__ = ["check_below", "check_trusted", "check_workspace", "group_others", "private_group",
           "real_path"]


def private_group(gid: int, uid: int) -> bool:
    """True when group ``gid`` is the user's own private group: named as the user, the user's
    primary group, and no other user's (see ``group_others``)."""
    try:
        user = pwd.getpwuid(uid)
        group = grp.getgrgid(gid)
    except KeyError:
        return False
    return (gid == user.pw_gid and group.gr_name == user.pw_name
            and not group_others(gid, uid))


def group_others(gid: int, uid: int) -> tuple[str, ...]:
    """The users other than ``uid`` who belong to group ``gid``, in either way a user does:
    listed as a member, or holding it as their own primary group (which /etc/group does not
    list)."""
    return _group_others(gid, uid, _accounts_stamp())


def _accounts_stamp() -> tuple[tuple[int, int, int] | None, ...]:
    """Changes whenever /etc/passwd or /etc/group does: a user added to the group later is
    seen at the next check, not at the daemon's next start."""
    out: list[tuple[int, int, int] | None] = []
    for path in ("/etc/passwd", "/etc/group"):
        try:
            st = os.stat(path)
            out.append((st.st_ino, st.st_size, st.st_mtime_ns))
        except OSError:
            out.append(None)
    return tuple(out)


@functools.lru_cache(maxsize=64)
def _group_others(gid: int, uid: int, _stamp: object) -> tuple[str, ...]:
    try:
        members = set(grp.getgrgid(gid).gr_mem)
    except KeyError:
        members = set()
    members |= {p.pw_name for p in pwd.getpwall() if p.pw_gid == gid and p.pw_uid != uid}
    try:
        members.discard(pwd.getpwuid(uid).pw_name)
    except KeyError:
        pass
    return tuple(sorted(members))


def _why_untrusted(st: os.stat_result, *, above: bool) -> str | None:
    uid = os.getuid()
    if st.st_uid not in (uid, 0):
        try:
            owner = pwd.getpwuid(st.st_uid).pw_name
        except KeyError:
            owner = f"uid {st.st_uid}"
        return f"it belongs to another user ({owner})"
    sticky_dir = above and stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX
    if st.st_mode & stat.S_IWOTH and not sticky_dir:
        return "every user can write to it"
    if (st.st_mode & stat.S_IWGRP and not sticky_dir
            and not private_group(st.st_gid, uid)):
        try:
            group = grp.getgrgid(st.st_gid).gr_name
        except KeyError:
            group = f"gid {st.st_gid}"
        others = group_others(st.st_gid, uid)
        who = f" ({', '.join(others[:3])}{', ...' if len(others) > 3 else ''})" if others else ""
        return f"members of group {group}{who} can write to it"
    return None


def _refuse(path: Path, where: Path, why: str, param: str) -> InvalidParams:
    fix = (f"`chmod go-w {where}`" if "write" in why
           else f"use a workspace of your own (copy it: `cp -r {where} ~/`)")
    return InvalidParams(
        f"refusing {param} {path}: {where} is not safe, {why}, so another user could change "
        f"what kitplay runs as you; {fix}",
        {"param": param, "path": str(where), "reason": "untrusted"})


def real_path(path: str | Path) -> str:
    """``os.path.realpath(path)``, asked of the kernel when the path exists: open it with
    ``O_PATH`` and read the descriptor's link in /proc (three system calls, where realpath's
    Python loop makes one ``lstat`` per component: most of a submission's planning).  A path
    that does not exist, or no /proc, takes ``os.path.realpath``."""
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return os.path.realpath(path)
    try:
        real = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return os.path.realpath(path)
    finally:
        os.close(fd)
    if not real.startswith("/") or real.endswith(" (deleted)"):
        return os.path.realpath(path)  # not a plain path (gone meanwhile, another namespace)
    return real


def check_trusted(path: str | Path, workspace: Path, param: str = "workspace", *,
                  resolved: bool = False, below_workspace: bool = False) -> None:
    """Refuse ``path`` (inside ``workspace`` or equal to it) unless it is safe.

    Components from ``workspace`` down to ``path`` that exist are checked as the user's own;
    the directories above ``workspace`` may also be sticky shared ones.  ``resolved``: the
    caller has just made ``path`` with ``os.path.realpath`` (it is not resolved again).
    ``below_workspace``: only the components below ``workspace`` are checked, because the
    workspace and everything above it were checked for this same call (``resolve_workspace``
    does it for every toolchain's root); a path outside the workspace is checked whole.
    """
    # Plain strings: this runs several times on every build and launch call, and pathlib's
    # ``parents`` and comparisons cost ten times the lstat calls (bench: submissions/s).
    # A symlink is judged by what it points to.
    real = os.fspath(path) if resolved else real_path(path)
    ws = os.fspath(workspace)
    current = real
    while True:
        if below_workspace and current == ws:
            return
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            st = None
        except OSError as e:
            raise InvalidParams(f"cannot check {current}: {e.strerror}",
                                {"param": param, "path": current}) from None
        if st is not None:
            # Strictly above the workspace: a proper ancestor of it.
            above = current != ws and ws.startswith(current.rstrip("/") + "/")
            why = _why_untrusted(st, above=above)
            if why is not None:
                raise _refuse(Path(real), Path(current), why, param)
        parent = os.path.dirname(current)
        if parent == current:
            return
        current = parent


def check_workspace(workspace: Path, param: str = "workspace", *,
                    resolved: bool = False) -> None:
    check_trusted(workspace, workspace, param, resolved=resolved)


def check_below(st: os.stat_result, path: Path, param: str = "path") -> None:
    """Refuse one entry below a checked workspace, from its own ``lstat`` (or the ``fstat`` of
    a descriptor opened without following it), unless it is safe by the rules above."""
    if stat.S_ISLNK(st.st_mode) and st.st_uid in (os.getuid(), 0):
        return  # a symlink's own mode bits mean nothing on Linux; only its owner does
    why = _why_untrusted(st, above=False)
    if why is not None:
        raise _refuse(path, path, why, param)
