"""A directory beside a workspace that nothing may read or write: watched with inotify.

``Outside(base)`` makes ``base/outside`` with a secret file and a subdirectory, records every
entry (mode, size, times, a digest of the bytes), then watches both directories with inotify
(Linux's own report of every open, read, write, create, delete, rename or attribute change of
their entries).  ``unchanged()`` fails if anything happened there since, or if the recorded
state differs: a file read through a link shows as an open and an access, even where the file
system does not update access times.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import struct
from pathlib import Path
from typing import Any

__all__ = ["Outside"]

_ALL_EVENTS = 0xFFF  # IN_ACCESS .. IN_MOVE_SELF (linux/inotify.h)
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of name
_libc = ctypes.CDLL(None, use_errno=True)


class Outside:
    def __init__(self, base: Path) -> None:
        self.dir = base / "outside"
        self.dir.mkdir()
        self.secret = self.dir / "secret.txt"
        self.secret.write_text("the secret\n")
        (self.dir / "sub").mkdir()
        (self.dir / "sub" / "keep.txt").write_text("keep\n")
        self.before = self.snapshot()
        self.fd = _libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        for d in (self.dir, self.dir / "sub"):
            if _libc.inotify_add_watch(self.fd, os.fsencode(d), _ALL_EVENTS) < 0:
                raise OSError(ctypes.get_errno(), f"inotify_add_watch {d} failed")

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for p in sorted(self.dir.rglob("*")):
            st = p.lstat()
            body = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None
            out[str(p.relative_to(self.dir))] = (st.st_mode, st.st_size, st.st_mtime_ns, body)
        return out

    def events(self) -> list[tuple[int, str]]:
        """(mask, name) of everything inotify saw since the last call."""
        out = []
        while True:
            try:
                buf = os.read(self.fd, 65536)
            except OSError as e:
                if e.errno == errno.EAGAIN:
                    return out
                raise
            pos = 0
            while pos < len(buf):
                _wd, mask, _cookie, n = _EVENT.unpack_from(buf, pos)
                name = buf[pos + _EVENT.size:pos + _EVENT.size + n].rstrip(b"\0")
                out.append((mask, os.fsdecode(name)))
                pos += _EVENT.size + n

    def unchanged(self) -> None:
        seen = self.events()
        assert seen == [], f"something touched {self.dir}: {seen}"
        assert self.snapshot() == self.before
        self.events()  # our own reads, just now

    def close(self) -> None:
        os.close(self.fd)
