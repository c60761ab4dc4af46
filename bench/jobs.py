"""Job submission: the rate for ``build`` calls, and the 100th add against the 10,000th.

A "job add" is the ``build`` call returning its queued job, which is on disk by then (the
daemon commits submissions in groups: one transaction for every submission of a scheduler
tick, acknowledged after it).  The clients are the lightest (``bench.clients.RawClient``: the
request encoded once, one call at a time per connection); several clients are threads of this
process, each with its own connection.  The app's build step is
``sleep 3600`` and ``max_concurrent_jobs = 1``, and builds of one workspace run one at a time,
so one build runs and every other add only queues: the figure is the daemon's bookkeeping, not
the builds.  The 10,000th add runs on a second daemon whose database was pre-filled with
finished jobs by ``daemon.store.Store`` before it started; both daemons hold the same queue, and
the timed adds alternate between them so that machine drift hits both alike.

While a build uses both cores: a third daemon (``max_concurrent_jobs = 2``) runs a build of two
busy shell loops in a workspace of its own beside the blocker's queue; the timed adds alternate
between rounds with and without it, at the default ``job_nice = 10`` and, for comparison, at
``job_nice = 0`` (jobs as nice as the daemon, as before).
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .clients import RawClient
from .context import Ctx
from .procs import DaemonProc, make_app
from .report import Figure, at_least, info, ratio_at_least, ratio_at_most

__all__ = ["run"]

APP = "bench.blocker"
CONFIG = "max_concurrent_jobs = 1\ncancel_grace_s = 1.0\n"
# A build that keeps both cores busy (two shell loops) in a workspace of its own, beside the
# blocker's queue: max_concurrent_jobs = 2 lets it run with the first blocker.
BURNER = "bench.burner"
BURN = ["sh", "-c", "while :; do :; done & while :; do :; done & wait"]
BUSY_CONFIG = "max_concurrent_jobs = 2\ncancel_grace_s = 1.0\n"


def _add(d: DaemonProc, n: int) -> list[float]:
    """``n`` sequential ``build`` calls on one connection; seconds per call."""
    out = []
    with RawClient(d.socket) as c:
        frame = c.frame("build", {"app": APP})
        for _ in range(n):
            t = time.perf_counter()
            answer = c.roundtrip(frame)
            out.append(time.perf_counter() - t)
            if b'"error":{' in answer:
                raise RuntimeError(f"build failed: {answer[:300]!r}")
    return out


def _prefill(db: Path, upto: int) -> int:
    """Insert finished build records until the database holds ``upto`` jobs."""
    from kitplay.daemon.jobs import new_job_id
    from kitplay.daemon.store import Store

    store = Store(db)
    try:
        have = sum(store.counts().values())
        now = time.time()
        store.db.execute("BEGIN")
        for i in range(upto - have):
            store.insert({
                "id": new_job_id() + f"{i:05d}", "kind": "build", "status": "succeeded",
                "params": {"app": APP, "workspace": "/tmp/ws"}, "workspace": "/tmp/ws",
                "toolchain": "builtin", "created_at": now, "started_at": now,
                "finished_at": now, "exit_code": 0, "result": {"apps": [APP]}, "error": None,
                "progress": {"step": 1, "steps": 1, "message": "done"}, "pid": None,
                "restarts": 0})
        store.db.execute("COMMIT")
        return upto - have
    finally:
        store.close()


def busy_rates(ctx: Ctx, nices: tuple[int, ...], per: int,
               rounds: int) -> dict[int, tuple[float, float]]:
    """job_nice -> (idle, busy) submission rates, one client: one daemon per niceness, each
    measured idle, then with a build burning both cores; the daemons take turns round by round
    (load from other work on the machine comes and goes by the second: it hits all alike)."""
    daemons = {}
    try:
        for nice in nices:
            d = DaemonProc(ctx.tmp(f"jobs-busy-{nice}"), BUSY_CONFIG + f"job_nice = {nice}\n")
            daemons[nice] = d
            make_app(d.workspace, APP, ["sleep", "1"], build=[["sleep", "3600"]])
            make_app(d.base / "burn-ws", BURNER, ["sleep", "1"], build=[BURN])
            d.start()
            _add(d, 100)
        idle: dict[int, list[float]] = {n: [] for n in nices}
        busy: dict[int, list[float]] = {n: [] for n in nices}
        for _ in range(rounds):
            for nice, d in daemons.items():
                t0 = time.perf_counter()
                _add(d, per)
                idle[nice].append(per / (time.perf_counter() - t0))
                burner = d.call("build", {"app": BURNER,
                                          "workspace": str(d.base / "burn-ws")})["job"]
                _wait_burning(d, burner["id"])
                t0 = time.perf_counter()
                _add(d, per)
                busy[nice].append(per / (time.perf_counter() - t0))
                d.call("jobs.cancel", {"job_id": burner["id"], "grace_s": 0})
        return {n: (statistics.median(idle[n]), statistics.median(busy[n])) for n in nices}
    finally:
        for d in daemons.values():
            d.cleanup()


def _wait_burning(d: DaemonProc, job_id: str) -> None:
    """Until both of the burner's loops run (the build's step has started them)."""
    import psutil

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pid = d.call("jobs.get", {"job_id": job_id})["job"]["pid"]
        if pid:
            try:
                if len(psutil.Process(pid).children(recursive=True)) >= 3:
                    time.sleep(0.2)  # let them take the cores
                    return
            except psutil.Error:
                pass
        time.sleep(0.05)
    raise RuntimeError("the burner build did not start")


def run(ctx: Ctx) -> list[Figure]:
    window = ctx.pick(100, 300)
    daemons = []
    try:
        # The rate: 1,000 adds on a fresh daemon.
        r = DaemonProc(ctx.tmp("jobs-rate"), CONFIG)
        daemons.append(r)
        make_app(r.workspace, APP, ["sleep", "1"], build=[["sleep", "3600"]])
        r.start()
        _add(r, 100)
        rate_1: list[float] = []
        rate_4: list[float] = []
        per = ctx.pick(500, 1000)
        for _ in range(ctx.pick(2, 3)):  # alternating, so load hits both alike
            t0 = time.perf_counter()
            _add(r, per)
            rate_1.append(per / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            with ThreadPoolExecutor(4) as pool:  # the same, from 4 clients at once
                list(pool.map(_add, [r] * 4, [per // 4] * 4))
            rate_4.append(per / (time.perf_counter() - t0))
        rate, rate4 = statistics.median(rate_1), statistics.median(rate_4)
        r.stop()
        # The 100th against the 10,000th: two daemons, B's database pre-filled, each warmed
        # by 99 adds (same queue), then single adds alternating between them.
        a = DaemonProc(ctx.tmp("jobs-a"), CONFIG)
        b = DaemonProc(ctx.tmp("jobs-b"), CONFIG)
        daemons += [a, b]
        for d in (a, b):
            make_app(d.workspace, APP, ["sleep", "1"], build=[["sleep", "3600"]])
        b.state.mkdir(parents=True)
        _prefill(b.state / "kitplay.db", 10_000 - 99)
        early: list[float] = []
        late: list[float] = []
        for d in (a, b):
            d.start()
            _add(d, 98)
        with a.client() as ca, b.client() as cb:
            for _ in range(window):
                for c, out in ((ca, early), (cb, late)):
                    t = time.perf_counter()
                    c.call("build", {"app": APP})
                    out.append(time.perf_counter() - t)
            total = sum(cb.call("daemon.status")["jobs"].values())
    finally:
        for d in daemons:
            d.cleanup()  # SIGTERM: the daemon cancels its running build (sleep) itself
    e, l_ = statistics.median(early), statistics.median(late)
    busy_per, busy_rounds = ctx.pick(200, 300), ctx.pick(3, 7)
    got = busy_rates(ctx, (10, 0), busy_per, busy_rounds)
    (idle, busy), (idle0, busy0) = got[10], got[0]
    return [
        at_least("jobs.rate_busy", "job submission, one client, while a build uses both cores",
                 busy, "jobs/s", 1500, "the same daemon idle", idle,
                 note=f"{busy_per} sequential `build` calls, median of {busy_rounds} rounds, "
                      "each after an idle round; the build runs two busy loops at the "
                      "default job_nice = 10; rounds take turns with the job_nice = 0 daemon"),
        info("jobs.rate_busy_nice0", "the same with job_nice = 0 (jobs as the daemon)", busy0,
             "jobs/s", "that daemon idle", idle0,
             note="what submissions got before jobs ran nicer than the daemon"),
        at_least("jobs.rate", "job submission, one client", rate, "jobs/s", 2000,
                 note=f"{per} sequential `build` calls on one connection, median of "
                      f"{len(rate_1)} runs; each answered once its job is on disk"),
        ratio_at_least("jobs.rate4", "job submission, 4 clients at once", rate4, "jobs/s",
                       "one client", rate, 1.0,
                       note=f"4 connections, {per // 4} sequential calls each, alternating with "
                            "the one-client runs; group commit shares each transaction"),
        ratio_at_most("jobs.add_10000", "cost of the 10,000th add", l_ * 1e6, "us",
                      "the 100th add", e * 1e6, 1.2,
                      note=f"median of {window} adds from #100 and from #10,000, alternating "
                           f"between two daemons ({total} jobs in the second at the end)"),
    ]
