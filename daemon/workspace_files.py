"""The files API: list, read, write and delete files of a workspace, confined by ``confine``.

What each operation holds to:

- **list**: entries in pre-order, sorted by name, at most ``MAX_ENTRIES`` (then
  ``truncated``) and ``MAX_DEPTH`` levels deep.  A workspace listing does not descend into
  ``.git`` or the tools' own directories (``_build``, ``_repo``, ``__pycache__``...; the
  toolchain's ``Policy.descend``): they are listed as entries and can be listed by path.
  Names that are not UTF-8 cannot travel in JSON text: they are left out and counted in
  ``skipped``.  Symlinks are listed (``kind: symlink``), never followed; pipes, sockets and
  devices are ``kind: other``, never opened.
- **read**: regular files only (anything else is refused from its ``lstat``, unopened); text
  is strict UTF-8 without NUL bytes, at most ``TEXT_CAP`` bytes (``NotText``,
  ``FileTooLarge`` otherwise); ``binary`` returns any regular file's bytes as base64, at most
  ``BINARY_CAP``.  The file is opened ``O_NONBLOCK | O_NOFOLLOW`` and checked again with
  ``fstat``, so one swapped for a pipe or a link meanwhile is refused, never waited on.
- **write**: an atomic replace: a new file made exclusively (``O_CREAT | O_EXCL``, a random
  name) in the same directory, written, given the old file's mode (or the user's umask),
  fsynced, renamed over the name, the directory fsynced.  A reader sees the old file or the
  new one, never a part.  ``if_match``: the change is refused (InvalidState, ``data.etag`` the
  current etag, null when the file is gone) unless the file's etag still matches.  A file
  whose mode denies the user writing (``chmod a-w``) is refused, as editors refuse it.
  ``create``: only a new file (InvalidState, reason ``exists``, when anything is at the
  path); the new file is linked in (``link(2)`` fails on an existing name where ``rename(2)``
  would replace it), so one another process made meanwhile is never replaced.  Missing
  parent directories are made only inside an app's own directory (``Policy.make_dirs_from``).
  At most ``TEXT_CAP`` bytes of UTF-8.
- **delete**: a file, symlink (the link, not its target), pipe or socket, or an empty
  directory; ``if_match`` as for write.
- While a job that writes into the workspace runs (a create, build, test or package), files
  that job's tool writes itself (``Policy.tool_written``: build outputs, and the records a
  kit-app-template tool rewrites) cannot be written or deleted: one of the two changes would
  be lost.  Every other file can: a build reads the old or the new file, never a torn one.

The etag of a file is a digest of its device, inode, size, modification and change times.
kitplay's own writes set a nanosecond modification time and always make a new inode, so each
one changes the etag; two writes by other programs within the file system's timestamp
granularity, of the same size, into a reused inode, would not.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import os
import secrets
import stat
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from .confine import (
    join,
    kind_of,
    lstat_at,
    open_dir,
    open_root,
    os_error,
    refuse_entry,
    split_path,
)
from .protocol.errors import (
    FileTooLarge,
    InvalidParams,
    InvalidState,
    NotFound,
    NotText,
)
from .protocol.process import user_umask
from .trust import check_below

__all__ = ["BINARY_CAP", "MAX_DEPTH", "MAX_ENTRIES", "TEXT_CAP", "Policy", "WorkspaceFiles",
           "etag"]

TEXT_CAP = 1024 * 1024
BINARY_CAP = 4 * 1024 * 1024
MAX_ENTRIES = 5000
MAX_DEPTH = 32

_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_LIST_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# One change at a time between checking a file's etag and replacing or removing it.
_CHANGE = threading.Lock()


class Policy(Protocol):
    """What a toolchain says about its workspace's files (``app_files`` has one per kind)."""

    def is_output(self, parts: Sequence[str]) -> bool: ...
    def descend(self, parts: Sequence[str]) -> bool: ...
    def tool_written(self, parts: Sequence[str]) -> bool: ...
    def make_dirs_from(self, parts: Sequence[str]) -> int | None: ...
    make_dirs_rule: str


def etag(st: os.stat_result) -> str:
    raw = f"{st.st_dev:x}.{st.st_ino:x}.{st.st_size:x}.{st.st_mtime_ns:x}.{st.st_ctime_ns:x}"
    return hashlib.blake2b(raw.encode(), digest_size=12).hexdigest()


def _user_mode(mode: int) -> int:
    um = user_umask()
    return mode & ~(um if um >= 0 else 0o022)


class WorkspaceFiles:
    def __init__(self, root: Path, policy: Policy) -> None:
        self.root = root
        self.policy = policy

    # -- list -------------------------------------------------------------------------------

    def listing(self, path: str | None = None,
             roots: Sequence[Sequence[str]] | None = None) -> dict[str, Any]:
        """A directory's tree (``path``), or the given ``roots`` (an app's files) with all
        that is under them."""
        lister = _Lister(self.policy)
        root_fd = open_root(self.root)
        try:
            if roots is None:
                parts = split_path(path or "", root_ok=True)
                path_fd = open_dir(self.root, root_fd, parts)
                try:  # the same directory, opened for reading
                    fd = os.open(".", _LIST_FLAGS, dir_fd=path_fd)
                except OSError as e:
                    raise os_error(e, join(parts) or ".", "path") from None
                finally:
                    os.close(path_fd)
                try:
                    inside_skipped = any(not self.policy.descend(parts[:i + 1])
                                         for i in range(len(parts)))
                    lister.walk(fd, parts, full=inside_skipped, depth=0)
                finally:
                    os.close(fd)
            else:
                for rp in roots:
                    lister.root_entry(self.root, root_fd, list(rp))
        finally:
            os.close(root_fd)
        return {"root": str(self.root), "entries": lister.entries,
                "truncated": lister.truncated, "skipped": lister.skipped}

    # -- read -------------------------------------------------------------------------------

    def read(self, path: str, binary: bool = False) -> dict[str, Any]:
        parts = split_path(path)
        rel = join(parts)
        with self._parent(parts) as pfd:
            st = lstat_at(pfd, parts[-1])
            if st is None:
                raise NotFound(f"{rel} does not exist in {self.root}",
                               {"param": "path", "path": rel, "reason": "not_found"})
            if not stat.S_ISREG(st.st_mode):
                raise refuse_entry(self.root, pfd, parts, st)
            cap = BINARY_CAP if binary else TEXT_CAP
            for _ in range(3):
                self._check_size(rel, st.st_size, cap, binary)
                try:
                    fd = os.open(parts[-1], _READ_FLAGS, dir_fd=pfd)
                except OSError as e:
                    now = lstat_at(pfd, parts[-1])
                    if now is not None and not stat.S_ISREG(now.st_mode):
                        raise refuse_entry(self.root, pfd, parts, now) from None
                    raise os_error(e, rel, "path") from None
                try:
                    st = os.fstat(fd)
                    if not stat.S_ISREG(st.st_mode):  # swapped in after the lstat
                        raise refuse_entry(self.root, pfd, parts, st)
                    check_below(st, self.root / rel)
                    self._check_size(rel, st.st_size, cap, binary)
                    data = _read_at_most(fd, cap + 1)
                    after = os.fstat(fd)
                finally:
                    os.close(fd)
                if etag(after) == etag(st):
                    break
                st = after
            else:
                raise InvalidState(f"{rel} kept changing while it was read; try again",
                                   {"param": "path", "path": rel, "reason": "changing"})
        self._check_size(rel, len(data), cap, binary)
        out: dict[str, Any] = {"path": rel}
        if binary:
            out["data_base64"] = base64.b64encode(data).decode("ascii")
        else:
            out["text"] = _text(rel, data)
        out.update(etag=etag(st), size=len(data), mtime=st.st_mtime)
        return out

    @staticmethod
    def _check_size(rel: str, size: int, cap: int, binary: bool) -> None:
        if size <= cap:
            return
        hint = ("" if binary or size > BINARY_CAP else
                f"; read its bytes with binary: true (up to {BINARY_CAP} bytes)")
        raise FileTooLarge(
            f"{rel} is {size} bytes, over the {cap}-byte limit of "
            f"{'binary' if binary else 'text'} reads{hint}",
            {"param": "path", "path": rel, "size": size, "limit": cap, "reason": "too_large"})

    # -- write ------------------------------------------------------------------------------

    def write(self, path: str, text: str, if_match: str | None = None,
              busy: Sequence[str] = (), create: bool = False) -> dict[str, Any]:
        parts = split_path(path)
        rel = join(parts)
        if create and if_match is not None:
            raise InvalidParams("create and if_match exclude each other: create makes a file "
                                "that does not exist, if_match changes one that does",
                                {"param": "if_match", "path": rel})
        data = text.encode("utf-8")
        if len(data) > TEXT_CAP:
            raise FileTooLarge(f"the new {rel} would be {len(data)} bytes, over the "
                               f"{TEXT_CAP}-byte limit of files.write",
                               {"param": "text", "path": rel, "size": len(data),
                                "limit": TEXT_CAP, "reason": "too_large"})
        self._refuse_busy(parts, busy, "write")
        with self._parent(parts, if_match=if_match, make=True) as pfd, _CHANGE:
            st = lstat_at(pfd, parts[-1])
            if create and st is not None:
                raise _exists(rel, st)
            if st is not None:
                if not stat.S_ISREG(st.st_mode):
                    raise refuse_entry(self.root, pfd, parts, st)
                check_below(st, self.root / rel)
                _refuse_read_only(rel, st, "write")
            _check_match(rel, st, if_match)
            mode = stat.S_IMODE(st.st_mode) & 0o777 if st is not None else _user_mode(0o666)
            try:
                _replace(pfd, parts[-1], data, mode, exclusive=create)
            except FileExistsError:  # made by another process since the lstat above
                raise _exists(rel, lstat_at(pfd, parts[-1])) from None
            except OSError as e:
                raise os_error(e, rel, "path") from None
            new = lstat_at(pfd, parts[-1])
        assert new is not None
        return {"path": rel, "etag": etag(new), "size": new.st_size, "mtime": new.st_mtime}

    # -- delete -----------------------------------------------------------------------------

    def delete(self, path: str, if_match: str | None = None,
               busy: Sequence[str] = ()) -> dict[str, Any]:
        parts = split_path(path)
        rel = join(parts)
        self._refuse_busy(parts, busy, "delete")
        with self._parent(parts, if_match=if_match) as pfd, _CHANGE:
            st = lstat_at(pfd, parts[-1])
            if st is None:
                _check_match(rel, None, if_match)
                raise NotFound(f"{rel} does not exist in {self.root}",
                               {"param": "path", "path": rel, "reason": "not_found"})
            check_below(st, self.root / rel)
            try:
                if stat.S_ISDIR(st.st_mode):
                    if if_match is not None:
                        raise InvalidParams(f"{rel} is a directory; if_match applies to files",
                                            {"param": "if_match", "path": rel})
                    os.rmdir(parts[-1], dir_fd=pfd)
                else:
                    if stat.S_ISREG(st.st_mode):
                        _refuse_read_only(rel, st, "delete")
                    _check_match(rel, st if stat.S_ISREG(st.st_mode) else None, if_match)
                    os.unlink(parts[-1], dir_fd=pfd)
            except OSError as e:
                if e.errno == errno.ENOTEMPTY:
                    raise InvalidState(
                        f"{rel} is a directory with files in it; files.delete removes one file "
                        "or an empty directory (apps.delete removes a whole app)",
                        {"param": "path", "path": rel, "reason": "not_empty"}) from None
                raise os_error(e, rel, "path") from None
        return {"path": rel, "deleted": True}

    # -- shared -----------------------------------------------------------------------------

    def _refuse_busy(self, parts: list[str], busy: Sequence[str], what: str) -> None:
        if busy and self.policy.tool_written(parts):
            jobs = ", ".join(busy)
            raise InvalidState(
                f"cannot {what} {join(parts)} while job {jobs} runs in {self.root}: its tool "
                "writes that file itself, and one of the two changes would be lost. Wait for "
                f"it (`kitplay jobs wait {busy[0]}`) or cancel it, then try again",
                {"param": "path", "path": join(parts), "reason": "busy", "jobs": list(busy)})

    def _parent(self, parts: list[str], *, if_match: str | None = None,
                make: bool = False) -> _Dir:
        return _Dir(self, parts, if_match, make)


class _Dir:
    """The descriptor of a path's parent directory, for a ``with`` block."""

    def __init__(self, files: WorkspaceFiles, parts: list[str], if_match: str | None,
                 make: bool) -> None:
        self.files, self.parts, self.if_match, self.make = files, parts, if_match, make
        self.fd = -1

    def __enter__(self) -> int:
        root, policy, parts = self.files.root, self.files.policy, self.parts
        root_fd = open_root(root)
        try:
            try:
                self.fd = open_dir(root, root_fd, parts[:-1])
            except NotFound as e:
                # The file cannot exist: a stale if_match says so before anything is made.
                _check_match(join(parts), None, self.if_match)
                start = policy.make_dirs_from(parts) if self.make else None
                if start is None or len(e.data["path"].split("/")) <= start:
                    if self.make:
                        e.message += f"; {policy.make_dirs_rule}"
                    raise
                self.fd = open_dir(root, root_fd, parts[:-1], make_from=start,
                                   dir_mode=_user_mode(0o777))
        finally:
            os.close(root_fd)
        return self.fd

    def __exit__(self, *exc: object) -> None:
        if self.fd >= 0:
            os.close(self.fd)


class _Lister:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.entries: list[dict[str, Any]] = []
        self.truncated = False
        self.skipped = 0

    def add(self, parts: list[str], st: os.stat_result) -> bool:
        if len(self.entries) >= MAX_ENTRIES:
            self.truncated = True
            return False
        regular = stat.S_ISREG(st.st_mode)
        self.entries.append({"path": join(parts), "kind": kind_of(st.st_mode),
                             "size": st.st_size, "mtime": st.st_mtime,
                             "etag": etag(st) if regular else None,
                             "build_output": self.policy.is_output(parts)})
        return True

    def root_entry(self, root: Path, root_fd: int, parts: list[str]) -> None:
        """One of an app's paths (known to lie in the workspace) and what is under it."""
        try:
            pfd = open_dir(root, root_fd, parts[:-1])
        except NotFound:
            return
        try:
            st = lstat_at(pfd, parts[-1])
            if st is None or not self.add(parts, st) or not stat.S_ISDIR(st.st_mode):
                return
            try:
                fd = os.open(parts[-1], _LIST_FLAGS, dir_fd=pfd)
            except OSError:
                return
            try:
                self.walk(fd, parts, full=True, depth=1)
            finally:
                os.close(fd)
        finally:
            os.close(pfd)

    def walk(self, fd: int, parts: list[str], *, full: bool, depth: int) -> None:
        """The entries under the directory open as ``fd`` (``parts``), pre-order."""
        try:
            listed = sorted(os.scandir(fd), key=lambda e: e.name)
        except OSError:
            return  # unreadable: the directory itself is listed, its contents are not
        for entry in listed:
            if _undecodable(entry.name):
                self.skipped += 1
                continue
            child = [*parts, entry.name]
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue  # gone meanwhile
            if not self.add(child, st):
                return
            if not stat.S_ISDIR(st.st_mode) or depth >= MAX_DEPTH:
                if stat.S_ISDIR(st.st_mode):
                    self.truncated = True
                continue
            if not (full or self.policy.descend(child)):
                continue
            try:
                sub = os.open(entry.name, _LIST_FLAGS, dir_fd=fd)
            except OSError:
                continue
            try:
                self.walk(sub, child, full=full, depth=depth + 1)
            finally:
                os.close(sub)
            if self.truncated and len(self.entries) >= MAX_ENTRIES:
                return


def _undecodable(name: str) -> bool:
    """A name with bytes that are not UTF-8 (``surrogateescape`` made them lone surrogates)."""
    return any("\udc80" <= c <= "\udcff" for c in name)


def _read_at_most(fd: int, n: int) -> bytes:
    chunks, left = [], n
    while left > 0:
        try:
            chunk = os.read(fd, min(left, 1 << 20))
        except BlockingIOError:  # a regular file never blocks; be safe all the same
            break
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _text(rel: str, data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise NotText(
            f"{rel} is not UTF-8 text (byte {e.start} of {len(data)} is not); read its bytes "
            "with binary: true (kitplay files cat --binary)",
            {"param": "path", "path": rel, "offset": e.start, "size": len(data),
             "reason": "not_utf8"}) from None
    nul = text.find("\x00")
    if nul >= 0:
        raise NotText(
            f"{rel} holds a NUL byte (at character {nul}): a binary file; read its bytes with "
            "binary: true (kitplay files cat --binary)",
            {"param": "path", "path": rel, "offset": nul, "size": len(data), "reason": "nul"})
    return text


def _check_match(rel: str, st: os.stat_result | None, if_match: str | None) -> None:
    if if_match is None:
        return
    current = etag(st) if st is not None else None
    if current != if_match:
        now = "it is gone" if current is None else "it changed"
        raise InvalidState(
            f"{rel} has changed since it was read ({now}; if_match {if_match[:40]!r} is "
            "stale): read it again, merge, and write with the new etag",
            {"param": "if_match", "path": rel, "reason": "stale", "etag": current})


def _refuse_read_only(rel: str, st: os.stat_result, what: str) -> None:
    if not st.st_mode & stat.S_IWUSR:
        raise InvalidState(
            f"cannot {what} {rel}: it is read-only (mode {stat.S_IMODE(st.st_mode):o}); make "
            f"it writable first (chmod u+w {rel})",
            {"param": "path", "path": rel, "reason": "read_only"})


def _exists(rel: str, st: os.stat_result | None) -> InvalidState:
    what = "a file" if st is not None and stat.S_ISREG(st.st_mode) else "something"
    return InvalidState(f"{rel} exists already ({what} is there); create only makes new files: "
                        "open it instead, or write without create to replace it",
                        {"param": "path", "path": rel, "reason": "exists",
                         "etag": etag(st) if st is not None and stat.S_ISREG(st.st_mode)
                         else None})


def _replace(dir_fd: int, name: str, data: bytes, mode: int, exclusive: bool = False) -> None:
    """Atomically make ``name`` in ``dir_fd`` hold ``data`` (see the module's docstring).

    ``exclusive``: only if nothing is at ``name``; the temp file is linked there (link(2)
    fails with EEXIST, where rename(2) would replace), so a file another process made at the
    same moment is never replaced.
    """
    tmp = f".kitplay-{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600, dir_fd=dir_fd)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fchmod(fd, mode)
            now = time.time_ns()
            os.utime(fd, ns=(now, now))
            os.fsync(fd)
        finally:
            os.close(fd)
        if exclusive:
            os.link(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
            os.unlink(tmp, dir_fd=dir_fd)
        else:
            os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except OSError:
            pass
        raise
    try:
        dfd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)
