"""Log output passed through without a JSON round trip, and still exactly the log.

- unit: ``json_literal`` gives the bytes the JSON encoder gives, for any bytes (invalid UTF-8,
  every control character, quotes, backslashes, multibyte text); ``split_output`` returns a
  notification's head and its data literal, and None for anything else; ``split_result``
  returns a success answer's id and its result's JSON as written, and None for anything else;
- real daemon and bridge: a log holding every awkward byte arrives through the socket (as
  notifications) and through the bridge's WebSocket (as output messages) exactly as the file
  holds it, with contiguous offsets.
"""

from __future__ import annotations

import json
import random
from typing import Any

import trio
from hypothesis import given
from hypothesis import strategies as st
from kitplay.daemon.protocol.client import Client
from kitplay.daemon.protocol.passthrough import (
    json_literal,
    output_body,
    split_output,
    split_result,
)

from tests.bridge_helpers import (  # noqa: F401
    Bridge,
    bridge_fixture,
    make_bridge_fixture,
    open_stream,
    read_stream,
)
from tests.helpers import Daemon, write_app


def _encoder_literal(data: bytes) -> bytes:
    return json.dumps(data.decode("utf-8", "replace"), ensure_ascii=False,
                      separators=(",", ":")).encode("utf-8")


@given(st.binary(max_size=200))
def test_literal_is_the_encoders_for_any_bytes(data: bytes) -> None:
    assert json_literal(data) == _encoder_literal(data)


def test_literal_of_every_awkward_piece() -> None:
    pieces = [bytes([c]) for c in range(128)] + [
        "é".encode(), "€".encode(), "😀".encode(), b"\xff", b"\xe2\x82", b"\xed\xa0\x80",
        b'"quoted"', b"C:\\path\\", b"\x1b[31mred\x1b[0m", b"\r\n"]
    rng = random.Random(13)
    for _ in range(3000):
        data = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 40)))
        assert json_literal(data) == _encoder_literal(data), data
        assert json.loads(json_literal(data)) == data.decode("utf-8", "replace")


def test_split_output_round_trip() -> None:
    data = b'he said "hi"\\\n\ttab \x1b[0m \xc3\xa9'
    body = output_body("s7", "j-1", 40, data)
    msg = json.loads(body)
    assert msg == {"jsonrpc": "2.0", "method": "jobs.output", "params": {
        "subscription": "s7", "job_id": "j-1", "offset": 40, "next_offset": 40 + len(data),
        "data": data.decode()}}
    split = split_output(body)
    assert split is not None
    head, literal = split
    assert head == {"subscription": "s7", "job_id": "j-1", "offset": 40,
                    "next_offset": 40 + len(data)}
    assert json.loads(literal) == data.decode()
    for other in (b'{"jsonrpc":"2.0","method":"jobs.state","params":{"final":true}}',
                  b'{"jsonrpc":"2.0","id":1,"result":{"data":"x"}}',
                  body[:-1], b"", b"[1]"):
        assert split_output(other) is None


AWKWARD = (
    "import sys\n"
    "out = sys.stdout.buffer\n"
    "for i in range(3000):\n"
    "    out.write(b'%d \"q\" \\\\ \\t \\x1b[1m \\x00 \\x07 \\x7f \\xc3\\xa9 \\xe2\\x82\\xac '\n"
    "              b'\\xf0\\x9f\\x98\\x80 \\r\\n' % i)\n"
    "out.write(b'bad utf-8: \\xff\\xfe end\\n')\n"
)


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20),
       st.integers(min_value=0, max_value=10**17))
def test_split_result_round_trip(result: Any, rid: int) -> None:
    """Any result (strings holding ',"id":5}' too) comes back as the JSON the daemon wrote."""
    body = json.dumps(result, separators=(",", ":"), ensure_ascii=False).encode()
    line = b'{"jsonrpc":"2.0","result":%s,"id":%d}' % (body, rid)
    split = split_result(line)
    assert split is not None
    assert split[0] == rid and split[1] == body and json.loads(split[1]) == result


def test_split_result_refuses_other_lines() -> None:
    for line in (
        b'{"jsonrpc":"2.0","error":{"code":-32001,"message":"x","data":null},"id":3}',
        b'{"jsonrpc":"2.0","method":"jobs.state","params":{"id":"1"}}',
        b'{"jsonrpc":"2.0","result":{"a":1},"id":"abc"}',   # not this client's integer ids
        b'{"jsonrpc":"2.0","result":{"a":1},"id":null}',
        b'{"jsonrpc":"2.0","result":{"a":1},"id":-1}',
        b'{"jsonrpc":"2.0","result":,"id":1}',
        b'{"jsonrpc":"2.0","result":{"a":1},"id":1} ',
        b'{"jsonrpc":"2.0","result":{"a":1},"id":\xd9\xa3}',  # an Arabic-Indic digit
        b'{"id":1,"jsonrpc":"2.0","result":{"a":1}}',
    ):
        assert split_result(line) is None, line


def _awkward_job(d: Daemon) -> tuple[str, bytes]:
    write_app(d.workspace, "t.awkward", launch=["{python}", "awkward.py"],
              files={"awkward.py": AWKWARD})
    job = d.call("launch", {"app": "t.awkward", "display": "headless"})["job"]
    assert d.wait_job(job["id"])["status"] == "succeeded", d.job_log(job["id"])
    raw = (d.state / "logs" / f"{job['id']}.log").read_bytes()
    assert b"\xff\xfe" in raw and b"\x00" in raw
    return job["id"], raw


def _joined(messages: list[dict[str, Any]], kind_key: str) -> tuple[str, int]:
    offset, parts = 0, []
    for m in messages:
        if m.get(kind_key) == "output" or m.get("method") == "jobs.output":
            p = m.get("params", m)
            assert p["offset"] == offset
            offset = p["next_offset"]
            parts.append(p["data"])
    return "".join(parts), offset


def test_awkward_log_through_the_socket(daemon: Daemon) -> None:
    job_id, raw = _awkward_job(daemon)
    with Client.connect(daemon.socket) as c:
        notes = list(c.follow(job_id, encoding="text"))  # the text form, escaped bytewise
    text, end = _joined(notes, "method")
    assert end == len(raw)
    assert text == raw.decode("utf-8", "replace")


async def test_awkward_log_through_the_bridge(daemon: Daemon, bridge: Bridge) -> None:
    job_id, raw = _awkward_job(daemon)
    with trio.fail_after(60):
        async with open_stream(bridge, job_id) as ws:
            messages = await read_stream(ws)
    assert messages[-1]["type"] == "end"
    text, end = _joined(messages, "type")
    assert end == len(raw)
    assert text == raw.decode("utf-8", "replace")
