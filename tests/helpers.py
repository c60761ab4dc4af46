"""Test helpers: a real kitplayd in a temporary directory, and a raw socket client.

Rules for every test in this directory:
- real daemon, real processes: ``Daemon`` starts ``python -m daemon`` as a subprocess on a
  socket in a short temporary directory, with its own state dir and workspace;
- readiness is a condition, never a sleep: the daemon sends sd_notify ``READY=1`` on a
  datagram socket the helper waits on, with a deadline;
- every wait has a deadline (``wait_for``), and nothing asserts on wall-clock speed;
- loopback and temporary directories only; everything started is stopped at teardown.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kitplay.daemon.protocol.client import Client

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def wait_for(cond: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``cond`` until it returns something truthy, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def installed_command(name: str) -> str | None:
    """A command installed beside the running Python (a venv's bin/, where pip put the
    console scripts), else on PATH: the tests run as ``.venv/bin/python -m pytest`` with no
    activated venv."""
    here = os.path.dirname(sys.executable)
    return shutil.which(name, path=os.pathsep.join([here, os.environ.get("PATH", "")]))


def short_tmpdir(prefix: str = "kp") -> Path:
    """A temp dir short enough for a Unix socket path (107 bytes)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


class Daemon:
    """A real kitplayd subprocess with its own socket, state dir and workspace."""

    def __init__(self, base: Path | None = None, config: str = "",
                 env: dict[str, str] | None = None, workspace: Path | None = None) -> None:
        self.base = base or short_tmpdir()
        self.socket = self.base / "run" / "kitplayd.sock"
        self.state = self.base / "state"
        self.workspace = workspace or self.base / "ws"
        self.workspace.mkdir(parents=True, exist_ok=True)
        self.config = self.base / "config.toml"
        self.config.write_text(config)
        self.env = {**os.environ, **(env or {})}
        self.env.pop("KITPLAY_SOCKET", None)
        self.env.pop("KITPLAY_STATE_DIR", None)
        self.env["PYTHONPATH"] = str(ROOT) + os.pathsep + self.env.get("PYTHONPATH", "")
        self.proc: subprocess.Popen[bytes] | None = None
        self.stderr_path = self.base / "kitplayd.log"

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "kitplay.daemon", "--socket", str(self.socket), "--state-dir",
                str(self.state), "--workspace", str(self.workspace), "--config",
                str(self.config)]

    def start(self, timeout: float = 20.0) -> Daemon:
        notify_path = self.base / "notify.sock"
        notify_path.unlink(missing_ok=True)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as ns:
            ns.bind(str(notify_path))
            ns.settimeout(timeout)
            env = {**self.env, "NOTIFY_SOCKET": str(notify_path)}
            with open(self.stderr_path, "ab") as err:
                self.proc = subprocess.Popen(self.argv(), env=env, stdout=err, stderr=err,
                                             stdin=subprocess.DEVNULL)
            try:
                msg = ns.recv(4096)
            except TimeoutError:
                self.proc.kill()
                raise AssertionError(
                    f"kitplayd not ready in {timeout} s:\n{self.log()}") from None
        assert b"READY=1" in msg
        return self

    def log(self) -> str:
        try:
            return self.stderr_path.read_text()
        except OSError:
            return ""

    def client(self, timeout: float | None = 30.0) -> Client:
        return Client.connect(self.socket, timeout=timeout)

    def call(self, method: str, params: Any = None) -> Any:
        with self.client() as c:
            return c.call(method, params)

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.proc is None:
            return None
        code = terminate(self.proc, timeout)
        self.proc = None
        return code

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    def job_log(self, job_id: str) -> str:
        try:
            return (self.state / "logs" / f"{job_id}.log").read_text()
        except FileNotFoundError:
            return ""

    def wait_job(self, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
        res = self.call("jobs.wait", {"job_id": job_id, "timeout_s": timeout})
        assert not res["timed_out"], f"job {job_id} still {res['job']['status']}"
        return res["job"]  # type: ignore[no-any-return]

    def cleanup(self) -> None:
        self.stop()
        kill_session_leftovers(self.state)
        shutil.rmtree(self.base, ignore_errors=True)


def terminate(proc: subprocess.Popen[Any], timeout: float = 20.0) -> int:
    """SIGTERM, wait up to ``timeout``, then SIGKILL; the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def kill_session_leftovers(state: Path) -> None:
    """Kill any process still running a command from this daemon's state dir (teardown)."""
    import psutil

    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(str(state) in a for a in p.info["cmdline"] or []):
                for c in p.children(recursive=True):
                    c.kill()
                p.kill()
        except psutil.Error:
            pass


def raw_exchange(sock_path: Path, payload: bytes, expect: int = 1,
                 timeout: float = 10.0) -> list[Any]:
    """Send raw bytes; read ``expect`` JSON lines back (or until EOF)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(str(sock_path))
    try:
        s.sendall(payload)
        buf = b""
        out: list[Any] = []
        while len(out) < expect:
            data = s.recv(1 << 20)
            if not data:
                break
            buf += data
            while b"\n" in buf and len(out) < expect:
                line, buf = buf.split(b"\n", 1)
                out.append(json.loads(line))
        return out
    finally:
        s.close()


def create_and_build(d: Daemon, template: str = "console_app",
                     name: str = "my_company.my_app") -> str:
    job = d.call("templates.create", {"template": template, "name": name})["job"]
    assert d.wait_job(job["id"])["status"] == "succeeded", d.job_log(job["id"])
    job = d.call("build", {"app": name})["job"]
    assert d.wait_job(job["id"])["status"] == "succeeded", d.job_log(job["id"])
    return name


def write_app(workspace: Path, name: str, *, build: list[list[str]] | None = None,
              launch: list[str] | None = None, files: dict[str, str] | None = None) -> Path:
    """A hand-made builtin app (``kitapp.toml`` + files) for tests that need odd commands."""
    d = workspace / "source" / "apps" / name
    d.mkdir(parents=True, exist_ok=True)
    steps = "".join(
        f'[[build.steps]]\nname = "step{i + 1}"\nargv = {json.dumps(argv)}\n\n'
        for i, argv in enumerate(build or []))
    (d / "kitapp.toml").write_text(
        f'[app]\nname = "{name}"\ndisplay_name = "Test"\nversion = "0.1.0"\n'
        f'template = "test"\n\n{steps}'
        f'[launch]\nargv = {json.dumps(launch or ["{python}", "-c", "pass"])}\n')
    for rel, text in (files or {}).items():
        (d / rel).write_text(text)
    return d


def pid_alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def tree(token: str) -> list[Any]:
    """Every live (non-zombie) process whose command line carries ``token``."""
    import psutil

    out = []
    for p in psutil.process_iter(["cmdline", "status"]):
        try:
            if p.info["status"] != psutil.STATUS_ZOMBIE and token in (p.info["cmdline"] or []):
                out.append(p)
        except psutil.Error:
            pass
    return out
