"""``WS /api/stream/<job_id>``: chunks with offsets, resume, end, backpressure, cleanup.

Real daemon and bridge subprocesses; the client is trio-websocket. Every wait has a deadline.
"""

from __future__ import annotations

from typing import Any

import psutil
import trio

from tests.bridge_helpers import (  # noqa: F401
    Bridge,
    big_log_job,
    bridge_fixture,
    make_bridge_fixture,
    open_stream,
    read_stream,
    wait_until,
)
from tests.helpers import Daemon, create_and_build

APP = "my_company.stream_app"


def joined(messages: list[dict[str, Any]], start: int) -> str:
    """The output messages' data, checking that their offsets are contiguous from ``start``."""
    offset = start
    parts = []
    for m in messages:
        if m["type"] == "output":
            assert m["offset"] == offset, (m["offset"], offset)
            assert m["next_offset"] == offset + len(m["data"].encode())
            offset = m["next_offset"]
            parts.append(m["data"])
    return "".join(parts)


def daemon_connections(d: Daemon) -> int:
    """Connections the daemon has accepted and not yet closed."""
    assert d.proc is not None
    conns = psutil.Process(d.proc.pid).net_connections("unix")
    return sum(1 for c in conns if c.laddr == str(d.socket)) - 1  # minus the listener


async def test_finished_job_streams_whole_log_then_end(daemon: Daemon, bridge: Bridge) -> None:
    create_and_build(daemon, name=APP)
    build = daemon.call("jobs.list", {"kind": "build"})["jobs"][0]
    with trio.fail_after(30):
        async with open_stream(bridge, build["id"]) as ws:
            messages = await read_stream(ws)
    assert ws.closed is not None and ws.closed.code == 1000
    assert messages[-1]["type"] == "end" and messages[-1]["job"]["status"] == "succeeded"
    assert [m["type"] for m in messages].count("end") == 1
    assert joined(messages, 0) == daemon.job_log(build["id"])


async def test_live_job_resumes_from_next_offset(daemon: Daemon, bridge: Bridge) -> None:
    """Read part of a running job's stream, drop, reconnect with next_offset: exact log."""
    create_and_build(daemon, name=APP)
    job = daemon.call("launch", {"app": APP, "args": ["--lines", "60", "--sleep", "0.01"]})["job"]
    with trio.fail_after(60):
        async with open_stream(bridge, job["id"]) as ws:
            first = await read_stream(ws, limit=2)
        outputs = [m for m in first if m["type"] == "output"]
        resume = outputs[-1]["next_offset"] if outputs else 0
        async with open_stream(bridge, job["id"], offset=resume) as ws:
            rest = await read_stream(ws)
    assert rest[-1]["type"] == "end" and rest[-1]["job"]["status"] == "succeeded"
    text = joined(first, 0) + joined(rest, resume)
    assert text == daemon.job_log(job["id"])
    assert "line 60" in text


async def test_running_job_sends_state_and_output(daemon: Daemon, bridge: Bridge) -> None:
    create_and_build(daemon, name=APP)
    job = daemon.call("launch", {"app": APP, "args": ["--forever"]})["job"]
    with trio.fail_after(60):
        async with open_stream(bridge, job["id"]) as ws:
            seen: list[dict[str, Any]] = []
            while not any(m["type"] == "output" and "tick 1" in m["data"] for m in seen):
                seen.extend(await read_stream(ws, limit=1))
            assert any(m["type"] == "state" and m["job"]["status"] == "running" for m in seen)
            daemon.call("jobs.cancel", {"job_id": job["id"], "grace_s": 5})
            seen.extend(await read_stream(ws))
    assert seen[-1]["type"] == "end" and seen[-1]["job"]["status"] == "cancelled"
    assert joined(seen, 0) == daemon.job_log(job["id"])


async def test_output_comes_in_chunks_not_lines(daemon: Daemon, bridge: Bridge) -> None:
    job = big_log_job(daemon, 2)
    with trio.fail_after(60):
        async with open_stream(bridge, job["id"]) as ws:
            messages = await read_stream(ws)
    outputs = [m for m in messages if m["type"] == "output"]
    lines = daemon.job_log(job["id"]).count("\n")
    assert lines > 19_000
    assert len(outputs) < lines / 100  # a 256 KiB chunk holds thousands of lines
    assert joined(messages, 0) == daemon.job_log(job["id"])


async def test_refusals_before_accept(daemon: Daemon, bridge: Bridge) -> None:
    job = daemon.call("templates.create", {"template": "console_app", "name": APP})["job"]
    size = daemon.wait_job(job["id"])["log_size"]
    cases = [("0nosuchjob", None, 404), ("Bad!Id", None, 400), (job["id"], size + 1, 400)]
    for job_id, offset, status in cases:
        r = bridge.upgrade(f"/api/stream/{job_id}" + (f"?offset={offset}" if offset else ""))
        assert r.status_code == status, (job_id, offset, r.text)
    r = bridge.upgrade(f"/api/stream/{job['id']}?offset=-1")
    assert r.status_code == 400 and r.json()["error"]["data"]["param"] == "offset"
    r = bridge.upgrade(f"/api/stream/{job['id']}?colour=red")
    assert r.status_code == 400
    r = bridge.get(f"/api/stream/{job['id']}")  # not an upgrade
    assert r.status_code == 426 and r.headers["upgrade"] == "websocket"
    async with open_stream(bridge, job["id"], offset=size) as ws:  # at the end: just "end"
        messages = await read_stream(ws)
    assert [m["type"] for m in messages] == ["end"]


async def test_disconnect_mid_stream_cleans_up_at_once(daemon: Daemon, bridge: Bridge) -> None:
    create_and_build(daemon, name=APP)
    job = daemon.call("launch", {"app": APP, "args": ["--forever"]})["job"]
    # No REST call was made, so the bridge holds no shared daemon connection.
    await wait_until(lambda: daemon_connections(daemon) == 0, "no daemon clients")
    with trio.fail_after(60):
        for _ in range(3):
            async with open_stream(bridge, job["id"]) as ws:
                await read_stream(ws, limit=1)
                assert daemon_connections(daemon) == 1  # the stream's own
            # Closed by the client: the bridge's daemon connection goes at once.
            await wait_until(lambda: daemon_connections(daemon) == 0, "stream cleanup", 5)
    daemon.call("jobs.cancel", {"job_id": job["id"], "grace_s": 5})


async def test_slow_client_does_not_grow_memory(daemon: Daemon, bridge: Bridge) -> None:
    """A stalled reader of a 64 MB log: neither bridge nor daemon buffers it; then it catches
    up with nothing lost."""
    job = big_log_job(daemon, 64)
    size = job["log_size"]
    assert bridge.proc is not None and daemon.proc is not None
    procs = {"bridge": psutil.Process(bridge.proc.pid), "daemon": psutil.Process(daemon.proc.pid)}
    before = {k: p.memory_info().rss for k, p in procs.items()}
    peak = dict(before)
    with trio.fail_after(120):
        async with open_stream(bridge, job["id"]) as ws:
            first = await read_stream(ws, limit=1)
            # Stall: read nothing for a while, watching memory. The pipeline fills (TCP
            # buffers, one message in the bridge) and then everything waits.
            for _ in range(40):
                await trio.sleep(0.05)
                for k, p in procs.items():
                    peak[k] = max(peak[k], p.memory_info().rss)
            rest = await read_stream(ws)
    growth = {k: (peak[k] - before[k]) / 1e6 for k in procs}
    assert growth["bridge"] < 24 and growth["daemon"] < 24, growth  # far below the 64 MB
    assert joined(first + rest, 0) == daemon.job_log(job["id"])
    assert first[0]["offset"] == 0 and rest[-1]["type"] == "end"
    assert sum(len(m["data"]) for m in first + rest if m["type"] == "output") == size


async def test_daemon_gone_refuses_with_503(make_bridge: Any, daemon: Daemon) -> None:
    b = make_bridge(daemon)
    daemon.stop()
    r = b.upgrade("/api/stream/somejob")
    assert r.status_code == 503 and r.json()["error"]["code"] == -32099


async def test_daemon_lost_mid_stream_says_so(daemon: Daemon, bridge: Bridge) -> None:
    create_and_build(daemon, name=APP)
    job = daemon.call("launch", {"app": APP, "args": ["--forever"]})["job"]
    with trio.fail_after(60):
        async with open_stream(bridge, job["id"]) as ws:
            first = await read_stream(ws, limit=1)
            daemon.kill9()
            rest = await read_stream(ws)
    assert first and rest[-1]["type"] == "error"
    assert rest[-1]["error"]["code"] == -32099
    assert ws.closed is not None and ws.closed.code == 1013  # try again later
