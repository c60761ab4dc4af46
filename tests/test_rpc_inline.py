"""The connection loop's fast path: calls whose handler never waits are answered inline.

- unit: for every kind of message, a dispatcher whose handlers are plain functions (answered
  by ``answer_nowait``, which skips jsonrpcserver for well-formed requests) gives exactly the
  answer that the same handlers written ``async def`` give through jsonrpcserver;
- real daemon: inline calls are answered while calls that wait (``jobs.wait``) stay in flight
  on the same connection, every request is answered once, and a subscription's answer still
  comes before its first notification.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

import pytest
from kitplay.daemon.protocol.errors import InvalidState, NotFound
from kitplay.daemon.protocol.framing import Encoded, dumps, encode
from kitplay.daemon.protocol.registry import METHODS
from kitplay.daemon.rpc import Dispatcher

from tests.helpers import Daemon, wait_for, write_app
from tests.rawconn import RawConn


def _behaviour(name: str) -> Any:
    def answer(ctx: Any, p: dict[str, Any]) -> Any:
        if name == "jobs.get":
            if p["job_id"] == "missing":
                raise NotFound("no job", {"job_id": p["job_id"]})
            if p["job_id"] == "odd":
                raise InvalidState("odd state")  # data None
            if p["job_id"] == "bug":
                raise RuntimeError("a bug")
            if p["job_id"] == "kept":  # a result with its JSON kept (an ended job)
                value = {"job": {"id": "kept", "text": "é \"q\"", "n": 1.5}}
                return Encoded(value, encode(value))
        return {"method": name, "params": p}
    return answer


def _dispatchers() -> tuple[Dispatcher, Dispatcher]:
    inline = {n: _behaviour(n) for n in METHODS}
    waiting = {}
    for n in METHODS:
        async def handler(ctx: Any, p: dict[str, Any], f: Any = inline[n]) -> Any:
            return f(ctx, p)
        waiting[n] = handler
    return Dispatcher(inline), Dispatcher(waiting)


MESSAGES: list[Any] = [
    {"jsonrpc": "2.0", "method": "sessions.list", "id": 1},
    {"jsonrpc": "2.0", "method": "sessions.list", "params": {}, "id": "a"},
    {"jsonrpc": "2.0", "method": "sessions.list", "params": [], "id": None},
    {"jsonrpc": "2.0", "method": "sessions.list"},  # notification
    {"jsonrpc": "2.0", "method": "jobs.get", "params": {"job_id": "abc"}, "id": 2},
    {"jsonrpc": "2.0", "method": "jobs.get", "params": ["abc"], "id": 3},
    {"jsonrpc": "2.0", "method": "jobs.get", "params": ["abc", 1, 2], "id": 4},
    {"jsonrpc": "2.0", "method": "jobs.get", "params": ["abc", 1, 2]},
    {"jsonrpc": "2.0", "method": "jobs.get", "params": {"job_id": 5}, "id": 5},
    {"jsonrpc": "2.0", "method": "jobs.get", "params": {"job_id": "a", "x": 1}, "id": 6},
    {"jsonrpc": "2.0", "method": "jobs.get", "params": {}, "id": 7},
    {"jsonrpc": "2.0", "method": "jobs.get", "params": {"job_id": "missing"}, "id": 8},
    {"jsonrpc": "2.0", "method": "jobs.get", "params": {"job_id": "odd"}, "id": 9},
    {"jsonrpc": "2.0", "method": "jobs.get", "params": {"job_id": "bug"}, "id": 10},
    {"jsonrpc": "2.0", "method": "jobs.get", "params": {"job_id": "missing"}},
    {"jsonrpc": "2.0", "method": "jobs.get", "params": {"job_id": "kept"}, "id": "k"},
    {"jsonrpc": "2.0", "method": "jobs.get", "params": {"job_id": "kept"}},
    {"jsonrpc": "2.0", "method": "jobs.list", "params": {"limit": 2.5}, "id": 11},
    {"jsonrpc": "2.0", "method": "no.such", "id": 12},
    {"jsonrpc": "2.0", "method": "no.such"},
    {"jsonrpc": "2.0", "method": "sessions.list", "id": 13, "extra": 1},
    {"jsonrpc": "1.0", "method": "sessions.list", "id": 14},
    {"jsonrpc": "2.0", "method": 5, "id": 15},
    {"jsonrpc": "2.0", "method": ["a"], "id": 16},
    {"jsonrpc": "2.0", "method": "sessions.list", "params": 3, "id": 17},
    {"jsonrpc": "2.0", "method": "sessions.list", "id": True},
    {"jsonrpc": "2.0", "method": "sessions.list", "id": [1]},
    1,
    "text",
    None,
    {},
]


@pytest.mark.parametrize("msg", MESSAGES, ids=[json.dumps(m)[:60] for m in MESSAGES])
async def test_inline_answers_as_jsonrpcserver_does(msg: Any) -> None:
    inline, waiting = _dispatchers()
    assert inline.completes_nowait(msg)
    expected = await waiting.handle_message(msg, None)
    got = inline.answer_nowait(msg, None)
    if type(got) is bytes:  # a kept encoding: the very frame the dict would have made
        assert got + b"\n" == dumps(expected)
        got = json.loads(got)
    assert got == expected
    # Through the bytes too (the id kinds, "data": null on handler errors).
    assert json.dumps(got) == json.dumps(expected)


def test_what_takes_the_task_path() -> None:
    inline, waiting = _dispatchers()
    request = {"jsonrpc": "2.0", "method": "sessions.list", "id": 1}
    assert inline.completes_nowait(request)
    assert not waiting.completes_nowait(request)  # async def: may wait
    assert not inline.completes_nowait([request])  # batches: a nursery of members


def test_the_daemon_answers_only_non_waiting_methods_inline() -> None:
    from kitplay.daemon.handlers import Handlers

    inline = {n for n in METHODS
              if not inspect.iscoroutinefunction(getattr(Handlers, n.replace(".", "_")))}
    # These must stay async: they wait on events, threads, commits or a subscription.
    for name in ("jobs.wait", "jobs.logs", "jobs.subscribe", "jobs.cancel", "build",
                 "launch", "templates.create", "templates.list"):
        assert name not in inline
    assert {"sessions.list", "jobs.get", "jobs.list", "daemon.status"} <= inline


def test_inline_calls_pass_a_waiting_call_on_one_connection() -> None:
    d = Daemon()
    try:
        write_app(d.workspace, "t.gate", build=[[
            "{python}", "-c",
            "import os,time\nwhile not os.path.exists('go'): time.sleep(0.02)"]])
        d.start()
        job = d.call("build", {"app": "t.gate"})["job"]
        with RawConn(d.socket) as conn:
            # A waiting call first, then many inline calls pipelined behind it in one write.
            frames = [{"jsonrpc": "2.0", "id": "wait", "method": "jobs.wait",
                       "params": {"job_id": job["id"], "timeout_s": 60}}]
            frames += [{"jsonrpc": "2.0", "id": i, "method": m,
                        "params": {"job_id": job["id"]} if m == "jobs.get" else {}}
                       for i, m in enumerate(["sessions.list", "jobs.get", "daemon.status"] * 50)]
            conn.send_raw(b"".join(json.dumps(f).encode() + b"\n" for f in frames))
            got = [conn.recv() for _ in range(150)]
            # All inline answers arrived while jobs.wait is still in flight.
            assert sorted(m["id"] for m in got) == list(range(150))
            assert all("result" in m for m in got), [m for m in got if "error" in m][:1]
            assert all(m["result"]["job"]["status"] == "running"
                       for m in got if m["id"] % 3 == 1)
            wait_for(lambda: (d.workspace / "source/apps/t.gate").is_dir(), what="app dir")
            (d.workspace / "source/apps/t.gate/go").write_text("")
            done = conn.recv()
            assert done["id"] == "wait" and done["result"]["job"]["status"] == "succeeded"
            assert done["result"]["timed_out"] is False
            # One answer per request: nothing else is pending on the connection.
            assert conn.request("sessions.list", id="last")["id"] == "last"
    finally:
        d.cleanup()


def test_subscribe_answer_comes_before_its_first_notification(daemon: Daemon) -> None:
    job = daemon.call("templates.create", {"template": "console_app",
                                           "name": "t.sub"})["job"]
    daemon.wait_job(job["id"])
    with RawConn(daemon.socket) as conn:
        # The subscription (task path) and inline calls behind it in the same write.
        frames = [{"jsonrpc": "2.0", "id": 1, "method": "jobs.subscribe",
                   "params": {"job_id": job["id"]}}]
        frames += [{"jsonrpc": "2.0", "id": 2 + i, "method": "sessions.list"}
                   for i in range(20)]
        conn.send_raw(b"".join(json.dumps(f).encode() + b"\n" for f in frames))
        seen: list[Any] = []
        while not any(m.get("method") == "jobs.state" and m["params"]["final"] for m in seen):
            seen.append(conn.recv())
        sub_at = next(i for i, m in enumerate(seen) if m.get("id") == 1)
        first_note = next(i for i, m in enumerate(seen) if "method" in m)
        assert sub_at < first_note
        answered = {m["id"] for m in seen if "id" in m}
        while len(answered) < 21:
            answered.add(conn.recv()["id"])
        assert answered == set(range(1, 22))
