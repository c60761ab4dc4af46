"""Hostile input on the socket: at least 10,000 malformed frames, and the daemon lives on.

A seeded generator (reproducible: the seed is in the failure message) writes random bytes,
truncated JSON, deep nesting, huge and non-finite numbers, wrong types for every parameter of
every method, unknown methods, invalid UTF-8, odd batches and oversized lines; hypothesis adds
structured JSON-RPC messages with arbitrary JSON inside.  Frames are sent in batches on one
connection each (a sender thread writes, then half-closes; the test reads everything back).

For every connection: the daemon answers or closes it; every line it sends is a well-formed
JSON-RPC response (or a batch of them) with a documented error code, never an internal error;
every request we can identify by its id is answered exactly once.  After every connection the
daemon is alive, and a normal client is served at the end.  The same frames are sent again in
the LSP base-protocol framing (``Content-Length`` headers), and hostile LSP headers get one
framing error each, after the answers to the good frames before them.
"""

from __future__ import annotations

import json
import random
import socket
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kitplay.daemon.protocol.errors import ERRORS
from kitplay.daemon.protocol.lsp import lsp_frame
from kitplay.daemon.protocol.registry import METHODS

from tests.helpers import Daemon

pytestmark = pytest.mark.reliability

SEED = 20240611
MAX_LINE = 1024 * 1024
KNOWN_CODES = {-32700, -32600, -32601, -32602} | {c.code for c in ERRORS if c.code != -32603}
NOTIFICATIONS_ONLY = json.dumps([{"jsonrpc": "2.0", "method": "daemon.status"}] * 5).encode()
JSON_TYPES = {"string": "s", "integer": 7, "number": 1.5, "boolean": True, "array": [1],
              "object": {"a": 1}, "null": None}


class Frames:
    """A seeded generator of hostile frames; each is (bytes without newline, id or None)."""

    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)
        self.n = 0
        self.kinds = [self.random_bytes, self.truncated, self.deep, self.huge_number,
                      self.wrong_type, self.unknown_method, self.invalid_utf8, self.bad_envelope,
                      self.odd_batch, self.random_json, self.valid_read]

    def next_id(self) -> str:
        self.n += 1
        return f"fz-{self.n}"

    def req(self, method: str, params: Any = None, rid: Any = None) -> dict[str, Any]:
        msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            msg["params"] = params
        msg["id"] = rid
        return msg

    def frame(self) -> tuple[bytes, str | None]:
        return self.r.choice(self.kinds)()

    def random_bytes(self) -> tuple[bytes, str | None]:
        data = self.r.randbytes(self.r.randint(1, 300)).replace(b"\n", b" ")
        return data, None

    def truncated(self) -> tuple[bytes, str | None]:
        full = json.dumps(self.req(self.r.choice(list(METHODS)), {"job_id": "x" * 20},
                                   self.next_id())).encode()
        return full[: self.r.randint(1, len(full) - 1)], None

    def deep(self) -> tuple[bytes, str | None]:
        depth = self.r.choice([50, 1000, 5000, 100_000])
        opener, closer = self.r.choice([(b"[", b"]"), (b'{"a":', b"}")])
        inner = opener * depth + b"1" + closer * depth
        if self.r.random() < 0.5:  # as params of a real request
            rid = self.next_id()
            frame = (b'{"jsonrpc":"2.0","method":"jobs.list","id":"%s","params":{"status":%s}}'
                     % (rid.encode(), inner))
            # Too deep to parse is a parse error, answered with id null (JSON-RPC 2.0, 5.1).
            return frame, rid if depth <= 50 else None
        return inner, None

    def huge_number(self) -> tuple[bytes, str | None]:
        n = self.r.choice([b"1e400", b"-1e400", b"NaN", b"Infinity", b"-Infinity",
                           b"9" * 5000, b"9" * 4000, b"1" + b"0" * 300, b"-0", b"1e-400",
                           b"123456789012345678901234567890.5e10"])
        where = self.r.choice(["id", "limit", "offset", "timeout_s", "grace_s"])
        if where == "id":
            return b'{"jsonrpc":"2.0","method":"daemon.status","id":%s}' % n, None
        method = {"limit": "jobs.list", "offset": "jobs.logs", "timeout_s": "jobs.wait",
                  "grace_s": "jobs.cancel"}[where]
        rid = self.next_id()
        parses = n not in (b"1e400", b"-1e400", b"NaN", b"Infinity", b"-Infinity", b"9" * 5000)
        return (b'{"jsonrpc":"2.0","method":"%s","id":"%s","params":{"job_id":"x","%s":%s}}'
                % (method.encode(), rid.encode(), where.encode(), n)), rid if parses else None

    def wrong_type(self) -> tuple[bytes, str | None]:
        m = METHODS[self.r.choice(list(METHODS))]
        rid = self.next_id()
        if not m.params:
            params: Any = {"unexpected": 1}
        else:
            p = self.r.choice(m.params)
            wrong = [v for t, v in JSON_TYPES.items() if t != p.type and not (
                p.type == "number" and t == "integer")]
            params = {p.name: self.r.choice(wrong)}
            for other in m.params:  # the required ones, right-typed but meaningless
                if other.required and other.name != p.name:
                    params[other.name] = "zz" if other.type == "string" else 0
            if self.r.random() < 0.3:
                params = list(params.values()) + [None] * self.r.randint(0, 8)
        return json.dumps(self.req(m.name, params, rid)).encode(), rid

    def unknown_method(self) -> tuple[bytes, str | None]:
        rid = self.next_id()
        name = self.r.choice(["", "rpc.", "jobs", "jobs.get.x", "DAEMON.STATUS", "\u00e9\u4e2d",
                              "x" * self.r.randint(1, 50_000), "__init__", "jobs.get\x00",
                              "\ud800", "a\udfffb"])
        return json.dumps(self.req(name, {}, rid)).encode(), rid

    def invalid_utf8(self) -> tuple[bytes, str | None]:
        bad = self.r.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80",
                             b"\xe2\x82", b"\x80", b"\xed\xbf\xbf"])
        where = self.r.randrange(4)
        frame = [b'{"jsonrpc":"2.0","method":"jobs.get","params":{"job_id":"%s"},"id":1}',
                 b'{"jsonrpc":"2.0","method":"jobs.%s","params":{},"id":1}',
                 b'{"jsonrpc":"2.0","method":"jobs.list","params":{"k%s":1},"id":1}',
                 b'{"jsonrpc":"2.0","method":"jobs.list","params":{},"id":"%s"}'][where]
        return frame % bad, None

    def bad_envelope(self) -> tuple[bytes, str | None]:
        rid = self.next_id()
        options: list[Any] = [
            {"jsonrpc": "1.0", "method": "daemon.status", "id": rid},
            {"method": "daemon.status", "id": rid},
            {"jsonrpc": "2.0", "id": rid},
            {"jsonrpc": "2.0", "method": 5, "id": rid},
            {"jsonrpc": "2.0", "method": "daemon.status", "params": "x", "id": rid},
            {"jsonrpc": "2.0", "method": "daemon.status", "params": 3, "id": rid},
            {"jsonrpc": "2.0", "method": "daemon.status", "id": rid, "extra": True},
            {"jsonrpc": "2.0", "method": "daemon.status", "id": {"a": rid}},
            {"jsonrpc": "2.0", "method": "daemon.status", "id": [rid]},
            {"jsonrpc": "2.0", "method": "daemon.status", "id": True},
            "daemon.status", 42, None, True, [],
        ]
        msg = self.r.choice(options)
        answered_by_id = isinstance(msg, dict) and msg.get("id") == rid
        return json.dumps(msg).encode(), rid if answered_by_id else None

    def odd_batch(self) -> tuple[bytes, str | None]:
        kind = self.r.randrange(5)
        if kind == 0:
            return b"[]", None
        if kind == 1:
            return b"[1,2,3]", None
        if kind == 2:  # only notifications: no answer at all
            return NOTIFICATIONS_ONLY, None
        if kind == 3:
            return json.dumps([[self.req("daemon.status", None, 1)]]).encode(), None
        members = [self.req("sessions.list", {}, f"b{i}") if i % 3 else 7
                   for i in range(self.r.randint(1, 300))]
        return json.dumps(members).encode(), None

    def random_json(self) -> tuple[bytes, str | None]:
        def value(depth: int) -> Any:
            k = self.r.randrange(7 if depth < 4 else 4)
            return [lambda: self.r.randint(-2**70, 2**70), lambda: self.r.random(),
                    lambda: "".join(chr(self.r.randint(1, 0x2FFF)) for _ in range(5)),
                    lambda: None, lambda: [value(depth + 1) for _ in range(3)],
                    lambda: {str(i): value(depth + 1) for i in range(3)},
                    lambda: self.r.random() < 0.5][k]()
        rid = self.next_id()
        method = self.r.choice(list(METHODS))
        return json.dumps(self.req(method, {p.name: value(0) for p in METHODS[method].params}
                                   or value(0), rid)).encode(), rid

    def valid_read(self) -> tuple[bytes, str | None]:
        rid = self.next_id()
        method, params = self.r.choice([
            ("daemon.status", {}), ("sessions.list", []), ("jobs.list", {"limit": 3}),
            ("jobs.get", {"job_id": "zz-000000"}), ("templates.get", {"name": "nope"}),
            ("jobs.logs", {"job_id": "a-b", "offset": 10**6}), ("rpc.discover", None),
            ("jobs.wait", {"job_id": "a-1", "timeout_s": 0})])
        return json.dumps(self.req(method, params, rid)).encode(), rid


def _check_response(obj: Any, where: str) -> list[Any]:
    """Validate one JSON-RPC response object (or batch); return the ids it answers."""
    items = obj if isinstance(obj, list) else [obj]
    assert items, f"{where}: an empty batch response"
    ids = []
    for m in items:
        assert isinstance(m, dict) and m.get("jsonrpc") == "2.0", f"{where}: {m!r:.300}"
        assert ("result" in m) != ("error" in m), f"{where}: {m!r:.300}"
        assert "id" in m, f"{where}: {m!r:.300}"
        if "error" in m:
            err = m["error"]
            assert err["code"] in KNOWN_CODES, f"{where}: unexpected error {err!r:.500}"
            assert isinstance(err["message"], str) and err["message"], f"{where}: {err!r:.300}"
        ids.append(m["id"])
    return ids


def _send_all_read_all(sock_path: Path, payload: bytes, timeout: float) -> tuple[bytes, bool]:
    """Send ``payload`` (a thread writes, then half-closes) and read until the daemon closes;
    the bytes read, and whether the send failed (the daemon closed first)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(str(sock_path))
    send_error: list[BaseException] = []

    def send() -> None:
        try:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
        except OSError as e:  # the daemon closed first (after an oversized line)
            send_error.append(e)

    t = threading.Thread(target=send)
    t.start()
    buf = b""
    try:
        while True:
            try:
                data = s.recv(1 << 20)
            except ConnectionResetError:
                break
            if not data:
                break
            buf += data
    finally:
        t.join(timeout)
        s.close()
    return buf, bool(send_error)


def exchange(sock_path: Path, frames: list[bytes], timeout: float = 60.0) -> tuple[
        list[bytes], bool]:
    """Send the frames (a thread writes, then half-closes); read until the daemon closes."""
    buf, send_failed = _send_all_read_all(
        sock_path, b"".join(f + b"\n" for f in frames), timeout)
    assert buf == b"" or buf.endswith(b"\n"), "the daemon sent half a message"
    return [line for line in buf.split(b"\n") if line], send_failed


def _alive(d: Daemon) -> None:
    assert d.proc is not None and d.proc.poll() is None, f"kitplayd died:\n{d.log()[-3000:]}"


def test_ten_thousand_hostile_frames(daemon: Daemon) -> None:
    gen = Frames(SEED)
    sent = 0
    answered_ids: Counter[Any] = Counter()
    expected_ids: set[str] = set()
    where = f"seed {SEED}"
    while sent < 10_000:
        batch = [gen.frame() for _ in range(250)]
        lines, _ = exchange(daemon.socket, [f for f, _ in batch])
        _alive(daemon)
        sent += len(batch)
        expected_ids |= {rid for _, rid in batch if rid is not None}
        # One answer per frame, except blank lines and a batch of only notifications.
        expected = sum(1 for f, _ in batch if f.strip() and f != NOTIFICATIONS_ONLY)
        assert len(lines) == expected, f"{where}: {len(lines)} answers to {expected} frames"
        for line in lines:
            answered_ids.update(i for i in _check_response(json.loads(line), where)
                                if isinstance(i, str) and i.startswith("fz-"))
    missing = expected_ids - set(answered_ids)
    assert not missing, f"{where}: {len(missing)} never answered, e.g. {sorted(missing)[:5]}"
    twice = [i for i, n in answered_ids.items() if n > 1]
    assert not twice, f"{where}: answered more than once: {twice[:5]}"
    assert "Traceback" not in daemon.log(), daemon.log()[-3000:]
    assert daemon.call("daemon.status")["pid"] == daemon.proc.pid  # type: ignore[union-attr]


@pytest.mark.parametrize("size", [MAX_LINE + 1, 3 * MAX_LINE])
def test_oversized_lines_close_only_that_connection(daemon: Daemon, size: int) -> None:
    with daemon.client() as bystander:
        assert bystander.call("sessions.list") == {"sessions": []}
        big = b'{"jsonrpc":"2.0","method":"daemon.status","id":1,"params":{"x":"' + \
            b"a" * size + b'"}}'
        lines, _ = exchange(daemon.socket, [big, b'{"jsonrpc":"2.0","method":"x","id":2}'])
        _alive(daemon)
        assert len(lines) == 1, lines[:3]  # one error, then the connection is closed
        err = json.loads(lines[0])["error"]
        assert err["code"] in KNOWN_CODES and str(MAX_LINE) in err["message"]
        # The unterminated variant: no newline at all before the limit.
        lines, _ = exchange(daemon.socket, [b"[" * (size + 10)])
        assert len(lines) == 1 and json.loads(lines[0])["error"]["data"]["limit"] == MAX_LINE
        _alive(daemon)
        assert bystander.call("sessions.list") == {"sessions": []}  # others kept being served


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.text(max_size=8), children, max_size=4),
    max_leaves=12)


@st.composite
def messages(draw: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {"jsonrpc": draw(st.sampled_from(["2.0", "2.0", "2.0", "1.0"]))}
    msg["method"] = draw(st.sampled_from(sorted(METHODS)) | st.text(max_size=30))
    if draw(st.booleans()):
        method = METHODS.get(msg["method"])
        names = [p.name for p in method.params] if method and method.params else ["x"]
        msg["params"] = draw(st.dictionaries(st.sampled_from(names) | st.text(max_size=8),
                                             json_values, max_size=4)
                             | st.lists(json_values, max_size=4) | json_values)
    if draw(st.booleans()):
        msg[draw(st.sampled_from(["extra", "result", "error"]))] = draw(json_values)
    return msg


@pytest.fixture(scope="module")
def shared_daemon() -> Any:
    d = Daemon().start()
    try:
        yield d
    finally:
        d.cleanup()


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(batch=st.lists(messages(), min_size=1, max_size=20))
def test_structured_messages_always_get_a_well_formed_answer(shared_daemon: Daemon,
                                                             batch: list[dict[str, Any]]) -> None:
    # Blocking and mutating calls would make examples slow or stateful: keep them inert.
    for i, m in enumerate(batch):
        m["id"] = f"fz-{i}"
        if m["method"] in ("jobs.wait", "templates.create", "build", "launch"):
            m["params"] = {"job_id": 5} if m["method"] == "jobs.wait" else {"workspace": 1}
    lines, _ = exchange(shared_daemon.socket, [json.dumps(m).encode() for m in batch])
    _alive(shared_daemon)
    ids = Counter(i for line in lines for i in _check_response(json.loads(line), "hypothesis"))
    for m in batch:
        assert ids[m["id"]] == 1, (m, lines)


# -- the LSP base-protocol framing -----------------------------------------------------------


def lsp_exchange(sock_path: Path, payload: bytes, timeout: float = 60.0) -> list[bytes]:
    """Send ``payload`` (then half-close); read LSP frames strictly until the daemon closes."""
    buf, _ = _send_all_read_all(sock_path, payload, timeout)
    bodies = []
    while buf:
        header, sep, rest = buf.partition(b"\r\n\r\n")
        assert sep and header.startswith(b"Content-Length: "), f"bad frame: {buf[:200]!r}"
        n = int(header[len(b"Content-Length: "):])
        assert len(rest) >= n, "the daemon sent half a message"
        bodies.append(rest[:n])
        buf = rest[n:]
    return bodies


def test_hostile_frames_in_lsp_framing(daemon: Daemon) -> None:
    gen = Frames(SEED + 1)
    where = f"LSP, seed {SEED + 1}"
    answered: Counter[Any] = Counter()
    expected_ids: set[str] = set()
    for _ in range(12):
        batch = [gen.frame() for _ in range(250)]
        bodies = lsp_exchange(daemon.socket, b"".join(lsp_frame(f) for f, _ in batch))
        _alive(daemon)
        expected_ids |= {rid for _, rid in batch if rid is not None}
        expected = sum(1 for f, _ in batch if f.strip() and f != NOTIFICATIONS_ONLY)
        assert len(bodies) == expected, f"{where}: {len(bodies)} answers to {expected} frames"
        for body in bodies:
            answered.update(i for i in _check_response(json.loads(body), where)
                            if isinstance(i, str) and i.startswith("fz-"))
    assert expected_ids == set(answered), f"{where}: {expected_ids ^ set(answered)}"
    assert max(answered.values()) == 1
    assert "Traceback" not in daemon.log(), daemon.log()[-3000:]


lsp_headers = st.one_of(
    st.binary(max_size=120),
    st.lists(st.sampled_from([b"Content-Length: 2", b"content-length:2", b"Content-Length: x",
                              b"Content-Length: -1", b"Content-Length: 99999999999",
                              b"Content-Type: application/vscode-jsonrpc; charset=utf-8",
                              b"Content-Type: x; charset=latin1", b"X-Junk: \xff", b"",
                              b"no colon", b" Content-Length: 2", b"Content-Length: 2\n"]),
             max_size=4).map(lambda fields: b"\r\n".join(fields)),
)


@settings(max_examples=200, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(header=lsp_headers, body=st.binary(max_size=40))
def test_hostile_lsp_headers_get_answers_or_one_framing_error(shared_daemon: Daemon,
                                                              header: bytes,
                                                              body: bytes) -> None:
    good = b'{"jsonrpc":"2.0","method":"sessions.list","id":"fz-good"}'
    payload = lsp_frame(good) + b"Content-Length: 0\r\n" + header + b"\r\n\r\n" + body
    bodies = lsp_exchange(shared_daemon.socket, payload)
    _alive(shared_daemon)
    answers = [json.loads(b) for b in bodies]
    ids = [i for a in answers for i in _check_response(a, f"LSP header {header!r}")]
    assert ids.count("fz-good") == 1, answers  # the frame before the bad header is answered
    framing_errors = [a for a in answers if isinstance(a, dict) and a.get("error", {}).get(
        "data", {}) in ({"framing": "lsp"}, {"limit": MAX_LINE, "framing": "lsp"})]
    assert len(framing_errors) <= 1, answers
