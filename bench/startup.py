"""Idle RSS and time to socket-ready of kitplayd, against the echo server started the same way.

Ready is the daemon's sd_notify ``READY=1`` (sent once its socket listens and its jobs are
recovered), timed from ``Popen`` on a fresh state directory; the first successful connect is
reported beside it.  RSS is read with psutil after a ``daemon.status`` call (answered inline)
and a ``templates.list`` call (a task, which has the daemon load jsonrpcserver if its warm-up
has not yet).
"""

from __future__ import annotations

import statistics
import sys

from .context import Ctx
from .procs import DaemonProc, start_notify
from .report import Figure, at_most, info

__all__ = ["run"]


def run(ctx: Ctx) -> list[Figure]:
    runs = ctx.pick(3, 10)
    ready, connect, rss, e_ready, e_rss = [], [], [], [], []
    for i in range(runs):
        base = ctx.tmp(f"start{i}")
        echo = start_notify([sys.executable, "-m", "bench.echo", str(base / "echo.sock")], base)
        e_ready.append(echo.ready_s)
        e_rss.append(echo.rss_mb())
        echo.stop()
        d = DaemonProc(base / "d")
        try:
            d.start()
            assert d.proc is not None and d.connect_s is not None
            ready.append(d.proc.ready_s)
            connect.append(d.connect_s)
            d.call("daemon.status")  # answered inline
            d.call("templates.list")  # a task: loads what the task path needs (jsonrpcserver)
            rss.append(d.proc.rss_mb())
        finally:
            d.cleanup()
    med = statistics.median
    return [
        at_most("startup.rss", "idle daemon RSS", med(rss), "MB", 40, "echo server", med(e_rss),
                note="after a daemon.status and a templates.list call; psutil rss"),
        at_most("startup.ready", "daemon socket-ready (sd_notify READY=1)", med(ready), "s", 0.3,
                "echo server", med(e_ready), base_is_floor=True,
                note=f"median of {runs} starts on a fresh state dir, from Popen"),
        info("startup.connect", "daemon first successful connect", med(connect), "s",
             "echo server READY", med(e_ready)),
    ]
