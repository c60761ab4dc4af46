"""Load: 200 busy socket clients and 50 followers at once, for a bounded time.

Five launches print steadily for a few seconds.  Meanwhile 200 clients (each its own connection)
call read methods in a loop, 50 socket followers subscribe to the launches from offset 0, and,
when the bridge is there, 50 WebSocket followers do the same through ``/api/stream``.  Every call
must succeed; every follower must see contiguous offsets from 0 up to the final log size and
the final state (nothing lost, nothing repeated).  Afterwards the daemon's RSS comes back to
within 10 MB of what it was after a small warm-up round of the same load.
"""

from __future__ import annotations

import itertools
import json
import random
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import trio
from kitplay.daemon.protocol.framing import LineBuffer, dumps

from tests.helpers import ROOT, Daemon, wait_for, write_app

pytestmark = pytest.mark.reliability

CLIENTS = 200
FOLLOWERS = 50
WS_FOLLOWERS = 50
TICKER = """
import sys, time
n, pause = int(sys.argv[1]), float(sys.argv[2])
for i in range(n):
    print(f"tick {i:06d} " + "x" * 90, flush=True)
    time.sleep(pause)
"""


class Conn:
    """A minimal trio NDJSON client: calls and notifications on one connection."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.lines = LineBuffer(64 << 20)
        self.pending: list[bytes] = []
        self.ids = itertools.count(1)

    @classmethod
    async def open(cls, path: Path) -> Conn:
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        await sock.connect(str(path))
        return cls(trio.SocketStream(sock))

    async def message(self) -> Any:
        while not self.pending:
            data = await self.stream.receive_some(1 << 20)
            assert data, "the daemon closed the connection"
            self.pending.extend(self.lines.feed(data))
        return json.loads(self.pending.pop(0))

    async def call(self, method: str, params: Any) -> Any:
        rid = next(self.ids)
        await self.stream.send_all(dumps({"jsonrpc": "2.0", "method": method, "params": params,
                                          "id": rid}))
        while True:
            msg = await self.message()
            if msg.get("id") == rid:
                assert "error" not in msg, f"{method}: {msg['error']}"
                return msg["result"]


async def client(path: Path, jobs: list[str], stop: trio.Event, counts: list[int],
                 seed: int) -> None:
    rng = random.Random(seed)
    conn = await Conn.open(path)
    async with conn.stream:
        while not stop.is_set():
            method, params = rng.choice([
                ("daemon.status", {}), ("sessions.list", {}), ("jobs.list", {"limit": 10}),
                ("jobs.get", {"job_id": rng.choice(jobs)}), ("templates.list", {}),
                ("jobs.logs", {"job_id": rng.choice(jobs), "limit": 4096})])
            await conn.call(method, params)
            counts[0] += 1


async def follower(path: Path, job_id: str, results: list[dict[str, Any]]) -> None:
    conn = await Conn.open(path)
    async with conn.stream:
        sub = (await conn.call("jobs.subscribe", {"job_id": job_id}))["subscription"]
        offset = 0
        while True:
            msg = await conn.message()
            p = msg["params"]
            assert p["subscription"] == sub
            if msg["method"] == "jobs.output":
                assert p["offset"] == offset, f"lost or repeated output at {offset}"
                offset = p["next_offset"]
            elif p["final"]:
                results.append({"job": job_id, "offset": offset, "size": p["job"]["log_size"]})
                return


async def ws_follower(url: str, token: str, job_id: str, results: list[dict[str, Any]]) -> None:
    from trio_websocket import wrap_client_stream

    # trio-websocket leaves the TCP socket of a connection the server closed for the garbage
    # collector (a ResourceWarning); owning the stream here closes it for sure.
    host, port = url.removeprefix("http://").rsplit(":", 1)
    auth = [(b"Authorization", f"Bearer {token}".encode())]
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream, trio.open_nursery() as nursery:
        ws = await wrap_client_stream(nursery, stream, f"{host}:{port}", f"/api/stream/{job_id}",
                                      extra_headers=auth, max_message_size=16 << 20)
        offset = 0
        while True:
            msg = json.loads(await ws.get_message())
            if msg["type"] == "output":
                assert msg["offset"] == offset, f"WebSocket lost or repeated output at {offset}"
                offset = msg["next_offset"]
            elif msg["type"] == "end":
                results.append({"job": job_id, "offset": offset, "size": msg["job"]["log_size"]})
                break
            else:
                assert msg["type"] == "state", msg
        await ws.aclose()


@pytest.fixture
def bridge_for() -> Iterator[Any]:
    """Starts a bridge in front of a daemon when bridge/ exists; None otherwise."""
    started: list[Any] = []

    def start(d: Daemon) -> Any:
        if not (ROOT / "bridge" / "main.py").exists():
            return None
        from tests.bridge_helpers import Bridge

        # The followers all come from one address: lift the per-client rate limit.
        b = Bridge(d.socket, "--rate-limit", "100000", "--rate-burst", "100000",
                   config=d.config).start()
        started.append(b)
        return b

    try:
        yield start
    finally:
        for b in started:
            b.stop()


def rss_mb(pid: int) -> float:
    return float(psutil.Process(pid).memory_info().rss) / 2**20


async def _load_round(daemon: Daemon, bridge: Any, clients: int, followers: int,
                      ws_followers: int, lines: int) -> None:
    """Five launches printing ``lines`` lines, followed and polled; every answer checked."""
    jobs = [daemon.call("launch", {"app": "t.ticker", "display": "headless",
                                   "args": [str(lines), "0.002"]})["job"]["id"]
            for _ in range(5)]
    stop = trio.Event()
    counts = [0]
    results: list[dict[str, Any]] = []
    ws_results: list[dict[str, Any]] = []
    with trio.fail_after(120):
        async with trio.open_nursery() as outer:
            async with trio.open_nursery() as nursery:
                for i in range(followers):
                    nursery.start_soon(follower, daemon.socket, jobs[i % 5], results)
                if bridge is not None:
                    for i in range(ws_followers):
                        nursery.start_soon(ws_follower, bridge.url, bridge.token,
                                           jobs[i % 5], ws_results)
                for i in range(clients):
                    outer.start_soon(client, daemon.socket, jobs, stop, counts, i)
            stop.set()  # the followers are done: the jobs have ended

    assert len(results) == followers
    if bridge is not None:
        assert len(ws_results) == ws_followers
    for r in results + ws_results:
        assert r["offset"] == r["size"] > 100 * lines, r
        log = daemon.state / "logs" / f"{r['job']}.log"
        assert r["size"] == log.stat().st_size
    assert counts[0] > clients  # every client got answers, none failed
    for job_id in jobs:
        assert daemon.call("jobs.get", [job_id])["job"]["status"] == "succeeded"
    assert daemon.proc is not None and daemon.proc.poll() is None


async def test_200_clients_and_followers(daemon: Daemon, bridge_for: Any) -> None:
    write_app(daemon.workspace, "t.ticker", launch=["{python}", "ticker.py"],
              files={"ticker.py": TICKER})
    assert daemon.proc is not None
    pid = daemon.proc.pid
    bridge = bridge_for(daemon)
    # A small round first, so that the baseline holds what any load leaves for good (the
    # code paths' imports, SQLite's page cache, the allocator's arenas): what the big round
    # adds on top of it is what it failed to give back.
    await _load_round(daemon, bridge, clients=20, followers=5, ws_followers=5, lines=300)
    start_rss = rss_mb(pid)
    await _load_round(daemon, bridge, CLIENTS, FOLLOWERS, WS_FOLLOWERS, lines=1500)
    wait_for(lambda: rss_mb(pid) <= start_rss + 10, 30,
             f"RSS back within 10 MB of {start_rss:.1f} MB (now {rss_mb(pid):.1f})")
