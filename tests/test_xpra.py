"""Xpra display sessions against real Xpra (Debian's xpra 3.1.3), a real daemon and real apps.

Each test launches the builtin ``gui_app`` (a Tk window) with ``display: "xpra"``, talks to
the session with Xpra's own client (``xpra id`` / ``xpra info`` over TCP) and HTTP, and
checks what is left on the machine afterwards: processes, X lock files, sockets.
Skipped only when xpra is not installed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psutil
import pytest
from kitplay.daemon.procs import is_shim

from tests.helpers import Daemon, create_and_build, wait_for

pytestmark = [
    pytest.mark.xpra,
    pytest.mark.skipif(shutil.which("xpra") is None,
                       reason="xpra is not installed (sudo apt-get install xpra)"),
]

APP = "my_company.window"
TITLE = "Tk GUI App"  # the gui_app template's default display name = its window title


@pytest.fixture
def xd(make_daemon: type[Daemon]) -> Daemon:
    """A daemon with a built gui_app."""
    d = make_daemon().start()
    create_and_build(d, "gui_app", APP)
    return d


@pytest.fixture
def client_env() -> Iterator[dict[str, str]]:
    """An environment for Xpra's command-line client (it writes into HOME)."""
    home = Path(tempfile.mkdtemp(prefix="kpxc"))
    run = home / "run"
    run.mkdir(mode=0o700)
    env = {**os.environ, "HOME": str(home), "XDG_RUNTIME_DIR": str(run)}
    env.pop("XPRA_PASSWORD", None)
    try:
        yield env
    finally:
        shutil.rmtree(home, ignore_errors=True)


def launch_xpra(d: Daemon, *args: str, **params: Any) -> dict[str, Any]:
    """Launch the app in Xpra; return the job record from the ``jobs.state`` notification
    that carries the session's URL (the daemon sends it once ``GET /`` answers 200)."""
    with d.client(timeout=60) as c:
        job = c.call("launch", {"app": APP, "display": "xpra", "args": list(args),
                                **params})["job"]
        for note in c.follow(job["id"]):
            rec: dict[str, Any] = note["params"].get("job") or {}
            if note["method"] == "jobs.state" and (rec.get("result") or {}).get("url"):
                assert rec["status"] == "running"
                wait_for(lambda: "window shown" in d.job_log(job["id"]), 30, "the app's window")
                return rec
    raise AssertionError(f"the session never got a URL: {rec}\n{d.job_log(job['id'])}")


def session_of(rec: dict[str, Any]) -> tuple[int, int, str]:
    """(display number, port, password) of a launch job's session."""
    url = urlsplit(rec["result"]["url"])
    assert url.hostname == "127.0.0.1" and url.path == "/"
    password = parse_qs(url.query)["password"][0]
    return int(rec["result"]["display"][1:]), int(url.port or 0), password


def http_status(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as r:
        return int(r.status)


def xpra_client(env: dict[str, str], *args: str, password: str | None = None
                ) -> subprocess.CompletedProcess[str]:
    if password is not None:
        env = {**env, "XPRA_PASSWORD": password}
    return subprocess.run(["xpra", *args], env=env, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)


def window_titles(env: dict[str, str], port: int, password: str) -> list[str]:
    out = xpra_client(env, "info", f"tcp://127.0.0.1:{port}/", password=password)
    return sorted(line.split("=", 1)[1] for line in out.stdout.splitlines()
                  if line.startswith("windows.") and line.split("=", 1)[0].endswith(".title"))


def _role(p: psutil.Process) -> str | None:
    try:
        cmd, name = p.cmdline(), p.name()
    except psutil.Error:
        return None
    if is_shim(cmd):
        return "monitor"
    if cmd[1:3] == ["/usr/bin/xpra", "start"]:
        return "xpra"
    if name.startswith("Xvfb"):
        return "xvfb"
    if cmd[:1] == ["sh"] and cmd[1:2] and cmd[1].endswith("/app.sh"):
        return "wrapper"
    if cmd[:2] == [sys.executable, "app.py"]:
        return "app"
    return None


def tree(pid: int) -> dict[str, psutil.Process]:
    """A launch job's long-lived processes by role: monitor, xpra, xvfb, wrapper, app.

    (Xpra runs short helper commands too; those come and go and are left out.)
    """
    root = psutil.Process(pid)
    out = {}
    for p in [root, *root.children(recursive=True)]:
        role = _role(p)
        if role is not None:
            out[role] = p
    return out


def xpra_tree(rec: dict[str, Any]) -> dict[str, psutil.Process]:
    procs = tree(rec["pid"])
    assert set(procs) == {"monitor", "xpra", "xvfb", "wrapper", "app"}, procs
    return procs


def alive(procs: Iterable[psutil.Process]) -> list[psutil.Process]:
    return [p for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def app_process(rec: dict[str, Any]) -> psutil.Process:
    """The app itself (``python app.py ...``) in a launch job's process tree."""
    return tree(rec["pid"])["app"]


def x_leftovers(n: int) -> list[str]:
    return [p for p in (f"/tmp/.X{n}-lock", f"/tmp/.X11-unix/X{n}") if os.path.lexists(p)]


def test_session_serves_the_app_behind_a_password_and_cancel_leaves_nothing(
        xd: Daemon, client_env: dict[str, str]) -> None:
    rec = launch_xpra(xd)
    n, port, password = session_of(rec)
    assert http_status(rec["result"]["url"]) == 200
    assert password not in xd.job_log(rec["id"])
    assert [s["job_id"] for s in xd.call("sessions.list")["sessions"]] == [rec["id"]]
    session = xd.call("sessions.list")["sessions"][0]
    assert session["url"] == rec["result"]["url"] and session["display"] == f":{n}"
    assert session["app"] == APP and session["since"] >= rec["started_at"]

    # The app's window, and only it (no stray xmessage from Xpra's default start command).
    wait_for(lambda: window_titles(client_env, port, password) == [TITLE], 30,
             "the app's window in xpra info")
    # Without the password Xpra refuses the connection; with it, it answers.
    assert xpra_client(client_env, "id", f"tcp://127.0.0.1:{port}/").returncode != 0
    ok = xpra_client(client_env, "id", f"tcp://127.0.0.1:{port}/", password=password)
    assert ok.returncode == 0 and f"display=:{n}" in ok.stdout
    # The password is on no command line, and not in the app's environment.
    procs = xpra_tree(rec).values()
    for p in psutil.process_iter(["cmdline"]):
        assert password not in " ".join(p.info["cmdline"] or ())
    app = app_process(rec)
    assert "XPRA_PASSWORD" not in app.environ()
    assert app.environ().get("HOME") == os.environ["HOME"]  # the app keeps the real HOME
    assert app.environ().get("DISPLAY") == f":{n}"

    done = xd.call("jobs.cancel", {"job_id": rec["id"], "grace_s": 10})["job"]
    assert done["status"] == "cancelled"
    assert "received SIGTERM" in xd.job_log(rec["id"])  # the app was stopped gracefully
    assert alive(procs) == []
    assert x_leftovers(n) == []
    assert not (xd.state / "sessions" / rec["id"]).exists()
    assert xd.call("sessions.list")["sessions"] == []


def test_two_sessions_get_their_own_display_and_port(xd: Daemon) -> None:
    first = xd.call("launch", {"app": APP, "display": "xpra"})["job"]
    second = launch_xpra(xd)
    first = wait_for(lambda: (r := xd.call("jobs.get", [first["id"]])["job"])
                     .get("result") and r, 60, "the first session")
    (n1, p1, pw1), (n2, p2, pw2) = session_of(first), session_of(second)
    assert n1 != n2 and p1 != p2 and pw1 != pw2
    assert http_status(first["result"]["url"]) == http_status(second["result"]["url"]) == 200
    assert {s["job_id"] for s in xd.call("sessions.list")["sessions"]} == {
        first["id"], second["id"]}
    for rec in (first, second):
        assert xd.call("jobs.cancel", {"job_id": rec["id"]})["job"]["status"] == "cancelled"
    assert x_leftovers(n1) == x_leftovers(n2) == []


def test_app_exit_code_drives_the_restart_policy(xd: Daemon) -> None:
    """Xpra exits 0 whatever its child did; the job still sees the app's own code."""
    job = xd.call("launch", {"app": APP, "display": "xpra", "restart": "on-failure",
                             "max_restarts": 1,
                             "args": ["--exit-after", "0", "--exit-code", "3"]})["job"]
    done = xd.wait_job(job["id"])
    assert done["status"] == "failed" and done["exit_code"] == 3 and done["restarts"] == 1
    assert "exited with code 3; restart 1/1" in xd.job_log(job["id"])
    assert xd.call("sessions.list")["sessions"] == []
    assert list((xd.state / "sessions").iterdir()) == []


def test_killed_xpra_server_leaves_no_xvfb_and_no_lock(xd: Daemon) -> None:
    rec = launch_xpra(xd)
    n, _, _ = session_of(rec)
    procs = xpra_tree(rec)
    procs["xpra"].send_signal(signal.SIGKILL)  # Xvfb and the app lose their parent
    done = xd.wait_job(rec["id"])
    assert done["status"] == "failed"
    assert alive(procs.values()) == []  # Xvfb, orphaned, stayed in the monitor's tree
    assert x_leftovers(n) == []


def test_daemon_sigkill_keeps_app_and_session_then_readopts(
        xd: Daemon, client_env: dict[str, str]) -> None:
    plain = xd.call("launch", {"app": APP, "display": "headless"})["job"]
    wait_for(lambda: "running headless" in xd.job_log(plain["id"]), what="headless app up")
    rec = launch_xpra(xd)
    n, port, password = session_of(rec)
    sizes = {j: xd.call("jobs.get", [j])["job"]["log_size"] for j in (plain["id"], rec["id"])}
    logs = {j: xd.job_log(j) for j in sizes}
    headless = tree(xd.call("jobs.get", [plain["id"]])["job"]["pid"])
    assert set(headless) == {"monitor", "app"}
    procs = [*xpra_tree(rec).values(), *headless.values()]

    xd.kill9()
    assert len(alive(procs)) == len(procs)  # nothing died with the daemon
    assert http_status(rec["result"]["url"]) == 200
    xd.start()

    for job_id, size in sizes.items():
        after = xd.call("jobs.get", [job_id])["job"]
        assert after["status"] == "running"
        assert after["log_size"] >= size
        assert xd.job_log(job_id).startswith(logs[job_id])  # same bytes at the same offsets
        tail = xd.call("jobs.logs", {"job_id": job_id, "offset": size})
        assert tail["offset"] == size and not tail["eof"]
    assert [s["job_id"] for s in xd.call("sessions.list")["sessions"]] == [rec["id"]]
    assert window_titles(client_env, port, password) == [TITLE]
    # A graceful stop (SIGTERM, as systemd sends) leaves them running as well.
    assert xd.stop() == 0
    assert len(alive(procs)) == len(procs)
    xd.start()
    assert xd.call("jobs.get", [rec["id"]])["job"]["status"] == "running"
    assert [s["job_id"] for s in xd.call("sessions.list")["sessions"]] == [rec["id"]]

    # Stopping each app now records its real exit status (SIGKILL: 128 + 9).
    for job_id, r in ((plain["id"], None), (rec["id"], rec)):
        target = app_process(r or xd.call("jobs.get", [job_id])["job"])
        target.send_signal(signal.SIGKILL)
        done = xd.wait_job(job_id)
        assert done["status"] == "failed" and done["exit_code"] == 137, done
    assert alive(procs) == []
    assert x_leftovers(n) == []
    assert xd.call("sessions.list")["sessions"] == []


def test_session_killed_while_daemon_is_down_becomes_interrupted_and_is_cleaned(
        xd: Daemon) -> None:
    rec = launch_xpra(xd)
    n, _, _ = session_of(rec)
    procs = xpra_tree(rec)
    xd.kill9()
    # Everything dies without a word except Xvfb (its own session), which is orphaned.
    victims = [p for role, p in procs.items() if role != "xvfb"]
    for p in victims:
        p.send_signal(signal.SIGKILL)
    psutil.wait_procs(victims, timeout=10)
    assert x_leftovers(n) != [] and alive(procs.values()) == [procs["xvfb"]]
    xd.start()
    done = xd.wait_job(rec["id"])
    assert done["status"] == "interrupted", done
    assert "no exit status" in done["error"]["message"]
    # The restarted daemon stopped the orphaned Xvfb and removed its lock and socket.
    sdir = xd.state / "sessions" / rec["id"]
    wait_for(lambda: alive(procs.values()) == [] and x_leftovers(n) == [] and not sdir.exists(),
             20,
             "session leftovers gone")
    assert xd.call("sessions.list")["sessions"] == []
