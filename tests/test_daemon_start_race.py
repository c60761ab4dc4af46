"""Two ``kitplay daemon start`` at once (an editor and a terminal, parallel CI steps): both
succeed, and one daemon serves.  The one whose kitplayd found the socket taken says a daemon
is running, rather than "did not start" with the other daemon's log lines."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

from tests.helpers import ROOT, pid_alive, short_tmpdir


def test_concurrent_starts_both_succeed() -> None:
    base = short_tmpdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KITPLAY_SOCKET": str(base / "run" / "d.sock")}
    argv = [sys.executable, "-m", "kitplay.cli_client",
            "--state-dir", str(base / "state"), "daemon",
            "start", "--workspace", str(base)]
    pids: set[int] = set()
    try:
        for _ in range(3):  # the race is lost by one of the two nearly every time
            starts = [subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True) for _ in range(2)]
            outs = [(p.wait(60), p.communicate()[1]) for p in starts]
            status = subprocess.run([sys.executable, "-m", "kitplay.cli_client", "daemon", "status",
                                     "--json"], env=env, capture_output=True, text=True,
                                    timeout=60)
            assert status.returncode == 0, status.stderr
            pids.add(int(status.stdout.split('"pid": ', 1)[1].split(",", 1)[0]))
            for code, err in outs:
                assert code == 0, err
                assert "did not start" not in err, err
            stop = subprocess.run([sys.executable, "-m", "kitplay.cli_client", "daemon", "stop"],
                                  env=env, capture_output=True, text=True, timeout=60)
            assert stop.returncode == 0, stop.stderr
    finally:
        for pid in pids:
            if pid_alive(pid):
                os.kill(pid, signal.SIGTERM)
        shutil.rmtree(base, ignore_errors=True)
