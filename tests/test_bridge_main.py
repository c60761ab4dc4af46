"""``kitplay-bridge --with-daemon``: the one command that starts it all, and stops it all."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from kitplay.daemon.protocol.client import Client

from tests.bridge_helpers import Bridge
from tests.helpers import (
    ROOT,
    Daemon,
    create_and_build,
    installed_command,
    kill_session_leftovers,
    short_tmpdir,
    wait_for,
)


class AllInOne(Bridge):
    """``python -m bridge --with-daemon`` with its own socket, state dir and workspace."""

    def __init__(self, base: Path) -> None:
        self.base = base
        super().__init__(base / "run" / "kitplayd.sock", config=base / "config.toml")
        (base / "config.toml").write_text("")
        self.state = base / "state"
        self.workspace = base / "ws"

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "kitplay.bridge",
                "--with-daemon", "--socket", str(self.socket),
                "--state-dir", str(self.state), "--workspace", str(self.workspace),
                "--bind", "127.0.0.1:0", "--config", str(self.config)]


@pytest.fixture
def allinone() -> Iterator[AllInOne]:
    base = short_tmpdir("kpb")
    a = AllInOne(base)
    try:
        a.start()
        yield a
    finally:
        a.stop()
        kill_session_leftovers(a.state)
        shutil.rmtree(base, ignore_errors=True)


def test_one_command_starts_daemon_and_bridge(allinone: AllInOne) -> None:
    a = allinone
    # The daemon answers on its socket (the bridge uses that socket too).
    with Client.connect(a.socket) as c:
        status = c.call("daemon.status")
    assert status["pid"] == a.proc.pid  # type: ignore[union-attr]  # one process
    assert status["workspace"] == str(a.workspace)
    # The printed URL signs a page in; `kitplay open` mints another one-time URL.
    r = subprocess.run([sys.executable, "-m", "kitplay.cli_client",
                        "--socket", str(a.socket), "open"],
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.strip().startswith(f"{a.page_url}/#code=")
    assert r.stdout.strip() != a.login_url and a.token not in r.stdout
    with a.page_client() as browser:
        assert browser.get("/").status_code == 200
    session = a.session(r.stdout.strip())
    assert a.get("/api/jobs", headers={"Authorization": f"Bearer {session}"}).status_code == 200
    info = json.loads(a.info_path.read_text())
    assert info["token"] == a.token and info["pid"] == a.proc.pid  # type: ignore[union-attr]
    # The builtin templates work end to end through the bridge.
    job = a.ok("POST", "/api/templates/create",
               {"template": "console_app", "name": "my_company.one"})["job"]
    assert a.ok("GET", f"/api/jobs/{job['id']}/wait?timeout_s=60")["job"]["status"] \
        == "succeeded"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_both_and_cleans_up(allinone: AllInOne, sig: signal.Signals) -> None:
    a = allinone
    proc = a.proc
    assert proc is not None
    with Client.connect(a.socket) as c:
        create_and_build_on(c)
    proc.send_signal(sig)
    wait_for(lambda: proc.poll() is not None, 30, "exit")
    assert proc.returncode == 0, a.stderr()
    assert not a.socket.exists()
    assert not a.info_path.exists()


def create_and_build_on(c: Client) -> None:
    job = c.call("templates.create", {"template": "console_app", "name": "my_company.sig"})
    assert c.call("jobs.wait", {"job_id": job["job"]["id"], "timeout_s": 60})["job"][
        "status"] == "succeeded"


def test_second_daemon_on_the_same_socket_is_refused(allinone: AllInOne) -> None:
    r = subprocess.run(allinone.argv(), env={**os.environ, "PYTHONPATH": str(ROOT)},
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "already listening" in r.stderr and "Traceback" not in r.stderr
    with Client.connect(allinone.socket) as c:  # the first one is unharmed
        assert c.call("daemon.status")["pid"] == allinone.proc.pid  # type: ignore[union-attr]


def test_bridge_alone_beside_a_daemon(daemon: Daemon) -> None:
    create_and_build(daemon, name="my_company.beside")
    b = Bridge(daemon.socket, config=daemon.config).start()
    try:
        apps = b.ok("GET", "/api/apps/list")["apps"]
        assert [x["name"] for x in apps] == ["my_company.beside"]
    finally:
        assert b.stop() == 0
    assert daemon.call("daemon.status")["pid"] == daemon.proc.pid  # type: ignore[union-attr]


def test_daemon_flags_need_with_daemon(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "kitplay.bridge", "--state-dir", str(tmp_path)],
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2 and "--with-daemon" in r.stderr


def test_console_script_is_installed() -> None:
    exe = installed_command("kitplay-bridge")
    assert exe, "pip install -e . installs the kitplay-bridge command"
    r = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "--with-daemon" in r.stdout and "--allow-remote" in r.stdout
