"""Job logs reach a terminal with their colours but without their other control sequences.

A job's log holds bytes from outside (a service app logs the request lines it receives): a
request line carrying ``ESC ] 0 ; title BEL ESC [ 2 J`` must neither set the terminal's title
nor clear its screen through ``kitplay jobs logs`` or any ``--follow``. ``--raw`` writes the
bytes as they are; piped output is unchanged. The terminal is a real pty.
"""

from __future__ import annotations

import errno
import os
import pty
import subprocess
import sys

from kitplay.cli_client.terminal import TerminalText, neutralize

from tests.helpers import ROOT, Daemon, write_app

HOSTILE = "GET /\x1b]0;pwned\x07\x1b[2J\x9b1;1H HTTP/1.1"
COLOUR = "\x1b[31mred\x1b[0m"
APP = ("import sys\n"
       f"print({HOSTILE!r}, flush=True)\n"
       f"print({COLOUR!r}, flush=True)\n"
       "print('tail\\a', flush=True)\n")
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
OBEYED = ("\x1b]0;", "\x1b[2J", "\x9b", "\x07")


def _kitplay(d: Daemon, *args: str) -> list[str]:
    return [sys.executable, "-m", "kitplay.cli_client", "--socket", str(d.socket), *args]


def _on_pty(argv: list[str]) -> tuple[int, str]:
    """Run ``argv`` with stdout and stderr on a new pty; (exit code, what the pty showed)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, env=ENV, stdout=slave, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    chunks = []
    try:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError as e:  # EIO: every writer closed the pty
                if e.errno != errno.EIO:
                    raise
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
        code = proc.wait(60)
    return code, b"".join(chunks).decode(errors="replace").replace("\r\n", "\n")


def test_logs_and_follow_on_a_terminal_show_colours_only(daemon: Daemon) -> None:
    write_app(daemon.workspace, "t.hostile", launch=["{python}", "-c", APP])
    job = daemon.call("launch", {"app": "t.hostile", "display": "headless"})["job"]
    assert daemon.wait_job(job["id"])["status"] == "succeeded"
    for args in (["jobs", "logs", job["id"]], ["jobs", "logs", job["id"], "--follow"],
                 ["launch", "t.hostile", "--display", "headless", "--follow"]):
        code, shown = _on_pty(_kitplay(daemon, *args))
        assert code == 0, (args, shown)
        assert not [s for s in OBEYED if s in shown], (args, shown)
        assert "GET /^[]0;pwned^G^[[2J<9B>1;1H HTTP/1.1\n" in shown, (args, shown)
        assert f"{COLOUR}\n" in shown and "tail^G\n" in shown, (args, shown)
    # --raw: the bytes as they are.
    for args in (["jobs", "logs", job["id"], "--raw"],
                 ["jobs", "logs", job["id"], "--follow", "--raw"]):
        code, shown = _on_pty(_kitplay(daemon, *args))
        assert code == 0 and f"{HOSTILE}\n{COLOUR}\n" in shown, (args, shown)
    # Piped: unchanged.
    r = subprocess.run(_kitplay(daemon, "jobs", "logs", job["id"], "--follow"), env=ENV,
                       capture_output=True, timeout=60)
    assert r.returncode == 0
    assert f"{HOSTILE}\n{COLOUR}\ntail\a\n".encode() in r.stdout, r.stdout
    assert r.stdout == daemon.job_log(job["id"]).encode()


def test_neutralize_keeps_colours_across_chunks() -> None:
    assert neutralize("a\x1b[1;32mb\x1b[0m\x1b[Hc\r\nd\re\tf") == \
        "a\x1b[1;32mb\x1b[0m^[[Hc\r\nd^Me\tf"
    assert neutralize("\x1b]8;;http://x\x1b\\link") == "^[]8;;http://x^[\\link"
    t = TerminalText()
    text = "x\x1b[38;5;196mred\x1b[0m\r\n\x1b]0;t\x07"
    for cut in range(len(text) + 1):
        t = TerminalText()
        got = t.feed(text[:cut]) + t.feed(text[cut:]) + t.flush()
        assert got == neutralize(text) == "x\x1b[38;5;196mred\x1b[0m\r\n^[]0;t^G", cut
    assert TerminalText().feed("\x1b") == ""  # held: it may start a colour
