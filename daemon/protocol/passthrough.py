"""``jobs.output`` notifications split without decoding their data, so it can be passed on.

A ``jobs.output`` notification carries up to 256 KiB of log as a JSON string; decoding it and
encoding it again is most of what a relay (the bridge's WebSocket stream) would spend.  The
daemon writes these notifications with ``data`` as the last member of ``params``::

    {"jsonrpc":"2.0","method":"jobs.output","params":{"subscription":"s1","job_id":"...",
     "offset":0,"next_offset":4096,"data":"...escaped text..."}}

(with ``"encoding":"utf-8"`` or ``"encoding":"base64"`` before ``data`` when the subscription
asked for exact bytes: ``encode_chunk``).

``split_output`` parses the small part before ``data`` and returns the data's JSON string
literal as it arrived (quotes and escapes included), ready to be placed in another JSON
document.  A raw ``"`` never occurs inside a JSON string (it is always escaped), so the first
``,"data":"`` of such a line is the key itself.  Any other line returns None: decode it whole.

Standard library only, and pure (tested with plain unit tests).
"""

from __future__ import annotations

import binascii
import json

from .schemas import LOG_ENCODINGS

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing slows `kitplay` down
if TYPE_CHECKING:
    from typing import Any

__all__ = ["ENCODINGS", "OUTPUT_PREFIX", "RESULT_PREFIX", "chunk_bytes", "encode_chunk",
           "json_literal", "output_body", "output_parts", "split_output", "split_result"]

ENCODINGS = LOG_ENCODINGS  # how log chunks travel: see ``encode_chunk``

OUTPUT_PREFIX = b'{"jsonrpc":"2.0","method":"jobs.output","params":{'
# A success answer as the daemon writes it (daemon/rpc.py): result, then the id, last.
RESULT_PREFIX = b'{"jsonrpc":"2.0","result":'
_ID_KEY = b',"id":'
_DATA_KEY = b',"data":"'

# Bytes JSON escapes in a string: control characters, '"' and '\\'.  A log holds some of them
# often (each is replaced in place: one C pass, when present), the other control characters
# rarely (a chunk holding one takes the encoder).  Each is looked for with ``in`` (memchr):
# 33 of those cost a third of one ``translate`` pass over a 256 KiB chunk (measured).
_REPLACE = ((b"\\", b"\\\\"), (b'"', b'\\"'), (b"\n", b"\\n"), (b"\r", b"\\r"),
            (b"\t", b"\\t"), (b"\x1b", b"\\u001b"))  # the backslash first
_RARE = tuple(bytes([c]) for c in range(32) if c not in (9, 10, 13, 27))
_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def json_literal(data: bytes, valid: bool = False) -> bytes:
    """``data`` (UTF-8 text) as a JSON string literal: the bytes ``json.dumps(data.decode(
    "utf-8", "replace"), ensure_ascii=False)`` would give, UTF-8 encoded."""
    return b"".join(_literal_parts(data, valid))


def _literal_parts(data: bytes, valid: bool) -> list[bytes]:
    """``json_literal`` as parts, for one join with the rest of a message.

    A log chunk is escaped at the byte level, without a round trip through ``str`` and the
    JSON encoder (about 8x faster on build output: the daemon's follower sends 256 KiB chunks
    and this was most of its time).  Invalid UTF-8 and rare control characters take the
    encoder's path, whose answer is the same by definition.
    """
    if not valid:
        try:
            data.decode("utf-8")  # strict: replacement characters need the encoder's path
        except UnicodeDecodeError:
            return [_slow_literal(data)]
    for rare in _RARE:
        if rare in data:
            return [_slow_literal(data)]
    for old, new in _REPLACE:
        if old in data:
            data = data.replace(old, new)
    return [b'"', data, b'"']


def _slow_literal(data: bytes) -> bytes:
    return _encoder.encode(data.decode("utf-8", "replace")).encode("utf-8")


def output_body(subscription: str, job_id: str, offset: int, data: bytes,
                encoding: str = "text") -> bytes:
    """A ``jobs.output`` notification as compact JSON (no framing), ``data`` last, in the
    subscription's ``encoding`` (``encode_chunk``)."""
    return b"".join(output_parts(subscription, job_id, offset, data, encoding))


def output_parts(subscription: str, job_id: str, offset: int, data: bytes,
                 encoding: str = "text") -> list[bytes]:
    """``output_body`` as parts: joined once, with the connection's framing (a copy of
    256 KiB less per chunk than joining twice)."""
    return [OUTPUT_PREFIX, b'"subscription":', _encoder.encode(subscription).encode(),
            b',"job_id":', _encoder.encode(job_id).encode(),
            b',"offset":%d,"next_offset":%d,' % (offset, offset + len(data)),
            *_chunk_parts(data, encoding), b"}}"]


def encode_chunk(data: bytes, encoding: str) -> bytes:
    """The ``"data"`` member of a log chunk (``"encoding"`` before it when asked for), JSON:

    - ``text``: the chunk as text; bytes that are not UTF-8 become U+FFFD (what a terminal
      shows; the text is then not the file's bytes, but offsets still count the file's);
    - ``auto``: ``"encoding":"utf-8"`` and the text when the chunk is valid UTF-8, else
      ``"encoding":"base64"`` and the bytes in base64: the file's bytes exactly, always;
    - ``base64``: ``"encoding":"base64"`` and the bytes in base64, every chunk.
    """
    return b"".join(_chunk_parts(data, encoding))


def _chunk_parts(data: bytes, encoding: str) -> list[bytes]:
    if encoding == "text":
        return [b'"data":', *_literal_parts(data, False)]
    if encoding == "auto":
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            return [b'"encoding":"utf-8","data":', *_literal_parts(data, True)]
    return [b'"encoding":"base64","data":"', binascii.b2a_base64(data, newline=False), b'"']


def chunk_bytes(chunk: dict[str, Any]) -> bytes:
    """The log bytes of a ``jobs.output`` notification's params, a ``jobs.logs`` result or a
    WebSocket output message: exact unless it came in the lossy ``text`` encoding."""
    data = chunk.get("data") or ""
    if chunk.get("encoding") == "base64":
        return binascii.a2b_base64(data)
    return str(data).encode("utf-8")


def split_output(line: bytes) -> tuple[dict[str, Any], bytes] | None:
    """(params without ``data``, ``data``'s JSON string literal), or None for other lines."""
    if not line.startswith(OUTPUT_PREFIX) or not line.endswith(b'"}}'):
        return None
    at = line.find(_DATA_KEY, len(OUTPUT_PREFIX))
    if at < 0:
        return None
    try:
        head = json.loads(line[len(OUTPUT_PREFIX) - 1:at] + b"}")
    except ValueError:
        return None
    if not isinstance(head, dict):
        return None
    return head, line[at + len(_DATA_KEY) - 1:-2]


def split_result(line: bytes) -> tuple[int, bytes] | None:
    """(id, the result's JSON as the daemon wrote it) for a success answer with an integer id,
    or None for any other line (decode it whole).

    The daemon writes ``{"jsonrpc":"2.0","result":<result>,"id":<id>}``: the id comes last, so
    the last ``,"id":`` of the line is the key itself (anything before it is inside the result)
    when what follows it is ASCII digits and the closing brace.
    """
    if not line.startswith(RESULT_PREFIX) or not line.endswith(b"}"):
        return None
    at = line.rfind(_ID_KEY)
    if at <= len(RESULT_PREFIX):
        return None
    rid = line[at + len(_ID_KEY):-1]
    if not (rid.isdigit() and rid.isascii()) or len(rid) > 18:
        return None
    return int(rid), line[len(RESULT_PREFIX):at]
