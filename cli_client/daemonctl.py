"""``kitplay daemon start``, ``stop``, ``restart`` and ``logs``.

start: when the systemd user units are installed (docs/systemd.md) and no path is overridden,
hand over to ``systemctl --user start``; otherwise run ``kitplayd`` detached (its own session,
stdin from /dev/null, stdout and stderr appended to ``<state dir>/kitplayd.log``) and wait
for its sd_notify ``READY=1``, the same readiness systemd waits for.

stop: SIGTERM to the pid ``daemon.status`` reports (or ``systemctl --user stop`` when systemd
runs it), then wait until the process is gone: exited and reaped, so ``ps`` no longer lists it
(a daemon started by ``daemon start`` is reaped by init, which may take a moment).  Launched
apps keep running; the next daemon re-adopts them.

restart: stop, then start with the running daemon's workspace and state directory
(``systemctl --user restart`` when systemd runs it).

logs: the daemon's own log: ``<state dir>/kitplayd.log`` (where ``daemon start`` sends it), or
``journalctl --user -u kitplayd.service`` when systemd runs it.

Imported only when one of these commands is chosen.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kitplay.daemon.protocol.client import Client
from kitplay.daemon.protocol.errors import DaemonUnreachable, KitplayError
from kitplay.daemon.protocol.paths import default_socket_path, default_state_dir

__all__ = ["logs", "restart", "start", "stop"]

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0
# A daemon that exited but was not reaped yet (a zombie: its parent, often init, has not
# collected it) is waited for this long, then reported as exited.
REAP_WAIT_S = 10.0
UNIT = "kitplayd.service"


def _running(sock: Path) -> dict[str, Any] | None:
    try:
        with Client.connect(sock, timeout=5) as c:
            status: dict[str, Any] = c.call("daemon.status")
            return status
    except (DaemonUnreachable, OSError):
        return None


def _systemd_units() -> bool:
    if shutil.which("systemctl") is None:
        return False
    r = subprocess.run(["systemctl", "--user", "cat", UNIT], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return r.returncode == 0


def _say(text: str) -> None:
    print(f"kitplay: {text}", file=sys.stderr)


def _systemctl(verb: str) -> bool:
    """``systemctl --user VERB kitplayd.service``; on failure, say so and where its log is."""
    r = subprocess.run(["systemctl", "--user", verb, UNIT], check=False)
    if r.returncode != 0:
        _say(f"`systemctl --user {verb} {UNIT}` failed (exit {r.returncode}); see "
             f"`journalctl --user -u {UNIT}`")
    return r.returncode == 0


def start(ns: argparse.Namespace) -> int:
    sock = Path(ns.socket) if ns.socket else default_socket_path()
    status = _running(sock)
    if status is not None:
        _say(f"kitplayd is already running (pid {status['pid']}, socket {sock})")
        return 0
    # The units run kitplayd with the default paths: a path chosen here is for a daemon of
    # our own.
    overridden = (ns.socket or ns.state_dir or ns.workspace
                  or os.environ.get("KITPLAY_SOCKET") or os.environ.get("KITPLAY_STATE_DIR"))
    if not overridden and _systemd_units():
        if not _systemctl("start"):
            return 3
        _say(f"started {UNIT} (systemd); logs: `journalctl --user -u {UNIT}`")
        return 0
    state = Path(ns.state_dir) if ns.state_dir else default_state_dir()
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    log_path = state / "kitplayd.log"
    argv = [sys.executable, "-m", "kitplay.daemon"]
    if ns.socket:
        argv += ["--socket", str(ns.socket)]
    if ns.state_dir:
        argv += ["--state-dir", str(ns.state_dir)]
    if ns.workspace:
        argv += ["--workspace", os.path.abspath(os.path.expanduser(ns.workspace))]
    with tempfile.TemporaryDirectory(prefix="kitplay-start-") as tmp, \
            socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(Path(tmp) / "notify"))
        env = {**os.environ, "NOTIFY_SOCKET": str(Path(tmp) / "notify")}
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=fd, stderr=fd,
                                    env=env, start_new_session=True, close_fds=True)
        finally:
            os.close(fd)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            notify.settimeout(0.2)
            try:
                if b"READY=1" in notify.recv(4096):
                    break
            except TimeoutError:
                pass
            code = proc.poll()
            if code is not None or time.monotonic() > deadline:
                if code is None:
                    proc.terminate()
                    _say(f"kitplayd did not report ready within {READY_TIMEOUT_S:g} s (stopped "
                         f"it); the end of {log_path}:")
                else:
                    # Another start won the socket meanwhile (an editor, a second terminal):
                    # a daemon serves, which is what was asked for.
                    status = _running(sock)
                    if status is not None:
                        _say(f"kitplayd is already running (pid {status['pid']}, socket "
                             f"{sock}; started meanwhile by another command)")
                        return 0
                    _say(f"kitplayd did not start (exit {code}); the end of {log_path}:")
                lines = log_path.read_text(errors="replace").splitlines()[-10:]
                print("\n".join(lines), file=sys.stderr)
                return 3
    _say(f"kitplayd started (pid {proc.pid}, socket {sock}); log: {log_path}")
    return 0


def _systemd_runs(pid: int) -> bool:
    try:
        return UNIT in Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return False


def _stat(pid: int) -> tuple[str, str] | None:
    """(state letter, start time in clock ticks) of ``pid``, or None when there is none."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[0], fields[19]
    except (OSError, IndexError):
        return None


def _wait_gone(pid: int, deadline: float) -> str:
    """Wait until ``pid`` is gone from the process table: "gone", "zombie" (it exited but its
    parent has not reaped it within REAP_WAIT_S), or "running" at the deadline.  The start
    time tells a new process that got the same pid from ours."""
    first = _stat(pid)
    if first is None:
        return "gone"
    exited_at = None
    delay = 0.01
    while True:
        now = _stat(pid)
        if now is None or now[1] != first[1]:
            return "gone"
        if now[0] in ("Z", "X"):
            exited_at = exited_at or time.monotonic()
            if time.monotonic() - exited_at > REAP_WAIT_S:
                return "zombie"
        elif time.monotonic() > deadline:
            return "running"
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def stop(ns: argparse.Namespace) -> int:
    sock = Path(ns.socket) if ns.socket else default_socket_path()
    status = _running(sock)
    if status is None:
        _say(f"no kitplayd is running on {sock}")
        return 0
    pid = int(status["pid"])
    if _systemd_runs(pid) and shutil.which("systemctl"):
        r = subprocess.run(["systemctl", "--user", "stop", UNIT], check=False)
        if r.returncode != 0:
            return 3
        _say(f"stopped {UNIT}; kitplayd.socket still starts it on the next call "
             "(`systemctl --user stop kitplayd.socket` stops that too)")
        return 0
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    except PermissionError as e:
        raise KitplayError(f"cannot signal kitplayd (pid {pid}): {e}") from None
    how = _wait_gone(pid, time.monotonic() + STOP_TIMEOUT_S)
    if how == "running":
        _say(f"kitplayd (pid {pid}) is still running {STOP_TIMEOUT_S:g} s after SIGTERM")
        return 1
    if how == "zombie":
        _say(f"kitplayd (pid {pid}) exited; its parent has not reaped it yet, so ps still "
             "lists it as <defunct>")
    _say(f"kitplayd (pid {pid}) stopped; launched apps keep running until a new daemon "
         "re-adopts them")
    return 0


def restart(ns: argparse.Namespace) -> int:
    sock = Path(ns.socket) if ns.socket else default_socket_path()
    status = _running(sock)
    if status is None:
        _say(f"no kitplayd was running on {sock}; starting one")
        return start(ns)
    pid = int(status["pid"])
    if _systemd_runs(pid) and shutil.which("systemctl"):
        if not _systemctl("restart"):
            return 3
        _say(f"restarted {UNIT} (systemd)")
        return 0
    code = stop(ns)
    if code != 0:
        return code
    # The same daemon again: its workspace and state directory unless told otherwise.
    ns.workspace = ns.workspace or status.get("workspace")
    ns.state_dir = ns.state_dir or status.get("state_dir")
    return start(ns)


def logs(ns: argparse.Namespace) -> int:
    sock = Path(ns.socket) if ns.socket else default_socket_path()
    status = _running(sock)
    if status is not None and _systemd_runs(int(status["pid"])) and shutil.which("journalctl"):
        argv = ["journalctl", "--user", "-u", UNIT, "--no-pager"]
        if ns.tail is not None:
            argv += ["-n", str(ns.tail)]
        if ns.follow:
            argv.append("-f")
        try:
            return subprocess.run(argv, check=False).returncode
        except KeyboardInterrupt:
            return 130
    state = Path(ns.state_dir or (status or {}).get("state_dir") or default_state_dir())
    path = state / "kitplayd.log"
    try:
        f = open(path, "rb")  # read to its end, then followed
    except FileNotFoundError:
        _say(f"no log at {path}: kitplayd writes it when `kitplay daemon start` starts it "
             "(a kitplayd started in a terminal logs to that terminal; under systemd, see "
             f"`journalctl --user -u {UNIT}`)")
        return 4
    with f:
        data = f.read()
        if ns.tail is not None:
            lines = data.splitlines(keepends=True)
            data = b"".join(lines[len(lines) - ns.tail:]) if ns.tail else b""
        out = sys.stdout.buffer
        try:
            out.write(data)
            out.flush()
            while ns.follow:  # as `tail -f`: new bytes as they come, until Ctrl-C
                more = f.read()
                if more:
                    out.write(more)
                    out.flush()
                else:
                    time.sleep(0.2)
        except KeyboardInterrupt:
            return 130
        except BrokenPipeError:
            return 0
    return 0
