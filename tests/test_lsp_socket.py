"""The LSP base-protocol framing over the real socket, beside NDJSON.

A connection's first bytes choose its framing; every answer and notification on it comes
back in that framing; a malformed header or an oversized body gets a clear error and closes
only that connection; the Python clients (blocking and trio) speak either framing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio
from kitplay.daemon.protocol.aclient import open_client
from kitplay.daemon.protocol.client import Client

from tests.helpers import Daemon, create_and_build
from tests.rawconn import LspRawConn, RawConn
from tests.test_bridge_docs import example, run
from tests.test_subscribe import check_contiguous, collect, subscribe

MAX_LINE = 1024 * 1024


def _launch(d: Daemon, name: str, lines: int) -> str:
    with Client.connect(d.socket, framing="lsp") as c:
        return str(c.call("launch", {"app": name, "args": ["--lines", str(lines)]})["job"]["id"])


def test_subscription_notifications_are_the_same_in_both_framings(daemon: Daemon) -> None:
    name = create_and_build(daemon)
    job = _launch(daemon, name, 2000)
    daemon.wait_job(job)
    with RawConn(daemon.socket) as nd, LspRawConn(daemon.socket) as lsp:
        sub_nd, sub_lsp = subscribe(nd, job, 0), subscribe(lsp, job, 0)
        outputs_nd, final_nd = collect(nd, sub_nd)
        outputs_lsp, final_lsp = collect(lsp, sub_lsp)
    log = daemon.job_log(job).encode()
    assert check_contiguous(outputs_nd, 0) == check_contiguous(outputs_lsp, 0) == log
    assert b"line 2000" in log or len(log) > 2000
    strip = [{k: v for k, v in o.items() if k != "subscription"} for o in outputs_lsp]
    assert strip == [{k: v for k, v in o.items() if k != "subscription"} for o in outputs_nd]
    assert final_lsp["job"] == final_nd["job"] and final_lsp["job"]["status"] == "succeeded"


def test_live_output_reaches_an_lsp_subscriber_while_the_job_runs(daemon: Daemon) -> None:
    name = create_and_build(daemon)
    with LspRawConn(daemon.socket) as lsp:
        job = lsp.result("launch", {"app": name, "args": ["--lines", "50"]})["job"]["id"]
        sub = subscribe(lsp, job)
        outputs, final = collect(lsp, sub)
        assert final["job"]["status"] == "succeeded"
        assert check_contiguous(outputs, 0) == daemon.job_log(job).encode()
        assert lsp._buf == b""


@pytest.mark.parametrize(("header", "says"), [
    (b"Content-Length: 5\nX: 1\n\n", "bare \\n"),
    (b"Content-Type: application/vscode-jsonrpc\r\n\r\n{}", "Content-Length is missing"),
    (b"Content-Length: five\r\n\r\n", "must be a number"),
    (b"Content-Length: 2\r\nContent-Type: a/b; charset=utf-16\r\n\r\n{}", "charset"),
])
def test_malformed_header_gets_a_clear_error_in_lsp_framing_then_close(
        daemon: Daemon, header: bytes, says: str) -> None:
    with Client.connect(daemon.socket) as bystander, LspRawConn(daemon.socket) as bad:
        assert bystander.call("sessions.list") == {"sessions": []}
        # A good frame first, in the same write: answered (nothing lost), and the bad header
        # gets an error (in either order: answers carry ids), then the connection is closed.
        good = b'{"jsonrpc":"2.0","method":"sessions.list","id":1}'
        bad.send_raw(b"Content-Length: %d\r\n\r\n" % len(good) + good + header)
        got = [bad.recv(), bad.recv()]
        assert {"jsonrpc": "2.0", "result": {"sessions": []}, "id": 1} in got
        err = next(m for m in got if "error" in m)
        assert err["id"] is None and err["error"]["code"] == -32700
        assert "malformed LSP header" in err["error"]["message"]
        assert says in err["error"]["message"]
        assert "Content-Length: N" in err["error"]["message"]
        assert bad.recv_body() is None and bad.eof  # closed
        assert bystander.call("sessions.list") == {"sessions": []}


def test_oversized_body_is_refused_from_its_header(daemon: Daemon) -> None:
    with LspRawConn(daemon.socket) as c:
        c.send_raw(b"Content-Length: %d\r\n\r\n" % (MAX_LINE + 1))
        err = c.recv()["error"]
        assert err["code"] == -32006 and str(MAX_LINE) in err["message"]
        assert err["data"] == {"limit": MAX_LINE, "framing": "lsp"}
        assert c.recv_body() is None
    with LspRawConn(daemon.socket) as c:  # exactly the limit is accepted
        pad = MAX_LINE - len(b'{"jsonrpc":"2.0","method":"sessions.list","id":1,"params":[]}')
        body = b'{"jsonrpc":"2.0","method":"sessions.list","id":1,"params":[]}' + b" " * pad
        assert len(body) == MAX_LINE
        c.send_body(body)
        assert c.recv() == {"jsonrpc": "2.0", "result": {"sessions": []}, "id": 1}


def test_framing_is_chosen_once_per_connection(daemon: Daemon) -> None:
    # After an NDJSON start, an LSP header is just a line that is not JSON.
    with RawConn(daemon.socket) as c:
        c.send_raw(b'{"jsonrpc":"2.0","method":"sessions.list","id":1}\n'
                   b"Content-Length: 2\r\n")
        got = [c.recv(), c.recv()]  # answered concurrently: in either order
        assert {"jsonrpc": "2.0", "result": {"sessions": []}, "id": 1} in got
        assert any(m.get("error", {}).get("code") == -32700 for m in got)
        assert c.result("sessions.list") == {"sessions": []}  # and it keeps serving
    # A header split across writes still chooses LSP.
    with LspRawConn(daemon.socket) as c:
        body = json.dumps({"jsonrpc": "2.0", "method": "daemon.status", "id": 9}).encode()
        for part in (b"Con", b"tent-Le", b"ngth: %d\r" % len(body), b"\n\r\n", body):
            c.send_raw(part)
        assert c.recv()["result"]["pid"] == daemon.proc.pid  # type: ignore[union-attr]


def test_blocking_client_speaks_lsp(daemon: Daemon) -> None:
    name = create_and_build(daemon)
    job = _launch(daemon, name, 20)
    with Client.connect(daemon.socket, framing="lsp") as c:
        assert c.framing == "lsp"
        assert c.call("daemon.status")["pid"] == daemon.proc.pid  # type: ignore[union-attr]
        notes = list(c.follow(job))
    assert notes[-1]["method"] == "jobs.state" and notes[-1]["params"]["final"]
    text = "".join(n["params"]["data"] for n in notes if n["method"] == "jobs.output")
    assert text == daemon.job_log(job)
    with pytest.raises(ValueError, match="unknown framing"):
        Client.connect(daemon.socket, framing="xml")


async def test_trio_client_speaks_lsp_and_ndjson_side_by_side(daemon: Daemon) -> None:
    name = await trio.to_thread.run_sync(create_and_build, daemon)
    with trio.fail_after(60):
        async with open_client(daemon.socket, framing="lsp") as lsp, \
                open_client(daemon.socket) as nd:
            job = (await lsp.call("launch", {"app": name, "args": ["--lines", "30"]}))["job"]
            seen: dict[str, list[Any]] = {}

            async def follow(c: Any, key: str) -> None:
                async with c.subscribe(job["id"], 0, buffer=8) as sub:
                    seen[key] = [(m, p.get("data"), p.get("final")) async for m, p in sub]

            async with trio.open_nursery() as n:
                n.start_soon(follow, lsp, "lsp")
                n.start_soon(follow, nd, "ndjson")
            assert (await lsp.call("daemon.status"))["pid"] == (
                await nd.call("daemon.status"))["pid"]
    text = "".join(d for m, d, _ in seen["lsp"] if m == "jobs.output")
    assert text == "".join(d for m, d, _ in seen["ndjson"] if m == "jobs.output")
    assert text == daemon.job_log(job["id"]) and text
    assert seen["lsp"][-1][0] == "jobs.state" and seen["lsp"][-1][2] is True


def test_rpc_discover_names_both_framings_and_how_to_choose(daemon: Daemon) -> None:
    with LspRawConn(daemon.socket) as c:
        doc = c.result("rpc.discover")
    framings = {f["name"]: f for f in doc["x-framings"]}
    assert list(framings) == ["ndjson", "lsp"]
    assert "Content-Length" in framings["lsp"]["frame"]
    assert "first bytes" in framings["ndjson"]["chosen_when"]


@pytest.mark.skipif(shutil.which("socat") is None, reason="needs socat")
def test_docs_socat_lsp_example(daemon: Daemon, tmp_path: Path) -> None:
    env = {**os.environ, "KITPLAY_SOCKET": str(daemon.socket)}
    r = subprocess.run(["bash", "-c", example("socat-lsp")], env=env, capture_output=True,
                       timeout=60, cwd=tmp_path)  # bytes: the \r\n must come through as sent
    assert r.returncode == 0, r.stderr
    header, _, body = r.stdout.partition(b"\r\n\r\n")
    assert header == b"Content-Length: %d" % len(body)
    assert json.loads(body)["result"]["pid"] == daemon.proc.pid  # type: ignore[union-attr]


def test_docs_python_client_example_in_lsp_framing(daemon: Daemon, tmp_path: Path) -> None:
    # The docs' NDJSON client with its send/receive replaced by the LSP ones, as the docs say.
    create_and_build(daemon, name="my_company.doc_lsp")
    job = daemon.call("jobs.list", {"limit": 1})["jobs"][0]
    client = example("python-client")
    start = client.index("    def send(self, message):")
    end = client.index("    def call(self, method")
    (tmp_path / "client.py").write_text(
        client[:start] + example("python-lsp-framing") + "\n" + client[end:])
    r = run(daemon, [sys.executable, "client.py", job["id"]], tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"kitplayd 0.1.0\n{daemon.job_log(job['id'])}job {job['id']}: succeeded\n"


def test_the_kitplay_command_does_not_import_the_lsp_framing() -> None:
    # It speaks NDJSON; its start-up time is a figure of the design (docs/bench.md).
    code = ("import sys; import kitplay.cli_client.main, kitplay.daemon.protocol.client; "
            "print(sorted(m for m in sys.modules if m.endswith(('.lsp', '.wire'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parent.parent).stdout
    assert out.strip() == "[]"
