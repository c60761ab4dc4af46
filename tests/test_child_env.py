"""No kitplay secret in the environment of anything the daemon starts.

``kitplay-bridge --with-daemon`` runs the daemon in the bridge's process, whose environment may
hold ``KITPLAY_BRIDGE_TOKEN``, the master token. Every child (job monitors, builds, launched
apps, Xpra and its Xvfb) gets the user's environment without it: a child's environment is
readable by its own children, crash reports, and ``xpra info`` (which prints the server's
whole environment to anyone holding the session password).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from kitplay.daemon.childenv import child_environment

from tests.helpers import kill_session_leftovers, short_tmpdir, wait_for, write_app
from tests.test_bridge_main import AllInOne

TOKEN = "tok-" + "s3cr3t" * 8
OTHER = "kitplay-private-" + "z" * 20
# Writes its pid, then waits until the test releases it: the test reads /proc/<pid>/environ.
HOLD = ("import os, pathlib, sys, time\n"
        "d = pathlib.Path(sys.argv[1]); (d / (sys.argv[2] + '.pid')).write_text(str(os.getpid()))\n"
        "while not (d / 'release').exists():\n"
        "    time.sleep(0.02)\n")


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0")
                if "=" in item)


@pytest.fixture
def allinone_with_token() -> Iterator[AllInOne]:
    base = short_tmpdir("kpce")
    a = AllInOne(base)
    a.env.update({"KITPLAY_BRIDGE_TOKEN": TOKEN, "KITPLAY_SOME_FUTURE_SECRET": OTHER,
                  "KP_USER_VAR": "kept"})
    try:
        a.start()
        yield a
    finally:
        (base / "release").touch()
        a.stop()
        kill_session_leftovers(a.state)
        shutil.rmtree(base, ignore_errors=True)


def test_no_child_of_the_bridge_with_daemon_holds_the_token(
        allinone_with_token: AllInOne) -> None:
    a = allinone_with_token
    assert a.token == TOKEN  # the bridge did take its token from the environment
    base = a.base
    write_app(a.workspace, "t.env", build=[["{python}", "hold.py", str(base), "build"]],
              launch=["{python}", "hold.py", str(base), "app"], files={"hold.py": HOLD})
    build = a.ok("POST", "/api/v1/build", {"app": "t.env"})["job"]
    _check_tree(int(wait_for(lambda: _read(base / "build.pid"), 60, "the build step's pid")))
    (base / "release").touch()
    assert a.ok("GET", f"/api/v1/jobs/{build['id']}/wait?timeout_s=60")["job"]["status"] \
        == "succeeded"
    (base / "release").unlink()
    launch = a.ok("POST", "/api/v1/launch", {"app": "t.env", "display": "headless"})["job"]
    _check_tree(int(wait_for(lambda: _read(base / "app.pid"), 60, "the app's pid")))
    (base / "release").touch()
    assert a.ok("GET", f"/api/v1/jobs/{launch['id']}/wait?timeout_s=60")["job"]["status"] \
        == "succeeded"


def _check_tree(pid: int) -> None:
    """The process and its job monitor hold the user's environment, nothing of kitplay's."""
    for p in (pid, psutil.Process(pid).ppid()):
        env = _environ(p)
        assert env.get("KP_USER_VAR") == "kept", p  # the user's environment, otherwise
        text = "\0".join(f"{k}={v}" for k, v in env.items())
        assert TOKEN not in text and OTHER not in text, (p, psutil.Process(p).cmdline())
        # Only what the daemon tells a job's monitor (its fd limit and niceness to restore).
        assert {k for k in env if k.startswith("KITPLAY_")} <= {"KITPLAY_JOB_NOFILE",
                                                               "KITPLAY_JOB_NICE"}


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def test_child_environment_keeps_the_users_and_drops_kitplays() -> None:
    base = {"HOME": "/home/u", "PATH": "/bin", "KITPLAY_BRIDGE_TOKEN": TOKEN,
            "KITPLAY_ANYTHING": "x", "KITPLAY_SOCKET": "/run/k.sock", "NOTIFY_SOCKET": "/n",
            "LISTEN_FDS": "1", "LISTEN_PID": "5"}
    env = child_environment({"XPRA_PASSWORD": "p", "PATH": "/x"}, base=base)
    assert env == {"HOME": "/home/u", "PATH": "/x", "KITPLAY_SOCKET": "/run/k.sock",
                   "XPRA_PASSWORD": "p"}
    os.environ["KITPLAY_BRIDGE_TOKEN"] = TOKEN
    try:
        assert "KITPLAY_BRIDGE_TOKEN" not in child_environment()
    finally:
        del os.environ["KITPLAY_BRIDGE_TOKEN"]
