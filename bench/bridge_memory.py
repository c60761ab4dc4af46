"""The bridge's memory after bursts of WebSocket followers: 8 rounds of 500 at once.

A real ``kitplay-bridge`` in front of a real daemon; an ended job whose log is 64 KiB.  Each
round opens 500 WebSockets at once (``WS /api/stream/<job_id>``, bearer token), each reads the
whole log and the final ``end`` message, and closes.  The bridge's RSS is read before the first
round and after each one (once every stream has closed and a second has passed).  The bar: the
last round leaves the bridge within 10% (or 4 MB, whichever is more) of where the first round
left it: bursts must not ratchet memory up (the first round's own growth is the interpreter
warming up: code paths imported, caches filled).  The bar is taken on the bridge as its
systemd unit runs it, on the C allocator (``PYTHONMALLOC=malloc``); the same rounds on
Python's own allocator are shown beside it: its arenas stay pinned by a few objects that
outlive each burst (trio keeps the cancel scopes of ended deadlines in its deadline heap until
they expire), so it settles higher.

``python -m bench.bridge_memory`` prints the RSS after each round too.
"""

from __future__ import annotations

import json
import sys
import time

import trio

from .bridge import _Bridge
from .context import Ctx
from .logs import CONFIG
from .procs import DaemonProc, make_app
from .report import Figure, at_most, info

__all__ = ["rounds", "run"]

FOLLOWERS = 500
ROUNDS = 8


async def _one(url: str, token: str, job_id: str) -> int:
    from trio_websocket import open_websocket_url

    got = 0
    async with open_websocket_url(url + f"/api/stream/{job_id}",
                                  extra_headers=[(b"Authorization", f"Bearer {token}".encode())],
                                  max_message_size=16 << 20) as ws:
        stream = ws._stream
        try:
            while True:
                msg = json.loads(await ws.get_message())
                if msg["type"] == "output":
                    got = msg["next_offset"]
                elif msg["type"] == "end":
                    break
        finally:
            await stream.aclose()  # trio-websocket 0.12 leaves it open when the server closes
    return got


async def _burst(url: str, token: str, job_id: str, n: int, size: int) -> None:
    done: list[int] = []

    async def one() -> None:
        done.append(await _one(url, token, job_id))

    with trio.fail_after(300):
        async with trio.open_nursery() as nursery:
            for _ in range(n):
                nursery.start_soon(one)
    bad = [g for g in done if g != size]
    if len(done) != n or bad:
        raise RuntimeError(f"{len(done)} of {n} followers ended, {len(bad)} short of the log")


def rounds(ctx: Ctx, n: int = FOLLOWERS, count: int = ROUNDS, show: bool = False,
           env: dict[str, str] | None = None) -> tuple[float, list[float]]:
    """(RSS before the first round, RSS after each round), in MB; ``env``: the bridge's."""
    d = DaemonProc(ctx.tmp("bridge-memory"), CONFIG)
    b = None
    try:
        d.start()
        job_id = _small_log_job(d)
        size = (d.state / "logs" / f"{job_id}.log").stat().st_size
        b = _Bridge(d.socket, d.config, env)
        ws_url = b.url.replace("http://", "ws://").rstrip("/")
        before = b.rss_mb()
        after = []
        for i in range(count):
            trio.run(_burst, ws_url, b.token, job_id, n, size)
            time.sleep(3.0)  # the bridge releases a burst's memory a second after it ends
            after.append(b.rss_mb())
            if show:
                print(f"round {i + 1}: bridge RSS {after[-1]:.1f} MB", file=sys.stderr,
                      flush=True)
        return before, after
    finally:
        if b is not None:
            b.stop()
        d.cleanup()


def _small_log_job(d: DaemonProc) -> str:
    """An ended job whose log is 64 KiB of lines (a short writer run)."""
    code = ("import sys\nline = b'INFO build step compiling module ok ' + b'.' * 60 + b'\\n'\n"
            "sys.stdout.buffer.write(line * (65536 // len(line)))\n")
    make_app(d.workspace, "bench.small", ["{python}", "-c", code])
    with d.client() as c:
        job = c.call("launch", {"app": "bench.small", "display": "headless"})["job"]
        res = c.call("jobs.wait", {"job_id": job["id"], "timeout_s": 60})
    if res["job"]["status"] != "succeeded":
        raise RuntimeError(f"the small writer ended {res['job']['status']}")
    return str(job["id"])


# As the systemd unit runs the bridge (systemd/kitplay-bridge.service).
SYSTEMD_ENV = {"PYTHONMALLOC": "malloc"}


def run(ctx: Ctx) -> list[Figure]:
    n, count = ctx.pick(200, FOLLOWERS), ctx.pick(4, ROUNDS)
    before, after = rounds(ctx, n, count, env=SYSTEMD_ENV)
    before_py, after_py = rounds(ctx, n, count)
    first, last = after[0], after[-1]

    def each(rss_before: float, rss: list[float]) -> str:
        return (f"RSS before: {rss_before:.1f} MB; after each round: "
                + ", ".join(f"{r:.1f}" for r in rss) + " MB")

    return [
        at_most("bridge.memory", f"bridge RSS after {count} rounds of {n} WebSocket followers",
                last, "MB", max(first * 1.1, first + 4), "after the first round", first,
                note="the bridge as its systemd unit runs it (PYTHONMALLOC=malloc); "
                     + each(before, after)),
        info("bridge.memory_pymalloc", "the same with Python's own allocator", after_py[-1],
             "MB", "after the first round", after_py[0],
             note="`kitplay-bridge` started by hand; " + each(before_py, after_py)),
    ]


if __name__ == "__main__":
    _ctx = Ctx(quick=False)
    try:
        _before, _after = rounds(_ctx, show=True)
        print(f"before {_before:.1f} MB; after each round: "
              + ", ".join(f"{r:.1f}" for r in _after))
    finally:
        _ctx.cleanup()
