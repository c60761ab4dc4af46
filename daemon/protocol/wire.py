"""The two framings of the socket, and how a connection's first bytes choose one; no I/O.

- ``ndjson``: one UTF-8 JSON message per line (``framing``), the default;
- ``lsp``: the LSP base protocol, ``Content-Length: N\\r\\n\\r\\n`` + body (``lsp``), which
  editors' stock JSON-RPC stacks speak.

A client chooses by what it sends first: a connection whose first bytes are an LSP header field
(``Content-Length:`` or ``Content-Type:``, any case) is an LSP connection; anything else (a
JSON value, or garbage, which then gets a parse error) is NDJSON.  No JSON text can start with
``C``/``c``, so the two never collide.  The daemon answers each connection in its own framing,
notifications included, until it closes.

``FrameReader`` is the per-connection reader: ``feed`` bytes, get complete message bodies back
(a framing error raises, or, when good bodies came before it in the same bytes, is kept in
``error`` for the caller to answer after them); ``encode`` writes in the chosen framing (NDJSON
until one is chosen).
"""

from __future__ import annotations

from .errors import KitplayError
from .framing import MAX_LINE, LineBuffer, dumps
from .lsp import LspBuffer, lsp_dumps, lsp_frame

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing slows `kitplay` down
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["FRAMINGS", "Framing", "FrameReader", "framing_of", "sniff"]


class Framing:
    """One framing: its name, a reader of bodies, and a writer of frames."""

    __slots__ = ("buffer", "chosen_when", "doc", "dumps", "frame", "frame_parts", "hint",
                 "name")

    def __init__(self, name: str, buffer: Callable[[int], LineBuffer | LspBuffer],
                 dumps: Callable[[Any], bytes], doc: str, chosen_when: str,
                 frame: Callable[[bytes], bytes],
                 frame_parts: Callable[[list[bytes]], bytes], hint: str) -> None:
        self.name = name
        self.hint = hint  # how to send a message, told to a connection that sent a bad one
        self.buffer = buffer
        self.dumps = dumps
        self.frame = frame  # a body already encoded as compact UTF-8 JSON -> one frame
        self.frame_parts = frame_parts  # the same, the body in parts: one join, one copy
        self.doc = doc
        self.chosen_when = chosen_when

    def describe(self) -> dict[str, str]:
        """What ``rpc.discover`` says about this framing."""
        return {"name": self.name, "frame": self.doc, "chosen_when": self.chosen_when}

    def __repr__(self) -> str:
        return f"Framing({self.name!r})"


NDJSON = Framing(
    "ndjson", LineBuffer, dumps,
    "one UTF-8 JSON-RPC message (or batch) per line, ended by \\n",
    "the connection's first bytes are anything but an LSP header field (a JSON value)",
    lambda body: body + b"\n", lambda parts: b"".join([*parts, b"\n"]),
    "Send one JSON-RPC 2.0 message per line.")
LSP = Framing(
    "lsp", LspBuffer, lsp_dumps,
    "the LSP base protocol: `Content-Length: N\\r\\n` (an optional `Content-Type` with "
    "charset utf-8), an empty `\\r\\n` line, then N bytes of UTF-8 JSON",
    "the connection starts with a `Content-Length:` or `Content-Type:` header field (any case)",
    lsp_frame, lambda parts: b"".join(
        [b"Content-Length: %d\r\n\r\n" % sum(map(len, parts)), *parts]),
    "Send each body as one JSON-RPC 2.0 message (or batch) in UTF-8 JSON, after a "
    "`Content-Length: N` header counting its bytes.")
FRAMINGS: dict[str, Framing] = {"ndjson": NDJSON, "lsp": LSP}

_LSP_STARTS = (b"content-length:", b"content-type:")


def sniff(head: bytes) -> Framing | None:
    """The framing a connection starting with ``head`` speaks, or None: more bytes needed."""
    low = head[:16].lower()
    for start in _LSP_STARTS:
        if low.startswith(start):
            return LSP
    if any(start.startswith(low) for start in _LSP_STARTS):
        return None  # a prefix of a header name: wait for the rest
    return NDJSON


def framing_of(name: str) -> Framing:
    """The framing called ``name`` (``ndjson`` or ``lsp``), or ValueError saying which exist."""
    try:
        return FRAMINGS[name]
    except KeyError:
        raise ValueError(f"unknown framing {name!r}; choose one of "
                         f"{', '.join(FRAMINGS)}") from None


class FrameReader:
    """A connection's reader: picks the framing from the first bytes, then splits bodies."""

    __slots__ = ("_head", "_reader", "framing", "max_message")

    def __init__(self, max_message: int = MAX_LINE, framing: Framing | None = None) -> None:
        self.max_message = max_message
        self.framing = framing
        self._reader = framing.buffer(max_message) if framing else None
        self._head = b""

    @property
    def error(self) -> KitplayError | None:
        """A framing error found after the bodies last returned: answer it, then close."""
        return getattr(self._reader, "error", None)

    def encode(self, obj: Any) -> bytes:
        """``obj`` framed for this connection (NDJSON while nothing chose another)."""
        return (self.framing or NDJSON).dumps(obj)

    def frame(self, body: bytes) -> bytes:
        """A body already encoded as compact UTF-8 JSON, framed for this connection."""
        return (self.framing or NDJSON).frame(body)

    def frame_parts(self, parts: list[bytes]) -> bytes:
        """The same, for a body in parts (joined once with the frame's own bytes)."""
        return (self.framing or NDJSON).frame_parts(parts)

    def feed(self, data: bytes) -> list[bytes]:
        """Complete message bodies; raises the framing's errors (ParseError, MessageTooLarge)."""
        if self._reader is None:
            head = self._head + data
            framing = sniff(head)
            if framing is None:
                self._head = head
                return []
            self._head = b""
            self.framing = framing
            self._reader = framing.buffer(self.max_message)
            data = head
        return self._reader.feed(data)
