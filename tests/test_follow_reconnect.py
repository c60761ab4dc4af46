"""Followers and waiters ride through daemon restarts; the CLI's exit codes and signals.

Real daemon restarted for real (SIGTERM, then SIGKILL and a fresh start), a real app that
keeps printing numbered lines across both, real ``kitplay`` processes following and waiting.
"Every line once" is checked byte for byte against the log file, the source of truth.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
from kitplay.daemon.protocol.client import Client

from tests.helpers import ROOT, Daemon, wait_for, write_app

# Prints "line N" every 10 ms until the file named by argv[1] exists, then exits 0.
TICKER = ["{python}", "-u", "-c",
          "import itertools, os, sys, time\n"
          "for i in itertools.count():\n"
          "    print(f'line {i}', flush=True)\n"
          "    if os.path.exists(sys.argv[1]):\n"
          "        break\n"
          "    time.sleep(0.01)\n"]


def _env(d: Daemon) -> dict[str, str]:
    return {**os.environ, "KITPLAY_SOCKET": str(d.socket),
            "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _spawn(d: Daemon, tmp: Path, name: str, *args: str) -> tuple[subprocess.Popen[bytes],
                                                                    Path, Path]:
    out, err = tmp / f"{name}.out", tmp / f"{name}.err"
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = subprocess.Popen([sys.executable, "-m", "kitplay.cli_client", *args], env=_env(d),
                                stdout=o, stderr=e, stdin=subprocess.DEVNULL)
    return proc, out, err


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n")


def _ticker_job(d: Daemon, tmp: Path) -> tuple[str, Path]:
    stop = tmp / "stop"
    write_app(d.workspace, "my_company.ticker", launch=[*TICKER, str(stop)])
    job = d.call("launch", {"app": "my_company.ticker", "display": "headless"})["job"]
    return job["id"], stop


def grows(path: Path, by: int, what: str) -> None:
    before = _lines(path)
    wait_for(lambda: _lines(path) > before + by, 30, what)


def _restart_twice(d: Daemon, out: Path, job_id: str) -> None:
    """SIGTERM and start; then SIGKILL and start; the app prints all along."""
    for how in ("term", "kill"):
        grows(out, 5, "the follower to show new lines")
        d.stop() if how == "term" else d.kill9()
        grows(d.state / "logs" / f"{job_id}.log", 10, "the app to print while no daemon runs")
        d.start()


def test_cli_follower_and_waiter_survive_sigterm_and_sigkill(daemon: Daemon,
                                                             tmp_path: Path) -> None:
    job_id, stop = _ticker_job(daemon, tmp_path)
    wait_for(lambda: "line 3" in daemon.job_log(job_id), 30, "the app to start")
    follower, out, err = _spawn(daemon, tmp_path, "follow", "jobs", "logs", job_id, "--follow")
    waiter, wout, werr = _spawn(daemon, tmp_path, "wait", "jobs", "wait", job_id,
                                "--timeout-s", "300", "--json")
    ps = psutil.Process(waiter.pid)
    wait_for(lambda: ps.net_connections(kind="unix"), 30, "the waiter to connect")
    _restart_twice(daemon, out, job_id)
    grows(out, 5, "the follower to resume")
    stop.touch()
    assert follower.wait(60) == 0, err.read_text()
    assert waiter.wait(60) == 0, werr.read_text()
    log = (daemon.state / "logs" / f"{job_id}.log").read_bytes()
    assert out.read_bytes() == log.rstrip(b"\n") + b"\n"  # every line once, in order
    numbers = [int(x.split()[1]) for x in out.read_text().splitlines() if x.startswith("line ")]
    assert numbers == list(range(len(numbers)))
    said = err.read_text()
    assert said.count("lost the daemon") == 2 and said.count("reconnected") == 2, said
    assert "Traceback" not in said
    assert "lost the daemon" in werr.read_text()
    assert json.loads(wout.read_text())["job"]["status"] == "succeeded"


def test_python_client_follow_resumes_at_its_offset(daemon: Daemon, tmp_path: Path) -> None:
    job_id, stop = _ticker_job(daemon, tmp_path)
    notices: list[str] = []
    got = bytearray()
    with Client.connect(daemon.socket) as c:
        notes = c.follow(job_id, notice=notices.append)
        final: dict[str, Any] = {}
        restarted = False
        for note in notes:
            p = note["params"]
            if note["method"] == "jobs.output":
                assert p["offset"] == len(got)  # nothing lost, nothing repeated
                got += p["data"].encode()
                if not restarted and got.count(b"\n") > 5:
                    restarted = True
                    daemon.kill9()
                    grows(daemon.state / "logs" / f"{job_id}.log", 10,
                           "the app to print while no daemon runs")
                    daemon.start()
                elif restarted and len(notices) == 2 and not stop.exists():
                    stop.touch()
            elif p.get("final"):
                final = p["job"]
    assert final["status"] == "succeeded"
    assert bytes(got) == (daemon.state / "logs" / f"{job_id}.log").read_bytes()
    assert "lost the daemon" in notices[0] and "reconnected" in notices[1]


def test_reconnect_gives_up_after_reconnect_s(daemon: Daemon, tmp_path: Path) -> None:
    job_id, stop = _ticker_job(daemon, tmp_path)
    follower, out, err = _spawn(daemon, tmp_path, "f", "--reconnect-s", "0.5", "jobs", "logs",
                                job_id, "--follow")
    wait_for(lambda: _lines(out) > 3, 30, "the follower to show lines")
    daemon.stop()
    assert follower.wait(60) == 3  # daemon unreachable
    said = err.read_text()
    assert "reconnecting for up to 0.5 s" in said and "did not come back" in said
    assert "Traceback" not in said
    stop.touch()


def test_wait_timeout_has_its_own_exit_code_and_ctrl_c_exits_130(daemon: Daemon,
                                                                   tmp_path: Path) -> None:
    job_id, stop = _ticker_job(daemon, tmp_path)
    timed = subprocess.run([sys.executable, "-m", "kitplay.cli_client", "jobs", "wait", job_id,
                            "--timeout-s", "0.1"], env=_env(daemon), capture_output=True,
                           text=True, timeout=60)
    assert timed.returncode == 9, timed.stderr
    assert "timed out waiting" in timed.stdout
    waiter, _, err = _spawn(daemon, tmp_path, "w", "jobs", "wait", job_id, "--timeout-s", "300")
    ps = psutil.Process(waiter.pid)
    # Interrupt it only once it is inside the call (connected), not while Python starts.
    wait_for(lambda: ps.net_connections(kind="unix"), 30, "the waiter to connect")
    waiter.send_signal(signal.SIGINT)
    assert waiter.wait(30) == 130
    said = err.read_text()
    assert "Traceback" not in said and f"job {job_id} keeps running" in said
    stop.touch()
    daemon.wait_job(job_id)


def test_json_follow_ends_with_the_final_record(daemon: Daemon) -> None:
    write_app(daemon.workspace, "my_company.quick",
              launch=["{python}", "-c", "print('hello')"])
    r = subprocess.run([sys.executable, "-m", "kitplay.cli_client", "launch", "my_company.quick",
                        "--display", "headless", "--json", "--follow"], env=_env(daemon),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 1  # only the final record: the log went to stderr
    assert json.loads(lines[0])["job"]["status"] == "succeeded"
    assert "hello" in r.stderr


async def test_async_follow_rides_through_a_restart(daemon: Daemon, tmp_path: Path) -> None:
    import trio
    from kitplay.daemon.protocol.aclient import follow

    job_id, stop = _ticker_job(daemon, tmp_path)
    log = daemon.state / "logs" / f"{job_id}.log"
    notices: list[str] = []
    got = bytearray()
    final: dict[str, Any] = {}
    with trio.fail_after(120):
        async with follow(daemon.socket, job_id, notice=notices.append) as notes:
            async for method, params in notes:
                if method == "jobs.output":
                    assert params["offset"] == len(got)
                    got += params["data"].encode()
                    if notes.reconnects == 0 and not notices and got.count(b"\n") > 5:
                        await trio.to_thread.run_sync(daemon.stop)  # SIGTERM
                        await trio.to_thread.run_sync(grows, log, 10, "lines, no daemon")
                        await trio.to_thread.run_sync(daemon.start)
                    elif notes.reconnects == 1 and not stop.exists():
                        stop.touch()
                elif params.get("final"):
                    final = params["job"]
    assert final["status"] == "succeeded"
    assert bytes(got) == log.read_bytes()
    assert "lost the daemon" in notices[0] and "reconnected" in notices[1]
