"""kitplayd against supervisord (pip ``supervisor``), and the ``kitplay`` command's start.

- one call, for context (the 3x bar is retired: supervisord's ``getState`` with a minimal
  client is within about 2x of a raw trio echo, so no trio server can be 3x faster):
  supervisord's XML-RPC ``supervisor.getState`` over its ``unix_http_server`` (keep-alive
  HTTP/1.1, ``bench.clients.XmlRpcUnix``) against kitplayd's round trip of ``bench.rpc.METHOD``
  and the raw trio echo, both with the lightest client, sequential, interleaved;
- a whole status command: ``kitplay daemon status`` (the console script pip writes, which
  itself imports ``re``) against ``python -c pass`` in the same interpreter and environment
  (bar: at most 2x) and against ``supervisorctl status`` (bar: 3x faster, out of reach when
  the bare interpreter itself is not 3x faster), run in interleaved rounds after warm-ups,
  medians compared.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .clients import RawClient, XmlRpcUnix, pct, time_raw
from .context import Ctx
from .procs import ROOT, DaemonProc, child_env, start_notify
from .report import Figure, faster_by, info, ratio_at_most, skipped
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


def _once(argv: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    r = subprocess.run(argv, env=env, capture_output=True)
    elapsed = time.perf_counter() - t
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} exited {r.returncode}: "
                           f"{r.stderr.decode(errors='replace').strip()[:300]}")
    return elapsed


def _median_runs(commands: dict[str, tuple[list[str], dict[str, str]]],
                 runs: int) -> dict[str, float]:
    """Each command ``runs`` times, in interleaved rounds after 3 warm-up rounds (page cache,
    bytecode caches); the median of each."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for i in range(runs + 3):
        for name, (argv, env) in commands.items():
            elapsed = _once(argv, env)
            if i >= 3:
                times[name].append(elapsed)
    return {name: statistics.median(t) for name, t in times.items()}


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
    """`kitplay daemon status` against `python -c pass` and (with ``sv_conf``) supervisorctl."""
    out: list[Figure] = []
    kp = _kitplay_argv()
    runs = ctx.pick(10, 30)
    commands = {"floor": ([sys.executable, "-c", "pass"], child_env())}
    ctl = _tool("supervisorctl")
    if sv_conf is not None and ctl is not None:
        commands["sv"] = ([ctl, "-c", str(sv_conf), "status"], child_env())
    if kp is None:
        return [skipped("cli.vs_python", "`kitplay daemon status` as a whole process",
                        "cli_client/main.py is not there yet")]
    commands["kitplay"] = ([*kp, "daemon", "status"],
                           child_env({"KITPLAY_SOCKET": str(d.socket)}))
    med = _median_runs(commands, runs)
    floor, k_s = med["floor"], med["kitplay"]
    how = (f"median of {runs} runs each, interleaved, after 3 warm-up rounds; "
           f"{os.path.basename(kp[0])}")
    out.append(ratio_at_most(
        "cli.vs_python", "`kitplay daemon status` as a whole process", k_s * 1e3, "ms",
        "`python -c pass`", floor * 1e3, 2.0,
        note=how + " (the console script pip writes; it imports re); the same interpreter "
                   "and environment"))
    if "sv" in med:
        sv_s = med["sv"]
        out.append(faster_by(
            "supervisord.cli", "`kitplay daemon status` vs `supervisorctl status`",
            k_s * 1e3, "ms", "`supervisorctl status`", sv_s * 1e3, 3.0, note=how,
            floor=floor * 1e3))
        out.append(info(
            "supervisord.cli_floor", "the interpreter alone (`python -c pass`)",
            floor * 1e3, "ms", "`supervisorctl status`", sv_s * 1e3, speedup=True,
            note="the floor of any Python command on this interpreter (site and .pth files "
                 "included)"))
    return out
