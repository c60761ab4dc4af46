"""JSON-RPC round trips against a raw trio line echo, with the lightest client.

The client is ``bench.clients.RawClient``: a blocking stdlib socket, one call at a time, the
request encoded once, the answer read to its newline and checked without a JSON decode.  Its
own cost is a few microseconds, so it adds as little as possible to either side of a ratio;
the baseline, ``bench.echo``, answers each line with the line itself and does no JSON work.
Rounds interleave echo and daemon calls, so load from other work on the machine hits both.

- ``sessions.list``: the registry's cheapest method (no disk, no thread): the protocol's cost;
- ``jobs.get`` of an ended job (answered from memory), ``daemon.status`` (kept counts, the
  toolchain re-detected only when its marker files change);
- beside them, for context: the same through the project's own client
  (``daemon.protocol.client.Client``: it encodes, decodes and matches ids on every call) and
  throughput with 16 concurrent connections.
"""

from __future__ import annotations

import sys

from .clients import RawClient, pct, throughput, time_calls, time_raw
from .context import Ctx
from .procs import DaemonProc, start_notify
from .report import Figure, info, ratio_at_most

__all__ = ["METHOD", "run"]

METHOD = "sessions.list"


def run(ctx: Ctx) -> list[Figure]:
    from kitplay.daemon.protocol.client import Client

    base = ctx.tmp("rpc")
    echo_sock = base / "echo.sock"
    echo = start_notify([sys.executable, "-m", "bench.echo", str(echo_sock)], base)
    d = DaemonProc(base / "d").start()
    try:
        n = ctx.pick(3000, 12000)
        rounds = ctx.pick(10, 30)
        each = n // rounds
        e: list[float] = []
        k: list[float] = []
        st: list[float] = []
        jg: list[float] = []
        ce_t: list[float] = []
        cd_t: list[float] = []
        with d.client() as c:
            job_id = c.call("templates.create", {"template": "console_app",
                                                 "name": "bench.app"})["job"]["id"]
            c.call("jobs.wait", {"job_id": job_id})
        get = {"job_id": job_id}
        with RawClient(echo_sock) as re_, RawClient(d.socket) as rd:
            time_raw(re_, METHOD, {}, 300)
            for m, p in ((METHOD, {}), ("jobs.get", get), ("daemon.status", {})):
                time_raw(rd, m, p, 300)
            for _ in range(rounds):  # interleaved: drift and load hit both sides alike
                e += time_raw(re_, METHOD, {}, each)
                k += time_raw(rd, METHOD, {}, each)
                e += time_raw(re_, METHOD, {}, each)
                jg += time_raw(rd, "jobs.get", get, each)
                e += time_raw(re_, METHOD, {}, each)
                st += time_raw(rd, "daemon.status", {}, each)
        with Client.connect(echo_sock) as ce, d.client() as cd:
            time_calls(ce, METHOD, {}, 300)
            time_calls(cd, METHOD, {}, 300)
            for _ in range(4):
                ce_t += time_calls(ce, METHOD, {}, n // 8)
                cd_t += time_calls(cd, METHOD, {}, n // 8)
        secs = 1.0 if ctx.quick else 2.0
        tp_e = throughput(echo_sock, METHOD, {}, 16, secs)
        tp_k = throughput(d.socket, METHOD, {}, 16, secs)
    finally:
        d.cleanup()
        echo.stop()
    us = 1e6
    echo50 = pct(e, 50) * us
    how = (f"lightest client (blocking stdlib socket, one call at a time); {each} calls a "
           f"round, {rounds} rounds interleaved with the echo")
    return [
        ratio_at_most("rpc.p50", f"JSON-RPC round trip p50 ({METHOD})", pct(k, 50) * us, "us",
                      "raw trio echo", echo50, 1.3, note=how),
        ratio_at_most("rpc.jobs_get_p50", "jobs.get (ended job) round trip p50",
                      pct(jg, 50) * us, "us", "raw trio echo", echo50, 1.5, note=how),
        ratio_at_most("rpc.status_p50", "daemon.status round trip p50", pct(st, 50) * us, "us",
                      "raw trio echo", echo50, 2.0, note=how),
        info("rpc.p99", f"JSON-RPC round trip p99 ({METHOD})", pct(k, 99) * us, "us",
             "raw trio echo", pct(e, 99) * us),
        info("rpc.client_p50", f"the same through daemon.protocol.client.Client ({METHOD})",
             pct(cd_t, 50) * us, "us", "raw trio echo, same client", pct(ce_t, 50) * us,
             note="the project's own client: its fixed cost is added to both sides"),
        info("rpc.throughput16", "JSON-RPC throughput, 16 concurrent clients", tp_k, "calls/s",
             "raw trio echo", tp_e, higher_is_better=True,
             note=f"16 connections from one trio client process for {secs:g} s"),
    ]
