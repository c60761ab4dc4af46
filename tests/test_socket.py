"""The daemon's Unix socket: permissions, one daemon per socket, stale files, long paths,
SO_PEERCRED, and shutdown on signals.  Every daemon here is a real ``python -m daemon``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.helpers import Daemon, short_tmpdir, wait_for
from tests.rawconn import RawConn

NOBODY = 65534
SYSTEM_PYTHON = Path("/usr/bin/python3")


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def _run_daemon(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a kitplayd that is expected to refuse to start; it must exit on its own."""
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def _argv(socket_path: Path, base: Path) -> list[str]:
    return [sys.executable, "-m", "kitplay.daemon", "--socket", str(socket_path), "--state-dir",
            str(base / "state"), "--workspace", str(base / "ws"), "--config",
            str(base / "none.toml")]


def test_directory_0700_and_socket_0600(daemon: Daemon) -> None:
    assert stat.S_ISSOCK(daemon.socket.lstat().st_mode)
    assert _mode(daemon.socket) == 0o600
    assert _mode(daemon.socket.parent) == 0o700
    assert daemon.socket.stat().st_uid == os.getuid()


def test_existing_loose_directory_is_tightened(make_daemon: type[Daemon]) -> None:
    d = make_daemon()
    d.socket.parent.mkdir(mode=0o755)
    os.chmod(d.socket.parent, 0o755)
    d.start()
    assert _mode(d.socket.parent) == 0o700
    assert _mode(d.socket) == 0o600


def test_second_daemon_on_a_live_socket_refuses(daemon: Daemon) -> None:
    other = short_tmpdir()
    try:
        # Same socket, and once with the same state dir too (what two default starts do).
        for argv in (_argv(daemon.socket, other),
                     [*_argv(daemon.socket, other)[:6], str(daemon.state), "--workspace",
                      str(daemon.workspace)]):
            res = _run_daemon(argv, daemon.env)
            assert res.returncode == 1, res.stderr
            assert "another kitplayd is already listening" in res.stderr
            assert str(daemon.socket) in res.stderr
            assert "stop it first" in res.stderr and "--socket" in res.stderr  # what to do
            assert "Traceback" not in res.stderr
        # The first daemon keeps its socket and keeps serving.
        assert daemon.socket.is_socket()
        status = daemon.call("daemon.status")
        assert status["pid"] == daemon.proc.pid  # type: ignore[union-attr]
    finally:
        import shutil
        shutil.rmtree(other, ignore_errors=True)


def test_stale_socket_file_is_removed(make_daemon: type[Daemon]) -> None:
    d = make_daemon()
    d.socket.parent.mkdir(mode=0o700)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(d.socket))  # a socket file nobody listens on, as a crash leaves it
    stale.close()
    assert d.socket.is_socket()
    with pytest.raises(ConnectionRefusedError):
        RawConn(d.socket)
    d.start()
    assert "removed stale socket" in d.log()
    assert d.call("daemon.status")["socket"] == str(d.socket)


def test_socket_path_over_107_bytes(tmp_path: Path) -> None:
    long_dir = Path("/tmp") / ("k" * 60) / ("p" * 60)
    path = long_dir / "kitplayd.sock"
    assert len(str(path)) > 107
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    res = _run_daemon(_argv(path, tmp_path), env)
    assert res.returncode == 2, res.stderr
    assert f"socket path is {len(str(path))} bytes" in res.stderr
    assert "107-byte limit" in res.stderr
    assert "--socket" in res.stderr and "KITPLAY_SOCKET" in res.stderr  # what to do
    assert "Traceback" not in res.stderr
    assert not long_dir.exists()  # refused before creating anything there


def test_socket_directory_of_another_user_is_refused(make_daemon: type[Daemon]) -> None:
    if os.getuid() != 0:
        pytest.skip("needs root to give the directory to another user")
    d = make_daemon()
    d.socket.parent.mkdir(mode=0o700)
    os.chown(d.socket.parent, NOBODY, NOBODY)
    res = _run_daemon(d.argv(), d.env)
    assert res.returncode == 2, res.stderr
    assert "belongs to another user" in res.stderr and "refusing" in res.stderr
    assert not d.socket.exists()


_PEER_SCRIPT = """
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(20)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print("CONNECT-FAILED", e.errno)
    sys.exit(0)
buf = b""
while True:
    data = s.recv(65536)
    if not data:
        break
    buf += data
sys.stdout.write(buf.decode())
"""


def _as_nobody(sock: Path) -> str:
    res = subprocess.run([str(SYSTEM_PYTHON), "-c", _PEER_SCRIPT, str(sock)], user=NOBODY,
                         group=NOBODY, extra_groups=[], capture_output=True, text=True,
                         timeout=60, cwd="/", env={"PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
    return res.stdout


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to run a client as another uid")
@pytest.mark.skipif(not SYSTEM_PYTHON.exists(), reason="needs /usr/bin/python3")
def test_peer_of_another_uid_is_refused(make_daemon: type[Daemon]) -> None:
    # /tmp may be 0700 here; /dev/shm (1777) lets the other user reach the socket at all.
    daemon = make_daemon(base=Path(tempfile.mkdtemp(prefix="kp", dir="/dev/shm"))).start()
    # As set up, another user cannot even reach the socket (0700 directory).
    assert _as_nobody(daemon.socket).startswith("CONNECT-FAILED 13")  # EACCES
    # Open the file permissions so only SO_PEERCRED stands in the way, then restore them.
    dirs = [daemon.base, daemon.socket.parent]
    try:
        for p in dirs:
            os.chmod(p, 0o711)
        os.chmod(daemon.socket, 0o666)
        out = _as_nobody(daemon.socket)
    finally:
        for p in dirs:
            os.chmod(p, 0o700)
        os.chmod(daemon.socket, 0o600)
    msg = json.loads(out.splitlines()[0])
    assert msg["id"] is None and "result" not in msg
    err = msg["error"]
    assert f"connections from uid {NOBODY} are refused" in err["message"]
    assert f"belongs to uid {os.getuid()}" in err["message"]
    assert "Run your own daemon" in err["message"]  # what to do
    assert len(out.splitlines()) == 1  # then the daemon closed the connection
    assert f"refused a connection from uid {NOBODY}" in daemon.log()
    # The owner is still served.
    assert daemon.call("daemon.status")["pid"] == daemon.proc.pid  # type: ignore[union-attr]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_the_daemon_cleanly(daemon: Daemon, sig: signal.Signals) -> None:
    assert daemon.proc is not None
    with RawConn(daemon.socket) as idle, RawConn(daemon.socket) as busy:
        assert "result" in idle.request("daemon.status")
        # A call in flight when the signal comes: a wait on a job that never ends by itself.
        job = daemon.call("templates.create", {"template": "console_app", "name": "s.app"})
        daemon.wait_job(job["job"]["id"])
        launch = daemon.call("launch", {"app": "s.app", "args": ["--forever"]})["job"]
        busy.send({"jsonrpc": "2.0", "method": "jobs.wait", "id": 1,
                   "params": {"job_id": launch["id"], "timeout_s": 600}})
        wait_for(lambda: daemon.call("jobs.get", [launch["id"]])["job"]["status"] == "running",
                 what="the app to run")
        daemon.proc.send_signal(sig)
        code = daemon.proc.wait(timeout=30)
        assert code == 0, daemon.log()
        assert idle.recv_line() is None  # connections are closed, not left hanging
        busy_lines = []
        while (line := busy.recv_line()) is not None:
            busy_lines.append(line)
        # The wait is answered with an error saying it was cancelled; never a result.
        assert len(busy_lines) == 1
        err = json.loads(busy_lines[0])
        assert err["id"] == 1 and err["error"]["code"] == -32800
        assert "Retry" in err["error"]["message"]
    daemon.proc = None
    assert not daemon.socket.exists()  # removed on the way out
    assert f"received {sig.name}; shutting down" in daemon.log()
    assert "Traceback" not in daemon.log()


def test_socket_in_a_shared_sticky_directory_leaves_it_alone(make_daemon: type[Daemon]) -> None:
    # Like --socket /tmp/kitplayd.sock: the daemon must not tighten /tmp itself.
    d = make_daemon()
    shared = d.base / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    d.socket = shared / "kitplayd.sock"
    d.start()
    assert _mode(shared) == 0o1777
    assert _mode(d.socket) == 0o600
    assert d.call("daemon.status")["socket"] == str(d.socket)
