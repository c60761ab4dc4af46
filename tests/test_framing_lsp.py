"""Unit tests of the LSP base-protocol framing and of the per-connection framing choice.

No daemon, no I/O: the socket tests (tests/test_lsp_socket.py) then check the same rules end
to end.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kitplay.daemon.protocol.errors import MessageTooLarge, ParseError
from kitplay.daemon.protocol.lsp import MAX_HEADER, LspBuffer, lsp_dumps, lsp_frame
from kitplay.daemon.protocol.wire import LSP, NDJSON, FrameReader, framing_of, sniff


def test_frame_is_content_length_crlf_crlf_body() -> None:
    assert lsp_frame(b'{"a":1}') == b'Content-Length: 7\r\n\r\n{"a":1}'
    # The length counts bytes of UTF-8, not characters.
    assert lsp_dumps({"s": "\u00e9"}) == b'Content-Length: 10\r\n\r\n{"s":"\xc3\xa9"}'


def test_bodies_split_across_feeds_and_several_in_one_feed() -> None:
    buf = LspBuffer()
    assert buf.feed(b"Content-Len") == []
    assert buf.feed(b"gth: 7\r\n\r\n{\"a\"") == []
    assert buf.feed(b":1}Content-Length: 2\r\n\r\n[]Content-Length: 1\r\n\r\n") == [
        b'{"a":1}', b"[]"]
    assert buf.feed(b"1") == [b"1"]
    assert buf.pending == 0


def test_byte_at_a_time() -> None:
    stream = lsp_frame(b'{"x":"\r\n\r\n"}') + lsp_frame(b"{}")
    buf = LspBuffer()
    out: list[bytes] = []
    for b in stream:
        out += buf.feed(bytes([b]))
    assert out == [b'{"x":"\r\n\r\n"}', b"{}"]


def test_content_type_is_optional_any_order_any_case_and_other_fields_ignored() -> None:
    buf = LspBuffer()
    frames = (b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n"
              b"Content-Length: 2\r\n\r\n{}"
              b"content-length:2\r\nX-Other: yes\r\n\r\n[]"
              b"Content-Length: 1\r\nContent-Type: application/vscode-jsonrpc; charset=utf8"
              b"\r\n\r\n1")
    assert buf.feed(frames) == [b"{}", b"[]", b"1"]


def test_bodies_before_a_bad_header_are_kept_and_the_error_comes_after_them() -> None:
    buf = LspBuffer()
    assert buf.feed(lsp_frame(b"{}") + b"Content-Length: x\r\n\r\n") == [b"{}"]
    assert isinstance(buf.error, ParseError)
    with pytest.raises(ParseError):
        buf.feed(lsp_frame(b"[]"))  # nothing more is read after a framing error
    r = FrameReader()
    assert r.feed(lsp_frame(b"1") + b"Content-Length: 99999999\r\n\r\n") == [b"1"]
    assert isinstance(r.error, MessageTooLarge)


def test_zero_length_body() -> None:
    assert LspBuffer().feed(b"Content-Length: 0\r\n\r\n") == [b""]


@pytest.mark.parametrize(("header", "says"), [
    (b"Content-Type: application/vscode-jsonrpc\r\n\r\n", "Content-Length is missing"),
    (b"Content-Length: ten\r\n\r\n", "must be a number"),
    (b"Content-Length: -5\r\n\r\n", "must be a number"),
    (b"Content-Length: 1e3\r\n\r\n", "must be a number"),
    (b"Content-Length: \r\n\r\n", "must be a number"),
    (b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n", "two different Content-Length"),
    (b"Content-Length: 2\r\nno colon here\r\n\r\n", "`Name: value`"),
    (b"Content-Length: 2\r\n: empty name\r\n\r\n", "`Name: value`"),
    (b"Content-Length: 2\r\nContent-Type: text/json; charset=latin-1\r\n\r\n", "charset"),
    (b"Content-Length: 2\r\nX: \xff\r\n\r\n", "not ASCII"),
    (b"Content-Length: 2\n\n{}", "bare \\n"),
    (b"Content-Length: 2\r\nX: a\rb\r\n\r\n", "`Name: value`"),
])
def test_malformed_headers_are_parse_errors_that_say_what_is_wrong(header: bytes,
                                                                  says: str) -> None:
    with pytest.raises(ParseError) as exc:
        LspBuffer().feed(header)
    err = exc.value
    assert err.code == -32700
    assert "malformed LSP header" in err.message and says in err.message
    assert "Content-Length: N" in err.message  # says how to frame it right
    assert "connection is closed" in err.message
    assert err.data == {"framing": "lsp"}


def test_header_without_end_is_refused_after_the_header_limit() -> None:
    buf = LspBuffer()
    buf.feed(b"Content-Length: 2\r\nX: " + b"a" * (MAX_HEADER - 30))
    with pytest.raises(ParseError, match="within 8192 bytes"):
        buf.feed(b"a" * 100)


def test_body_over_the_limit_is_refused_from_its_header_before_it_arrives() -> None:
    buf = LspBuffer(max_body=16)
    assert buf.feed(b"Content-Length: 16\r\n\r\n" + b"x" * 16) == [b"x" * 16]
    with pytest.raises(MessageTooLarge) as exc:
        buf.feed(b"Content-Length: 17\r\n\r\n")
    assert exc.value.code == -32006 and "16-byte limit" in exc.value.message
    assert exc.value.data == {"limit": 16, "framing": "lsp"}
    with pytest.raises(MessageTooLarge):  # a huge number is not parsed into a huge buffer
        LspBuffer().feed(b"Content-Length: 999999999999\r\n\r\n")


@given(bodies=st.lists(st.binary(max_size=300), max_size=8), cuts=st.lists(
    st.integers(min_value=0, max_value=4000), max_size=10))
def test_any_bodies_cut_anywhere_come_back_whole(bodies: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(lsp_frame(b) for b in bodies)
    buf = LspBuffer()
    out: list[bytes] = []
    last = 0
    for cut in [*sorted(c for c in cuts if c <= len(stream)), len(stream)]:
        out += buf.feed(stream[last:cut])
        last = cut
    assert out == bodies


@given(junk=st.binary(max_size=200))
def test_arbitrary_bytes_give_bodies_or_a_framing_error_never_anything_else(junk: bytes) -> None:
    try:
        LspBuffer(max_body=1000).feed(b"Content-Length: " + junk)
    except (ParseError, MessageTooLarge):
        pass


# -- choosing the framing from the first bytes ----------------------------------------------


@pytest.mark.parametrize(("head", "framing"), [
    (b"Content-Length: 5\r\n", LSP),
    (b"content-length:5", LSP),
    (b"CONTENT-TYPE: application/vscode-jsonrpc", LSP),
    (b'{"jsonrpc":"2.0"}', NDJSON),
    (b"[1,2]", NDJSON),
    (b"  {", NDJSON),
    (b"\n", NDJSON),
    (b"Contents", NDJSON),  # not a header name: NDJSON, whose parser then says it is not JSON
    (b"Content-Lengthy: 1", NDJSON),
    (b"garbage", NDJSON),
    (b"", None),
    (b"C", None),
    (b"Content-", None),
    (b"content-len", None),
])
def test_sniff(head: bytes, framing: object) -> None:
    assert sniff(head) is framing


def test_frame_reader_chooses_once_and_answers_in_that_framing() -> None:
    r = FrameReader()
    assert r.framing is None and r.encode({}) == b"{}\n"  # NDJSON until chosen
    assert r.feed(b"Cont") == []
    assert r.feed(b"ent-Length: 2\r\n\r\n{}") == [b"{}"]
    assert r.framing is LSP and r.encode({}) == b"Content-Length: 2\r\n\r\n{}"
    # Once chosen, a line that looks like NDJSON is not a new choice: it is a bad header.
    with pytest.raises(ParseError):
        r.feed(b'{"jsonrpc":"2.0"}\n')
    n = FrameReader()
    assert n.feed(b'{"a":1}\nContent-Length: 2\r\n') == [b'{"a":1}', b"Content-Length: 2\r"]
    assert n.framing is NDJSON and n.encode([1]) == b"[1]\n"


def test_frame_reader_caps_both_framings_alike() -> None:
    with pytest.raises(MessageTooLarge):
        FrameReader(16).feed(b"x" * 17)
    with pytest.raises(MessageTooLarge):
        FrameReader(16).feed(b"Content-Length: 17\r\n\r\n")


def test_framing_names() -> None:
    assert framing_of("lsp") is LSP and framing_of("ndjson") is NDJSON
    with pytest.raises(ValueError, match="choose one of ndjson, lsp"):
        framing_of("xml")
    assert json.loads(LSP.dumps({"a": 1}).split(b"\r\n\r\n", 1)[1]) == {"a": 1}
