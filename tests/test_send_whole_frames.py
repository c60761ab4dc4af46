"""A daemon stopping while it writes a large answer: the client gets whole frames only.

A cancel (SIGTERM) that lands halfway through one frame's write must never leave half a frame
followed by another frame (the -32800 "stopped before answering", or the same answer again):
the client would read garbage.  The frame is finished (bounded by a send timeout) or the
connection is closed after it.
"""

from __future__ import annotations

import fcntl
import json
import signal
import socket
import struct
import termios
from typing import Any

from .helpers import Daemon, wait_for, write_app

LOG_BYTES = 6 * 1024 * 1024  # far more than a Unix socket's send buffer (about 200 KB)


def _queued(s: socket.socket) -> int:
    return int(struct.unpack("i", fcntl.ioctl(s, termios.FIONREAD, b"\0\0\0\0"))[0])


def test_sigterm_halfway_through_a_large_answer_leaves_whole_frames(daemon: Daemon) -> None:
    write_app(daemon.workspace, "big.log", build=[[
        "{python}", "-c", f"import sys; sys.stdout.write('x' * {LOG_BYTES})"]])
    job = daemon.call("build", {"app": "big.log"})["job"]
    assert daemon.wait_job(job["id"])["status"] == "succeeded", daemon.job_log(job["id"])

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(30)
    s.connect(str(daemon.socket))
    try:
        s.sendall(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "jobs.logs", "params": {
            "job_id": job["id"], "limit": 16 * 1024 * 1024}}).encode() + b"\n")
        # The answer has started and the daemon is blocked halfway through its frame.
        wait_for(lambda: _queued(s) > 0, what="the first bytes of the answer")
        assert daemon.proc is not None
        daemon.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: "shutting down" in daemon.log(), what="the daemon to begin stopping")
        buf = b""
        while chunk := s.recv(1 << 20):
            buf += chunk
    finally:
        s.close()
    assert daemon.proc.wait(30) == 0, daemon.log()
    frames: list[Any] = []
    lines = buf.split(b"\n")
    for line in lines[:-1]:  # every complete line is one whole JSON message
        frames.append(json.loads(line))
    # The client reads on: the frame under way is finished, and nothing follows it (no
    # -32800 after the answer, no second copy of it).
    assert lines[-1] == b"", f"a partial frame of {len(lines[-1])} bytes at the end"
    assert len(frames) == 1, [str(f)[:200] for f in frames]
    assert frames[0]["id"] == 1 and "result" in frames[0], str(frames[0])[:300]
    assert len(frames[0]["result"]["data"]) >= LOG_BYTES
