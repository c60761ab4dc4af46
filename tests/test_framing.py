"""Unit tests of the pure protocol code: NDJSON framing, envelopes, parameter validation.

No daemon, no I/O: these pin down the rules the socket tests then check end to end.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kitplay.daemon.protocol.errors import InvalidParams, MessageTooLarge, NotFound
from kitplay.daemon.protocol.framing import (
    MAX_LINE,
    LineBuffer,
    dumps,
    error_response,
    notification,
    request,
)
from kitplay.daemon.protocol.registry import METHODS, get_method, validate_params

# -- LineBuffer ----------------------------------------------------------------------------


def test_default_limit_is_one_mib() -> None:
    assert MAX_LINE == 1024 * 1024
    assert LineBuffer().max_line == MAX_LINE


def test_lines_split_across_feeds() -> None:
    buf = LineBuffer()
    assert buf.feed(b'{"a":') == []
    assert buf.pending == 5
    assert buf.feed(b'1}\n{"b"') == [b'{"a":1}']
    assert buf.feed(b":2}\n") == [b'{"b":2}']
    assert buf.pending == 0


def test_several_lines_in_one_feed_and_empty_lines_kept() -> None:
    buf = LineBuffer()
    assert buf.feed(b"a\n\nb\nc") == [b"a", b"", b"b"]
    assert buf.feed(b"\n") == [b"c"]


def test_byte_at_a_time() -> None:
    buf = LineBuffer()
    out: list[bytes] = []
    for b in b"one\ntwo\n":
        out += buf.feed(bytes([b]))
    assert out == [b"one", b"two"]


def test_line_of_exactly_the_limit_is_accepted() -> None:
    buf = LineBuffer(max_line=16)
    assert buf.feed(b"x" * 16) == []
    assert buf.feed(b"\n") == [b"x" * 16]
    assert LineBuffer(max_line=16).feed(b"y" * 16 + b"\n") == [b"y" * 16]


def test_complete_line_over_the_limit_is_refused() -> None:
    buf = LineBuffer(max_line=16)
    with pytest.raises(MessageTooLarge) as exc:
        buf.feed(b"ok\n" + b"x" * 17 + b"\n")
    err = exc.value
    assert err.code == -32006
    assert "16-byte line limit" in err.message
    assert "connection is closed" in err.message
    assert "smaller" in err.message  # says what to do
    assert err.data == {"limit": 16}


def test_partial_line_over_the_limit_is_refused_before_its_newline() -> None:
    # The reader must not buffer without bound while waiting for a newline.
    buf = LineBuffer(max_line=16)
    buf.feed(b"x" * 10)
    with pytest.raises(MessageTooLarge):
        buf.feed(b"x" * 7)


def test_limit_applies_per_line_not_per_feed() -> None:
    buf = LineBuffer(max_line=16)
    lines = buf.feed((b"y" * 15 + b"\n") * 100)
    assert lines == [b"y" * 15] * 100


@given(st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=20),
       st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=30))
def test_any_split_of_a_stream_yields_the_same_lines(lines: list[bytes],
                                                     cuts: list[int]) -> None:
    stream = b"".join(line + b"\n" for line in lines)
    buf = LineBuffer(max_line=64)
    out: list[bytes] = []
    pos = 0
    i = 0
    while pos < len(stream):
        step = cuts[i % len(cuts)]
        out += buf.feed(stream[pos:pos + step])
        pos += step
        i += 1
    assert out == lines
    assert buf.pending == 0


# -- envelopes -----------------------------------------------------------------------------


def test_dumps_is_one_compact_utf8_line() -> None:
    frame = dumps({"text": "line one\nline two", "name": "café ✓"})
    assert frame.endswith(b"\n")
    assert frame.count(b"\n") == 1  # a newline inside a string is escaped
    assert b", " not in frame and b": " not in frame
    assert "café ✓".encode() in frame  # UTF-8, not \\u escapes
    assert json.loads(frame) == {"text": "line one\nline two", "name": "café ✓"}


def test_dumps_refuses_nan() -> None:
    # NaN is not JSON; a peer could not parse it.
    with pytest.raises(ValueError):
        dumps({"x": float("nan")})


def test_request_and_notification_shapes() -> None:
    assert request("jobs.get", {"job_id": "a"}, 7) == {
        "jsonrpc": "2.0", "method": "jobs.get", "params": {"job_id": "a"}, "id": 7}
    assert request("daemon.status") == {"jsonrpc": "2.0", "method": "daemon.status"}
    assert "id" not in notification("jobs.output", {"data": ""})


def test_error_response_shape() -> None:
    resp = error_response(NotFound("no job", {"job_id": "x"}), "abc")
    assert resp == {"jsonrpc": "2.0", "id": "abc",
                    "error": {"code": -32001, "message": "no job", "data": {"job_id": "x"}}}
    assert error_response(NotFound("no job"))["id"] is None
    assert "data" not in error_response(NotFound("no job"))["error"]


# -- validate_params -----------------------------------------------------------------------


def _invalid(method: str, params: Any) -> InvalidParams:
    with pytest.raises(InvalidParams) as exc:
        validate_params(METHODS[method], params)
    assert exc.value.code == -32602
    return exc.value


def test_named_and_positional_params_validate_alike() -> None:
    m = METHODS["jobs.logs"]
    named = validate_params(m, {"job_id": "abc-1", "offset": 3, "limit": 10})
    assert validate_params(m, ["abc-1", 3, 10]) == named
    assert validate_params(METHODS["daemon.status"], None) == {}
    assert validate_params(METHODS["daemon.status"], []) == {}


def test_wrong_type_names_the_parameter() -> None:
    err = _invalid("jobs.logs", {"job_id": "abc", "offset": "10"})
    assert "'offset'" in err.message and "integer" in err.message and "string" in err.message
    assert err.data == {"param": "offset", "expected": "integer"}


@pytest.mark.parametrize("value", [True, False])
def test_bool_is_not_an_integer(value: bool) -> None:
    err = _invalid("jobs.list", {"limit": value})
    assert "'limit'" in err.message and "boolean" in err.message


def test_bool_is_not_a_number() -> None:
    err = _invalid("jobs.wait", {"job_id": "abc", "timeout_s": True})
    assert "'timeout_s'" in err.message


def test_integer_is_a_number_but_float_is_not_an_integer() -> None:
    assert validate_params(METHODS["jobs.wait"], {"job_id": "a", "timeout_s": 5})
    err = _invalid("jobs.logs", {"job_id": "a", "offset": 1.5})
    assert "'offset'" in err.message


def test_unknown_param_lists_the_known_ones() -> None:
    err = _invalid("jobs.get", {"job_id": "a", "jobid": "a"})
    assert "'jobid'" in err.message and "job_id" in err.message
    assert err.data == {"param": "jobid"}


def test_missing_required_param() -> None:
    err = _invalid("templates.get", {})
    assert "needs parameter 'name'" in err.message


def test_too_many_positional_params() -> None:
    err = _invalid("jobs.get", ["a", "b"])
    assert "at most 1" in err.message and "got 2" in err.message


def test_params_must_be_object_or_array() -> None:
    err = _invalid("jobs.get", "abc")
    assert "object or an array" in err.message


def test_enum_minimum_maximum_pattern_items() -> None:
    assert "one of" in _invalid("jobs.list", {"status": "done"}).message
    assert "at least 1" in _invalid("jobs.list", {"limit": 0}).message
    assert "at most 10000" in _invalid("jobs.list", {"limit": 10001}).message
    assert "invalid format" in _invalid("jobs.get", {"job_id": "../etc"}).message
    err = _invalid("launch", {"app": "a.b", "args": ["ok", 3]})
    assert "'args'" in err.message and "array of string" in err.message


def test_null_for_an_optional_param_means_absent() -> None:
    assert validate_params(METHODS["jobs.list"], {"status": None}) == {}
    err = _invalid("jobs.get", {"job_id": None})
    assert "'job_id'" in err.message


def test_get_method_unknown() -> None:
    with pytest.raises(NotFound):
        get_method("no.such")
    assert get_method("jobs.get").name == "jobs.get"
