"""jobs.subscribe / jobs.unsubscribe over the real socket: live output, resume from an
offset with nothing lost or repeated, and clients that go away mid-stream.
"""

from __future__ import annotations

import fcntl
import json
import struct
import termios
from typing import Any

import psutil

from tests.helpers import Daemon, create_and_build, wait_for
from tests.rawconn import RawConn


def _is_response(rid: Any) -> Any:
    return lambda m: "method" not in m and m.get("id") == rid


def subscribe(c: RawConn, job_id: str, offset: int | None = None, rid: Any = "sub") -> str:
    params: dict[str, Any] = {"job_id": job_id}
    if offset is not None:
        params["offset"] = offset
    c.send({"jsonrpc": "2.0", "method": "jobs.subscribe", "params": params, "id": rid})
    resp, before = c.recv_until(_is_response(rid))
    assert before == [], "a notification arrived before the subscribe response"
    assert "result" in resp, resp
    return resp["result"]["subscription"]


def collect(c: RawConn, sub: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Output notifications of ``sub`` until its final jobs.state; and that final state."""
    outputs: list[dict[str, Any]] = []
    while True:
        msg = c.recv()
        assert msg.get("jsonrpc") == "2.0" and "id" not in msg, msg
        p = msg["params"]
        assert p["subscription"] == sub
        if msg["method"] == "jobs.output":
            outputs.append(p)
        else:
            assert msg["method"] == "jobs.state"
            if p["final"]:
                return outputs, p


def check_contiguous(outputs: list[dict[str, Any]], start: int) -> bytes:
    """Offsets run without gap or overlap from ``start``; return the bytes."""
    data = b""
    offset = start
    for o in outputs:
        assert o["offset"] == offset, "gap or overlap between notifications"
        chunk = o["data"].encode()
        assert chunk, "empty output notification"
        assert o["next_offset"] == o["offset"] + len(chunk)
        data += chunk
        offset = o["next_offset"]
    return data


def launch(d: Daemon, name: str, *args: str) -> str:
    with RawConn(d.socket) as c:
        return c.result("launch", {"app": name, "args": list(args)})["job"]["id"]


def _queued(c: RawConn) -> int:
    """Bytes waiting in the client's receive queue."""
    return int(struct.unpack("i", fcntl.ioctl(c.sock.fileno(), termios.FIONREAD, b"\0" * 4))[0])


def test_unsubscribe_while_the_daemon_is_blocked_writing_keeps_frames_whole(
        daemon: Daemon) -> None:
    # Regression: cancelling a subscription in the middle of a frame left half a message on
    # the stream, and the next response was glued onto it.
    name = create_and_build(daemon)
    big = launch(daemon, name, "--lines", "300000")  # notifications of 256 KiB of log each
    daemon.wait_job(big)
    log = (daemon.state / "logs" / f"{big}.log").read_bytes()
    with RawConn(daemon.socket) as c, RawConn(daemon.socket) as other:
        c.send({"jsonrpc": "2.0", "method": "jobs.subscribe", "params": [big], "id": "s"})
        # Read nothing until the socket is full: the daemon is then stuck inside a frame.
        wait_for(lambda: _queued(c) > 150_000, what="the socket buffer to fill")
        head = c.sock.recv(200)  # just the subscribe response, leaving the rest queued
        line, c._buf = head.split(b"\n", 1)
        sub = json.loads(line)["result"]["subscription"]
        c.send({"jsonrpc": "2.0", "method": "jobs.unsubscribe", "params": [sub], "id": "u"})
        # A round trip elsewhere, so the daemon has most likely handled the unsubscribe
        # while still blocked writing to us.
        assert "result" in other.request("daemon.status")
        resp, before = c.recv_until(_is_response("u"))  # every line must parse as JSON
        assert resp["result"] == {"unsubscribed": True}
        assert all(m["method"] in ("jobs.output", "jobs.state") for m in before)
        got = check_contiguous([m["params"] for m in before if m["method"] == "jobs.output"], 0)
        assert got == log[:len(got)]
        # And the connection carries on normally, with nothing more for that subscription.
        c.send({"jsonrpc": "2.0", "method": "daemon.status", "id": "ok"})
        again, after = c.recv_until(_is_response("ok"))
        assert "result" in again and after == []


def test_subscribe_from_zero_then_resume_from_the_middle(daemon: Daemon) -> None:
    name = create_and_build(daemon)
    job_id = launch(daemon, name, "--lines", "200", "--sleep", "0.002")
    with RawConn(daemon.socket) as c:
        sub = subscribe(c, job_id, 0)
        outputs, final = collect(c, sub)
    log = (daemon.state / "logs" / f"{job_id}.log").read_bytes()
    assert check_contiguous(outputs, 0) == log
    assert b"line 200" in log
    assert all(o["job_id"] == job_id for o in outputs)
    assert final["final"] is True
    assert final["job"]["id"] == job_id and final["job"]["status"] == "succeeded"
    assert final["job"]["log_size"] == len(log)

    # From a middle byte offset: exactly the remainder.
    mid = len(log) // 2
    with RawConn(daemon.socket) as c:
        sub = subscribe(c, job_id, mid)
        rest, final = collect(c, sub)
        assert check_contiguous(rest, mid) == log[mid:]
        assert final["job"]["status"] == "succeeded"
        # From the very end: no output, just the final state.
        sub = subscribe(c, job_id, len(log), rid="end")
        rest, final = collect(c, sub)
        assert rest == [] and final["final"] is True


def test_reconnect_and_resume_loses_and_repeats_nothing(daemon: Daemon) -> None:
    name = create_and_build(daemon)
    job_id = launch(daemon, name, "--lines", "300", "--sleep", "0.005")
    got = b""
    resumes = 0
    next_offset = 0
    final: dict[str, Any] = {}
    while not final:
        # Each connection reads a couple of notifications, then drops (a flaky client).
        with RawConn(daemon.socket) as c:
            sub = subscribe(c, job_id, next_offset)
            for _ in range(2):
                msg = c.recv()
                p = msg["params"]
                if msg["method"] == "jobs.state":
                    if p["final"]:
                        final = p
                        break
                    continue
                assert p["subscription"] == sub and p["offset"] == next_offset
                got += p["data"].encode()
                next_offset = p["next_offset"]
        resumes += 1
    log = (daemon.state / "logs" / f"{job_id}.log").read_bytes()
    assert got == log
    assert resumes > 1
    assert final["job"]["status"] == "succeeded"


def test_unsubscribe_stops_notifications(daemon: Daemon) -> None:
    name = create_and_build(daemon)
    job_id = launch(daemon, name, "--forever")
    try:
        with RawConn(daemon.socket) as c, RawConn(daemon.socket) as other:
            sub = subscribe(c, job_id)
            c.recv_until(lambda m: m.get("method") == "jobs.output"
                         and "tick 1" in m["params"]["data"])
            # Another connection cannot end this subscription.
            err = other.error("jobs.unsubscribe", {"subscription": sub})
            assert err["code"] == -32001 and "on this connection" in err["message"]
            assert c.request("jobs.unsubscribe", [sub], id="u")["result"] == {
                "unsubscribed": True}
            size = other.result("jobs.logs", [job_id])["next_offset"]
            # The log grows on; nothing more arrives for the ended subscription.
            wait_for(lambda: other.result("jobs.logs", [job_id, size])["data"].count("tick")
                     >= 2, what="two more ticks")
            c.send({"jsonrpc": "2.0", "method": "daemon.status", "id": "after"})
            _, before = c.recv_until(_is_response("after"))
            assert before == []
            err = c.error("jobs.unsubscribe", {"subscription": sub})
            assert err["code"] == -32001
            assert f"no subscription '{sub}'" in err["message"]
    finally:
        daemon.call("jobs.cancel", {"job_id": job_id, "grace_s": 5})


def test_subscribe_errors(daemon: Daemon) -> None:
    job = daemon.call("templates.create", {"template": "console_app", "name": "e.app"})["job"]
    daemon.wait_job(job["id"])
    size = daemon.call("jobs.get", [job["id"]])["job"]["log_size"]
    with RawConn(daemon.socket) as c:
        err = c.error("jobs.subscribe", {"job_id": job["id"], "offset": size + 1})
        assert err["code"] == -32602
        assert f"past the end of the log ({size} bytes)" in err["message"]
        err = c.error("jobs.subscribe", {"job_id": "nonexistent-id"})
        assert err["code"] == -32001 and "jobs list" in err["message"]
        err = c.error("jobs.subscribe", {"job_id": job["id"], "offset": -5})
        assert err["code"] == -32602 and "'offset'" in err["message"]
        err = c.error("jobs.unsubscribe", {"subscription": "s-unknown"})
        assert err["code"] == -32001 and "no subscription" in err["message"]
        # No half-made subscription is left behind: the connection stays quiet.
        c.send({"jsonrpc": "2.0", "method": "daemon.status", "id": "q"})
        _, before = c.recv_until(_is_response("q"))
        assert before == []


def test_two_subscriptions_on_one_connection(daemon: Daemon) -> None:
    name = create_and_build(daemon)
    a = launch(daemon, name, "--lines", "100", "--sleep", "0.002")
    b = launch(daemon, name, "--lines", "150", "--sleep", "0.002")
    with RawConn(daemon.socket) as c:
        for rid, job_id in ((1, a), (2, b)):
            c.send({"jsonrpc": "2.0", "method": "jobs.subscribe", "params": [job_id],
                    "id": rid})
        subs: dict[str, str] = {}
        outputs: dict[str, list[dict[str, Any]]] = {}
        finals: dict[str, dict[str, Any]] = {}
        while len(finals) < 2:
            msg = c.recv()
            if "method" not in msg:  # a subscribe response
                subs[msg["result"]["subscription"]] = {1: a, 2: b}[msg["id"]]
                continue
            p = msg["params"]
            assert p["subscription"] in subs  # never a notification before its response
            if msg["method"] == "jobs.output":
                assert p["job_id"] == subs[p["subscription"]]
                outputs.setdefault(p["subscription"], []).append(p)
            elif p["final"]:
                finals[p["subscription"]] = p
    assert len(subs) == 2 and set(subs.values()) == {a, b}
    for sub, job_id in subs.items():
        log = (daemon.state / "logs" / f"{job_id}.log").read_bytes()
        assert check_contiguous(outputs[sub], 0) == log
        assert finals[sub]["job"]["id"] == job_id


def test_clients_leaving_mid_stream_do_not_hurt_the_daemon(daemon: Daemon) -> None:
    name = create_and_build(daemon)
    big = launch(daemon, name, "--lines", "300000")  # a few MB: more than a socket buffer
    daemon.wait_job(big)
    size = daemon.call("jobs.get", [big])["job"]["log_size"]
    assert size > 2_000_000
    live = launch(daemon, name, "--forever")
    proc = psutil.Process(daemon.proc.pid)  # type: ignore[union-attr]
    fds = proc.num_fds()
    try:
        for i in range(10):
            c = RawConn(daemon.socket)
            subscribe(c, big if i % 2 else live, rid=i)
            if i % 3 == 0:
                c.recv()  # read a bit, then vanish; others never read at all
            c.close()
        # The daemon serves on, the live job runs on, and the dropped connections are freed.
        assert daemon.call("daemon.status")["pid"] == proc.pid
        assert daemon.call("jobs.get", [live])["job"]["status"] == "running"
        wait_for(lambda: proc.num_fds() <= fds, what="the daemon to close dropped connections")
    finally:
        daemon.call("jobs.cancel", {"job_id": live, "grace_s": 5})
    assert "Traceback" not in daemon.log()
