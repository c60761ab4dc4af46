"""The bridge: time to ready, idle RSS, REST round trips, and a 100 MB log through its WebSocket.

``kitplay-bridge`` is started as a process in front of a real daemon (``--bind 127.0.0.1:0``,
rate limits raised out of the way); it is ready when it prints its "open URL" line (it is
serving and has written bridge.json).

- REST: ``GET /api/jobs/<id>`` of an ended job with the bearer token, against the same route of
  a bare quart-trio app on Hypercorn (``bench.bare_quart``, answering the same record), both with
  a minimal keep-alive HTTP/1.1 client (``bench.clients.RawHttp``), interleaved rounds;
- the log is followed through ``WS /api/stream/<job_id>`` with the bearer token (a 1 MiB
  receive buffer, every message decoded, offsets checked), and compared with the same log
  followed over the daemon socket in the same run.
"""

from __future__ import annotations

import json
import os
import select
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil

from .clients import RawHttp, pct, time_http
from .context import Ctx
from .logs import CONFIG, _job_run, follow_socket, writer_app
from .procs import ROOT, DaemonProc, child_env
from .report import Figure, at_least, info, ratio_at_most, skipped

__all__ = ["run"]


class _Bridge:
    def __init__(self, socket: Path, config: Path, env: dict[str, str] | None = None) -> None:
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kitplay.bridge",
             "--socket", str(socket), "--bind", "127.0.0.1:0",
             "--config", str(config), "--log-level", "warning",
             "--rate-limit", "1000000", "--rate-burst", "1000000"],
            env=child_env(env), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL)
        line = self._line(30.0)
        self.ready_s = time.perf_counter() - t0
        if not line.startswith("kitplay-bridge: open "):
            self.stop()
            raise RuntimeError(f"kitplay-bridge did not start: {line!r}")
        self.login_url = line.split(" open ", 1)[1].strip()  # the one-time page URL
        info = json.loads((socket.parent / "bridge.json").read_text())
        self.url = info["url"].rstrip("/")  # API clients: a loopback literal (the page's
        self.port = int(self.url.rsplit(":", 1)[1])  # kp-*.localhost is for browsers)
        self.token = info["token"]
        self.page_url = info["page_url"].rstrip("/")  # the page's origin: kp-*.localhost

    def _line(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        fd, buf = self.proc.stdout.fileno(), b""
        deadline = time.monotonic() + timeout
        while b"\n" not in buf and time.monotonic() < deadline:
            if select.select([fd], [], [], deadline - time.monotonic())[0]:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                buf += chunk
        return buf.split(b"\n", 1)[0].decode(errors="replace")

    def rss_mb(self) -> float:
        return float(psutil.Process(self.proc.pid).memory_info().rss) / 2**20

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def _follow_ws(url: str, token: str, job_id: str) -> tuple[int, float]:
    from trio_websocket import open_websocket_url

    ws_url = url.replace("http://", "ws://") + f"/api/stream/{job_id}"
    expect = 0
    t = time.perf_counter()
    auth = [(b"Authorization", f"Bearer {token}".encode())]
    # A 1 MiB receive buffer, as a browser reads: trio-websocket's default of 4 KiB makes
    # the client itself the bottleneck (26,000 reads for 100 MB).
    async with open_websocket_url(ws_url, extra_headers=auth, message_queue_size=4,
                                  max_message_size=16 << 20,
                                  receive_buffer_size=1 << 20) as ws:
        while True:
            msg = json.loads(await ws.get_message())
            if msg["type"] == "output":
                if msg["offset"] != expect:
                    raise RuntimeError(f"gap in the WebSocket stream at {expect}")
                expect = msg["next_offset"]
            elif msg["type"] == "end":
                break
            elif msg["type"] == "error":
                raise RuntimeError(f"stream error: {msg}")
    return expect, time.perf_counter() - t


def _cpu_s(pid: int) -> float:
    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


def _start_bare(args: list[str]) -> tuple[subprocess.Popen[bytes], int]:
    proc = subprocess.Popen([sys.executable, "-m", "bench.bare_quart", *args],
                            env=child_env(), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if not line.startswith("port "):
        _stop(proc)
        raise RuntimeError(f"the bare quart-trio app did not start: {line!r}")
    return proc, int(line.split()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _rest_rounds(ctx: Ctx, d: DaemonProc, b: _Bridge, job_id: str,
                 base: Path) -> tuple[list[float], list[float], list[float]]:
    """The bridge, the bare app, and the bare app relaying one daemon round trip: interleaved."""
    record = d.call("jobs.get", {"job_id": job_id})["job"]
    rec_file = base / "record.json"
    rec_file.write_text(json.dumps(record))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        bare, port = _start_bare([str(rec_file)])
        procs.append(bare)
        relay, relay_port = _start_bare([str(rec_file), "--daemon", str(d.socket)])
        procs.append(relay)
        n, rounds = ctx.pick(1000, 4000), ctx.pick(5, 10)
        rest: list[float] = []
        flat: list[float] = []
        hop: list[float] = []
        path = f"/api/jobs/{job_id}"
        auth = {"Authorization": f"Bearer {b.token}"}
        with RawHttp(b.port, auth) as kc, RawHttp(port, auth) as bc, \
                RawHttp(relay_port, auth) as rc:
            for c in (kc, bc, rc):
                time_http(c, path, 200)
            for _ in range(rounds):
                rest += time_http(kc, path, n // rounds)
                flat += time_http(bc, path, n // rounds)
                hop += time_http(rc, path, n // rounds)
        return rest, flat, hop
    finally:
        for p in procs:
            _stop(p)


def run(ctx: Ctx) -> list[Figure]:
    if not (ROOT / "bridge" / "main.py").exists():
        reason = "bridge/main.py is not there yet"
        return [skipped(k, lbl, reason) for k, lbl in (
            ("bridge.follow_ws", "log following: 100 MB through the bridge WebSocket"),
            ("bridge.ready", "bridge ready"), ("bridge.rss", "idle bridge RSS"))]
    import trio

    base = ctx.tmp("bridge")
    d = DaemonProc(base, CONFIG)
    writer_app(d.workspace)
    runs = ctx.pick(2, 5)
    bridges: list[_Bridge] = []
    try:
        d.start()
        ready = []
        for _ in range(ctx.pick(2, 5)):
            b = _Bridge(d.socket, d.config)
            bridges.append(b)
            ready.append(b.ready_s)
            if len(bridges) > 1:
                bridges.pop(0).stop()
        b = bridges[-1]
        rss = b.rss_mb()
        _, job_id = _job_run(d, 100, "blocks")
        size = (d.state / "logs" / f"{job_id}.log").stat().st_size
        rest, bare, hop = _rest_rounds(ctx, d, b, job_id, base)
        ws_rates, sock_rates, cpu_bridge, cpu_daemon = [], [], [], []
        for _ in range(runs):  # alternating WebSocket and socket followers
            b0, d0 = _cpu_s(b.proc.pid), _cpu_s(d.pid)
            n, secs = trio.run(_follow_ws, b.url, b.token, job_id)
            if n != size:
                raise RuntimeError(f"the WebSocket delivered {n} bytes of a {size}-byte log")
            ws_rates.append(n / secs / 1e6)
            cpu_bridge.append((_cpu_s(b.proc.pid) - b0) * 100e6 / n)
            cpu_daemon.append((_cpu_s(d.pid) - d0) * 100e6 / n)
            n, secs = follow_socket(d.socket, job_id)
            sock_rates.append(n / secs / 1e6)
    finally:
        for b in bridges:
            b.stop()
        d.cleanup()
    med = statistics.median
    rest_us, bare_us, hop_us = (pct(x, 50) * 1e6 for x in (rest, bare, hop))
    return [
        ratio_at_most("bridge.rest", "REST `GET /api/jobs/<id>` p50", rest_us, "us",
                      "bare quart-trio app on Hypercorn", bare_us, 1.2,
                      note=f"{len(rest)} requests each, interleaved rounds, one keep-alive "
                           "connection, minimal HTTP/1.1 client",
                      floor=hop_us),
        info("bridge.rest_hop", "REST `GET /api/jobs/<id>` p50 vs one daemon round trip",
             rest_us, "us", "bare app relaying kitplayd's answer", hop_us,
             note="the bridge's own cost: the baseline is the bare app sending the request's "
                  "`jobs.get` line to kitplayd on one open connection and returning its answer "
                  "line untouched (`bench.bare_quart --daemon`), the floor of any REST route "
                  "that asks a separate daemon process"),
        info("bridge.hop", "the bare app relaying one daemon round trip", hop_us, "us",
             "the bare app", bare_us,
             note="what the second process alone costs on this machine"),
        at_least("bridge.follow_ws", "log following: 100 MB through the bridge WebSocket",
                 med(ws_rates), "MB/s", 200, "the same over the daemon socket", med(sock_rates),
                 note=f"median of {runs}; from the upgrade to the 'end' message, offsets "
                      "checked contiguous, every message decoded"),
        info("bridge.follow_cpu", "CPU time of 100 MB through the WebSocket: the bridge",
             med(cpu_bridge), "s", "the daemon", med(cpu_daemon),
             note="user + system time of each process while it relayed the log (unlike the "
                  "rate, barely changed by other load on the machine)"),
        info("bridge.ready", "bridge ready (serving, bridge.json written)", med(ready), "s",
             note="from Popen to its 'open URL' line"),
        info("bridge.rss", "idle bridge RSS", rss, "MB"),
    ]
