"""Everyday commands and human output of ``kitplay``, run as real processes.

--version, daemon start/stop, --workspace on daemon status, completion scripts checked by the
real shells, a progress bar on a terminal (a real pty) and plain lines when piped, the xpra
session URL, catalogue warnings, cut lists and text, the readable ``templates get``, and
inputs that would be ignored refused with a usage error.
"""

from __future__ import annotations

import os
import pty
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from kitplay.cli_client.main import build_parser, cut
from kitplay.daemon.protocol.version import __version__

from tests.helpers import (
    FIXTURES,
    ROOT,
    Daemon,
    installed_command,
    pid_alive,
    short_tmpdir,
    wait_for,
    write_app,
)


def kitplay(d: Daemon | None, *args: str, env: dict[str, str] | None = None,
            ) -> subprocess.CompletedProcess[str]:
    e = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    if d is not None:
        e["KITPLAY_SOCKET"] = str(d.socket)
    return subprocess.run([sys.executable, "-m", "kitplay.cli_client",
                           *args], env={**e, **(env or {})},
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_version() -> None:
    r = kitplay(None, "--version")
    assert r.returncode == 0 and r.stdout == f"kitplay {__version__} (API 1)\n"


def test_daemon_start_detached_then_stop() -> None:
    base = short_tmpdir()
    sock, state, ws = base / "run" / "d.sock", base / "state", base / "ws"
    ws.mkdir()
    env = {"KITPLAY_SOCKET": str(sock)}
    pid = 0
    try:
        r = kitplay(None, "--state-dir", str(state), "daemon", "start", "--workspace", str(ws),
                    env=env)
        assert r.returncode == 0, r.stderr
        assert "kitplayd started" in r.stderr and str(state / "kitplayd.log") in r.stderr
        status = kitplay(None, "daemon", "status", "--json", env=env)
        pid = int(re.search(r'"pid": (\d+)', status.stdout).group(1))  # type: ignore[union-attr]
        assert os.getsid(pid) == pid  # detached: a session of its own
        assert (state / "kitplayd.log").exists()
        again = kitplay(None, "daemon", "start", env=env)
        assert again.returncode == 0 and "already running" in again.stderr
        r = kitplay(None, "daemon", "stop", env=env)
        assert r.returncode == 0 and f"pid {pid}) stopped" in r.stderr, r.stderr
        assert kitplay(None, "daemon", "status", env=env).returncode == 3
        r = kitplay(None, "daemon", "stop", env=env)
        assert r.returncode == 0 and "no kitplayd is running" in r.stderr
    finally:
        if pid and pid_alive(pid):  # the test failed half-way: stop the daemon it started
            os.kill(pid, signal.SIGTERM)
        shutil.rmtree(base, ignore_errors=True)


def test_daemon_status_takes_workspace(daemon: Daemon, tmp_path: Path) -> None:
    kat = tmp_path / "kat"
    shutil.copytree(FIXTURES / "kit_app_template", kat)
    r = kitplay(daemon, "daemon", "status", "--workspace", str(kat))
    assert r.returncode == 0, r.stderr
    assert f"workspace: {kat}" in r.stdout and "kind=kit-app-template" in r.stdout
    plain = kitplay(daemon, "daemon", "status")
    assert f"workspace: {daemon.workspace}" in plain.stdout and "kind=builtin" in plain.stdout


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts_load_in_their_shell(shell: str, tmp_path: Path) -> None:
    r = kitplay(None, "completion", shell)
    assert r.returncode == 0, r.stderr
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    check = {"bash": ["bash", "-n"], "zsh": ["zsh", "-n"], "fish": ["fish", "--no-execute"]}
    script = tmp_path / f"kitplay.{shell}"
    script.write_text(r.stdout)
    p = subprocess.run([*check[shell], str(script)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


def test_bash_completion_comes_from_the_registry() -> None:
    script = kitplay(None, "completion", "bash").stdout

    def complete(*words: str) -> set[str]:
        quoted = " ".join(f"'{w}'" for w in words)
        text = (script + f"\nCOMP_WORDS=(kitplay {quoted}); COMP_CWORD={len(words)}; "
                "_kitplay; echo \"${COMPREPLY[*]}\"\n")
        return set(subprocess.run(["bash", "-c", text], capture_output=True, text=True,
                                  check=True).stdout.split())

    assert {"templates", "jobs", "build", "launch", "daemon", "completion"} <= complete("")
    assert complete("jobs", "") >= {"list", "get", "cancel", "wait", "logs"}
    assert {"start", "stop", "status"} <= complete("daemon", "")
    assert "--display" in complete("launch", "my.app", "--")
    assert complete("launch", "--display", "") == {"native", "xpra", "headless"}
    assert "--workspace" in complete("daemon", "status", "--")
    # Every flag of every method is offered.
    groups = next(a for a in build_parser()._actions if a.dest == "_cmd").choices
    assert groups is not None
    for word in ("build", "launch"):
        flags = {o for a in groups[word]._actions for o in a.option_strings if o[:2] == "--"}
        assert flags <= complete(word, "--"), word
    assert "--timeout-s" in complete("jobs", "wait", "--")


def _held_build(d: Daemon, tmp: Path, name: str) -> Path:
    """A two-step build whose first step waits for the returned file: while it waits, the
    follower sees step 1 running, however fast it subscribes."""
    release = tmp / f"{name}.release"
    wait = (f"import os, time\nprint('step 1 waiting', flush=True)\n"
            f"while not os.path.exists({str(release)!r}):\n    time.sleep(0.02)\n")
    write_app(d.workspace, f"my_company.{name}", build=[["{python}", "-c", wait],
                                                        ["{python}", "-c", "pass"]])
    return release


def test_progress_bar_on_a_terminal_plain_lines_when_piped(daemon: Daemon,
                                                           tmp_path: Path) -> None:
    env = {**os.environ, "KITPLAY_SOCKET": str(daemon.socket),
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    release = _held_build(daemon, tmp_path, "tty")
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "kitplay.cli_client", "build", "my_company.tty",
                             "--follow"], env=env, stdout=subprocess.DEVNULL, stderr=slave,
                            stdin=subprocess.DEVNULL)
    os.close(slave)
    got = b""
    try:
        while b"1/2 " not in got:  # the bar for step 1 (the step waits for us)
            data = os.read(master, 65536)
            assert data, got
            got += data
        release.touch()
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the terminal's other end closed
                break
            if not data:
                break
            got += data
    finally:
        release.touch()
        os.close(master)
    assert proc.wait(60) == 0, got
    screen = got.decode(errors="replace")
    assert re.search(r"\[#{10}-{10}\] 1/2 ", screen) and "\r\x1b[K" in screen, screen
    assert "kitplay: progress" not in screen

    release = _held_build(daemon, tmp_path, "piped")
    piped = subprocess.Popen([sys.executable, "-m", "kitplay.cli_client",
                              "build", "my_company.piped",
                              "--follow"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    assert piped.stderr is not None
    first = ""
    try:
        while "kitplay: progress [1/2]" not in first:  # step 1 waits until we have seen it
            line = piped.stderr.readline()
            assert line, first
            first += line
    finally:
        release.touch()
    _, err = piped.communicate(timeout=60)
    assert piped.returncode == 0, first + err
    assert "\x1b[" not in first + err and "[#" not in first + err


def test_catalogue_errors_show_as_warnings(daemon: Daemon, tmp_path: Path) -> None:
    kat = tmp_path / "kat"
    shutil.copytree(FIXTURES / "kit_app_template", kat)
    (kat / "templates" / "sample_templates.toml").unlink()
    r = kitplay(daemon, "templates", "list", "--workspace", str(kat))
    assert r.returncode == 0
    assert "kit_base_editor" in r.stdout
    assert re.search(r"kitplay: warning: .*sample_templates.*does not exist", r.stderr), r.stderr


def test_cut_lists_and_text_say_so(daemon: Daemon) -> None:
    write_app(daemon.workspace, "my_company.quick", launch=["{python}", "-c", "pass"])
    ids = [daemon.call("launch", {"app": "my_company.quick", "display": "headless"})["job"]["id"]
           for _ in range(3)]
    for i in ids:
        daemon.wait_job(i)
    r = kitplay(daemon, "jobs", "list", "--limit", "2")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 3  # header + 2
    assert "kitplay: showing 2 of 3 (--limit)" in r.stderr
    assert "showing" not in kitplay(daemon, "jobs", "list", "--limit", "3").stderr
    for flt in (["--kind", "launch"], ["--status", "succeeded"]):  # table / memory counts
        assert "showing 2 of 3 (--limit)" in kitplay(daemon, "jobs", "list", "--limit", "2",
                                                     *flt).stderr
    assert cut("a command-line program that prints", 20) == "a command-line…"
    assert cut("short", 20) == "short"
    listed = kitplay(daemon, "templates", "list").stdout
    assert "…" in listed  # the builtin descriptions are longer than the column


def test_templates_get_is_readable(daemon: Daemon) -> None:
    r = kitplay(daemon, "templates", "get", "console_app")
    assert r.returncode == 0
    assert "name: console_app" in r.stdout and "display name: Console App" in r.stdout
    assert "{" not in r.stdout  # not JSON
    assert kitplay(daemon, "templates", "get", "console_app", "--json").stdout.startswith("{")


def test_inputs_that_would_be_ignored_are_refused(daemon: Daemon) -> None:
    write_app(daemon.workspace, "my_company.quick", launch=["{python}", "-c", "pass"])
    for args, word in (
            (["launch", "my_company.quick", "--dev-bundle"], "--dev-bundle"),
            (["launch", "my_company.quick", "--max-restarts", "2"], "--max-restarts"),
            (["templates", "create", "console_app", "my_company.x", "--display-name", " "],
             "--display-name")):
        r = kitplay(daemon, *args)
        assert r.returncode == 2 and word in r.stderr, (args, r.stderr)
    assert daemon.call("jobs.list")["jobs"] == []  # nothing was started
    ok = kitplay(daemon, "launch", "my_company.quick", "--restart", "on-failure",
                 "--max-restarts", "2", "--display", "headless")
    assert ok.returncode == 0, ok.stderr


@pytest.mark.xpra
@pytest.mark.skipif(shutil.which("xpra") is None, reason="needs xpra")
def test_launch_xpra_prints_the_display_path_and_none_once_ended(daemon: Daemon) -> None:
    job = daemon.call("templates.create", {"template": "gui_app", "name": "my_company.win"})
    daemon.wait_job(job["job"]["id"])
    r = kitplay(daemon, "launch", "my_company.win", "--display", "xpra")
    assert r.returncode == 0, r.stderr
    m = re.search(r"display session: (/display/[A-Za-z0-9_-]{16}/) ", r.stdout)
    assert m, r.stdout
    job_id = r.stdout.split()[1]
    [session] = wait_for(lambda: daemon.call("sessions.list")["sessions"], 30, "the session")
    assert session["path"] == m.group(1)
    r = kitplay(daemon, "sessions", "list")
    assert r.returncode == 0 and m.group(1) in r.stdout and session["x_display"] in r.stdout
    r = kitplay(daemon, "jobs", "get", job_id)
    assert m.group(1) in r.stdout  # running: its display is shown
    r = kitplay(daemon, "jobs", "logs", job_id, "--log", "display")
    assert r.returncode == 0 and "xpra is ready" in r.stdout, r.stderr
    r = kitplay(daemon, "jobs", "logs", job_id, "--log", "display", "--follow")
    assert r.returncode == 2 and "--follow follows a job's own log" in r.stderr
    # Cancelling prints the ended job: no display, no address, no password.
    r = kitplay(daemon, "jobs", "cancel", job_id, "--grace-s", "5")
    assert r.returncode == 0, r.stderr
    assert "cancelled" in r.stdout and "/display/" not in r.stdout + r.stderr
    assert "password" not in r.stdout + r.stderr and "http" not in r.stdout + r.stderr
    r = kitplay(daemon, "jobs", "get", job_id)
    assert "/display/" not in r.stdout
    # --json waits the same way: the record it prints names the session, as text mode does.
    import json

    r = kitplay(daemon, "launch", "my_company.win", "--display", "xpra", "--json")
    assert r.returncode == 0, r.stderr
    job = json.loads(r.stdout)["job"]
    assert job["status"] == "running" and job["result"]["display"]["path"].startswith(
        "/display/"), job
    assert job["id"] in {s["job_id"] for s in daemon.call("sessions.list")["sessions"]}
    daemon.call("jobs.cancel", {"job_id": job["id"], "grace_s": 5})


# -- usage, help and errors ---------------------------------------------------------------------


def test_short_version_flag() -> None:
    assert kitplay(None, "-V").stdout == kitplay(None, "--version").stdout
    assert kitplay(None, "-V").returncode == 0


def test_a_usage_error_shows_the_subcommands_own_usage() -> None:
    r = kitplay(None, "jobs", "list", "--foo")
    assert r.returncode == 2
    assert r.stderr.startswith("usage: kitplay jobs list ")
    assert "kitplay jobs list: error: unrecognized arguments: --foo" in r.stderr
    r = kitplay(None, "launch")
    assert r.returncode == 2 and r.stderr.startswith("usage: kitplay launch ")
    assert "needs APP" in r.stderr
    r = kitplay(None, "jobs", "get", "a", "b")
    assert r.returncode == 2 and r.stderr.startswith("usage: kitplay jobs get ")
    r = kitplay(None, "jobs")
    assert r.returncode == 2 and r.stderr.startswith("usage: kitplay jobs ")


def test_help_is_words_with_defaults() -> None:
    top = kitplay(None, "--help").stdout
    assert "daemon commands" not in top and "rpc commands" not in top
    assert "the daemon itself: status, start, stop, restart, logs" in " ".join(top.split())
    assert "subscribe" not in top
    launch = " ".join(kitplay(None, "launch", "--help").stdout.split())
    assert "Where the app's windows go. Default: native." in launch
    assert "Default: 3." in launch and "Arguments after -- go to the app unchanged" in launch
    jobs = kitplay(None, "jobs", "--help").stdout
    assert "subscribe" not in jobs and "prune" in jobs
    kitplayd = installed_command("kitplayd")
    assert kitplayd
    out = subprocess.run([kitplayd, "--help"], capture_output=True, text=True,
                         check=True).stdout
    assert "`" not in out and "per-user daemon" in out


def test_json_errors_are_one_object_on_stderr(daemon: Daemon, tmp_path: Path) -> None:
    import json

    # The fast path (jobs get) and the parser's (jobs wait), the daemon's errors alike.
    for args in (["jobs", "get", "0nosuchjob"], ["jobs", "wait", "0nosuchjob"]):
        r = kitplay(daemon, *args, "--json")
        assert r.returncode == 4 and r.stdout == "", r
        err = json.loads(r.stderr)["error"]
        assert err["code"] == -32001 and err["data"] == {"job_id": "0nosuchjob"}
        assert r.stderr.count("\n") == 1
    r = kitplay(None, "daemon", "status", "--json",
                env={"KITPLAY_SOCKET": str(tmp_path / "none.sock")})
    assert r.returncode == 3
    assert json.loads(r.stderr)["error"]["code"] == -32099
    r = kitplay(None, "jobs", "list", "--limit", "many", "--json")
    assert r.returncode == 2
    err = json.loads(r.stderr)["error"]
    assert err["code"] == -32602 and "invalid int value" in err["message"]
    assert err["data"]["usage"].startswith("usage: kitplay jobs list")


def test_the_fast_path_answers_as_the_parser_does(daemon: Daemon) -> None:
    """`kitplay daemon status` (and the other FAST commands) skip the parser; a global
    option in front sends the same command through it: both must say the same."""
    from kitplay.cli_client.main import FAST
    from kitplay.daemon.protocol.registry import METHODS

    write_app(daemon.workspace, "t.fast")
    job = daemon.call("launch", {"app": "t.fast", "display": "headless"})["job"]["id"]
    daemon.wait_job(job)
    wait_for(lambda: all(d.get("available") is not None for d in daemon.call(
        "daemon.status")["displays"].values()), 60, "the display check (status changes then)")
    for (group, sub), (method, positional) in FAST.items():
        m = METHODS[method]
        assert m.cli_words == (group, sub)
        assert positional is None or positional in {p.name for p in m.params if p.positional}
        words = [group, sub, *([job] if positional else [])]
        for mode in ([], ["--json"], ["-q"]):
            fast = kitplay(daemon, *words, *mode)
            full = kitplay(daemon, "--reconnect-s", "5", *words, *mode)
            assert fast.returncode == full.returncode == 0, (words, full.stderr)
            if method == "daemon.status":  # uptime moves on
                fast_out = re.sub(r'"?uptime_s"?: [0-9.]+', "", fast.stdout)
                full_out = re.sub(r'"?uptime_s"?: [0-9.]+', "", full.stdout)
            else:
                fast_out, full_out = fast.stdout, full.stdout
            assert fast_out == full_out, (words, mode)
            assert fast.stderr == full.stderr


# -- the daemon's own commands ---------------------------------------------------------------


def test_daemon_restart_logs_and_stop_waits_for_the_process(tmp_path: Path) -> None:
    base = short_tmpdir()
    sock, state, ws = base / "run" / "d.sock", base / "state", base / "ws"
    ws.mkdir()
    env = {"KITPLAY_SOCKET": str(sock), "KITPLAY_STATE_DIR": str(state)}
    pids: list[int] = []

    def status() -> dict[str, object]:
        import json

        r = kitplay(None, "daemon", "status", "--json", env=env)
        assert r.returncode == 0, r.stderr
        st: dict[str, object] = json.loads(r.stdout)
        pids.append(int(st["pid"]))  # type: ignore[call-overload]
        return st

    try:
        r = kitplay(None, "daemon", "restart", "--workspace", str(ws), env=env)
        assert r.returncode == 0 and "no kitplayd was running" in r.stderr, r.stderr
        assert "kitplayd started" in r.stderr
        first = status()
        assert first["workspace"] == str(ws)
        r = kitplay(None, "daemon", "restart", env=env)
        assert r.returncode == 0, r.stderr
        second = status()
        assert second["pid"] != first["pid"] and second["workspace"] == str(ws)
        assert second["state_dir"] == str(state)
        # The first daemon is gone from the process table, not only signalled.
        assert not Path(f"/proc/{first['pid']}").exists()
        r = kitplay(None, "daemon", "logs", "--tail", "2", env=env)
        assert r.returncode == 0 and len(r.stdout.splitlines()) == 2, r
        full = (state / "kitplayd.log").read_text()
        assert full.endswith(r.stdout) and full.count("\n") > 2  # both daemons logged there
        r = kitplay(None, "daemon", "stop", env=env)
        assert r.returncode == 0 and "stopped" in r.stderr
        assert not Path(f"/proc/{second['pid']}").exists()  # reaped, not a zombie
        r = kitplay(None, "daemon", "logs", env=env)  # no daemon: the state dir's log
        assert r.returncode == 0 and r.stdout == (state / "kitplayd.log").read_text()
        r = kitplay(None, "daemon", "logs", env={**env, "KITPLAY_STATE_DIR": str(tmp_path)})
        assert r.returncode == 4 and "no log at" in r.stderr
    finally:
        for pid in pids:
            if pid_alive(pid):
                os.kill(pid, signal.SIGTERM)
        shutil.rmtree(base, ignore_errors=True)


# -- jobs ---------------------------------------------------------------------------------------


def test_jobs_logs_tail(daemon: Daemon) -> None:
    import json

    write_app(daemon.workspace, "t.lines", launch=[
        "{python}", "-c", "for i in range(5000): print(f'line {i} ' + 'x' * (i % 50))"])
    job = daemon.call("launch", {"app": "t.lines"})["job"]["id"]
    daemon.wait_job(job)
    log = daemon.job_log(job)
    lines = log.splitlines(keepends=True)
    for n in (1, 3, 4000, 6000):  # 6000: more lines than the log has, so all of them
        r = kitplay(daemon, "jobs", "logs", job, "--tail", str(n))
        assert r.returncode == 0 and r.stdout == "".join(lines[-n:]), n
    r = kitplay(daemon, "jobs", "logs", job, "--tail", "3", "--json")
    res = json.loads(r.stdout)
    assert res["data"] == "".join(lines[-3:]) and res["next_offset"] == len(log.encode())
    assert kitplay(daemon, "jobs", "logs", job, "--tail", "0").stdout == ""  # no line: no byte
    r = kitplay(daemon, "jobs", "logs", job, "--tail", "2", "--follow")
    assert r.returncode == 0 and r.stdout == "".join(lines[-2:])
    r = kitplay(daemon, "jobs", "logs", job, "--tail", "2", "--offset", "5")
    assert r.returncode == 2 and "--tail and --offset" in r.stderr


IGNORES_TERM = ("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                "print('up', flush=True)\nwhile True:\n    time.sleep(0.1)\n")
DIES_ON_TERM = "import time\nprint('up', flush=True)\nwhile True:\n    time.sleep(0.1)\n"


def test_a_cancelled_job_says_how_it_ended(daemon: Daemon) -> None:
    job = daemon.call("templates.create", {"template": "console_app",
                                           "name": "my_company.calm"})["job"]
    daemon.wait_job(job["id"])
    write_app(daemon.workspace, "t.stubborn", launch=["{python}", "-c", IGNORES_TERM])
    write_app(daemon.workspace, "t.plain", launch=["{python}", "-c", DIES_ON_TERM])
    for app, grace, how in (
            ("my_company.calm", "10", "SIGTERM sent; it exited with code 0"),  # handles it
            ("t.plain", "10", "SIGTERM sent; it ended by SIGTERM"),
            ("t.stubborn", "0.5", "SIGTERM sent; still running after 0.5 s, so killed (SIGKILL)")):
        args = ["--", "--forever"] if app == "my_company.calm" else []
        job_id = kitplay(daemon, "launch", app, "-q", *args).stdout.strip()
        ready = "tick 1" if app == "my_company.calm" else "up\n"  # its handlers are set
        wait_for(lambda j=job_id, r=ready: r in daemon.job_log(j), 30, f"{app} to start")
        r = kitplay(daemon, "jobs", "cancel", job_id, "--grace-s", grace)
        assert r.returncode == 0, r.stderr
        assert f"cancelled  - cancelled on request: {how}" in r.stdout, r.stdout
        assert "exit " not in r.stdout
        assert daemon.job_log(job_id).rstrip().endswith(how)


def test_piped_progress_lines_come_before_the_job_ends(daemon: Daemon, tmp_path: Path) -> None:
    """Piped (stdout and stderr into one pipe, as CI logs them), every progress line comes
    before the log's last line, however the daemon's state changes and log writes interleave.
    Quick builds, so the race between a step's end and its follower's read is taken often."""
    env = {**os.environ, "KITPLAY_SOCKET": str(daemon.socket),
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    write_app(daemon.workspace, "my_company.steps",
              build=[["{python}", "-c", "print('step', flush=True)"]] * 4)
    for _ in range(8):
        r = subprocess.run([sys.executable, "-m", "kitplay.cli_client", "build",
                            "my_company.steps", "--follow"], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=120)
        assert r.returncode == 0, r.stdout
        lines = r.stdout.splitlines()
        end = lines.index("[kitplay] job succeeded")
        progress = [i for i, ln in enumerate(lines) if ln.startswith("kitplay: progress")]
        assert all(i < end for i in progress), r.stdout


# -- completion of names, by the real shells ---------------------------------------------------


def _completion_env(d: Daemon | None, tmp_path: Path) -> dict[str, str]:
    """A PATH whose `kitplay` is this checkout's (as the scripts call `kitplay __complete`)."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    exe = bindir / "kitplay"
    exe.write_text(f"#!/bin/sh\nexec {sys.executable} -m kitplay.cli_client \"$@\"\n")
    exe.chmod(0o755)
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)}
    env["KITPLAY_SOCKET"] = str(d.socket if d else tmp_path / "none.sock")
    return env


def _names_daemon(d: Daemon) -> tuple[str, str]:
    write_app(d.workspace, "t.names")
    ended = d.call("launch", {"app": "t.names", "display": "headless"})["job"]["id"]
    d.wait_job(ended)
    write_app(d.workspace, "t.names_forever", launch=["{python}", "-c", DIES_ON_TERM])
    running = d.call("launch", {"app": "t.names_forever"})["job"]["id"]
    return ended, running


def test_bash_completes_names_from_the_daemon(daemon: Daemon, tmp_path: Path) -> None:
    env = _completion_env(daemon, tmp_path)
    ended, running = _names_daemon(daemon)
    script = kitplay(None, "completion", "bash").stdout

    def complete(*words: str, e: dict[str, str] = env) -> list[str]:
        quoted = " ".join(f"'{w}'" for w in words)
        text = (script + f"\nCOMP_WORDS=(kitplay {quoted}); COMP_CWORD={len(words)}; "
                "_kitplay; printf '%s\\n' \"${COMPREPLY[@]}\"\n")
        r = subprocess.run(["bash", "-c", text], capture_output=True, text=True, env=e,
                           timeout=60)
        assert r.returncode == 0 and r.stderr == "", r.stderr
        return [w for w in r.stdout.splitlines() if w]

    try:
        assert set(complete("jobs", "get", "")) == {ended, running}
        assert complete("jobs", "cancel", "") == [running]  # only what can be cancelled
        assert complete("jobs", "logs", "--tail", "3", ended[:-1]) == [ended]
        assert set(complete("launch", "t.na")) == {"t.names", "t.names_forever"}
        assert complete("launch", "--app", "t.names_f") == ["t.names_forever"]
        assert complete("build", "--display-name", "") == []  # no such flag: nothing odd
        assert set(complete("templates", "create", "")) >= {"console_app", "gui_app"}
        # The new app's name is the user's to choose: no names there, only flags.
        assert all(w.startswith("--") for w in complete("templates", "create", "console_app",
                                                        ""))
        assert complete("templates", "get", "gui") == ["gui_app"]
        assert "--json" in complete("jobs", "get", "--")  # flags still complete
        # The daemon down: no names, no error, nothing on stderr.
        down = {**env, "KITPLAY_SOCKET": str(tmp_path / "none.sock")}
        assert complete("jobs", "get", "", e=down) == []
    finally:
        daemon.call("jobs.cancel", {"job_id": running, "grace_s": 5})


def test_fish_completes_names_from_the_daemon(daemon: Daemon, tmp_path: Path) -> None:
    if shutil.which("fish") is None:
        pytest.skip("fish is not installed")
    env = _completion_env(daemon, tmp_path)
    ended, running = _names_daemon(daemon)
    script = tmp_path / "kitplay.fish"
    script.write_text(kitplay(None, "completion", "fish").stdout)

    def complete(line: str, e: dict[str, str] = env) -> list[str]:
        r = subprocess.run(["fish", "--no-config", "-c",
                            f"source {script}; complete -C {shlex.quote(line)}"],
                           capture_output=True, text=True, env=e, timeout=60)
        assert r.returncode == 0 and r.stderr == "", r.stderr
        return [ln.split("\t")[0] for ln in r.stdout.splitlines()]

    try:
        assert set(complete("kitplay jobs get ")) == {ended, running}
        assert complete("kitplay jobs cancel ") == [running]
        assert set(complete("kitplay launch t.n")) == {"t.names", "t.names_forever"}
        assert complete("kitplay templates get gui") == ["gui_app"]
        assert all(w.startswith("-") for w in complete("kitplay templates create console_app "))
        assert "--follow" in complete("kitplay build --f")
        down = {**env, "KITPLAY_SOCKET": str(tmp_path / "none.sock")}
        assert complete("kitplay jobs get ", e=down) == []
    finally:
        daemon.call("jobs.cancel", {"job_id": running, "grace_s": 5})


def test_zsh_completes_names_from_the_daemon(daemon: Daemon, tmp_path: Path) -> None:
    """An interactive zsh on a real terminal (a pty): the script loaded, a command line typed
    with a Tab, the line zsh completed read back."""
    if shutil.which("zsh") is None:
        pytest.skip("zsh is not installed")
    env = _completion_env(daemon, tmp_path)
    _ended, running = _names_daemon(daemon)
    script = tmp_path / "kitplay.zsh"
    script.write_text(kitplay(None, "completion", "zsh").stdout)
    (tmp_path / ".zshrc").write_text(f"PS1='> '\nsource {script}\n")
    try:
        for typed, want in (("kitplay jobs cancel ", running),
                            ("kitplay templates get gu", "gui_app"),
                            ("kitplay launch t.names_f", "t.names_forever")):
            assert want in _zsh_complete(env, tmp_path, typed), typed
    finally:
        daemon.call("jobs.cancel", {"job_id": running, "grace_s": 5})


def _zsh_complete(env: dict[str, str], home: Path, typed: str) -> str:
    """The command line an interactive zsh holds after ``typed`` and a Tab: Ctrl-A, Ctrl-E
    and Enter then run ``echo "DONE <the line>:END"``, so zsh itself prints the line as its
    completion left it."""
    import select

    master, slave = pty.openpty()
    proc = subprocess.Popen(["zsh", "-i"], stdin=slave, stdout=slave, stderr=slave,
                            env={**env, "ZDOTDIR": str(home), "TERM": "dumb"},
                            start_new_session=True)
    os.close(slave)
    got = b""

    def more() -> bool:
        nonlocal got
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                got += os.read(master, 65536)
            except OSError:  # EIO: zsh ended
                raise AssertionError(f"zsh ended early: {got!r}") from None
        return False

    def read_until(marker: bytes, what: str) -> None:
        wait_for(lambda: more() or marker in got, 60, what)

    def quiet() -> bool:  # nothing more to read for a moment: the completion is drawn
        ready, _, _ = select.select([master], [], [], 0.5)
        if not ready:
            return True
        more()
        return False

    try:
        read_until(b"> ", "the prompt")
        os.write(master, f"{typed}\t".encode())
        wait_for(quiet, 30, "the completion")
        got = b""
        os.write(master, b'\x01echo "DONE \x05:END"\r')
        read_until(b":END\r\n", "the echoed line")
        line = got.decode(errors="replace").rsplit(":END\r\n", 1)[0]
        return line[line.rindex("DONE "):]
    finally:
        try:
            os.write(master, b"exit\r")
            proc.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
        os.close(master)
