"""kitplayd against supervisord (pip ``supervisor``), both on a Unix socket, in one run.

- one call: supervisord's XML-RPC ``supervisor.getState`` over its ``unix_http_server``
  (keep-alive HTTP/1.1, ``bench.clients.XmlRpcUnix``) against kitplayd's JSON-RPC round trip of
  ``bench.rpc.METHOD`` (``daemon.protocol.client.Client``), sequential, interleaved;
- a whole status command: ``supervisorctl status`` against ``kitplay daemon status`` as
  processes, each run repeatedly (hyperfine-style: warm-up runs, then the median).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .clients import XmlRpcUnix, pct, time_calls
from .context import Ctx
from .procs import ROOT, DaemonProc, child_env, start_notify
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


def _median_run(argv: list[str], env: dict[str, str], runs: int) -> float:
    times = []
    for i in range(runs + 3):
        t = time.perf_counter()
        r = subprocess.run(argv, env=env, capture_output=True)
        elapsed = time.perf_counter() - t
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:3])} exited {r.returncode}: "
                               f"{r.stderr.decode(errors='replace').strip()[:300]}")
        if i >= 3:  # the first runs warm the page cache
            times.append(elapsed)
    return statistics.median(times)


def _tool(name: str) -> str | None:
    """A console script next to this interpreter (not a pyenv shim, which adds ~50 ms)."""
    exe = Path(sys.executable).parent / name
    return str(exe) if exe.exists() else shutil.which(name)


def _kitplay_argv() -> list[str] | None:
    if not (ROOT / "cli_client" / "main.py").exists():
        return None
    exe = _tool("kitplay")
    return [exe] if exe else [sys.executable, "-m", "cli_client"]


def run(ctx: Ctx) -> list[Figure]:
    base = ctx.tmp("sv")
    (base / "sv").mkdir()
    try:
        sv = _start_supervisord(base / "sv")
    except (FileNotFoundError, RuntimeError) as e:
        return [skipped("supervisord.rpc", "JSON-RPC round trip vs supervisord", str(e)),
                skipped("supervisord.cli", "`kitplay daemon status` vs supervisorctl", str(e))]
    d = DaemonProc(base / "d").start()
    echo_sock = base / "echo.sock"
    echo = start_notify([sys.executable, "-m", "bench.echo", str(echo_sock)], base)
    sv_sock = base / "sv" / "supervisor.sock"
    out: list[Figure] = []
    try:
        from daemon.protocol.client import Client

        n = ctx.pick(2000, 10000)
        rounds = 4
        s_t: list[float] = []
        k_t: list[float] = []
        e_t: list[float] = []
        with XmlRpcUnix(sv_sock) as sc, Client.connect(d.socket) as kc, \
                Client.connect(echo_sock) as ec:
            for _ in range(300):
                sc.call("supervisor.getState")
            time_calls(kc, METHOD, {}, 300)
            time_calls(ec, METHOD, {}, 300)
            for _ in range(rounds):
                for _ in range(n // rounds):
                    t = time.perf_counter()
                    sc.call("supervisor.getState")
                    s_t.append(time.perf_counter() - t)
                k_t += time_calls(kc, METHOD, {}, n // rounds)
                e_t += time_calls(ec, METHOD, {}, n // rounds)
        stock = _stock_client_p50(sv_sock, n // 4)
        echo.stop()
        out.append(faster_by(
            "supervisord.rpc", f"JSON-RPC round trip p50 ({METHOD}) vs supervisord XML-RPC",
            pct(k_t, 50) * 1e6, "us", "supervisord getState", pct(s_t, 50) * 1e6, 3.0,
            note="both on a Unix socket, one persistent connection, sequential"))
        out.append(info(
            "supervisord.rpc_floor", "the raw trio echo server vs supervisord XML-RPC",
            pct(e_t, 50) * 1e6, "us", "supervisord getState", pct(s_t, 50) * 1e6, speedup=True,
            note="the ceiling of the figure above: a trio server that does no work at all, "
                 "timed with the same client in the same rounds"))
        out.append(info(
            "supervisord.rpc_stock", "the same vs supervisord through supervisor's own client",
            pct(k_t, 50) * 1e6, "us", "ServerProxy+SupervisorTransport", stock * 1e6,
            speedup=True,
            note="xmlrpc.client.ServerProxy with supervisor.xmlrpc.SupervisorTransport, as "
                 "supervisorctl calls it; context for the figure above, which is the bar"))

        kp = _kitplay_argv()
        runs = ctx.pick(10, 30)
        floor = _median_run([sys.executable, "-c", "pass"], child_env(), runs)
        ctl = _tool("supervisorctl")
        assert ctl is not None
        sv_s = _median_run([ctl, "-c", str(base / "sv" / "supervisord.conf"),
                            "status"], child_env(), runs)
        if kp is None:
            out.append(skipped("supervisord.cli", "`kitplay daemon status` as a process vs "
                               "`supervisorctl status`", "cli_client/main.py is not there yet"))
        else:
            env = child_env({"KITPLAY_SOCKET": str(d.socket)})
            try:
                k_s = _median_run([*kp, "daemon", "status"], env, runs)
            except RuntimeError as e:
                out.append(skipped("supervisord.cli", "`kitplay daemon status` as a process vs "
                                   "`supervisorctl status`", str(e)))
            else:
                out.append(faster_by(
                    "supervisord.cli", "`kitplay daemon status` as a whole process",
                    k_s * 1e3, "ms", "`supervisorctl status`", sv_s * 1e3, 3.0,
                    note=f"median of {runs} runs each after 3 warm-up runs; "
                         f"{os.path.basename(kp[0])}"))
        out.append(info(
            "supervisord.cli_floor", "the interpreter alone (`python -c pass`)",
            floor * 1e3, "ms", "`supervisorctl status`", sv_s * 1e3, speedup=True,
            note="the floor of any Python command on this interpreter (site and .pth files "
                 "included); if it misses the bar, no Python CLI can meet it here"))
    finally:
        d.cleanup()
        echo.stop()
        sv.terminate()
        try:
            sv.wait(20)
        except subprocess.TimeoutExpired:
            sv.kill()
    return out
