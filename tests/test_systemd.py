"""The systemd user units in systemd/ and socket activation of a real kitplayd.

- ``systemd-analyze verify --user`` must accept the units with nothing on stderr (warnings
  still exit 0, so stderr is what is checked); skipped, with the reason, when
  systemd-analyze cannot run here at all;
- ``systemd-socket-activate -l PATH`` passes its listening socket to ``python -m daemon``
  (LISTEN_FDS=1 as fd 3), exactly as ``kitplayd.socket`` does; the daemon must serve on it
  and never bind a socket of its own.
"""

from __future__ import annotations

import configparser
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from kitplay.daemon.protocol.client import Client
from kitplay.daemon.protocol.errors import DaemonUnreachable

from tests.helpers import ROOT, short_tmpdir, wait_for

UNITS = ROOT / "systemd"
UNIT_NAMES = ("kitplayd.socket", "kitplayd.service", "kitplay-bridge.service")


def read_unit(name: str) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read(UNITS / name)
    return cp


@pytest.fixture
def runtime_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="kpsd"))
    d.chmod(0o700)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def analyze(runtime: Path, *units: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", "verify", "--user", *map(str, units)],
                          env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)},
                          capture_output=True, text=True, timeout=60)


def test_units_pass_systemd_analyze_verify(runtime_dir: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    probe = runtime_dir / "kitplay-probe.service"
    probe.write_text("[Service]\nType=oneshot\nExecStart=/bin/true\n")
    ran = analyze(runtime_dir, probe)
    if ran.returncode != 0 or ran.stderr:
        pytest.skip(f"systemd-analyze cannot verify units here: {ran.stderr.strip()}")
    out = analyze(runtime_dir, *(UNITS / n for n in UNIT_NAMES))
    assert out.returncode == 0 and out.stderr == "", out.stderr
    # The check is real: a broken unit is reported on stderr.
    broken = runtime_dir / "kitplayd.service"
    broken.write_text((UNITS / "kitplayd.service").read_text()
                      .replace("KillMode=process", "KillMode=bogus"))
    shutil.copy(UNITS / "kitplayd.socket", runtime_dir)
    bad = analyze(runtime_dir, runtime_dir / "kitplayd.socket", broken)
    assert "kill mode" in bad.stderr.lower()


def test_units_socket_activation_and_launched_apps_survive_restarts() -> None:
    sock, svc, bridge = (read_unit(n) for n in UNIT_NAMES)
    # The socket is the daemon's default path ($XDG_RUNTIME_DIR/kitplay/kitplayd.sock).
    assert sock["Socket"]["ListenStream"] == "%t/kitplay/kitplayd.sock"
    assert sock["Socket"]["SocketMode"] == "0600" and sock["Socket"]["DirectoryMode"] == "0700"
    assert sock["Socket"]["Service"] == "kitplayd.service"
    assert svc["Service"]["Type"] == "notify"
    assert svc["Service"]["ExecStart"].split()[-1] == "kitplayd"
    # Only the daemon's own process is signalled on stop/restart: launched apps survive.
    assert svc["Service"]["KillMode"] == "process"
    before = (UNITS / "kitplayd.service").read_text().split("\nKillMode=process")[0]
    assert "# KillMode=process" in before  # the choice is explained right above it
    assert "kitplayd.socket" in svc["Unit"]["Requires"]
    assert bridge["Unit"]["Requires"] == "kitplayd.service"
    assert bridge["Unit"]["After"] == "kitplayd.service"
    assert bridge["Service"]["ExecStart"].split()[-1] == "kitplay-bridge"


@pytest.mark.skipif(shutil.which("systemd-socket-activate") is None,
                    reason="systemd-socket-activate is not installed (Debian package systemd)")
def test_daemon_serves_on_the_socket_systemd_passes() -> None:
    base = short_tmpdir("kpsa")
    passed, own = base / "activate.sock", base / "own.sock"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("KITPLAY_SOCKET", None)
    with open(base / "out.log", "wb") as out:
        proc = subprocess.Popen(
            ["systemd-socket-activate", "-l", str(passed), sys.executable, "-m", "kitplay.daemon",
             "--socket", str(own), "--state-dir", str(base / "state"),
             "--workspace", str(base / "ws")],
            env=env, stdout=out, stderr=out, stdin=subprocess.DEVNULL)
    try:
        wait_for(passed.is_socket, 20, "systemd-socket-activate listening")
        assert not (base / "state").exists()  # started on the first connection, not before

        def status() -> dict[str, object] | None:
            try:
                with Client.connect(passed, timeout=30) as c:
                    result: dict[str, object] = c.call("daemon.status")
                    return result
            except DaemonUnreachable:
                return None

        st = wait_for(status, 30, "kitplayd answering on the passed socket")
        assert st["socket"] == str(passed)
        assert st["pid"] == proc.pid  # systemd-socket-activate exec'd the daemon
        assert not own.exists()  # the daemon bound nothing of its own
        with Client.connect(passed) as c:  # a second connection, same daemon
            assert c.call("templates.list")["toolchain"]["kind"] == "builtin"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert passed.is_socket()  # the socket belongs to systemd: the daemon left it alone
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(base, ignore_errors=True)
