"""Scale: a store of 100,000 jobs, and 200 jobs running at once, followed live.

- the store: ``build_store`` writes 100,000 finished job records with ``daemon.store.Store``
  (logs of all but the newest ``log_retention_jobs`` removed and the retention mark set, as the
  daemon's retention pass leaves them), then
  a daemon starts on it: its time from ``Popen`` to sd_notify ``READY=1`` (bar 0.5 s; the echo
  server's start beside it), and ``jobs.list`` (limit 100) round trips with the lightest client
  (bar 2 ms p50; the echo round trip beside it, in the same rounds);
- the followers: 200 ``launch`` jobs of a writer that prints ``ready``, blocks on a FIFO (no CPU
  while 200 of them wait), and once the bench closes its end prints a timestamped line every
  100 ms for 3 s; every job is subscribed (``jobs.subscribe``, 25 per connection, all
  notifications decoded) and has said ``ready`` before the FIFO is closed, and each line's lag
  is the time it reached the follower minus the time it was written.  The bar is on the p99
  lag (0.5 s: ten times the follower's 50 ms poll of a running job's log).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import trio

from .clients import RawClient, pct, time_raw
from .context import Ctx
from .procs import DaemonProc, make_app, start_notify
from .report import Figure, at_most

__all__ = ["build_store", "run"]

STORE_JOBS = 100_000
RETAINED = 1000  # the daemon's default log_retention_jobs
WRITER_APP = "bench.ticker"
TICKER = '''\
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)  # the bench holds the FIFO open: this does not block
n = int(sys.argv[2])
sys.stdout.write("ready\\n")
sys.stdout.flush()
os.read(fd, 1)  # blocks, without CPU, until the bench closes its end (end of file)
for i in range(n):
    sys.stdout.write("%.6f tick %d\\n" % (time.time(), i))
    sys.stdout.flush()
    time.sleep(0.1)
'''


def build_store(db: Path, jobs: int) -> float:
    """Write ``jobs`` finished build/launch records; return the seconds it took."""
    from kitplay.daemon.store import Store

    t0 = time.perf_counter()
    store = Store(db)
    try:
        now = time.time() - jobs
        store.db.execute("BEGIN")
        for i in range(jobs):
            old = i < jobs - RETAINED
            kind = ("build", "launch")[i % 2]
            store.insert({
                "id": f"s{i:08d}-{i % 4096:03x}", "kind": kind,
                "status": ("succeeded", "failed", "cancelled")[i % 3],
                "params": {"app": "my_company.app", "workspace": "/home/u/ws"},
                "workspace": "/home/u/ws", "toolchain": "builtin", "created_at": now + i,
                "started_at": now + i, "finished_at": now + i + 0.5, "exit_code": 0,
                "result": {"apps": ["my_company.app"]} if kind == "build" else None,
                "error": None, "progress": {"step": 1, "steps": 1, "message": "done"},
                "pid": None, "restarts": 0, "extra": {"log_removed": True} if old else None})
        store.db.execute("COMMIT")
        # What the daemon's retention pass leaves: every job up to here has had its log removed.
        store.set_retention_mark(jobs - RETAINED)
    finally:
        store.close()
    return time.perf_counter() - t0


async def _follow(sock: Path, job_ids: list[str], lags: list[float],
                  ready: trio.Event, waiting: list[int]) -> None:
    from kitplay.daemon.protocol.aclient import open_client

    async with open_client(sock) as client, trio.open_nursery() as nursery:

        async def one(job_id: str) -> None:
            async with client.subscribe(job_id, 0, buffer=16) as sub:
                async for method, params in sub:
                    if method != "jobs.output":
                        continue
                    now = time.time()
                    for line in params["data"].splitlines():
                        if line == "ready":  # subscribed, and its writer waits on the FIFO
                            waiting[0] -= 1
                            if not waiting[0]:
                                ready.set()
                            continue
                        stamp, _, rest = line.partition(" ")
                        if rest.startswith("tick "):
                            lags.append(now - float(stamp))

        for job_id in job_ids:
            nursery.start_soon(one, job_id)


async def _follow_all(sock: Path, job_ids: list[str], release: Callable[[], None]) -> list[float]:
    lags: list[float] = []
    ready = trio.Event()
    waiting = [len(job_ids)]
    async with trio.open_nursery() as nursery:
        for i in range(0, len(job_ids), 25):
            nursery.start_soon(_follow, sock, job_ids[i:i + 25], lags, ready, waiting)
        with trio.fail_after(300):
            await ready.wait()
        release()  # every job followed and waiting: the FIFO's end of file starts them
    return lags


def run(ctx: Ctx) -> list[Figure]:
    base = ctx.tmp("scale")
    figs: list[Figure] = []
    echo = start_notify([sys.executable, "-m", "bench.echo", str(base / "echo.sock")], base)
    d = DaemonProc(base / "d", "max_concurrent_jobs = 4\n")
    running = ctx.pick(50, 200)
    try:
        d.state.mkdir(parents=True)
        built = build_store(d.state / "kitplay.db", STORE_JOBS)
        starts: list[float] = []
        e_starts = [echo.ready_s]
        for i in range(ctx.pick(2, 5)):
            d.start()
            assert d.proc is not None
            starts.append(d.proc.ready_s)
            if i < ctx.pick(2, 5) - 1:
                d.stop()
                e2 = start_notify([sys.executable, "-m", "bench.echo",
                                   str(base / f"e{i}.sock")], base)
                e_starts.append(e2.ready_s)
                e2.stop()
        n = ctx.pick(200, 1000)
        e_t: list[float] = []
        k_t: list[float] = []
        with RawClient(base / "echo.sock") as ce, RawClient(d.socket) as cd:
            params = {"limit": 100}
            assert len(json.loads(cd.roundtrip(cd.frame("jobs.list", params)))
                       ["result"]["jobs"]) == 100
            for _ in range(5):  # interleaved rounds
                e_t += time_raw(ce, "jobs.list", params, n // 5)
                k_t += time_raw(cd, "jobs.list", params, n // 5)
        total = sum(d.call("daemon.status")["jobs"].values())
        figs += [
            at_most("scale.list", f"jobs.list (limit 100) p50, {total:,} jobs in the store",
                    pct(k_t, 50) * 1e3, "ms", 2.0, "raw trio echo", pct(e_t, 50) * 1e3,
                    note=f"lightest client, {n} calls in 5 rounds interleaved with the echo; "
                         f"store built in {built:.1f} s"),
            at_most("scale.ready", f"daemon ready with {total:,} jobs in the store",
                    statistics.median(starts), "s", 0.5, "echo server",
                    statistics.median(e_starts), base_is_floor=True,
                    note=f"median of {len(starts)} starts, Popen to READY=1"),
        ]
        # 200 jobs running at once, each followed live.
        make_app(d.workspace, WRITER_APP, ["{python}", "ticker.py"], files={"ticker.py": TICKER})
        go = base / "go"
        os.mkfifo(go, 0o600)
        hold = [os.open(go, os.O_RDWR)]  # a writer, so the tickers' open() does not block

        def release() -> None:
            if hold:
                os.close(hold.pop())

        ids = []
        try:
            with d.client() as c:
                for _ in range(running):
                    ids.append(c.call("launch", {"app": WRITER_APP, "display": "headless",
                                                 "args": [str(go), "30"]})["job"]["id"])
            lags = trio.run(_follow_all, d.socket, ids, release)
        finally:
            release()
        expected = running * 30
        figs += [
            at_most("scale.follow_p99", f"{running} jobs running at once, followed live: "
                    "p99 line lag", pct(lags, 99), "s", 0.5, "p50", pct(lags, 50),
                    note=f"{len(lags)} of {expected} lines seen; max {max(lags):.3f} s; one "
                         "subscription per job, 25 per connection"),
        ]
        if len(lags) != expected:
            raise RuntimeError(f"followers saw {len(lags)} of {expected} lines")
    finally:
        d.cleanup()
        echo.stop()
    return figs

