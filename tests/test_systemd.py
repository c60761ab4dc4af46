"""The systemd user units in systemd/ and socket activation of a real kitplayd.

- ``systemd-analyze verify --user`` must accept the units with nothing on stderr (warnings
  still exit 0, so stderr is what is checked); skipped, with the reason, when
  systemd-analyze cannot run here at all;
- ``systemd-socket-activate -l PATH`` passes its listening socket to ``python -m daemon``
  (LISTEN_FDS=1 as fd 3), exactly as ``kitplayd.socket`` does; the daemon must serve on it
  and never bind a socket of its own;
- the units find the commands where pip, pipx and wheel installs put them: the services' own
  ``ExecStart`` (specifiers expanded as systemd does) run under ``systemd-socket-activate``
  with a bare PATH find a pipx-style ``~/.local/bin``; docs/systemd.md's drop-in step, run as
  written, points the units at a venv, and ``systemd-analyze verify`` reads the drop-ins.
"""

from __future__ import annotations

import configparser
import os
import re
import shlex
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

from tests.helpers import ROOT, installed_command, short_tmpdir, wait_for

UNITS = ROOT / "systemd"
UNIT_NAMES = ("kitplayd.socket", "kitplayd.service", "kitplay-bridge.service")


def exec_start(unit: configparser.ConfigParser, home: Path) -> list[str]:
    """A service's ExecStart as the argv systemd runs: ``%h`` is the home directory, ``$$`` a
    dollar sign (no other specifier or variable is used by the units), quotes as a shell's."""
    line = unit["Service"]["ExecStart"]
    assert "%" not in line.replace("%h", "") and "${" not in line, line
    return shlex.split(line.replace("%h", str(home)).replace("$$", "$"))


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
    assert exec_start(svc, Path("/home/u"))[-1] == 'PATH="/home/u/.local/bin:$PATH" exec kitplayd'
    # Only the daemon's own process is signalled on stop/restart: launched apps survive.
    assert svc["Service"]["KillMode"] == "process"
    before = (UNITS / "kitplayd.service").read_text().split("\nKillMode=process")[0]
    assert "# KillMode=process" in before  # the choice is explained right above it
    assert "kitplayd.socket" in svc["Unit"]["Requires"]
    assert bridge["Unit"]["Requires"] == "kitplayd.service"
    assert bridge["Unit"]["After"] == "kitplayd.service"
    assert exec_start(bridge, Path("/home/u"))[-1].endswith(" exec kitplay-bridge")


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


def _activated(argv: list[str], base: Path, env: dict[str, str]) -> dict[str, object]:
    """Run ``argv`` (a service's command) as kitplayd.socket would start it; its status."""
    passed = base / "activate.sock"
    with open(base / "out.log", "wb") as out:
        proc = subprocess.Popen(["systemd-socket-activate", "-l", str(passed), *argv],
                                env=env, stdout=out, stderr=out, stdin=subprocess.DEVNULL)
    try:
        wait_for(passed.is_socket, 20, "systemd-socket-activate listening")

        def status() -> dict[str, object] | None:
            if proc.poll() is not None:
                raise AssertionError((base / "out.log").read_text())
            try:
                with Client.connect(passed, timeout=30) as c:
                    result: dict[str, object] = c.call("daemon.status")
                    return result
            except DaemonUnreachable:
                return None

        st: dict[str, object] = wait_for(status, 30, "kitplayd answering")
        assert st["pid"] == proc.pid  # sh exec'd kitplayd: systemd's main pid, as Type=notify needs
        return st
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _bare_env(home: Path, base: Path) -> dict[str, str]:
    """The environment of a user manager that knows nothing of kitplay: a system PATH."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home),
            "KITPLAY_STATE_DIR": str(base / "state"), "XDG_RUNTIME_DIR": str(base / "rt"),
            "XDG_DATA_HOME": str(base / "data"), "XDG_CONFIG_HOME": str(base / "cfg")}


@pytest.mark.skipif(shutil.which("systemd-socket-activate") is None,
                    reason="systemd-socket-activate is not installed (Debian package systemd)")
def test_the_units_find_a_pipx_install_in_local_bin() -> None:
    kitplayd = installed_command("kitplayd")
    assert kitplayd, "kitplayd is not installed (pip install -e .)"
    base = short_tmpdir("kpsp")
    home = base / "home"
    try:
        # pipx: ~/.local/bin/kitplayd is a link to the command in pipx's venv.
        (home / ".local" / "bin").mkdir(parents=True)
        (base / "rt").mkdir(mode=0o700)
        env = _bare_env(home, base)
        argv = exec_start(read_unit("kitplayd.service"), home)
        # Without it the unit finds nothing: the check below is not passing by accident.
        r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)
        assert r.returncode == 127 and "kitplayd" in r.stderr
        (home / ".local" / "bin" / "kitplayd").symlink_to(kitplayd)
        st = _activated(argv, base, env)
        assert st["socket"] == str(base / "activate.sock")
        # The bridge's unit finds its command the same way (a stub: no port is opened).
        stub = home / ".local" / "bin" / "kitplay-bridge"
        stub.write_text("#!/bin/sh\necho \"found $0 with PATH=$PATH\"\n")
        stub.chmod(0o755)
        r = subprocess.run(exec_start(read_unit("kitplay-bridge.service"), home), env=env,
                           capture_output=True, text=True, timeout=30, check=True)
        assert r.stdout.startswith(f"found {stub} with PATH={home}/.local/bin:/usr/local/bin")
    finally:
        shutil.rmtree(base, ignore_errors=True)


DOC = (ROOT / "docs" / "systemd.md").read_text()


@pytest.mark.skipif(shutil.which("systemd-socket-activate") is None,
                    reason="systemd-socket-activate is not installed (Debian package systemd)")
def test_the_documented_drop_ins_point_the_units_at_a_venv() -> None:
    m = re.search(r"<!-- systemd: drop-ins -->\n```sh\n(.*?)```", DOC, re.DOTALL)
    assert m, "no drop-ins step in docs/systemd.md"
    kitplayd = installed_command("kitplayd")
    assert kitplayd, "kitplayd is not installed (pip install -e .)"
    base = short_tmpdir("kpsv")
    home = base / "home"
    try:
        venv_bin = base / "venv" / "bin"  # a venv install: neither ~/.local/bin nor PATH
        venv_bin.mkdir(parents=True)
        (venv_bin / "kitplayd").symlink_to(kitplayd)
        (venv_bin / "kitplay-bridge").write_text("#!/bin/sh\nexit 0\n")
        (venv_bin / "kitplay-bridge").chmod(0o755)
        stubs = base / "stubs"  # no user manager here: systemctl records its call
        stubs.mkdir()
        (stubs / "systemctl").write_text(f"#!/bin/sh\necho \"$@\" >> {base}/systemctl.log\n")
        (stubs / "systemctl").chmod(0o755)
        (base / "rt").mkdir(mode=0o700)
        env = _bare_env(home, base)
        shell_env = {**env, "PATH": f"{venv_bin}:{stubs}:{env['PATH']}"}
        r = subprocess.run(["bash", "-e", "-c", m.group(1)], env=shell_env,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert (base / "systemctl.log").read_text() == "--user daemon-reload\n"
        units = home / ".config" / "systemd" / "user"
        for name in UNIT_NAMES:
            shutil.copy(UNITS / name, units / name)
        for name in ("kitplayd", "kitplay-bridge"):  # ExecStart= first clears the unit's own
            drop_in = (units / f"{name}.service.d" / "50-path.conf").read_text()
            assert drop_in == f"[Service]\nExecStart=\nExecStart={venv_bin / name}\n"
        if shutil.which("systemd-analyze"):
            verify_env = {**env, "PATH": os.environ["PATH"]}
            out = subprocess.run(["systemd-analyze", "verify", "--user",
                                  *(str(units / n) for n in UNIT_NAMES)], env=verify_env,
                                 capture_output=True, text=True, timeout=60)
            if out.stderr == "" or "kitplayd" in out.stderr:  # verify runs here
                assert out.returncode == 0 and out.stderr == "", out.stderr
                # It reads the drop-ins: a bad path in one is reported.
                (venv_bin / "kitplayd").unlink()
                bad = subprocess.run(["systemd-analyze", "verify", "--user",
                                      str(units / "kitplayd.service")], env=verify_env,
                                     capture_output=True, text=True, timeout=60)
                assert "is not executable" in bad.stderr, bad.stderr
                (venv_bin / "kitplayd").symlink_to(kitplayd)
        st = _activated([str(venv_bin / "kitplayd")], base, env)
        assert st["pid"]
    finally:
        shutil.rmtree(base, ignore_errors=True)
