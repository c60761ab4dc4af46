"""JSON-RPC 2.0 conformance over the real socket.

Section 7 of the specification, example by example, with its made-up methods (``subtract``,
``sum``, ``get_data``) mapped onto the registry's real ones.  Then what the spec leaves to
the transport: malformed and oversized frames, invalid UTF-8, and several requests in
flight on one connection.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.helpers import Daemon, create_and_build, raw_exchange, wait_for
from tests.rawconn import RawConn

# -- section 7, one example at a time -------------------------------------------------------


def test_call_with_positional_params(daemon: Daemon) -> None:
    # --> {"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}
    [resp] = raw_exchange(daemon.socket, b'{"jsonrpc":"2.0","method":"templates.get",'
                                         b'"params":["console_app"],"id":1}\n')
    assert resp["jsonrpc"] == "2.0" and resp["id"] == 1 and "error" not in resp
    assert resp["result"]["template"]["name"] == "console_app"
    [resp] = raw_exchange(daemon.socket, b'{"jsonrpc":"2.0","method":"jobs.get",'
                                         b'"params":["nonexistent-id"],"id":2}\n')
    assert resp["id"] == 2 and "result" not in resp
    assert resp["error"]["code"] == -32001
    assert "nonexistent-id" in resp["error"]["message"]
    assert "jobs list" in resp["error"]["message"]


def test_call_with_named_params(daemon: Daemon) -> None:
    # --> {"jsonrpc": "2.0", "method": "subtract", "params": {"subtrahend": 23, ...}, "id": 3}
    [resp] = raw_exchange(daemon.socket, b'{"jsonrpc":"2.0","method":"templates.get",'
                                         b'"params":{"name":"gui_app"},"id":3}\n')
    assert resp["id"] == 3
    assert resp["result"]["template"]["name"] == "gui_app"


def test_params_may_be_omitted(daemon: Daemon) -> None:
    [resp] = raw_exchange(daemon.socket, b'{"jsonrpc":"2.0","method":"daemon.status","id":4}\n')
    assert resp["result"]["pid"] == daemon.proc.pid  # type: ignore[union-attr]


@pytest.mark.parametrize("rid", ["1", "a-string id", 0, 7, -3, 2**40, None])
def test_ids_are_echoed_exactly(daemon: Daemon, rid: Any) -> None:
    with RawConn(daemon.socket) as c:
        ok = c.request("daemon.status", {}, id=rid)
        assert "id" in ok and ok["id"] == rid and type(ok["id"]) is type(rid)
        bad = c.request("jobs.get", ["nope"], id=rid)
        assert bad["id"] == rid and bad["error"]["code"] == -32001
        missing = c.request("no.such.method", None, id=rid)
        assert missing["id"] == rid and missing["error"]["code"] == -32601


def test_notifications_get_no_reply(daemon: Daemon) -> None:
    # --> {"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]}
    # --> {"jsonrpc": "2.0", "method": "foobar"}
    # A notification whose params are wrong, or whose method fails, still gets no reply: it
    # has no id to answer.
    with RawConn(daemon.socket) as c:
        c.send({"jsonrpc": "2.0", "method": "daemon.status", "params": []})
        c.send({"jsonrpc": "2.0", "method": "foobar"})
        c.send({"jsonrpc": "2.0", "method": "jobs.get", "params": [7]})
        c.send({"jsonrpc": "2.0", "method": "jobs.get", "params": ["a", "b", "c"]})
        c.send({"jsonrpc": "2.0", "method": "jobs.get", "params": {"job_id": "no-such"}})
        c.send({"jsonrpc": "2.0", "method": "jobs.list", "params": {"bogus": 1}})
        c.send({"jsonrpc": "2.0", "method": "rpc.discover", "id": "after"})
        # The request's response is the first and only message on the connection.
        first = c.recv()
        assert first["id"] == "after" and "result" in first
        assert c.request("daemon.status", id="again")["id"] == "again"


def test_notification_of_a_mutating_method_still_runs(daemon: Daemon) -> None:
    # No reply, but the work is done: the created app shows up.
    with RawConn(daemon.socket) as c:
        c.send({"jsonrpc": "2.0", "method": "templates.create",
                "params": {"template": "console_app", "name": "quiet.app"}})
        c.send({"jsonrpc": "2.0", "method": "jobs.list", "id": 1})
        first = c.recv()
        assert first["id"] == 1
    wait_for(lambda: any(a["name"] == "quiet.app" for a in daemon.call("apps.list")["apps"]),
             what="the app created by a notification")


def test_method_not_found(daemon: Daemon) -> None:
    # --> {"jsonrpc": "2.0", "method": "foobar", "id": "1"}
    [resp] = raw_exchange(daemon.socket, b'{"jsonrpc":"2.0","method":"foobar","id":"1"}\n')
    assert resp["id"] == "1"
    assert resp["error"]["code"] == -32601
    assert "foobar" in resp["error"]["message"]
    assert "rpc.discover" in resp["error"]["message"]  # says where the methods are listed


def test_invalid_json(daemon: Daemon) -> None:
    # --> {"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]
    [resp] = raw_exchange(daemon.socket,
                          b'{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]\n')
    assert resp == {"jsonrpc": "2.0", "id": None, "error": resp["error"]}
    assert resp["error"]["code"] == -32700
    assert "invalid JSON" in resp["error"]["message"]
    assert "one JSON-RPC 2.0 message per line" in resp["error"]["message"]


def test_invalid_request_object(daemon: Daemon) -> None:
    # --> {"jsonrpc": "2.0", "method": 1, "params": "bar"}
    [resp] = raw_exchange(daemon.socket, b'{"jsonrpc":"2.0","method":1,"params":"bar"}\n')
    assert resp["id"] is None
    assert resp["error"]["code"] == -32600
    assert "method" in resp["error"]["message"]


@pytest.mark.parametrize(("msg", "words"), [
    (b'{"method":"daemon.status","id":1}', '"jsonrpc": "2.0"'),
    (b'{"jsonrpc":"1.0","method":"daemon.status","id":1}', '"jsonrpc": "2.0"'),
    (b'{"jsonrpc":"2.0","id":1}', '"method"'),
    (b'{"jsonrpc":"2.0","method":"daemon.status","params":3,"id":1}', '"params"'),
    (b'{"jsonrpc":"2.0","method":"daemon.status","id":{"a":1}}', '"id"'),
    (b'{"jsonrpc":"2.0","method":"daemon.status","id":true}', '"id"'),
    (b'{"jsonrpc":"2.0","method":"daemon.status","id":1,"extra":2}', "extra"),
    (b'"just a string"', "JSON object"),
    (b"42", "JSON object"),
])
def test_invalid_request_variants(daemon: Daemon, msg: bytes, words: str) -> None:
    [resp] = raw_exchange(daemon.socket, msg + b"\n")
    assert resp["error"]["code"] == -32600
    assert words in resp["error"]["message"]
    assert resp["id"] in (None, 1)


def test_batch_with_invalid_json(daemon: Daemon) -> None:
    # --> [ {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
    #       {"jsonrpc": "2.0", "method" ]
    [resp] = raw_exchange(daemon.socket, b'[{"jsonrpc":"2.0","method":"jobs.list","params":[],'
                                         b'"id":"1"},{"jsonrpc":"2.0","method"]\n')
    assert isinstance(resp, dict)  # one error, not an array
    assert resp["id"] is None and resp["error"]["code"] == -32700


def test_empty_batch(daemon: Daemon) -> None:
    # --> []   <-- one error object, not an array
    [resp] = raw_exchange(daemon.socket, b"[]\n")
    assert isinstance(resp, dict)
    assert resp["id"] is None and resp["error"]["code"] == -32600
    assert "empty batch" in resp["error"]["message"]


def test_batch_of_one_invalid_member(daemon: Daemon) -> None:
    # --> [1]
    [resp] = raw_exchange(daemon.socket, b"[1]\n")
    assert isinstance(resp, list) and len(resp) == 1
    assert resp[0]["id"] is None and resp[0]["error"]["code"] == -32600


def test_batch_of_three_invalid_members(daemon: Daemon) -> None:
    # --> [1,2,3]
    [resp] = raw_exchange(daemon.socket, b"[1,2,3]\n")
    assert isinstance(resp, list) and len(resp) == 3
    for r in resp:
        assert r == {"jsonrpc": "2.0", "id": None, "error": r["error"]}
        assert r["error"]["code"] == -32600


def test_mixed_batch_answers_each_member(daemon: Daemon) -> None:
    # The spec's six-member batch: sum, notify_hello, subtract, {"foo": "boo"}, foo.get,
    # get_data.  Five answers (the notification gets none), matched by id.
    batch = (b'[{"jsonrpc":"2.0","method":"templates.get","params":["console_app"],"id":"1"},'
             b'{"jsonrpc":"2.0","method":"daemon.status","params":[]},'
             b'{"jsonrpc":"2.0","method":"jobs.list","params":[null,null,5],"id":"2"},'
             b'{"foo":"boo"},'
             b'{"jsonrpc":"2.0","method":"foo.get","params":{"name":"myself"},"id":"5"},'
             b'{"jsonrpc":"2.0","method":"daemon.status","id":"9"}]\n')
    [resp] = raw_exchange(daemon.socket, batch)
    assert isinstance(resp, list) and len(resp) == 5
    by_id: dict[Any, list[dict[str, Any]]] = {}
    for r in resp:
        by_id.setdefault(r["id"], []).append(r)
    assert by_id["1"][0]["result"]["template"]["name"] == "console_app"
    assert by_id["2"][0]["result"] == {"jobs": []}
    assert by_id["5"][0]["error"]["code"] == -32601
    assert by_id["9"][0]["result"]["pid"] == daemon.proc.pid  # type: ignore[union-attr]
    assert [r["error"]["code"] for r in by_id[None]] == [-32600]


def test_batch_members_fail_individually(daemon: Daemon) -> None:
    # jsonrpcserver alone answers a batch with one bad member by one error for the whole
    # batch; here every member gets its own answer.
    batch = (b'[{"jsonrpc":"2.0","method":"jobs.get","params":{"job_id":5},"id":1},'
             b'{"jsonrpc":"2.0","method":"daemon.status","id":2},'
             b'{"jsonrpc":"2.0","method":"jobs.get","params":["a","b"],"id":3},'
             b'{"jsonrpc":"2.0","method":"jobs.list","params":{"limit":2},"id":4}]\n')
    [resp] = raw_exchange(daemon.socket, batch)
    by_id = {r["id"]: r for r in resp}
    assert set(by_id) == {1, 2, 3, 4}
    assert by_id[1]["error"]["code"] == -32602 and "'job_id'" in by_id[1]["error"]["message"]
    assert "result" in by_id[2] and "result" in by_id[4]
    assert by_id[3]["error"]["code"] == -32602


def test_batch_of_only_notifications_gets_no_reply(daemon: Daemon) -> None:
    # --> [{"jsonrpc": "2.0", "method": "notify_sum", "params": [1,2,4]},
    #      {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}]
    # <-- nothing at all: the follow-up request's answer is the first message that arrives.
    with RawConn(daemon.socket) as c:
        c.send_raw(b'[{"jsonrpc":"2.0","method":"jobs.list","params":[null,null,4]},'
                   b'{"jsonrpc":"2.0","method":"jobs.get","params":[7]},'
                   b'{"jsonrpc":"2.0","method":"nope"}]\n')
        c.send({"jsonrpc": "2.0", "method": "daemon.status", "id": "follow-up"})
        first = c.recv()
        assert first["id"] == "follow-up" and "result" in first


def test_batch_members_run_concurrently(daemon: Daemon) -> None:
    # A batch whose first member waits for a job and whose last member cancels it: run one
    # after the other, the wait would time out; run together (a trio nursery, not jsonrpc-
    # server's asyncio.gather), the cancel releases the wait.
    name = create_and_build(daemon)
    job_id = daemon.call("launch", {"app": name, "args": ["--forever"]})["job"]["id"]
    batch = [{"jsonrpc": "2.0", "method": "jobs.wait", "id": "w",
              "params": {"job_id": job_id, "timeout_s": 120}},
             *({"jsonrpc": "2.0", "method": "daemon.status", "id": i} for i in range(5)),
             {"jsonrpc": "2.0", "method": "jobs.cancel", "params": [job_id, 5], "id": "c"}]
    [resp] = raw_exchange(daemon.socket, json.dumps(batch).encode() + b"\n", timeout=90)
    by_id = {r["id"]: r for r in resp}
    assert set(by_id) == {"w", "c", *range(5)}
    assert by_id["w"]["result"]["timed_out"] is False
    assert by_id["w"]["result"]["job"]["status"] == "cancelled"
    assert by_id["c"]["result"]["job"]["status"] == "cancelled"


# -- framing: malformed, invalid UTF-8, oversized ------------------------------------------


def test_malformed_json_keeps_the_connection_and_the_daemon(daemon: Daemon) -> None:
    with RawConn(daemon.socket) as c, RawConn(daemon.socket) as other:
        for junk in (b"{", b"}", b"nul", b'{"jsonrpc":"2.0",}', b"[1,", b"\x00\x01"):
            c.send_raw(junk + b"\n")
            resp = c.recv()
            assert resp["error"]["code"] == -32700 and resp["id"] is None
        # Same connection, and another one, still served.
        assert "result" in c.request("daemon.status", id=10)
        assert "result" in other.request("daemon.status", id=11)


def test_blank_lines_are_ignored(daemon: Daemon) -> None:
    with RawConn(daemon.socket) as c:
        c.send_raw(b"\n\n   \n\r\n")
        assert c.request("daemon.status", id="x")["id"] == "x"


def test_crlf_line_endings_are_accepted(daemon: Daemon) -> None:
    [resp] = raw_exchange(daemon.socket, b'{"jsonrpc":"2.0","method":"daemon.status","id":1}\r\n')
    assert "result" in resp


def test_invalid_utf8(daemon: Daemon) -> None:
    with RawConn(daemon.socket) as c:
        c.send_raw(b'{"jsonrpc":"2.0","method":"daemon.status\xff\xfe","id":1}\n')
        resp = c.recv()
        assert resp["error"]["code"] == -32700 and resp["id"] is None
        assert "invalid JSON" in resp["error"]["message"]
        c.send_raw(b"\xc3\x28\n")
        assert c.recv()["error"]["code"] == -32700
        assert "result" in c.request("daemon.status", id=2)


def test_non_ascii_round_trips(daemon: Daemon) -> None:
    job = daemon.call("templates.create", {"template": "console_app", "name": "uni.app",
                                           "display_name": "Café ✓ 日本"})["job"]
    assert daemon.wait_job(job["id"])["status"] == "succeeded"
    apps = {a["name"]: a for a in daemon.call("apps.list")["apps"]}
    assert apps["uni.app"]["display_name"] == "Café ✓ 日本"


def test_oversized_line_closes_only_that_connection(make_daemon: type[Daemon]) -> None:
    d = make_daemon(config="max_line_bytes = 4096").start()
    assert d.call("daemon.status")["limits"]["max_line_bytes"] == 4096
    with RawConn(d.socket) as bystander, RawConn(d.socket) as c:
        assert "result" in bystander.request("daemon.status", id=1)
        # Just under the limit is served.
        pad = "x" * (4096 - 100)
        ok = c.request("jobs.list", {"status": None, "kind": None}, id=pad[:3000])
        assert ok["id"] == pad[:3000]
        c.send_raw(b'{"jsonrpc":"2.0","method":"daemon.status","id":"' + b"y" * 5000 + b'"}\n')
        resp = c.recv()
        assert resp["error"]["code"] == -32006
        assert "4096-byte line limit" in resp["error"]["message"]
        assert "connection is closed" in resp["error"]["message"]
        assert resp["error"]["data"] == {"limit": 4096}
        assert c.recv_line() is None  # EOF: the daemon closed it
        assert "result" in bystander.request("daemon.status", id=2)
    assert "result" in raw_exchange(d.socket, b'{"jsonrpc":"2.0","method":"daemon.status",'
                                              b'"id":3}\n')[0]


def test_oversized_line_without_newline_is_refused(make_daemon: type[Daemon]) -> None:
    # The daemon does not wait for a newline that may never come.
    d = make_daemon(config="[daemon]\nmax_line_bytes = 4096\n").start()
    with RawConn(d.socket) as c:
        c.send_raw(b"[" + b" " * 8192)
        resp = c.recv()
        assert resp["error"]["code"] == -32006
        assert c.recv_line() is None
    assert d.call("daemon.status")["limits"]["max_line_bytes"] == 4096


def test_default_limit_accepts_a_large_valid_message(daemon: Daemon) -> None:
    big = "z" * (900 * 1024)  # under the 1 MiB default
    with RawConn(daemon.socket) as c:
        resp = c.request("jobs.get", [big], id=1)
        assert resp["error"]["code"] == -32602  # refused by the pattern, not the framing
        assert "'job_id'" in resp["error"]["message"]
        assert len(resp["error"]["message"]) < 1000  # the value is not echoed in full


def test_default_limit_refuses_over_one_mib(daemon: Daemon) -> None:
    with RawConn(daemon.socket) as c:
        c.send_raw(b'{"jsonrpc":"2.0","method":"jobs.get","params":["'
                   + b"z" * (1024 * 1024 + 10) + b'"],"id":1}\n')
        resp = c.recv()
        assert resp["error"]["code"] == -32006
        assert "1048576-byte" in resp["error"]["message"]
    assert "pid" in daemon.call("daemon.status")


# -- invalid params over the wire -----------------------------------------------------------


@pytest.mark.parametrize(("method", "params", "words"), [
    ("jobs.get", {"job_id": 12}, ["'job_id'", "string", "integer"]),
    ("jobs.list", {"limit": "5"}, ["'limit'", "integer", "string"]),
    ("jobs.list", {"limit": True}, ["'limit'", "integer", "boolean"]),
    ("jobs.wait", {"job_id": "abc", "timeout_s": False}, ["'timeout_s'", "number"]),
    ("launch", {"app": "a.b", "args": "--lines 3"}, ["'args'", "array"]),
    ("launch", {"app": "a.b", "display": "x11"}, ["'display'", "native", "xpra", "headless"]),
    ("build", {"clean": "yes"}, ["'clean'", "boolean"]),
    ("jobs.get", {"job_id": "abc", "verbose": True}, ["'verbose'", "job_id"]),
    ("jobs.get", {}, ["needs parameter 'job_id'"]),
    ("templates.create", {"template": "console_app"}, ["needs parameter 'name'"]),
    ("jobs.get", ["a", "b"], ["at most 1", "got 2"]),
    ("daemon.status", [".", 1], ["at most 1"]),
    ("jobs.logs", {"job_id": "abc", "offset": -1}, ["'offset'", "at least 0"]),
])
def test_invalid_params(daemon: Daemon, method: str, params: Any, words: list[str]) -> None:
    with RawConn(daemon.socket) as c:
        resp = c.request(method, params, id=99)
        assert resp["id"] == 99
        assert resp["error"]["code"] == -32602, resp
        for w in words:
            assert w in resp["error"]["message"], resp["error"]["message"]


# -- concurrency ----------------------------------------------------------------------------


def test_quick_calls_overtake_a_wait_on_one_connection(daemon: Daemon) -> None:
    name = create_and_build(daemon)
    job = daemon.call("launch", {"app": name, "args": ["--forever"]})["job"]
    with RawConn(daemon.socket) as c:
        c.send({"jsonrpc": "2.0", "method": "jobs.wait", "id": "wait",
                "params": {"job_id": job["id"], "timeout_s": 120}})
        for i in range(10):  # sent without waiting for any answer
            c.send({"jsonrpc": "2.0", "method": "jobs.get", "params": [job["id"]], "id": i})
        quick = [c.recv() for _ in range(10)]
        assert sorted(r["id"] for r in quick) == list(range(10))
        assert all(r["result"]["job"]["id"] == job["id"] for r in quick)
        # The wait is still pending; ending the job from elsewhere releases it.
        daemon.call("jobs.cancel", {"job_id": job["id"], "grace_s": 5})
        done = c.recv()
        assert done["id"] == "wait"
        assert done["result"]["timed_out"] is False
        assert done["result"]["job"]["status"] == "cancelled"


def test_wait_timeout_on_one_connection_with_others_in_flight(daemon: Daemon) -> None:
    name = create_and_build(daemon)
    job = daemon.call("launch", {"app": name, "args": ["--forever"]})["job"]
    try:
        with RawConn(daemon.socket) as c:
            c.send({"jsonrpc": "2.0", "method": "jobs.wait", "id": 1,
                    "params": {"job_id": job["id"], "timeout_s": 0.5}})
            c.send({"jsonrpc": "2.0", "method": "daemon.status", "id": 2})
            got = {m["id"]: m for m in (c.recv(), c.recv())}
            assert got[1]["result"]["timed_out"] is True
            assert got[1]["result"]["job"]["status"] in ("queued", "running")
            assert "result" in got[2]
    finally:
        daemon.call("jobs.cancel", {"job_id": job["id"], "grace_s": 5})


def test_many_concurrent_clients(daemon: Daemon) -> None:
    clients, calls = 50, 20
    barrier = threading.Barrier(clients)

    def worker(n: int) -> int:
        with RawConn(daemon.socket) as c:
            barrier.wait(timeout=30)
            # Pipelined: all requests out first, then all answers in.
            for i in range(calls):
                method = ("daemon.status", "jobs.list", "templates.list")[i % 3]
                c.send({"jsonrpc": "2.0", "method": method, "id": f"{n}-{i}"})
            got = [c.recv() for _ in range(calls)]
        assert sorted(r["id"] for r in got) == sorted(f"{n}-{i}" for i in range(calls))
        assert all("result" in r for r in got)
        return len(got)

    with ThreadPoolExecutor(clients) as pool:
        total = sum(pool.map(worker, range(clients)))
    assert total == clients * calls
    assert "Traceback" not in daemon.log()
