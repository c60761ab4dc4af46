"""docs/api.md: its generated tables are current, and its examples work as written.

Each fenced block after an ``<!-- example: NAME -->`` marker is run unchanged against a real
daemon and bridge (only KITPLAY_SOCKET points at the test daemon).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from kitplay.bridge.docs import DOC_PATH, errors_table, render, routes_table
from kitplay.daemon.protocol.errors import ERRORS
from kitplay.daemon.protocol.registry import METHODS
from kitplay.daemon.protocol.version import __version__

from tests.bridge_helpers import Bridge, bridge_fixture, make_bridge_fixture  # noqa: F401
from tests.helpers import ROOT, Daemon, create_and_build, write_app
from tests.test_follow_reconnect import TICKER, grows

DOC = DOC_PATH.read_text()


def example(name: str) -> str:
    m = re.search(rf"<!-- example: {name} -->\n```\w+\n(.*?)```", DOC, re.DOTALL)
    assert m, f"no example {name!r} in docs/api.md"
    return m.group(1)


@contextmanager
def ticker_example(d: Daemon, tmp: Path, name: str) -> Iterator[tuple[str, Path, Path, Path]]:
    """Run the docs example ``name`` on a launched ticker app: yield (job id, the job's log,
    the example's stdout and stderr files) once it prints; on leaving, let the app end and
    require the example to exit 0."""
    stop = tmp / "stop"
    write_app(d.workspace, "my_company.ticker", launch=[*TICKER, str(stop)])
    job_id = d.call("launch", {"app": "my_company.ticker", "display": "headless"})["job"]["id"]
    (tmp / "example.py").write_text(example(name))
    out, err = tmp / "out", tmp / "err"
    env = {**os.environ, "KITPLAY_SOCKET": str(d.socket), "PYTHONPATH": str(ROOT),
           "PYTHONUNBUFFERED": "1"}
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = subprocess.Popen([sys.executable, "example.py", job_id], env=env, cwd=tmp,
                                stdout=o, stderr=e)
    log = d.state / "logs" / f"{job_id}.log"
    try:
        grows(out, 5, "the example to print lines")
        yield job_id, log, out, err
        stop.touch()
        assert proc.wait(60) == 0, err.read_text()
    finally:
        stop.touch()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def run(d: Daemon, argv: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KITPLAY_SOCKET": str(d.socket), "PYTHONPATH": str(ROOT)}
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, cwd=tmp)


def test_generated_tables_are_current() -> None:
    assert render(DOC) == DOC, "docs/api.md is out of date: run `python -m kitplay.bridge.docs`"
    r = subprocess.run([sys.executable, "-m", "kitplay.bridge.docs", "--check", str(DOC_PATH)],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_check_fails_on_drift(tmp_path: Path) -> None:
    stale = tmp_path / "api.md"
    stale.write_text(DOC.replace("| `jobs.get` |", "| `jobs.fetch` |"))
    r = subprocess.run([sys.executable, "-m", "kitplay.bridge.docs", "--check", str(stale)],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 1 and "out of date" in r.stderr


def test_tables_cover_every_method_and_error() -> None:
    routes = routes_table()
    for m in METHODS.values():
        assert f"| `{m.name}` |" in routes
    errors = errors_table()
    for cls in ERRORS:
        assert f"| `{cls.__name__}` | {cls.code} | {cls.http_status} | {cls.exit_code} |" \
            in errors


@pytest.mark.skipif(shutil.which("socat") is None, reason="needs socat")
def test_socat_example(daemon: Daemon, tmp_path: Path) -> None:
    r = run(daemon, ["bash", "-c", example("socat")], tmp_path)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert lines[0]["result"]["pid"] == daemon.proc.pid  # type: ignore[union-attr]
    assert sorted(x["id"] for x in lines[1]) == [1, 2]  # the batch: one array
    assert lines[2]["error"]["code"] == -32001


def test_python_client_example(daemon: Daemon, tmp_path: Path) -> None:
    create_and_build(daemon, name="my_company.doc_app")
    (tmp_path / "client.py").write_text(example("python-client"))
    job = daemon.call("jobs.list", {"limit": 1})["jobs"][0]
    r = run(daemon, [sys.executable, "client.py", job["id"]], tmp_path)
    assert r.returncode == 0, r.stderr
    log = daemon.job_log(job["id"])
    assert r.stdout == f"kitplayd {__version__}\n{log}job {job['id']}: succeeded\n"
    r = run(daemon, [sys.executable, "client.py"], tmp_path)  # the newest job
    assert r.returncode == 0 and "succeeded" in r.stdout, r.stderr


def test_curl_example(daemon: Daemon, bridge: Bridge, tmp_path: Path) -> None:
    r = run(daemon, ["bash", "-c", example("curl")], tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    status = json.loads(out[0])
    assert status["pid"] == daemon.proc.pid  # type: ignore[union-attr]
    assert json.loads(out[1])["template"]["name"] == "console_app"
    created = json.loads(out[2])["job"]
    waited = json.loads(out[3])
    assert waited["job"]["id"] == created["id"] and waited["job"]["status"] == "succeeded"
    assert json.loads(out[4])["data"] == daemon.job_log(created["id"])
    assert json.loads(out[5])["error"]["code"] == -32002  # cancel after the end
    assert out[6] == "401"


def test_websocket_example(daemon: Daemon, bridge: Bridge, tmp_path: Path) -> None:
    name = create_and_build(daemon, name="my_company.ws_doc")
    job: dict[str, Any] = daemon.call("launch", {"app": name, "args": ["--lines", "20",
                                                                       "--sleep", "0.01"]})["job"]
    (tmp_path / "follow.py").write_text(example("websocket"))
    r = run(daemon, [sys.executable, "follow.py", job["id"]],
            tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == daemon.job_log(job["id"]) + f"job {job['id']}: succeeded\n"
    r = run(daemon, [sys.executable, "follow.py", "0nosuchjob"], tmp_path)
    assert r.returncode == 1 and "refused: 404" in r.stderr


def test_websocket_example_rides_through_bridge_and_daemon_restarts(
        daemon: Daemon, bridge: Bridge, tmp_path: Path) -> None:
    """Every line once, across a bridge restart (new port) and a daemon SIGKILL + start."""
    with ticker_example(daemon, tmp_path, "websocket") as (job_id, log, out, err):
        bridge.stop()
        grows(log, 10, "the app to print while no bridge runs")
        bridge.start()
        grows(out, 5, "the example to resume through the new bridge")
        daemon.kill9()
        grows(log, 10, "the app to print while no daemon runs")
        daemon.start()
        grows(out, 5, "the example to resume after the daemon restart")
    assert out.read_bytes() == log.read_bytes() + f"job {job_id}: succeeded\n".encode()
    said = err.read_text()
    assert "Traceback" not in said and said.count("reconnected at byte") >= 2, said


def test_python_client_example_rides_through_a_daemon_restart(daemon: Daemon,
                                                              tmp_path: Path) -> None:
    with ticker_example(daemon, tmp_path, "python-client") as (job_id, log, out, err):
        daemon.kill9()
        grows(log, 10, "the app to print while no daemon runs")
        daemon.start()
        grows(out, 5, "the example to resume")
    assert out.read_text() == (f"kitplayd {__version__}\n" + log.read_text()
                               + f"job {job_id}: succeeded\n")
    assert "reconnected at byte" in err.read_text()
