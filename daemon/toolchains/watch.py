"""The default workspace's toolchain, detected again only when its marker files change.

``daemon.status`` reports the toolchain on every call; detecting it (and, for a
kit-app-template checkout, reading its catalogue and versions) on every call cost more than the
call's round trip.  ``WatchedToolchain`` keeps the last answer with a key made of ``os.stat``
of what the answer depends on:

- the workspace directory and its ``templates/`` directory: a directory's mtime changes when
  an entry is created, removed or renamed in it, which covers the files detection looks for
  (``repo.sh``, ``repo.toml``, ``templates/templates.toml``) and the licence file;
- the files the toolchain itself reads for ``info()`` (``Toolchain.markers()``: versions, the
  template catalogue and its collections), by mtime, size and inode.

A few stats (microseconds) per call instead of a detection.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..protocol.errors import NotFound
from .base import Toolchain

__all__ = ["WatchedToolchain"]

_Key = tuple[tuple[int, int, int] | None, ...]


def _stat_key(paths: list[str]) -> _Key:
    out: list[tuple[int, int, int] | None] = []
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            out.append(None)
        else:
            out.append((st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(out)


class WatchedToolchain:
    """``info()`` of the toolchain ``detect()`` finds in ``root``, cached until a marker
    changes; ``detections`` counts the real detections (for tests)."""

    def __init__(self, root: Path, detect: Callable[[], Toolchain]) -> None:
        self.root = root
        self._detect = detect
        self._paths = [str(root), str(root / "templates")]
        self._key: _Key | None = None
        self._info: dict[str, Any] = {}
        self.detections = 0

    def info(self) -> dict[str, Any]:
        key = _stat_key(self._paths)
        if key != self._key:
            self._refresh()
        return self._info

    def _refresh(self) -> None:
        self.detections += 1
        paths = [str(self.root), str(self.root / "templates")]
        # The key is taken before reading, so a change made while reading is seen next time.
        try:
            tc = self._detect()
            paths += [str(p) for p in tc.markers()]
            key = _stat_key(paths)
            info = tc.info()
        except NotFound as e:
            key = _stat_key(paths)
            info = {"kind": None, "workspace": str(self.root), "error": e.message}
        self._paths, self._key, self._info = paths, key, info
