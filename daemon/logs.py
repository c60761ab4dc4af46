"""Reading job logs by byte offset.  The log file is the source of truth; nothing is buffered."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CHUNK", "log_size", "read_chunk", "utf8_complete", "tail_lines"]

CHUNK = 256 * 1024


def log_size(path: Path | str) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def read_chunk(path: Path, offset: int, limit: int = CHUNK) -> bytes:
    """Up to ``limit`` bytes from ``offset``; b"" at the end or when there is no file yet."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return b""
    try:
        return os.pread(fd, limit, offset)
    finally:
        os.close(fd)


def utf8_complete(data: bytes) -> bytes:
    """``data`` without a UTF-8 sequence cut at its end (that part is sent next time)."""
    n = len(data)
    for back in range(1, min(4, n) + 1):
        b = data[n - back]
        if b < 0x80:
            return data
        if b >= 0xC0:  # a lead byte: is its sequence complete?
            need = 2 if b < 0xE0 else 3 if b < 0xF0 else 4
            return data if back >= need else data[: n - back]
    return data


def tail_lines(path: Path, n: int = 20, max_bytes: int = 16384) -> str:
    size = log_size(path)
    start = max(0, size - max_bytes)
    text = read_chunk(path, start, max_bytes).decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-n:])
