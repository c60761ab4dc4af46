"""Start-up: kitplayd's idle RSS and time to socket-ready, and the ``kitplay`` command's start.

Ready is the daemon's sd_notify ``READY=1`` (sent once its socket listens and its jobs are
recovered), timed from ``Popen`` on a fresh state directory; the first successful connect is
reported beside it, against the echo server started the same way.  RSS is read with psutil
after a ``daemon.status`` call (answered inline) and a ``templates.list`` call (a task, which
has the daemon load jsonrpcserver if its warm-up has not yet).

The command: ``kitplay daemon status`` as a whole process, the ``kitplay`` script as pip
installs it, in a venv made from the wheel as pipx makes one (``bench.wheelvenv``), against
that venv's own ``python -c pass`` (bar: at most 2x), interleaved rounds after warm-ups.  The same
command from the development venv is reported for context (its editable install and
setuptools' ``.pth`` files slow every start there, the bare interpreter's included).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

from .context import Ctx
from .procs import DaemonProc, child_env, median_runs, start_notify
from .report import Figure, at_most, info, ratio_at_most, skipped
from .wheelvenv import wheel_venv

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
        *_cli_figures(ctx),
    ]


def _cli_figures(ctx: Ctx) -> list[Figure]:
    label = "`kitplay daemon status` as a whole process (wheel venv)"
    try:
        venv = wheel_venv(ctx.tmp("wheel"))
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        return [skipped("cli.vs_python", label, f"no venv from the wheel: {e}"[:300])]
    d = DaemonProc(ctx.tmp("cli") / "d").start()
    try:
        # The installed copy only: no checkout on the path, no kitplay variables but the socket.
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("KITPLAY_") and k not in ("PYTHONPATH", "NOTIFY_SOCKET",
                                                               "PYTHONDONTWRITEBYTECODE")}
        env["KITPLAY_SOCKET"] = str(d.socket)
        dev_kitplay = Path(sys.executable).parent / "kitplay"
        commands = {
            "floor": ([str(venv / "bin" / "python"), "-c", "pass"], env),
            "kitplay": ([str(venv / "bin" / "kitplay"), "daemon", "status"], env),
            "dev_floor": ([sys.executable, "-c", "pass"], child_env()),
        }
        if dev_kitplay.exists():
            commands["dev_kitplay"] = ([str(dev_kitplay), "daemon", "status"],
                                       child_env({"KITPLAY_SOCKET": str(d.socket)}))
        runs = ctx.pick(10, 30)
        med = median_runs(commands, runs)
    finally:
        d.cleanup()
    how = (f"median of {runs} runs each, interleaved, after 3 warm-up rounds; the kitplay "
           "script as pip installs it, in a venv made from the wheel as pipx makes one "
           "(python -m venv --without-pip, then pip install of the wheel)")
    out = [ratio_at_most("cli.vs_python", label, med["kitplay"] * 1e3, "ms",
                         "the venv's `python -c pass`", med["floor"] * 1e3, 2.0, note=how)]
    if "dev_kitplay" in med:
        out.append(info(
            "cli.dev_venv", "the same from the development venv", med["dev_kitplay"] * 1e3,
            "ms", "its `python -c pass`", med["dev_floor"] * 1e3,
            note="the editable install's finder and setuptools' .pth files run at every "
                 "start there, the bare interpreter's included"))
    return out
