"""Disk and file faults: an unusable state dir, a full disk, a log deleted under a follower.

Real daemon, real processes.  A full or read-only disk is a small tmpfs mounted over the state
dir (or its ``logs/``): that needs root and a kernel that lets us mount, so those tests skip
with the reason otherwise.  The daemon must say what is wrong in words, keep running when a
job's disk fills, and keep its records consistent with the files.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from kitplay.daemon.store import Store

from tests.helpers import Daemon, wait_for, write_app
from tests.rawconn import RawConn

pytestmark = pytest.mark.reliability

# Writes ``MB`` megabytes of numbered lines to stdout.
WRITER = """
import sys
mb = float(sys.argv[1])
line = "line {:09d} " + "x" * 80 + "\\n"
for i in range(int(mb * 1024 * 1024 / len(line.format(0)))):
    sys.stdout.write(line.format(i))
"""
# Prints numbered lines slowly, then "done".
TICKER = """
import sys, time
for i in range(int(sys.argv[1])):
    print(f"tick {i:06d}", flush=True)
    time.sleep(0.005)
print("done", flush=True)
"""


@contextmanager
def tmpfs(path: Path, size: str, *, ro: bool = False) -> Iterator[Path]:
    """Mount a tmpfs of ``size`` on ``path`` (skip the test when mounting is not permitted)."""
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size},mode=0700" + (",ro" if ro else "")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _run_daemon_once(d: Daemon) -> subprocess.CompletedProcess[str]:
    return subprocess.run(d.argv(), env=d.env, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def _assert_clear_refusal(d: Daemon, r: subprocess.CompletedProcess[str]) -> None:
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("kitplayd: cannot use the state directory")
    assert str(d.state) in lines[0]
    assert "--state-dir" in lines[0]  # says what to do
    assert not d.socket.exists()


def test_state_dir_on_a_read_only_disk(make_daemon: type[Daemon]) -> None:
    d = make_daemon()
    with tmpfs(d.state, "1m", ro=True):
        r = _run_daemon_once(d)
    _assert_clear_refusal(d, r)
    assert "Read-only file system" in r.stderr


def test_existing_state_dir_turned_read_only(make_daemon: type[Daemon]) -> None:
    d = make_daemon()
    with tmpfs(d.state, "4m"):
        (d.state / "logs").mkdir()
        Store(d.state / "kitplay.db").close()
        subprocess.run(["mount", "-o", "remount,ro", str(d.state)], check=True)
        r = _run_daemon_once(d)
    _assert_clear_refusal(d, r)


def test_state_dir_below_a_file(make_daemon: type[Daemon]) -> None:
    d = make_daemon()
    d.state.parent.mkdir(parents=True, exist_ok=True)
    blocker = d.base / "not-a-dir"
    blocker.write_text("")
    d.state = blocker / "state"
    r = _run_daemon_once(d)
    _assert_clear_refusal(d, r)
    assert "Not a directory" in r.stderr


def _follow_all(sock: Path, job_id: str, out: dict[str, Any]) -> None:
    """Follow a job from 0 to its final state, recording outputs (runs in a thread)."""
    try:
        with RawConn(sock, timeout=60) as c:
            sub = c.result("jobs.subscribe", {"job_id": job_id})["subscription"]
            offset = 0
            while True:
                msg = c.recv()
                p = msg.get("params") or {}
                if p.get("subscription") != sub:
                    continue
                if msg["method"] == "jobs.output":
                    assert p["offset"] == offset, f"gap: expected {offset}, got {p['offset']}"
                    offset = p["next_offset"]
                    out.setdefault("seen", []).append(offset)
                elif p.get("final"):
                    out["final"] = p["job"]
                    out["offset"] = offset
                    return
    except BaseException as e:  # reported by the test thread
        out["error"] = e


def test_disk_full_while_a_job_writes_its_log(make_daemon: type[Daemon]) -> None:
    d = make_daemon()
    write_app(d.workspace, "t.writer", launch=["{python}", "writer.py"],
              files={"writer.py": WRITER})
    with tmpfs(d.state / "logs", "1m"):
        d.start()
        job = d.call("launch", {"app": "t.writer", "display": "headless",
                                "args": ["6"]})["job"]
        followed: dict[str, Any] = {}
        t = threading.Thread(target=_follow_all, args=(d.socket, job["id"], followed))
        t.start()
        done = d.wait_job(job["id"])
        t.join(60)
        assert not t.is_alive(), "the follower never got the final state"
        assert "error" not in followed, followed.get("error")

        # The daemon survived its own log writes failing, and says what happened.  The job's
        # exit status stands (its monitor reserved the space for it at the start); the record
        # says that the log is incomplete, and why.
        assert d.proc is not None and d.proc.poll() is None
        assert done["status"] == "succeeded" and done["exit_code"] == 0, done
        note = done["result"]["log_error"]
        assert "incomplete" in note and "is full" in note, note
        assert str(d.state / "logs") in note
        assert done["finished_at"] is not None and done["pid"] is None
        assert followed["final"]["status"] == "succeeded"
        # Records agree with the files: the size the record shows is the file's.
        log = d.state / "logs" / f"{job['id']}.log"
        assert done["log_size"] == log.stat().st_size
        assert followed["offset"] <= log.stat().st_size
        assert d.call("jobs.list", {"status": "running"})["jobs"] == []
        assert "cannot write to" in d.log()  # the daemon's own log says why

        # Space freed: the next job runs normally on the same daemon.
        log.unlink()
        again = d.call("launch", {"app": "t.writer", "display": "headless",
                                  "args": ["0.01"]})["job"]
        assert d.wait_job(again["id"])["status"] == "succeeded"
        assert d.job_log(again["id"]).count("line ") > 10
        d.stop()


def test_log_deleted_under_a_follower(daemon: Daemon) -> None:
    write_app(daemon.workspace, "t.ticker", launch=["{python}", "ticker.py", "400"],
              files={"ticker.py": TICKER})
    job = daemon.call("launch", {"app": "t.ticker", "display": "headless"})["job"]
    followed: dict[str, Any] = {}
    t = threading.Thread(target=_follow_all, args=(daemon.socket, job["id"], followed))
    t.start()
    log = daemon.state / "logs" / f"{job['id']}.log"
    wait_for(lambda: len(followed.get("seen", [])) >= 3, what="some output followed")
    log.unlink()
    done = daemon.wait_job(job["id"])
    t.join(60)
    assert not t.is_alive(), "the follower hung after its log was deleted"
    assert "error" not in followed, followed.get("error")
    assert followed["final"]["id"] == job["id"]

    # The job itself was not disturbed: its process kept its open log.
    assert done["status"] == "succeeded"
    assert daemon.proc is not None and daemon.proc.poll() is None
    assert daemon.call("daemon.status")["pid"] == daemon.proc.pid
    # Records stay consistent with what is on disk now.
    size = log.stat().st_size if log.exists() else 0
    assert daemon.call("jobs.get", [job["id"]])["job"]["log_size"] == size
    got = daemon.call("jobs.logs", {"job_id": job["id"]})
    assert len(got["data"].encode()) == size and got["eof"]
    # Resuming from where the follower was is a clear error, not a hang or a wrong byte.
    with RawConn(daemon.socket) as c:
        for method in ("jobs.logs", "jobs.subscribe"):
            err = c.error(method, {"job_id": job["id"], "offset": followed["offset"]})
            assert err["code"] == -32602, err
            assert f"({size} bytes)" in err["message"], err


def test_deleted_logs_dir_is_recreated_for_the_next_job(daemon: Daemon) -> None:
    """The whole logs dir removed under a running daemon: the next job recreates it and runs."""
    write_app(daemon.workspace, "t.ticker", launch=["{python}", "ticker.py", "3"],
              files={"ticker.py": TICKER})
    logs = daemon.state / "logs"
    for p in logs.iterdir():
        p.unlink()
    os.rmdir(logs)
    job = daemon.call("launch", {"app": "t.ticker", "display": "headless"})["job"]
    done = daemon.wait_job(job["id"])
    assert daemon.proc is not None and daemon.proc.poll() is None
    assert done["status"] == "succeeded", done
    assert "tick 000002" in daemon.job_log(job["id"])
    assert done["log_size"] == (logs / f"{job['id']}.log").stat().st_size
    assert daemon.call("jobs.list", {"status": "running"})["jobs"] == []
