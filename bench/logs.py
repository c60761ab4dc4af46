"""Log capture (a job writing 200 MB) and log following (a 100 MB log through jobs.subscribe).

The writer is one small program, ``writer.py`` below, run two ways:
- as a kitplay job (``launch`` of a workspace app whose launch argv runs it; its output goes
  through the job's shim into ``logs/<job>.log``), timed from the ``launch`` call to the end of
  ``jobs.wait``;
- directly, with its stdout sent to a file on the same filesystem, timed from ``Popen`` to its
  exit.
It writes log-like lines through ``sys.stdout`` (``lines`` mode, like a build tool) or
pre-built 64 KB blocks (``blocks`` mode: pure I/O, so the fixed cost of a job shows).
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .context import Ctx
from .procs import DaemonProc, child_env, make_app
from .report import Figure, at_least, info, ratio_at_most

__all__ = ["WRITER", "follow_socket", "run", "writer_app"]

WRITER = '''\
import sys
mb, mode = int(sys.argv[1]), sys.argv[2]
total = mb * 1024 * 1024
line = "INFO build step compiling module number {:09d} of the workspace ok ........\\n"
if mode == "lines":
    w = sys.stdout.write
    for i in range(total // len(line.format(0))):
        w(line.format(i))
else:
    block = "".join(line.format(i) for i in range(800)).encode()
    out = sys.stdout.buffer
    for i in range(total // len(block)):
        out.write(block)
'''
APP = "bench.writer"
CONFIG = f"log_cap_bytes = {1 << 30}\n"


def writer_app(workspace: Path) -> Path:
    return make_app(workspace, APP, ["{python}", "writer.py"], files={"writer.py": WRITER})


def _job_run(d: DaemonProc, mb: int, mode: str) -> tuple[float, str]:
    with d.client() as c:
        t = time.perf_counter()
        job = c.call("launch", {"app": APP, "display": "headless", "args": [str(mb), mode]})
        res = c.call("jobs.wait", {"job_id": job["job"]["id"], "timeout_s": 600})
        elapsed = time.perf_counter() - t
    if res["job"]["status"] != "succeeded":
        raise RuntimeError(f"writer job ended {res['job']['status']}: {res['job']['error']}")
    return elapsed, job["job"]["id"]


def _direct_run(app_dir: Path, out: Path, mb: int, mode: str) -> float:
    with open(out, "wb") as f:
        t = time.perf_counter()
        subprocess.run([sys.executable, "writer.py", str(mb), mode], stdout=f, cwd=app_dir,
                       env=child_env(), check=True)
        elapsed = time.perf_counter() - t
    out.unlink()
    return elapsed


def follow_socket(sock: Path, job_id: str) -> tuple[int, float]:
    """Subscribe from offset 0 and read until the final state: (bytes, seconds)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(sock))
    f = s.makefile("rb", buffering=1 << 20)
    expect = 0
    t = time.perf_counter()
    s.sendall(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "jobs.subscribe",
                          "params": {"job_id": job_id, "offset": 0}}).encode() + b"\n")
    try:
        for line in f:
            msg = json.loads(line)
            method = msg.get("method")
            if method == "jobs.output":
                p = msg["params"]
                if p["offset"] != expect:
                    raise RuntimeError(f"gap in the log stream at {expect} (got {p['offset']})")
                expect = p["next_offset"]
            elif method == "jobs.state" and msg["params"]["final"]:
                break
            elif "error" in msg:
                raise RuntimeError(f"jobs.subscribe failed: {msg['error']}")
        return expect, time.perf_counter() - t
    finally:
        f.close()
        s.close()


def _read_file(path: Path) -> float:
    t = time.perf_counter()
    fd = os.open(path, os.O_RDONLY)
    try:
        while os.read(fd, 1 << 20):
            pass
    finally:
        os.close(fd)
    return time.perf_counter() - t


def run(ctx: Ctx) -> list[Figure]:
    base = ctx.tmp("logs")
    d = DaemonProc(base, CONFIG)
    app_dir = writer_app(d.workspace)
    d.state.mkdir(parents=True)
    out_file = d.state / "direct.out"   # same filesystem as the job logs
    runs = ctx.pick(2, 5)
    figs: list[Figure] = []
    try:
        d.start()
        for mode in ("lines", "blocks"):
            _job_run(d, 10, mode)  # warm-up both ways
            _direct_run(app_dir, out_file, 10, mode)
            k, b = [], []
            for _ in range(runs):
                k.append(_job_run(d, 200, mode)[0])
                b.append(_direct_run(app_dir, out_file, 200, mode))
            if mode == "lines":
                figs.append(ratio_at_most(
                    "logs.capture", "log capture: a job writing 200 MB of lines",
                    statistics.median(k), "s", "the program > file", statistics.median(b),
                    1.1, note=f"median of {runs} runs each, alternating; launch call to "
                              "jobs.wait return vs Popen to exit"))
            else:
                figs.append(info(
                    "logs.capture_blocks", "log capture: the same in 64 KB blocks (pure I/O)",
                    statistics.median(k), "s", "the program > file", statistics.median(b),
                    note="shows the fixed cost of a job (shim start, RPCs) over a short run"))
        _, job_id = _job_run(d, 100, "blocks")
        size = (d.state / "logs" / f"{job_id}.log").stat().st_size
        rates = []
        for _ in range(runs):
            n, secs = follow_socket(d.socket, job_id)
            if n != size:
                raise RuntimeError(f"followed {n} bytes of a {size}-byte log")
            rates.append(n / secs / 1e6)
        raw = size / _read_file(d.state / "logs" / f"{job_id}.log") / 1e6
        figs.append(at_least(
            "logs.follow_socket", "log following: 100 MB through jobs.subscribe (socket)",
            statistics.median(rates), "MB/s", 50, "reading the file", raw,
            note="from the subscribe call to the final jobs.state; every byte decoded by the "
                 "client (JSON lines); offsets checked contiguous"))
    finally:
        d.cleanup()
    return figs
