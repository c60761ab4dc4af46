"""Paths inside a workspace, reached by no-follow walks from the workspace's own descriptor.

Every file the files API, ``apps.delete`` and ``apps.clean`` touch is reached this way, never
by joining strings and comparing prefixes:

- a path is relative and "/"-separated; an absolute path or a ``..`` name is refused before
  any lookup; ``.`` and empty names are dropped;
- the walk starts from a descriptor of the workspace (``resolve_workspace`` resolved and
  checked it) and opens one name at a time in the directory opened before it, with
  ``O_NOFOLLOW``: a directory renamed, or replaced by a symlink, while the walk runs cannot
  lead it out of the workspace;
- no symlink is followed, wherever it points (out of the workspace or back into it): one met
  on the way or at the end is refused, naming it and its target;
- each directory on the way, and the entry at the end, must be safe by the workspace's trust
  rules (``trust.check_below``: the user's own or root's, writable by no other user).

Descriptors of directories on the way are ``O_PATH`` ones: they can look names up but not read
or change anything, and opening them has no effect on the directory.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from .protocol.errors import InvalidParams, InvalidState, KitplayError, NotFound
from .toolchains.base import NAME_MAX, PATH_MAX
from .trust import check_below

__all__ = ["WALK_FLAGS", "describe_kind", "join", "kind_of", "lstat_at", "open_dir",
           "open_root", "os_error", "refuse_entry", "remove_tree", "split_path"]

WALK_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

_SPECIAL = {stat.S_IFIFO: ("fifo", "a named pipe (FIFO)"), stat.S_IFSOCK: ("socket", "a socket"),
            stat.S_IFCHR: ("char_device", "a character device"),
            stat.S_IFBLK: ("block_device", "a block device")}


def split_path(value: str, param: str = "path", *, root_ok: bool = False) -> list[str]:
    """The names of a workspace-relative path, or InvalidParams saying what is wrong with it."""
    if "\x00" in value:
        raise InvalidParams(f"parameter '{param}' contains a NUL byte",
                            {"param": param, "reason": "nul"})
    if value.startswith("/"):
        raise InvalidParams(
            f"{param} {value[:200]!r} is absolute; give a path relative to the workspace "
            "(source/apps/...)", {"param": param, "reason": "absolute"})
    parts = [p for p in value.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidParams(
            f"{param} {value[:200]!r} contains '..'; paths stay inside the workspace: name the "
            "file from the workspace's root", {"param": param, "reason": "traversal"})
    longest = max((len(os.fsencode(p)) for p in parts), default=0)
    if len(os.fsencode(value)) > PATH_MAX or longest > NAME_MAX:
        raise InvalidParams(
            f"{param} is too long: a path is at most {PATH_MAX} bytes and each name in it at "
            f"most {NAME_MAX}", {"param": param, "reason": "too_long"})
    if not parts and not root_ok:
        raise InvalidParams(f"{param} {value!r} names the workspace itself; name a file in it",
                            {"param": param, "reason": "empty"})
    if value.endswith("/") and not root_ok:
        raise InvalidParams(f"{param} {value[:200]!r} ends with '/'; name a file",
                            {"param": param, "reason": "directory"})
    return parts


def join(parts: Sequence[str]) -> str:
    return "/".join(parts)


def kind_of(mode: int) -> str:
    """The ``kind`` of a files.list entry."""
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "other"


def describe_kind(mode: int) -> tuple[str, str]:
    """(reason, words) of an entry that is not a regular file or directory."""
    if stat.S_ISLNK(mode):
        return "symlink", "a symlink"
    return _SPECIAL.get(stat.S_IFMT(mode), ("special_file", "a special file"))


def open_root(workspace: Path) -> int:
    return os.open(workspace, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def lstat_at(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _link_target(dir_fd: int, name: str) -> str | None:
    try:
        return os.readlink(name, dir_fd=dir_fd)
    except OSError:
        return None


def refuse_entry(root: Path, dir_fd: int, parts: list[str], st: os.stat_result,
                 param: str = "path", *, want: str = "a regular file") -> KitplayError:
    """The error for an entry that is not what the operation takes (a symlink, a directory,
    a pipe, socket or device), said without opening it."""
    rel = join(parts)
    if stat.S_ISDIR(st.st_mode):
        return InvalidParams(f"{rel} is a directory, not {want}",
                             {"param": param, "path": rel, "reason": "is_directory"})
    if stat.S_ISREG(st.st_mode):
        return InvalidParams(f"{rel} is a file, not {want}",
                             {"param": param, "path": rel, "reason": "not_directory"})
    reason, words = describe_kind(st.st_mode)
    data: dict[str, str | None] = {"param": param, "path": rel, "reason": reason}
    if reason == "symlink":
        target = _link_target(dir_fd, parts[-1])
        data["target"] = target
        return InvalidParams(
            f"{rel} is a symlink (to {target!r}); kitplay's files API never follows symlinks, "
            "so a link cannot lead it out of the workspace: use the path of the file itself",
            data)
    return InvalidParams(f"{rel} is {words}, not {want}; kitplay's files API opens regular "
                         "files only (it never opens pipes, sockets or devices)", data)


def open_dir(root: Path, root_fd: int, parts: list[str], param: str = "path", *,
             make_from: int | None = None, dir_mode: int = 0o755,
             made: list[str] | None = None) -> int:
    """An ``O_PATH`` descriptor of the directory ``parts`` (the caller closes it).

    Each name is opened in the directory before it without following symlinks, and checked
    by the trust rules.  A missing directory is NotFound, unless its index is at least
    ``make_from``: it is then made (``dir_mode``) and its path appended to ``made``.
    """
    fd = os.dup(root_fd)
    try:
        for i, name in enumerate(parts):
            try:
                nxt = os.open(name, WALK_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if make_from is None or i < make_from:
                    raise NotFound(
                        f"{join(parts[:i + 1])} does not exist in {root}",
                        {"param": param, "path": join(parts[:i + 1]),
                         "reason": "not_found"}) from None
                _make_dir(fd, name, dir_mode)
                if made is not None:
                    made.append(join(parts[:i + 1]))
                nxt = os.open(name, WALK_FLAGS, dir_fd=fd)
            except OSError as e:
                st = lstat_at(fd, name)
                if e.errno in (errno.ENOTDIR, errno.ELOOP) and st is not None:
                    raise refuse_entry(root, fd, parts[:i + 1], st, param,
                                       want="a directory") from None
                raise os_error(e, join(parts[:i + 1]), param) from None
            os.close(fd)
            fd = nxt
            check_below(os.fstat(fd), root.joinpath(*parts[:i + 1]), param)
        return fd
    except BaseException:
        os.close(fd)
        raise


def remove_tree(dir_fd: int, name: str, depth: int = 0) -> None:
    """``rm -r`` of the directory ``name`` in ``dir_fd``, by descriptors opened without
    following links (``shutil.rmtree`` opens its argument following a symlink put there after
    its ``lstat``, and so opens what the link points to): a link met anywhere is unlinked, a
    directory swapped for a link is an error (ELOOP, ENOTDIR), never followed."""
    if depth > 256:
        raise OSError(errno.ELOOP, "directories nested more than 256 deep", name)
    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                 dir_fd=dir_fd)
    try:
        for entry in list(os.scandir(fd)):
            if entry.is_dir(follow_symlinks=False):
                remove_tree(fd, entry.name, depth + 1)
            else:
                os.unlink(entry.name, dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=dir_fd)


def _make_dir(dir_fd: int, name: str, mode: int) -> None:
    """``mkdir`` with ``mode`` exactly (the daemon's own umask is 077): the mode is set on a
    descriptor of the new directory, opened without following a symlink put there since."""
    os.mkdir(name, 0o700, dir_fd=dir_fd)
    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                 dir_fd=dir_fd)
    try:
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def os_error(e: OSError, rel: str, param: str) -> KitplayError:
    if e.errno in (errno.EACCES, errno.EPERM):
        return InvalidState(f"{rel}: permission denied ({e.strerror})",
                            {"param": param, "path": rel, "reason": "permission"})
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return InvalidState(f"{rel}: the disk is full ({e.strerror}); free some space",
                            {"param": param, "path": rel, "reason": "no_space"})
    if e.errno == errno.EROFS:
        return InvalidState(f"{rel}: the file system is read-only",
                            {"param": param, "path": rel, "reason": "read_only_fs"})
    return InvalidState(f"{rel}: {e.strerror or e}",
                        {"param": param, "path": rel, "reason": "os_error", "errno": e.errno})

