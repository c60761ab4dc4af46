"""kitplayd against supervisord (pip ``supervisor``), and the ``kitplay`` command's start.

- one call, for context (the 3x bar is retired: supervisord's ``getState`` with a minimal
  client is within about 2x of a raw trio echo, so no trio server can be 3x faster):
  supervisord's XML-RPC ``supervisor.getState`` over its ``unix_http_server`` (keep-alive
  HTTP/1.1, ``bench.clients.XmlRpcUnix``) against kitplayd's round trip of ``bench.rpc.METHOD``
  and the raw trio echo, both with the lightest client, sequential, interleaved;
- a whole status command: ``kitplay daemon status`` (the script pip installs) against
  ``supervisorctl status`` (bar: 3x faster, out of reach when
  the bare interpreter itself is not 3x faster), both from this environment, run in
  interleaved rounds after warm-ups, medians compared.  The bar against ``python -c pass`` is
  measured where users run the command, in a venv made from the wheel (``bench.startup``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .clients import RawClient, XmlRpcUnix, pct, time_raw
from .context import Ctx
from .procs import ROOT, DaemonProc, child_env, median_runs, start_notify
from .report import Figure, faster_by, info, skipped
from .rpc import METHOD

__all__ = ["run"]

_CONF = """\
[unix_http_server]
file={dir}/supervisor.sock
chmod=0700

[supervisord]
logfile={dir}/supervisord.log
pidfile={dir}/supervisord.pid
childlogdir={dir}
nodaemon=true
silent=true

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{dir}/supervisor.sock

[program:sleeper]
command=sleep 3600
autorestart=false
startsecs=0
"""


def _start_supervisord(d: Path) -> subprocess.Popen[bytes]:
    exe = _tool("supervisord")
    if exe is None:
        raise FileNotFoundError("supervisord is not installed (pip install supervisor)")
    conf = d / "supervisord.conf"
    conf.write_text(_CONF.format(dir=d))
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=d)
    deadline = time.monotonic() + 30
    while True:  # ready: its XML-RPC answers and the program is up
        try:
            with XmlRpcUnix(d / "supervisor.sock") as c:
                infos = c.call("supervisor.getAllProcessInfo")
                if c.call("supervisor.getState")["statename"] == "RUNNING" and all(
                        i["statename"] == "RUNNING" for i in infos):
                    return proc
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"supervisord did not start:\n{(d / 'supervisord.log').read_text()}")
        time.sleep(0.05)


def _stock_client_p50(sock: Path, n: int) -> float:
    import xmlrpc.client

    from supervisor.xmlrpc import SupervisorTransport

    proxy = xmlrpc.client.ServerProxy(
        "http://127.0.0.1", transport=SupervisorTransport(None, None, f"unix://{sock}"))
    for _ in range(100):
        proxy.supervisor.getState()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        proxy.supervisor.getState()
        times.append(time.perf_counter() - t)
    return pct(times, 50)


def _tool(name: str) -> str | None:
    """A console script next to this interpreter (not a pyenv shim, which adds ~50 ms)."""
    exe = Path(sys.executable).parent / name
    return str(exe) if exe.exists() else shutil.which(name)


def _kitplay_argv() -> list[str] | None:
    if not (ROOT / "cli_client" / "main.py").exists():
        return None
    exe = _tool("kitplay")
    return [exe] if exe else [sys.executable, "-m", "kitplay.cli_client"]


def run(ctx: Ctx) -> list[Figure]:
    base = ctx.tmp("sv")
    (base / "sv").mkdir()
    try:
        sv = _start_supervisord(base / "sv")
    except (FileNotFoundError, RuntimeError) as e:
        d = DaemonProc(base / "d").start()
        try:  # the command against the bare interpreter needs no supervisord
            return [skipped("supervisord.rpc", "JSON-RPC round trip vs supervisord", str(e)),
                    *_cli_figures(ctx, d, None)]
        finally:
            d.cleanup()
    d = DaemonProc(base / "d").start()
    echo_sock = base / "echo.sock"
    echo = start_notify([sys.executable, "-m", "bench.echo", str(echo_sock)], base)
    sv_sock = base / "sv" / "supervisor.sock"
    out: list[Figure] = []
    try:
        n = ctx.pick(2000, 6000)
        rounds = ctx.pick(8, 20)
        s_t: list[float] = []
        k_t: list[float] = []
        e_t: list[float] = []
        with XmlRpcUnix(sv_sock) as sc, RawClient(d.socket) as kc, RawClient(echo_sock) as ec:
            for _ in range(300):
                sc.call("supervisor.getState")
            time_raw(kc, METHOD, {}, 300)
            time_raw(ec, METHOD, {}, 300)
            for _ in range(rounds):
                for _ in range(n // rounds):
                    t = time.perf_counter()
                    sc.call("supervisor.getState")
                    s_t.append(time.perf_counter() - t)
                k_t += time_raw(kc, METHOD, {}, n // rounds)
                e_t += time_raw(ec, METHOD, {}, n // rounds)
        stock = _stock_client_p50(sv_sock, n // 4)
        echo.stop()
        out.append(info(
            "supervisord.rpc", f"JSON-RPC round trip p50 ({METHOD}) vs supervisord XML-RPC",
            pct(k_t, 50) * 1e6, "us", "supervisord getState", pct(s_t, 50) * 1e6, speedup=True,
            note="both on a Unix socket, one persistent connection, sequential, minimal "
                 "clients; the 3x bar is retired (see the row below)"))
        out.append(info(
            "supervisord.rpc_floor", "the raw trio echo server vs supervisord XML-RPC",
            pct(e_t, 50) * 1e6, "us", "supervisord getState", pct(s_t, 50) * 1e6, speedup=True,
            note="a trio server that does no work at all, timed with the same client in the "
                 "same rounds: the most any trio server could be faster"))
        out.append(info(
            "supervisord.rpc_stock", "the same vs supervisord through supervisor's own client",
            pct(k_t, 50) * 1e6, "us", "ServerProxy+SupervisorTransport", stock * 1e6,
            speedup=True,
            note="xmlrpc.client.ServerProxy with supervisor.xmlrpc.SupervisorTransport, as "
                 "supervisorctl calls it"))

        out += _cli_figures(ctx, d, base / "sv" / "supervisord.conf")
    finally:
        d.cleanup()
        echo.stop()
        sv.terminate()
        try:
            sv.wait(20)
        except subprocess.TimeoutExpired:
            sv.kill()
    return out


def _cli_figures(ctx: Ctx, d: DaemonProc, sv_conf: Path | None) -> list[Figure]:
    """`kitplay daemon status` against supervisorctl (both from this environment)."""
    kp = _kitplay_argv()
    ctl = _tool("supervisorctl")
    if kp is None or sv_conf is None or ctl is None:
        return []
    runs = ctx.pick(10, 30)
    commands = {"floor": ([sys.executable, "-c", "pass"], child_env()),
                "sv": ([ctl, "-c", str(sv_conf), "status"], child_env()),
                "kitplay": ([*kp, "daemon", "status"],
                            child_env({"KITPLAY_SOCKET": str(d.socket)}))}
    med = median_runs(commands, runs)
    floor, k_s, sv_s = med["floor"], med["kitplay"], med["sv"]
    how = (f"median of {runs} runs each, interleaved, after 3 warm-up rounds; "
           f"{os.path.basename(kp[0])} of this environment")
    return [
        faster_by("supervisord.cli", "`kitplay daemon status` vs `supervisorctl status`",
                  k_s * 1e3, "ms", "`supervisorctl status`", sv_s * 1e3, 3.0, note=how,
                  floor=floor * 1e3),
        info("supervisord.cli_floor", "the interpreter alone (`python -c pass`)",
             floor * 1e3, "ms", "`supervisorctl status`", sv_s * 1e3, speedup=True,
             note="the floor of any Python command in this environment (site and .pth files "
                  "included)"),
    ]
