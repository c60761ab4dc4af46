"""What editors' JSON-RPC stacks need of the socket, in both framings, against a real daemon.

- ``$/cancelRequest {"id"}`` (LSP's cancellation notification, which vscode-jsonrpc sends when
  a CancellationToken fires) ends the named call in flight with -32800 at once and frees its
  slot of the connection's ``max_inflight_per_connection``; an unknown or finished id is
  ignored and the connection keeps serving;
- a body that is not JSON is answered with advice in the connection's own framing (an LSP
  connection is not told to send one message per line);
- a by-position call with too many parameters names the method's parameters, in words and in
  ``data``.
"""

from __future__ import annotations

from typing import Any

import pytest
from kitplay.daemon.protocol.errors import RequestCancelled
from kitplay.daemon.protocol.registry import METHODS

from tests.helpers import Daemon, write_app
from tests.rawconn import LspRawConn, RawConn

TICKER = ("import time\n"
          "while True:\n"
          "    print('tick', flush=True)\n"
          "    time.sleep(0.2)\n")


def _conn(daemon: Daemon, framing: str) -> RawConn:
    return (LspRawConn if framing == "lsp" else RawConn)(daemon.socket, timeout=30)


@pytest.mark.parametrize("framing", ["ndjson", "lsp"])
def test_cancel_request_ends_the_named_call_and_frees_its_slot(make_daemon: Any,
                                                               framing: str) -> None:
    # One slot per connection: a jobs.wait that kept its slot would block every later call.
    d = make_daemon(config="max_inflight_per_connection = 1\n").start()
    write_app(d.workspace, "t.ticker", launch=["{python}", "-c", TICKER])
    job = d.call("launch", {"app": "t.ticker"})["job"]["id"]
    try:
        with _conn(d, framing) as c:
            c.send({"jsonrpc": "2.0", "id": "w1", "method": "jobs.wait",
                    "params": {"job_id": job, "timeout_s": 600}})
            # A cancel of an id nobody used, and of a finished call: ignored.
            c.send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 12345}})
            c.send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": "w1"}})
            resp, before = c.recv_until(lambda m: m.get("id") == "w1")
            assert before == []
            assert resp["error"]["code"] == RequestCancelled.code == -32800
            assert "$/cancelRequest" in resp["error"]["message"]
            assert resp["error"]["data"] == {"reason": "client"}
            # The slot is free: another waiting call runs (and times out as asked).
            assert c.result("jobs.wait", {"job_id": job, "timeout_s": 0.05})["timed_out"]
            c.send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 1}})
            assert c.result("daemon.status")["pid"]  # still serving
            # 1 and "1" are different ids: cancelling "7" leaves 7 alone.
            c.send({"jsonrpc": "2.0", "id": 7, "method": "jobs.wait",
                    "params": {"job_id": job, "timeout_s": 0.3}})
            c.send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": "7"}})
            resp, _ = c.recv_until(lambda m: m.get("id") == 7)
            assert resp["result"]["timed_out"] is True
        assert d.call("jobs.get", {"job_id": job})["job"]["status"] == "running"
    finally:
        d.call("jobs.cancel", {"job_id": job, "grace_s": 5})


@pytest.mark.parametrize("framing", ["ndjson", "lsp"])
def test_a_body_that_is_not_json_gets_advice_for_its_framing(daemon: Daemon,
                                                             framing: str) -> None:
    with _conn(daemon, framing) as c:
        if framing == "lsp":
            c.send_body(b"this is not json")  # type: ignore[attr-defined]
        else:
            c.send_raw(b"this is not json\n")
        err = c.recv()["error"]
        assert err["code"] == -32700
        if framing == "lsp":
            assert "per line" not in err["message"]
            assert "Content-Length" in err["message"]
        else:
            assert err["message"].endswith("Send one JSON-RPC 2.0 message per line.")
        assert c.result("sessions.list") == {"sessions": []}  # the connection still serves


def test_too_many_parameters_by_position_names_them(daemon: Daemon) -> None:
    with RawConn(daemon.socket) as c:
        names = [p.name for p in METHODS["jobs.logs"].params]
        err = c.error("jobs.logs", ["a-job", 0, 10, *[None] * (len(names) - 3), "extra"])
        assert err["code"] == -32602
        assert ", ".join(names) in err["message"]
        assert f"got {len(names) + 1}" in err["message"]
        assert err["data"] == {"params": names, "got": len(names) + 1}
        err = c.error("sessions.list", [1])
        assert "takes no parameters" in err["message"]
        assert err["data"] == {"params": [], "got": 1}
        # The task path (a method that waits) answers the same.
        err = c.error("jobs.wait", ["a-job", 1, 2])
        assert err["data"] == {"params": ["job_id", "timeout_s"], "got": 3}
