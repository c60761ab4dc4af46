"""Processes the bench starts: kitplayd, the echo server, and tiny workspace apps.

Readiness is the process's own sd_notify ``READY=1`` datagram, received on a socket the bench
binds before it starts the process, so the time to ready is measured from ``Popen``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import psutil
from kitplay.daemon.protocol.client import Client

__all__ = ["ROOT", "DaemonProc", "Proc", "make_app", "median_runs", "run_once", "short_tmpdir",
           "start_notify"]

ROOT = Path(__file__).resolve().parent.parent


def short_tmpdir(prefix: str = "kpb") -> Path:
    """A temp dir short enough for Unix socket paths."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("KITPLAY_SOCKET", "KITPLAY_STATE_DIR", "NOTIFY_SOCKET"):
        env.pop(var, None)
    env.update(extra or {})
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    # Bytecode caches as an installed kitplay has them (pip compiles at install time): a
    # sandbox's PYTHONDONTWRITEBYTECODE=1 would have every start compile the project again.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


class Proc:
    """A started process, its time to READY=1, and a clean stop (SIGTERM, then SIGKILL)."""

    def __init__(self, popen: subprocess.Popen[bytes], ready_s: float) -> None:
        self.popen = popen
        self.ready_s = ready_s

    @property
    def pid(self) -> int:
        return self.popen.pid

    def rss_mb(self) -> float:
        return float(psutil.Process(self.pid).memory_info().rss) / 2**20

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode


def start_notify(argv: list[str], base: Path, env: dict[str, str] | None = None,
                 log: Path | None = None, timeout: float = 30.0) -> Proc:
    """Start ``argv``; return once it sent READY=1 on NOTIFY_SOCKET (or raise)."""
    notify = base / f"notify-{time.monotonic_ns()}.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as ns:
        ns.bind(str(notify))
        ns.settimeout(timeout)
        full_env = {**(env or child_env()), "NOTIFY_SOCKET": str(notify)}
        out = open(log or os.devnull, "ab")
        try:
            t0 = time.perf_counter()
            popen = subprocess.Popen(argv, env=full_env, stdout=out, stderr=out,
                                     stdin=subprocess.DEVNULL, cwd=ROOT)
            try:
                while b"READY=1" not in ns.recv(4096):
                    pass
            except TimeoutError:
                popen.kill()
                popen.wait()
                tail = log.read_text()[-2000:] if log and log.exists() else ""
                raise RuntimeError(f"{argv[:3]} not ready in {timeout} s\n{tail}") from None
            ready = time.perf_counter() - t0
        finally:
            out.close()
    notify.unlink(missing_ok=True)
    return Proc(popen, ready)


class DaemonProc:
    """A real kitplayd in ``base`` (socket, state dir, workspace, config)."""

    def __init__(self, base: Path, config: str = "", workspace: Path | None = None) -> None:
        self.base = base
        self.socket = base / "run" / "kitplayd.sock"
        self.state = base / "state"
        self.workspace = workspace or base / "ws"
        self.workspace.mkdir(parents=True, exist_ok=True)
        self.config = base / "config.toml"
        self.config.write_text(config)
        self.log = base / "kitplayd.log"
        self.proc: Proc | None = None
        self.connect_s: float | None = None

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "kitplay.daemon", "--socket", str(self.socket), "--state-dir",
                str(self.state), "--workspace", str(self.workspace), "--config",
                str(self.config)]

    def start(self) -> DaemonProc:
        t0 = time.perf_counter()
        self.proc = start_notify(self.argv(), self.base, log=self.log)
        with Client.connect(self.socket):
            self.connect_s = time.perf_counter() - t0
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def client(self, timeout: float | None = 120.0) -> Client:
        return Client.connect(self.socket, timeout=timeout)

    def call(self, method: str, params: Any = None) -> Any:
        with self.client() as c:
            return c.call(method, params)

    def wait_job(self, job_id: str, timeout: float = 600.0) -> dict[str, Any]:
        res = self.call("jobs.wait", {"job_id": job_id, "timeout_s": timeout})
        if res["timed_out"]:
            raise RuntimeError(f"job {job_id} still {res['job']['status']} after {timeout} s")
        job: dict[str, Any] = res["job"]
        return job

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None

    def cleanup(self) -> None:
        self.stop()
        for p in psutil.process_iter(["cmdline"]):
            try:
                if any(str(self.state) in a for a in p.info["cmdline"] or []):
                    p.kill()
            except psutil.Error:
                pass
        shutil.rmtree(self.base, ignore_errors=True)


def make_app(workspace: Path, name: str, launch: list[str],
             build: list[list[str]] | None = None, files: dict[str, str] | None = None) -> Path:
    """A tiny builtin-toolchain app: ``source/apps/<name>/kitapp.toml`` plus its files.

    ``launch`` and each build step are argv lists; ``{python}`` is the daemon's interpreter.
    """
    d = workspace / "source" / "apps" / name
    d.mkdir(parents=True, exist_ok=True)
    toml = [f'[app]\nname = "{name}"\ndisplay_name = "{name}"\nversion = "0.1.0"\n'
            'template = "bench"\n']
    toml += [f'[[build.steps]]\nname = "step{i}"\nargv = {_toml_list(a)}\n'
             for i, a in enumerate(build or [])]
    toml.append(f"[launch]\nargv = {_toml_list(launch)}\nneeds_display = false\n")
    (d / "kitapp.toml").write_text("\n".join(toml))
    for rel, text in (files or {}).items():
        (d / rel).write_text(textwrap.dedent(text))
    return d


def _toml_list(items: list[str]) -> str:
    import json

    return "[" + ", ".join(json.dumps(a) for a in items) + "]"


def run_once(argv: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    r = subprocess.run(argv, env=env, capture_output=True)
    elapsed = time.perf_counter() - t
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} exited {r.returncode}: "
                           f"{r.stderr.decode(errors='replace').strip()[:300]}")
    return elapsed


def median_runs(commands: dict[str, tuple[list[str], dict[str, str]]],
                 runs: int) -> dict[str, float]:
    """Each command ``runs`` times, in interleaved rounds after 3 warm-up rounds (page cache,
    bytecode caches); the median of each."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for i in range(runs + 3):
        for name, (argv, env) in commands.items():
            elapsed = run_once(argv, env)
            if i >= 3:
                times[name].append(elapsed)
    return {name: statistics.median(t) for name, t in times.items()}
