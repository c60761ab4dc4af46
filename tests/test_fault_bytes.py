"""Logs carry any bytes, exactly (issue 20, fault 2).

An app writes bytes that are not UTF-8 (a lone Latin-1 byte, 0xFF 0xFE, encoded surrogates,
an overlong form, a code point past U+10FFFF, NUL and escape sequences), split across writes
(a character cut between two writes, an invalid byte alone in a write), then 600 KB of random
bytes across several 256 KiB reads.  The daemon is restarted twice while it writes (once
stopped, once SIGKILLed).  Every follower in this repository must end with the log file's
bytes exactly: the socket client (``Client.follow``, encodings auto and base64), the trio
client (``aclient.follow``), the bridge's WebSocket (``?encoding=auto``, reconnecting from its
last ``next_offset``), the ``kitplay`` command (``--follow`` and ``jobs logs``), and
``jobs.logs`` over the socket and REST.  The default text form stays: each chunk is its
bytes decoded with U+FFFD for what is not UTF-8, and offsets count the file's bytes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import trio
from kitplay.daemon.protocol.aclient import follow as afollow
from kitplay.daemon.protocol.client import Client
from kitplay.daemon.protocol.errors import KitplayError
from kitplay.daemon.protocol.passthrough import chunk_bytes
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    HandshakeError,
    open_websocket_url,
)

from tests.bridge_helpers import Bridge, bridge_fixture, make_bridge_fixture  # noqa: F401
from tests.helpers import Daemon, wait_for, write_app

PIECES = [b"caf\xe9 ", b"\xff\xfe", b" half \xe2\x82", b"\xac euro\n",
          b"\xed\xa0\x80 surrogate \xc0\xaf overlong \xf4\x90\x80\x80 too big\n",
          b"nul \x00 esc \x1b[31mred\x1b[0m\r\n", b"\xf0\x9f", b"\x98\x80 smile \x80\n"]
RANDOM_BYTES = 600_000

# Writes each piece, then waits for the test's go file before the next one; then the block.
WRITER = f"""
import os, random, sys, time
out, gates = sys.stdout.buffer, sys.argv[1]
for i, piece in enumerate({PIECES!r}):
    out.write(piece)
    out.flush()
    while not os.path.exists(os.path.join(gates, "go%d" % i)):
        time.sleep(0.01)
rnd = random.Random(5)
out.write(bytes(rnd.getrandbits(8) for _ in range({RANDOM_BYTES})))
out.write(b"\\nend\\n")
out.flush()
"""


class Follower(threading.Thread):
    """Runs ``follow`` (which appends chunks to ``self.data``) in a thread; keeps its error."""

    def __init__(self, name: str, follow: Any) -> None:
        super().__init__(name=name, daemon=True)
        self.follow = follow
        self.data = bytearray()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.follow(self)
        except BaseException as e:  # reported by the test
            self.error = e


def _client_follow(d: Daemon, job_id: str, encoding: str) -> Any:
    def follow(f: Follower) -> None:
        with Client.connect(d.socket, timeout=120) as c:
            for note in c.follow(job_id, 0, encoding=encoding, reconnect_s=120, notice=None):
                if note["method"] == "jobs.output":
                    p = note["params"]
                    assert p["offset"] == len(f.data), (p["offset"], len(f.data))
                    chunk = chunk_bytes(p)
                    assert p["next_offset"] - p["offset"] == len(chunk)
                    f.data += chunk
    return follow


def _aclient_follow(d: Daemon, job_id: str) -> Any:
    async def main(f: Follower) -> None:
        async with afollow(d.socket, job_id, 0, reconnect_s=120, notice=None) as notes:
            async for method, params in notes:
                if method == "jobs.output":
                    assert params["offset"] == len(f.data)
                    f.data += chunk_bytes(params)

    return lambda f: trio.run(main, f)


def _websocket_follow(b: Bridge, job_id: str) -> Any:
    async def session(f: Follower) -> bool:
        """One WebSocket from ``len(f.data)``; True once the job's end came."""
        stream = None
        try:
            async with open_websocket_url(
                    b.ws_url(f"/api/stream/{job_id}?offset={len(f.data)}&encoding=auto"),
                    extra_headers=[(b"Authorization", f"Bearer {b.token}".encode())]) as ws:
                stream = ws._stream  # trio-websocket 0.12 leaves it open when the server closes
                while True:
                    msg = json.loads(await ws.get_message())
                    if msg["type"] == "output":
                        assert msg["offset"] == len(f.data)
                        assert msg["encoding"] in ("utf-8", "base64")
                        f.data += chunk_bytes(msg)
                    elif msg["type"] == "end":
                        return True
        except (ConnectionClosed, ConnectionRejected, HandshakeError, OSError):
            return False  # the daemon restarts: resume from next_offset
        finally:
            if stream is not None:
                await stream.aclose()

    def daemon_up() -> bool:
        # trio-websocket 0.12 leaks its socket when an upgrade is refused (503 while the
        # daemon restarts): ask first, as a browser page would after a 1013.
        with httpx.Client(base_url=b.url, headers={"Authorization": f"Bearer {b.token}"}) as h:
            return h.get("/api/daemon/status").status_code == 200

    async def main(f: Follower) -> None:
        with trio.fail_after(180):
            for _attempt in range(2000):
                if await trio.to_thread.run_sync(daemon_up) and await session(f):
                    return
                await trio.sleep(0.05)

    return lambda f: trio.run(main, f)


def _cli(d: Daemon, *args: str, out: Any = subprocess.PIPE) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "kitplay.cli_client", "--socket", str(d.socket),
         "--reconnect-s", "120", *args],
        stdout=out, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)


def _log(d: Daemon, job_id: str) -> bytes:
    try:
        return (d.state / "logs" / f"{job_id}.log").read_bytes()
    except FileNotFoundError:
        return b""


def test_every_follower_gets_the_exact_bytes_through_restarts(daemon: Daemon, bridge: Bridge,
                                                              tmp_path: Path) -> None:
    gates = tmp_path / "gates"
    gates.mkdir()
    write_app(daemon.workspace, "t.bytes", launch=["{python}", "writer.py", str(gates)],
              files={"writer.py": WRITER})
    job_id = daemon.call("launch", {"app": "t.bytes", "display": "headless"})["job"]["id"]
    followers = [Follower("socket auto", _client_follow(daemon, job_id, "auto")),
                 Follower("socket base64", _client_follow(daemon, job_id, "base64")),
                 Follower("trio client", _aclient_follow(daemon, job_id)),
                 Follower("websocket", _websocket_follow(bridge, job_id))]
    for f in followers:
        f.start()
    cli_out = tmp_path / "cli.out"
    with open(cli_out, "wb") as out:
        cli = _cli(daemon, "jobs", "logs", job_id, "--follow", out=out)
    try:
        # Its first call is not retried (a call that changes state might have run): let it
        # reach the daemon before the daemon restarts; from then on it rides through.
        wait_for(lambda: cli_out.stat().st_size > 0 or cli.poll() is not None, 60,
                 "the CLI to follow")
        # The daemon's launch line comes first, then the pieces.
        wait_for(lambda: _log(daemon, job_id).endswith(PIECES[0]), 30, "the first piece")
        written = len(_log(daemon, job_id)) - len(PIECES[0])
        for i, piece in enumerate(PIECES):
            written += len(piece)
            wait_for(lambda n=written: len(_log(daemon, job_id)) >= n, 30, f"piece {i} written")
            # The followers saw it (all but a cut character, held back until it is whole).
            wait_for(lambda n=written: all(len(f.data) >= n - 3 or f.error for f in followers),
                     30, f"piece {i} followed")
            if i == 2:
                daemon.stop()  # the app keeps running; every follower resumes at its offset
                daemon.start()
            elif i == 5:
                daemon.kill9()
                daemon.start()
            (gates / f"go{i}").touch()
        done = daemon.wait_job(job_id, timeout=120)
        assert done["status"] == "succeeded", done
        for f in followers:
            f.join(120)
        _, err = cli.communicate(timeout=120)
        out = cli_out.read_bytes()
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    log = _log(daemon, job_id)
    assert len(log) > RANDOM_BYTES and b"\xff\xfe" in log
    for f in followers:
        assert f.error is None, (f.name, f.error)
        assert bytes(f.data) == log, f"{f.name}: the bytes differ from the log file"
    assert cli.returncode == 0, err
    assert out == log, "kitplay jobs logs --follow: the bytes differ from the log file"

    # Reading, after the end: jobs.logs in 256 KiB pieces (socket and REST), and the CLI.
    read, offset = b"", 0
    while True:
        r = daemon.call("jobs.logs", {"job_id": job_id, "offset": offset, "limit": 256 * 1024,
                                      "encoding": "auto"})
        assert r["encoding"] in ("utf-8", "base64")
        read += chunk_bytes(r)
        assert r["next_offset"] == len(read)
        offset = r["next_offset"]
        if r["eof"]:
            break
    assert read == log
    rest = bridge.ok("GET", f"/api/jobs/{job_id}/logs?encoding=base64&limit=16777216")
    assert chunk_bytes(rest) == log and rest["encoding"] == "base64"
    cli = _cli(daemon, "jobs", "logs", job_id, "--limit", "16777216")
    out, err = cli.communicate(timeout=60)
    assert cli.returncode == 0 and out == log, err
    # --tail counts lines in the file's bytes, as tail(1) does on the log file itself.
    for n in (1, 4, 50):
        cli = _cli(daemon, "jobs", "logs", job_id, "--tail", str(n))
        out, err = cli.communicate(timeout=60)
        want = subprocess.run(["tail", "-n", str(n), str(daemon.state / "logs" / f"{job_id}.log")],
                              capture_output=True, check=True).stdout
        assert cli.returncode == 0 and out == want, (n, err)


def test_the_text_form_stays_and_counts_file_bytes(daemon: Daemon, tmp_path: Path) -> None:
    gates = tmp_path / "gates"
    gates.mkdir()
    for i in range(len(PIECES)):
        (gates / f"go{i}").touch()
    write_app(daemon.workspace, "t.bytes", launch=["{python}", "writer.py", str(gates)],
              files={"writer.py": WRITER})
    job_id = daemon.call("launch", {"app": "t.bytes", "display": "headless"})["job"]["id"]
    daemon.wait_job(job_id)
    log = _log(daemon, job_id)
    with Client.connect(daemon.socket) as c:
        notes = [n["params"] for n in c.follow(job_id, 0, encoding="text")
                 if n["method"] == "jobs.output"]
    offset = 0
    for p in notes:
        assert "encoding" not in p and p["offset"] == offset
        assert p["data"] == log[p["offset"]:p["next_offset"]].decode("utf-8", "replace")
        offset = p["next_offset"]
    assert offset == len(log)
    # And jobs.logs without an encoding: the same text form.
    whole = daemon.call("jobs.logs", {"job_id": job_id, "limit": 16 * 1024 * 1024})
    assert whole["data"] == log.decode("utf-8", "replace") and whole["next_offset"] == len(log)
    assert "encoding" not in whole


def test_a_bad_encoding_is_refused(daemon: Daemon) -> None:
    write_app(daemon.workspace, "t.short", launch=["{python}", "-c", "print('x')"])
    job_id = daemon.call("launch", {"app": "t.short", "display": "headless"})["job"]["id"]
    for method in ("jobs.logs", "jobs.subscribe"):
        try:
            daemon.call(method, {"job_id": job_id, "encoding": "latin-1"})
        except KitplayError as e:
            assert e.code == -32602 and "encoding" in e.message
        else:
            raise AssertionError(f"{method} took encoding latin-1")


def test_encode_chunk_round_trips_any_bytes() -> None:
    from kitplay.daemon.protocol.passthrough import encode_chunk

    rnd = __import__("random").Random(11)
    samples = [b"", b"plain\n", "é€😀".encode(), *PIECES,
               bytes(rnd.getrandbits(8) for _ in range(5000))]
    for data in samples:
        for encoding in ("auto", "base64"):
            params = json.loads(b"{" + encode_chunk(data, encoding) + b"}")
            assert chunk_bytes(params) == data, (data[:40], encoding)
        text = json.loads(b"{" + encode_chunk(data, "text") + b"}")
        assert text == {"data": data.decode("utf-8", "replace")}
