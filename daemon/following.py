"""Reading and following job logs by byte offset.

The log file is the source of truth: a follower reads it from its offset in chunks, so a slow
consumer only falls behind in the file and the daemon holds nothing for it; a client that
reconnects with the last offset it saw resumes with nothing lost or repeated.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol

import trio

from .logs import CHUNK, log_size, read_chunk, utf8_complete
from .protocol.errors import InvalidParams
from .protocol.schemas import TERMINAL_STATUSES

__all__ = ["POLL_S", "Followable", "cut_whole", "follow_job", "read_log_slice"]

# A running job's output is written by its shim, not by the daemon: a follower at the end of
# the file looks again this often (state changes wake it at once).
POLL_S = 0.05


class Followable(Protocol):
    """What following needs of the job manager: records, their versions, change events."""

    def log_path(self, job_id: str) -> Path: ...

    def get_record(self, job_id: str) -> dict[str, Any]: ...

    def public(self, rec: dict[str, Any]) -> dict[str, Any]: ...

    def version(self, job_id: str) -> int: ...

    def changed(self, job_id: str) -> trio.Event | None: ...


def cut_whole(data: bytes, limit: int, ended: bool) -> bytes:
    """``data`` read from a log, without a UTF-8 character cut at its end: the rest of it
    comes with the next read (so a follower that decodes each read never shows U+FFFD for a
    good character).  Only the very end of an ended job's log goes out as it is: nothing
    more will be written there, and every byte must reach the reader."""
    if ended and len(data) < limit:
        return data
    whole = utf8_complete(data)
    return whole if whole or not ended else data  # a limit under 4 bytes still moves on


def read_log_slice(path: Path, offset: int, limit: int, terminal: bool,
                   encoding: str = "text") -> dict[str, Any]:
    """The ``jobs.logs`` result; runs in a worker thread (file I/O only)."""
    size = log_size(path)
    if offset > size:
        raise InvalidParams(f"offset {offset} is past the end of the log ({size} bytes)",
                            {"param": "offset", "size": size})
    data = cut_whole(read_chunk(path, offset, limit), limit, terminal)
    nxt = offset + len(data)
    out: dict[str, Any] = {"offset": offset, "next_offset": nxt,
                           "eof": terminal and nxt >= log_size(path)}
    if encoding == "text":
        out["data"] = data.decode("utf-8", "replace")
        return out
    if encoding == "auto":
        try:
            out["data"], out["encoding"] = data.decode("utf-8"), "utf-8"
            return out
        except UnicodeDecodeError:
            pass
    out["data"], out["encoding"] = base64.b64encode(data).decode("ascii"), "base64"
    return out


async def follow_job(jobs: Followable, job_id: str,
                     offset: int) -> AsyncIterator[tuple[str, Any]]:
    """Yield ("output", (offset, bytes)) and ("state", (record, final)) until the job ends."""
    path = jobs.log_path(job_id)
    jobs.get_record(job_id)  # NotFound first
    size = log_size(path)
    if offset > size:
        raise InvalidParams(f"offset {offset} is past the end of the log ({size} bytes)",
                            {"param": "offset", "size": size})
    seen = -1
    while True:
        version = jobs.version(job_id)
        changed = jobs.changed(job_id)
        rec = jobs.get_record(job_id)
        final = rec["status"] in TERMINAL_STATUSES
        while True:
            data = cut_whole(await trio.to_thread.run_sync(read_chunk, path, offset, CHUNK),
                             CHUNK, final)
            if not data:
                break
            yield "output", (offset, data)
            offset += len(data)
        if jobs.version(job_id) != version and not final:
            # The record changed while the log was read: the output sent may already hold
            # lines written after that change (the job's last line is written just before its
            # final status).  Send the newer record, never one older than the output before it.
            continue
        if version != seen or final:
            seen = version
            yield "state", (jobs.public(rec), final)
        if final:
            return
        with trio.move_on_after(POLL_S):
            if changed is not None:
                await changed.wait()
            else:
                await trio.sleep_forever()
