"""NDJSON framing and JSON-RPC 2.0 envelopes, without I/O.

One UTF-8 JSON message per line (the LSP base-protocol framing is in ``lsp``; ``wire`` picks
one per connection).  A line longer than ``MAX_LINE`` bytes is refused with
an error and the connection closed.  Everything here is synchronous and pure, so it is
tested with plain unit tests; the trio and socket code only moves bytes.
"""

from __future__ import annotations

import json

from .errors import KitplayError, MessageTooLarge

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing slows `kitplay` down
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "MAX_LINE",
    "Encoded",
    "LineBuffer",
    "dumps",
    "encode",
    "error_response",
    "notification",
    "request",
]

MAX_LINE = 1024 * 1024

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
# The C encoder behind ``_encoder``, built once: ``JSONEncoder.encode`` builds one per call
# (1.5 us of a 2.5 us encode).  No circular-reference check: frames are trees of plain data.
_c_encode = getattr(json.encoder, "c_make_encoder", None)
if _c_encode is not None:
    _c_encode = _c_encode(None, _encoder.default, json.encoder.encode_basestring, None, ":", ",",
                          False, False, False)


def dumps(obj: Any) -> bytes:
    """One frame: compact JSON and a newline.

    A lone surrogate (valid JSON can carry one as ``\\ud800``) cannot be encoded as UTF-8; it
    only occurs inside a JSON string, where ``backslashreplace`` writes it back as the same
    ``\\ud800`` escape: valid UTF-8, and the same string for the reader.
    """
    if _c_encode is not None and type(obj) is dict:  # inline, not _text(): the hot path
        text = "".join(_c_encode(obj, 0))
    else:
        text = _encoder.encode(obj)
    return (text + "\n").encode("utf-8", "backslashreplace")


def encode(obj: Any) -> bytes:
    """``obj`` as compact UTF-8 JSON, without a newline: a body for any framing."""
    return _text(obj).encode("utf-8", "backslashreplace")


def _text(obj: Any) -> str:
    if _c_encode is not None and type(obj) is dict:
        return "".join(_c_encode(obj, 0))
    return _encoder.encode(obj)


class Encoded:
    """A result together with its JSON encoding (``encode(value)``), made once and kept by
    whoever returns it often (``jobs.get`` of an ended job): an answer built around it costs
    no encoding.  Anything that needs the object uses ``value``."""

    __slots__ = ("json", "value")

    def __init__(self, value: Any, json: bytes) -> None:
        self.value = value
        self.json = json


def request(method: str, params: Any = None, id: int | str | None = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        msg["params"] = params
    if id is not None:
        msg["id"] = id
    return msg


def notification(method: str, params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": method, "params": params}


def error_response(err: KitplayError, id: Any = None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "error": err.to_json(), "id": id}


class LineBuffer:
    """Splits a byte stream into lines, refusing any line over ``max_line`` bytes."""

    __slots__ = ("_buf", "_scan", "max_line")

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._buf = bytearray()
        self._scan = 0
        self.max_line = max_line

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes; return the complete lines (without newline). Raises MessageTooLarge."""
        buf = self._buf
        buf += data
        lines: list[bytes] = []
        start = 0
        pos = buf.find(b"\n", self._scan)
        while pos != -1:
            if pos - start > self.max_line:
                raise self._too_large()
            lines.append(bytes(buf[start:pos]))
            start = pos + 1
            pos = buf.find(b"\n", start)
        if start:
            del buf[:start]
        self._scan = len(buf)
        if len(buf) > self.max_line:
            raise self._too_large()
        return lines

    @property
    def pending(self) -> int:
        return len(self._buf)

    def _too_large(self) -> MessageTooLarge:
        return MessageTooLarge(
            f"message over the {self.max_line}-byte line limit; the connection is closed. "
            "Send smaller messages (one JSON-RPC message per line).",
            {"limit": self.max_line})
