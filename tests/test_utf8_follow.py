"""Multi-byte UTF-8 is followed byte-exact over the socket and the WebSocket.

Two ways a character gets cut: the app has written only part of it when a follower reads
(the app below stops half-way through a 4-byte character until the test lets it go on), and
the follower's 256 KiB read ends inside a character (a finished job whose log puts a
character across the boundary).  Either way, the data a follower receives, joined, must be the
log file's bytes exactly: a cut character sent early would arrive as U+FFFD.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio
from kitplay.daemon.logs import CHUNK
from kitplay.daemon.protocol.client import Client

from tests.bridge_helpers import (  # noqa: F401
    Bridge,
    bridge_fixture,
    make_bridge_fixture,
    open_stream,
    read_stream,
    wait_until,
)
from tests.helpers import Daemon, wait_for, write_app

# Writes "é€" lines, then the first two bytes of "😀" (4 bytes), waits for argv[1] to
# exist, then the rest of it; then a block that puts a 3-byte "€" across every 256 KiB
# boundary of the log.
HALVES = r"""
import os, sys, time
out = sys.stdout.buffer
out.write("é€ début\n".encode() * 100); out.flush()
smile = "😀".encode()
out.write(smile[:2]); out.flush()
while not os.path.exists(sys.argv[1]):
    time.sleep(0.01)
out.write(smile[2:] + b" fin\n"); out.flush()
out.write("€".encode() * 200_000 + b"\n"); out.flush()
"""


def _joined(notes: list[dict[str, Any]]) -> bytes:
    data, offset = b"", 0
    for p in notes:
        assert p["offset"] == offset
        chunk = p["data"].encode()
        assert p["next_offset"] == offset + len(chunk)
        data, offset = data + chunk, p["next_offset"]
    return data


def _halves_job(d: Daemon, release: Path) -> str:
    write_app(d.workspace, "my_company.utf8", launch=["{python}", "halves.py", str(release)],
              files={"halves.py": HALVES})
    return str(d.call("launch", {"app": "my_company.utf8", "display": "headless"})["job"]["id"])


def _log(d: Daemon, job_id: str) -> bytes:
    try:
        return (d.state / "logs" / f"{job_id}.log").read_bytes()
    except FileNotFoundError:  # the job has not started yet
        return b""


def test_socket_follower_gets_every_byte_of_cut_characters(daemon: Daemon,
                                                          tmp_path: Path) -> None:
    release = tmp_path / "release"
    job_id = _halves_job(daemon, release)
    wait_for(lambda: _log(daemon, job_id).endswith("😀".encode()[:2]), 30,
             "half a character in the log")
    half_at = len(_log(daemon, job_id))
    notes: list[dict[str, Any]] = []
    with Client.connect(daemon.socket) as c:
        for note in c.follow(job_id, 0):
            if note["method"] == "jobs.output":
                notes.append(note["params"])
                # The follower has read up to the half character: it may now come whole.
                if notes[-1]["next_offset"] >= half_at - 2:
                    release.touch()
    assert release.exists()
    log = _log(daemon, job_id)
    assert len(log) > 2 * CHUNK
    assert _joined(notes) == log
    # And from the finished job, where reads end inside characters at 256 KiB boundaries.
    with Client.connect(daemon.socket) as c:
        again = [n["params"] for n in c.follow(job_id, 0) if n["method"] == "jobs.output"]
    assert len(again) > 2 and _joined(again) == log
    # jobs.logs in pieces, each ending where a 256 KiB read would.
    read, offset = b"", 0
    while True:
        r = daemon.call("jobs.logs", {"job_id": job_id, "offset": offset, "limit": CHUNK})
        read += r["data"].encode()
        assert r["next_offset"] == len(read)
        offset = r["next_offset"]
        if r["eof"]:
            break
    assert read == log


async def test_websocket_follower_gets_every_byte(daemon: Daemon, bridge: Bridge,
                                                  tmp_path: Path) -> None:
    release = tmp_path / "release"
    job_id = _halves_job(daemon, release)
    with trio.fail_after(60):
        await wait_until(lambda: _log(daemon, job_id).endswith("😀".encode()[:2]),
                         "half a character in the log", 30)
        half_at = len(_log(daemon, job_id))
        got: list[dict[str, Any]] = []
        async with open_stream(bridge, job_id, 0) as ws:
            while True:
                msg = (await read_stream(ws, limit=1))[0]
                if msg["type"] == "output":
                    got.append(msg)
                    if msg["next_offset"] >= half_at - 2:
                        release.touch()
                elif msg["type"] == "end":
                    break
        assert _joined(got) == _log(daemon, job_id)
        async with open_stream(bridge, job_id, 0) as ws:
            again = [m for m in await read_stream(ws) if m["type"] == "output"]
        assert _joined(again) == _log(daemon, job_id)
