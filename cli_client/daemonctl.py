"""``kitplay daemon start`` and ``kitplay daemon stop``.

start: when the systemd user units are installed (docs/systemd.md) and no path is overridden,
hand over to ``systemctl --user start``; otherwise run ``kitplayd`` detached (its own session,
stdin from /dev/null, stdout and stderr appended to ``<state dir>/kitplayd.log``) and wait
for its sd_notify ``READY=1``, the same readiness systemd waits for.

stop: SIGTERM to the pid ``daemon.status`` reports (or ``systemctl --user stop`` when systemd
runs it) and wait until it has gone.  Launched apps keep running; the next daemon re-adopts
them.  Imported only when one of these commands is chosen.
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

__all__ = ["start", "stop"]

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0
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
        r = subprocess.run(["systemctl", "--user", "start", UNIT], check=False)
        if r.returncode != 0:
            _say(f"`systemctl --user start {UNIT}` failed (exit {r.returncode}); see "
                 f"`journalctl --user -u {UNIT}`")
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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (our own child, not reaped yet) has gone for every purpose here
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


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
    deadline = time.monotonic() + STOP_TIMEOUT_S
    delay = 0.01
    while _alive(pid):
        if time.monotonic() > deadline:
            _say(f"kitplayd (pid {pid}) is still running {STOP_TIMEOUT_S:g} s after SIGTERM")
            return 1
        time.sleep(delay)
        delay = min(delay * 2, 0.2)
    _say(f"kitplayd (pid {pid}) stopped; launched apps keep running until a new daemon "
         "re-adopts them")
    return 0
