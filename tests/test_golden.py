"""Golden wire files: recorded exchanges and an older database still hold.

``tests/golden/exchanges.txt`` is replayed frame by frame against a fresh daemon; every
"< " line must come back byte for byte (notifications-only frames get no reply at all), in
NDJSON and, as the body of each frame, in the LSP base-protocol framing.
``tests/golden/kitplay-v1.db`` was written by kitplay 0.1.0 (schema 1); it must still open.
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

from kitplay.daemon.protocol.wire import LSP, NDJSON

from tests.helpers import Daemon
from tests.rawconn import LspRawConn, RawConn

GOLDEN = Path(__file__).parent / "golden"


def _pairs() -> list[tuple[bytes, list[bytes]]]:
    pairs: list[tuple[bytes, list[bytes]]] = []
    for line in (GOLDEN / "exchanges.txt").read_text().splitlines():
        if line.startswith("> "):
            pairs.append((line[2:].encode(), []))
        elif line.startswith("< "):
            pairs[-1][1].append(line[2:].encode())
    return pairs


def test_recorded_exchanges_hold(daemon: Daemon) -> None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(str(daemon.socket))
    reader = s.makefile("rb")
    try:
        for sent, expected in _pairs():
            s.sendall(sent + b"\n")
            for want in expected:
                got = reader.readline().rstrip(b"\n")
                assert got == want, f"for {sent!r}:\n got  {got!r}\n want {want!r}"
    finally:
        reader.close()
        s.close()


def test_recorded_exchanges_hold_in_both_framings_on_two_connections_at_once(
        daemon: Daemon) -> None:
    # Both connections are open together; each frame goes to both before either answer is
    # read, so the daemon serves an NDJSON and an LSP connection side by side.
    with RawConn(daemon.socket, timeout=10) as nd, LspRawConn(daemon.socket, timeout=10) as lsp:
        for sent, expected in _pairs():
            nd.send_raw(sent + b"\n")
            lsp.send_body(sent)
            for want in expected:
                got_nd, got_lsp = nd.recv_line(), lsp.recv_body()
                assert got_nd == want, f"NDJSON, for {sent!r}:\n got  {got_nd!r}\n want {want!r}"
                # The same answer, but a parse error says how to frame a message in LSP.
                want = want.replace(NDJSON.hint.encode(), LSP.hint.encode())
                assert got_lsp == want, f"LSP, for {sent!r}:\n got  {got_lsp!r}\n want {want!r}"
        # Nothing else came back on either (notification-only frames get no reply at all).
        assert nd.result("sessions.list") == lsp.result("sessions.list") == {
            "sessions": []}
        assert nd._buf == lsp._buf == b""


def test_database_from_version_0_1_0_still_opens(make_daemon: type[Daemon]) -> None:
    d = make_daemon()
    (d.state / "logs").mkdir(parents=True)
    shutil.copy(GOLDEN / "kitplay-v1.db", d.state / "kitplay.db")
    d.start()
    jobs = d.call("jobs.list")["jobs"]
    assert [j["id"] for j in jobs] == ["golden-3", "golden-2", "golden-1"]
    assert jobs[0]["status"] == "failed" and jobs[0]["error"]["message"] == "step 'x' failed"
    assert jobs[2]["result"] == {"app": "golden.app"}
    # A job left running by the old daemon has no process now: it is interrupted.
    assert d.call("jobs.get", ["golden-2"])["job"]["status"] == "interrupted"
