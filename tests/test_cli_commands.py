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
