"""Xpra display sessions against real Xpra (Debian's xpra 3.1.3), a real daemon and real apps.

Each test launches the builtin ``gui_app`` (a Tk window) with ``display: "xpra"``, talks to
the session with Xpra's own client (``xpra id`` / ``xpra info`` over the session's Unix
socket), and checks what is left on the machine afterwards: processes, X sockets, files.
A real second user checks that the socket is the user's alone and that files planted in /tmp
block nothing. Skipped only when xpra is not installed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from kitplay.daemon.procs import is_shim

from tests.helpers import Daemon, create_and_build, wait_for
from tests.local_user import Attacker, attacker_fixture  # noqa: F401

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
    try:
        yield env
    finally:
        shutil.rmtree(home, ignore_errors=True)


def launch_xpra(d: Daemon, *args: str, **params: Any) -> dict[str, Any]:
    """Launch the app in Xpra; return the job record from the ``jobs.state`` notification
    that says its session is ready (Xpra answers on its socket).  An earlier one carried
    the display already, not ready yet: Xpra was starting."""
    starting = None
    with d.client(timeout=60) as c:
        job = c.call("launch", {"app": APP, "display": "xpra", "args": list(args),
                                **params})["job"]
        for note in c.follow(job["id"]):
            rec: dict[str, Any] = note["params"].get("job") or {}
            display = (rec.get("result") or {}).get("display")
            if note["method"] == "jobs.state" and display and not display["ready"]:
                starting = display
            if note["method"] == "jobs.state" and display and display["ready"]:
                assert rec["status"] == "running"
                assert starting is not None and starting["path"] == display["path"]
                wait_for(lambda: "window shown" in d.job_log(job["id"]), 30, "the app's window")
                return rec
    raise AssertionError(f"the session never came up: {rec}\n{d.job_log(job['id'])}")


def session_of(d: Daemon, rec: dict[str, Any]) -> dict[str, Any]:
    """The ``sessions.list`` entry of a launch job, with ``socket``: its Xpra socket."""
    [entry] = [s for s in d.call("sessions.list")["sessions"] if s["job_id"] == rec["id"]]
    return {**entry, "socket": d.socket.parent / "displays" / f"{entry['session']}.sock"}


def x_number(entry: dict[str, Any]) -> int:
    return int(entry["x_display"][1:])


def xpra_client(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["xpra", *args], env=env, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)


def xpra_info(env: dict[str, str], sock: Path) -> dict[str, str]:
    out = xpra_client(env, "info", f"socket://{sock}")
    assert out.returncode == 0, out.stderr
    return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)


def window_titles(env: dict[str, str], sock: Path) -> list[str]:
    info = xpra_info(env, sock)
    return sorted(v for k, v in info.items() if k.startswith("windows.") and
                  k.endswith(".title"))


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


def display_log(d: Daemon, job_id: str) -> str:
    return str(d.call("jobs.logs", {"job_id": job_id, "log": "display"})["data"])


def test_session_is_served_on_a_private_socket_and_cancel_leaves_nothing(
        xd: Daemon, client_env: dict[str, str]) -> None:
    rec = launch_xpra(xd)
    session = session_of(xd, rec)
    sid = session["session"]
    # The job and sessions.list say where the bridge serves it, and nothing else.
    assert rec["result"]["display"] == {"session": sid, "path": f"/display/{sid}/",
                                        "ready": True}
    assert session["path"] == f"/display/{sid}/" and session["app"] == APP
    assert session["since"] >= rec["started_at"]
    n, sock = x_number(session), session["socket"]

    # Xpra listens on a Unix socket of the user's alone (0600 in a 0700 directory), on no
    # TCP port, with no password anywhere.
    st, dst = os.lstat(sock), os.lstat(sock.parent)
    assert stat.S_ISSOCK(st.st_mode) and st.st_uid == os.getuid()
    assert stat.S_IMODE(st.st_mode) == 0o600 and stat.S_IMODE(dst.st_mode) == 0o700
    procs = xpra_tree(rec)
    for p in procs.values():
        assert [c for c in p.net_connections(kind="inet")
                if c.status == psutil.CONN_LISTEN] == [], p.cmdline()
        assert "password" not in " ".join(p.cmdline()).lower()
        assert not any(a.startswith(("--bind-tcp", "--tcp")) for a in p.cmdline())
    assert "XPRA_PASSWORD" not in procs["xpra"].environ()

    # Xpra's own client reaches it there: the app's window, and only it (no stray xmessage
    # from Xpra's default start command).
    wait_for(lambda: window_titles(client_env, sock) == [TITLE], 30,
             "the app's window in xpra info")
    ok = xpra_client(client_env, "id", f"socket://{sock}")
    assert ok.returncode == 0 and f"display={session['x_display']}" in ok.stdout
    app = app_process(rec)
    assert app.environ().get("HOME") == os.environ["HOME"]  # the app keeps the real HOME
    assert app.environ().get("DISPLAY") == session["x_display"]

    # The job's log is the app's output; Xpra's own log is apart.
    log, xlog = xd.job_log(rec["id"]), display_log(xd, rec["id"])
    assert "window shown" in log and "xpra is ready" not in log and "Xvfb" not in log
    assert "xpra is ready" in xlog and "window shown" not in xlog

    done = xd.call("jobs.cancel", {"job_id": rec["id"], "grace_s": 10})["job"]
    assert done["status"] == "cancelled"
    assert "display" not in (done["result"] or {})  # an ended job carries no display
    assert "display" not in (xd.call("jobs.get", [rec["id"]])["job"]["result"] or {})
    assert "received SIGTERM" in xd.job_log(rec["id"])  # the app was stopped gracefully
    assert alive(procs.values()) == []
    assert x_leftovers(n) == []
    assert not os.path.lexists(sock)
    assert not (xd.state / "sessions" / rec["id"]).exists()
    assert xd.call("sessions.list")["sessions"] == []
    assert "xpra is ready" in display_log(xd, rec["id"])  # readable after the end


SECRET = "kp-test-secret-0123456789abcdefghijklmnop"  # a master token's shape, 40 chars


def test_neither_xpra_nor_the_app_gets_a_kitplay_secret(
        make_daemon: type[Daemon], client_env: dict[str, str]) -> None:
    """``xpra info`` prints the server's whole environment to whoever reaches the session:
    what the daemon holds of kitplay's (the bridge's master token) must not be there, nor in
    the app's environment."""
    d = make_daemon(env={"KITPLAY_BRIDGE_TOKEN": SECRET}).start()
    create_and_build(d, "gui_app", APP)
    rec = launch_xpra(d)
    info = xpra_info(client_env, session_of(d, rec)["socket"])
    assert info.get("env.HOME") and info.get("env.DISPLAY")  # its environment is there...
    assert not [k for k, v in info.items() if SECRET in v or "KITPLAY_BRIDGE_TOKEN" in k]
    for p in xpra_tree(rec).values():  # ...and no process of the session holds the secret
        assert SECRET not in " ".join(f"{k}={v}" for k, v in p.environ().items()), p.name()
    d.call("jobs.cancel", {"job_id": rec["id"]})


def test_another_user_cannot_reach_the_session_socket(xd: Daemon,
                                                      attacker: Attacker) -> None:
    rec = launch_xpra(xd)
    sock = session_of(xd, rec)["socket"]
    probe = ("import socket, sys\ns = socket.socket(socket.AF_UNIX)\n"
             "try:\n    s.connect(sys.argv[1])\nexcept OSError as e:\n"
             "    print(type(e).__name__)\nelse:\n    print('connected')\n")
    r = attacker.run("/usr/bin/python3", "-c", probe, str(sock))
    assert r.stdout.strip() == "PermissionError", (r.stdout, r.stderr)
    with socket.socket(socket.AF_UNIX) as s:  # the user connects
        s.connect(str(sock))
    xd.call("jobs.cancel", {"job_id": rec["id"]})


def test_two_sessions_get_their_own_display_and_socket(xd: Daemon) -> None:
    first = xd.call("launch", {"app": APP, "display": "xpra"})["job"]
    second = launch_xpra(xd)
    first = wait_for(lambda: (r := xd.call("jobs.get", [first["id"]])["job"]) and
                     ((r["result"] or {}).get("display") or {}).get("ready") and r, 60,
                     "the first session")
    a, b = session_of(xd, first), session_of(xd, second)
    assert a["session"] != b["session"] and a["x_display"] != b["x_display"]
    assert a["socket"] != b["socket"] and a["socket"].exists() and b["socket"].exists()
    assert {s["job_id"] for s in xd.call("sessions.list")["sessions"]} == {
        first["id"], second["id"]}
    for rec in (first, second):
        assert xd.call("jobs.cancel", {"job_id": rec["id"]})["job"]["status"] == "cancelled"
    assert x_leftovers(x_number(a)) == x_leftovers(x_number(b)) == []


def test_app_exit_code_drives_the_restart_policy(xd: Daemon) -> None:
    """Xpra exits 0 whatever its child did; the job still sees the app's own code."""
    job = xd.call("launch", {"app": APP, "display": "xpra", "restart": "on-failure",
                             "max_restarts": 1,
                             "args": ["--exit-after", "0", "--exit-code", "3"]})["job"]
    done = xd.wait_job(job["id"])
    assert done["status"] == "failed" and done["exit_code"] == 3 and done["restarts"] == 1
    assert "display" not in (done["result"] or {})
    assert "exited with code 3; restart 1/1" in xd.job_log(job["id"])
    assert xd.call("sessions.list")["sessions"] == []
    assert list((xd.state / "sessions").iterdir()) == []
    assert list((xd.socket.parent / "displays").iterdir()) == []


def test_killed_xpra_server_leaves_no_xvfb_and_no_x_socket(xd: Daemon) -> None:
    rec = launch_xpra(xd)
    session = session_of(xd, rec)
    procs = xpra_tree(rec)
    procs["xpra"].send_signal(signal.SIGKILL)  # Xvfb and the app lose their parent
    done = xd.wait_job(rec["id"])
    assert done["status"] == "failed"
    assert "display" not in (done["result"] or {})
    assert alive(procs.values()) == []  # Xvfb, orphaned, stayed in the monitor's tree
    assert x_leftovers(x_number(session)) == []
    assert not os.path.lexists(session["socket"])  # Xpra had no time to remove it


def test_daemon_sigkill_keeps_app_and_session_then_readopts(
        xd: Daemon, client_env: dict[str, str]) -> None:
    plain = xd.call("launch", {"app": APP, "display": "headless"})["job"]
    wait_for(lambda: "running headless" in xd.job_log(plain["id"]), what="headless app up")
    rec = launch_xpra(xd)
    session = session_of(xd, rec)
    sizes = {j: xd.call("jobs.get", [j])["job"]["log_size"] for j in (plain["id"], rec["id"])}
    logs = {j: xd.job_log(j) for j in sizes}
    headless = tree(xd.call("jobs.get", [plain["id"]])["job"]["pid"])
    assert set(headless) == {"monitor", "app"}
    procs = [*xpra_tree(rec).values(), *headless.values()]

    xd.kill9()
    assert len(alive(procs)) == len(procs)  # nothing died with the daemon
    assert window_titles(client_env, session["socket"]) == [TITLE]
    xd.start()

    for job_id, size in sizes.items():
        after = xd.call("jobs.get", [job_id])["job"]
        assert after["status"] == "running"
        assert after["log_size"] >= size
        assert xd.job_log(job_id).startswith(logs[job_id])  # same bytes at the same offsets
        tail = xd.call("jobs.logs", {"job_id": job_id, "offset": size})
        assert tail["offset"] == size and not tail["eof"]
    assert xd.call("jobs.get", [rec["id"]])["job"]["result"]["display"] == \
        rec["result"]["display"]
    assert session_of(xd, rec)["session"] == session["session"]
    assert window_titles(client_env, session["socket"]) == [TITLE]
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
        assert "display" not in (done["result"] or {})
    assert alive(procs) == []
    assert x_leftovers(x_number(session)) == []
    assert xd.call("sessions.list")["sessions"] == []


def test_a_session_still_starting_when_the_daemon_died_is_ready_after_its_restart(
        xd: Daemon) -> None:
    job = xd.call("launch", {"app": APP, "display": "xpra"})["job"]
    starting = wait_for(lambda: ((xd.call("jobs.get", [job["id"]])["job"]["result"] or {})
                                 .get("display")), 60, "the display, starting")
    assert starting["ready"] is False
    # Xpra is held still (SIGSTOP) while the daemon dies and a new one adopts the job.
    xpra = wait_for(lambda: tree(xd.call("jobs.get", [job["id"]])["job"]["pid"]).get("xpra"),
                    30, "the xpra process")
    xpra.send_signal(signal.SIGSTOP)
    try:
        xd.kill9()
        record = json.loads((xd.state / "sessions" / f"{job['id']}.json").read_text())
        assert record["since"] is None  # it was still starting
        xd.start()
        assert xd.call("jobs.get", [job["id"]])["job"]["result"]["display"]["ready"] is False
    finally:
        xpra.send_signal(signal.SIGCONT)
    ready = wait_for(lambda: (d := xd.call("jobs.get", [job["id"]])["job"]["result"]
                              ["display"])["ready"] and d, 60, "the session ready")
    assert ready["path"] == starting["path"]
    marker = xd.socket.parent / "displays" / f"{ready['session']}.starting"
    assert not marker.exists()
    assert [s["session"] for s in xd.call("sessions.list")["sessions"]] == [ready["session"]]
    assert xd.call("jobs.cancel", {"job_id": job["id"]})["job"]["status"] == "cancelled"


def test_session_killed_while_daemon_is_down_becomes_interrupted_and_is_cleaned(
        xd: Daemon) -> None:
    rec = launch_xpra(xd)
    session = session_of(xd, rec)
    n = x_number(session)
    procs = xpra_tree(rec)
    xd.kill9()
    # Everything dies without a word except Xvfb (its own session), which is orphaned.
    victims = [p for role, p in procs.items() if role != "xvfb"]
    for p in victims:
        p.send_signal(signal.SIGKILL)
    psutil.wait_procs(victims, timeout=10)
    assert alive(procs.values()) == [procs["xvfb"]]
    procs["xvfb"].send_signal(signal.SIGKILL)  # and then it dies too, leaving its X socket
    psutil.wait_procs([procs["xvfb"]], timeout=10)
    assert x_leftovers(n) != []
    xd.start()
    done = xd.wait_job(rec["id"])
    assert done["status"] == "interrupted", done
    assert "no exit status" in done["error"]["message"]
    assert "display" not in (done["result"] or {})
    # The restarted daemon removed the dead X server's socket and the session's files.
    sdir = xd.state / "sessions" / rec["id"]
    wait_for(lambda: x_leftovers(n) == [] and not sdir.exists() and
             not os.path.lexists(session["socket"]), 20, "session leftovers gone")
    assert xd.call("sessions.list")["sessions"] == []


PLANTED = r"""
import json, os, subprocess, sys
from tests.helpers import Daemon, create_and_build, wait_for
attacker = sys.argv[1:3]
setpriv = ["setpriv", f"--reuid={attacker[0]}", f"--regid={attacker[1]}", "--clear-groups"]
HOLD = '''
import os, socket, sys
held = {}
for n in range(10):  # X displays 0-9 bound (Linux's abstract X sockets), as live X servers do
    s = socket.socket(socket.AF_UNIX)
    try:  # (abstract sockets are the machine's: other X servers may hold some already)
        s.bind(f"\\0/tmp/.X11-unix/X{n}")
    except OSError:
        continue
    s.listen(1)
    held[n] = s
for n in range(900):  # 900 lock files naming this live process
    with open(f"/tmp/.X{n}-lock", "x") as f:
        f.write("%10d\\n" % os.getpid())
os.mkdir(f"/tmp/.kitplay-x11-{sys.argv[1]}", 0o777)  # where older kitplays reserved displays
print(*held, flush=True)
sys.stdin.read()
'''
holder = subprocess.Popen([*setpriv, "/usr/bin/python3", "-c", HOLD, str(os.getuid())],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE)
held = [int(n) for n in holder.stdout.readline().split()]
d = Daemon().start()
try:
    create_and_build(d, "gui_app", "my_company.window")
    job = d.call("launch", {"app": "my_company.window", "display": "xpra"})["job"]
    sessions = wait_for(lambda: d.call("sessions.list")["sessions"] or
                        d.call("jobs.get", [job["id"]])["job"]["status"] != "running", 90,
                        "the session")
    shown = wait_for(lambda: "window shown" in d.job_log(job["id"]), 30, "the window")
    done = d.call("jobs.cancel", {"job_id": job["id"]})["job"]
    print(json.dumps({"sessions": sessions, "status": done["status"], "shown": shown,
                      "held": held}))
finally:
    d.cleanup()
    holder.stdin.close()
    holder.wait()
"""


def test_displays_and_files_another_user_holds_in_tmp_block_nothing(
        attacker: Attacker) -> None:
    """In a /tmp of its own (a mount namespace): another user holds X displays (those of
    0-9 no X server holds), has planted 900 X lock files naming a live process of theirs,
    and made the directory older kitplays reserved displays in.  Xvfb picks a display it
    can bind (with -displayfd it reads no lock file), and the launch shows its window."""
    from tests.test_local_users import _in_private_tmp

    r = _in_private_tmp(PLANTED, str(attacker.uid), str(attacker.gid))
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.splitlines()[-1])
    assert out["shown"] and out["status"] == "cancelled", out
    [session] = out["sessions"]
    assert out["held"] and int(session["x_display"][1:]) not in out["held"], out


FAILING_XVFB = """#!/bin/sh
echo "Fatal server error:" >&2
echo "(EE) kitplay test: no screens found" >&2
exit 1
"""


def test_a_display_that_cannot_start_fails_naming_the_cause(make_daemon: type[Daemon],
                                                            tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "Xvfb").write_text(FAILING_XVFB)
    (bin_dir / "Xvfb").chmod(0o755)
    d = make_daemon(env={"PATH": f"{bin_dir}:{os.environ['PATH']}"}).start()
    create_and_build(d, "gui_app", APP)
    job = d.call("launch", {"app": APP, "display": "xpra"})["job"]
    done = d.wait_job(job["id"])
    assert done["status"] == "failed", done
    message = done["error"]["message"]
    assert "display could not start" in message and "no screens found" in message, message
    assert "display" not in (done["result"] or {})
    assert d.call("sessions.list")["sessions"] == []
    assert "no screens found" in display_log(d, job["id"])
