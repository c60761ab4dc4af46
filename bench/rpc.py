"""JSON-RPC round trip (sequential p50/p99) and throughput (16 clients) against the echo server.

The method timed is ``sessions.list``: the registry's cheapest method (no disk, no thread), so
the figure is the protocol's own cost, as supervisord's ``getState`` is for supervisord.
``jobs.get`` (one SQLite read, a stat of the log) and ``daemon.status`` (SQLite counts,
workspace detection) are reported beside it.
"""

from __future__ import annotations

import sys

from .clients import pct, throughput, time_calls
from .context import Ctx
from .procs import DaemonProc, start_notify
from .report import Figure, info, ratio_at_most

__all__ = ["METHOD", "run"]

METHOD = "sessions.list"


def run(ctx: Ctx) -> list[Figure]:
    from daemon.protocol.client import Client

    base = ctx.tmp("rpc")
    echo_sock = base / "echo.sock"
    echo = start_notify([sys.executable, "-m", "bench.echo", str(echo_sock)], base)
    d = DaemonProc(base / "d").start()
    try:
        n = ctx.pick(4000, 20000)
        rounds = 4
        e: list[float] = []
        k: list[float] = []
        st: list[float] = []
        jg: list[float] = []
        with Client.connect(echo_sock) as ce, d.client() as cd:
            job_id = cd.call("templates.create", {"template": "console_app",
                                                  "name": "bench.app"})["job"]["id"]
            cd.call("jobs.wait", {"job_id": job_id})
            time_calls(ce, METHOD, {}, 500)
            time_calls(cd, METHOD, {}, 500)
            for _ in range(rounds):  # interleaved, so drift hits both alike
                e += time_calls(ce, METHOD, {}, n // rounds)
                k += time_calls(cd, METHOD, {}, n // rounds)
                st += time_calls(cd, "daemon.status", {}, n // rounds // 4)
                jg += time_calls(cd, "jobs.get", {"job_id": job_id}, n // rounds // 4)
        secs = 1.0 if ctx.quick else 3.0
        tp_e = throughput(echo_sock, METHOD, {}, 16, secs)
        tp_k = throughput(d.socket, METHOD, {}, 16, secs)
    finally:
        d.cleanup()
        echo.stop()
    us = 1e6
    return [
        ratio_at_most("rpc.p50", f"JSON-RPC round trip p50, sequential ({METHOD})",
                      pct(k, 50) * us, "us", "raw trio echo", pct(e, 50) * us, 2.0,
                      note=f"{n} calls each, interleaved in {rounds} rounds"),
        info("rpc.p99", "JSON-RPC round trip p99, sequential", pct(k, 99) * us, "us",
             "raw trio echo", pct(e, 99) * us),
        info("rpc.jobs_get_p50", "jobs.get round trip p50", pct(jg, 50) * us, "us",
             "raw trio echo", pct(e, 50) * us),
        info("rpc.status_p50", "daemon.status round trip p50", pct(st, 50) * us, "us",
             "raw trio echo", pct(e, 50) * us),
        info("rpc.throughput16", "JSON-RPC throughput, 16 concurrent clients", tp_k, "calls/s",
             "raw trio echo", tp_e, higher_is_better=True,
             note=f"16 connections from one trio client process for {secs:g} s"),
    ]
