"""LSP base-protocol framing (``Content-Length: N\\r\\n\\r\\n`` + body), without I/O.

The framing editors' stock JSON-RPC stacks speak (vscode-jsonrpc, Neovim's ``vim.lsp.rpc``,
pygls).  Rules, from the LSP 3.17 specification's "Base Protocol" section
(https://microsoft.github.io/language-server-protocol/specifications/lsp/3.17/specification/#baseProtocol):

- a header part of ``Name: value`` fields, each ended by ``\\r\\n``, then an empty line
  (``\\r\\n``); the header part is ASCII;
- ``Content-Length`` (the body's length in bytes) is required; ``Content-Type`` is optional,
  defaults to ``application/vscode-jsonrpc; charset=utf-8``, and utf-8 is the only charset
  (``utf8`` is accepted, as the specification asks for backwards compatibility);
- the body is one JSON-RPC message (or batch) in UTF-8.

Here, too: header names are matched without regard to case (HTTP semantics, as the
specification says), other header fields are ignored, a body over ``max_body`` bytes is refused
like an over-long line, and a header part over ``MAX_HEADER`` bytes or one that breaks the rules
is refused with a ``ParseError``.  After either error the stream cannot be resynchronised, so the
connection is closed.
"""

from __future__ import annotations

from .errors import MessageTooLarge, ParseError
from .framing import MAX_LINE, encode

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing slows `kitplay` down
if TYPE_CHECKING:
    from typing import Any

__all__ = ["MAX_HEADER", "LspBuffer", "lsp_dumps", "lsp_frame"]

MAX_HEADER = 8192
_HINT = ("Frame each message as `Content-Length: N\\r\\n\\r\\n` followed by N bytes of UTF-8 "
         "JSON (the LSP base protocol), or send one JSON message per line")


def lsp_frame(body: bytes) -> bytes:
    """A body framed for the LSP base protocol (Content-Length only: the defaults hold)."""
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def lsp_dumps(obj: Any) -> bytes:
    """One LSP frame holding ``obj`` as compact UTF-8 JSON."""
    return lsp_frame(encode(obj))


class LspBuffer:
    """Splits a byte stream into LSP message bodies.

    ``feed`` returns the complete bodies; it raises ``ParseError`` for a malformed header and
    ``MessageTooLarge`` for a body over ``max_body`` bytes (before reading the body).  Bodies
    that came before the bad header in the same feed are not lost: they are returned, the
    error is kept in ``error`` (and raised by the next ``feed``).
    """

    __slots__ = ("_buf", "_need", "error", "max_body")

    def __init__(self, max_body: int = MAX_LINE) -> None:
        self._buf = bytearray()
        self._need = -1  # body length once the header is read; -1 while reading a header
        self.max_body = max_body
        self.error: ParseError | MessageTooLarge | None = None

    @property
    def pending(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        if self.error is not None:
            raise self.error
        bodies: list[bytes] = []
        try:
            self._split(data, bodies)
        except (ParseError, MessageTooLarge) as e:
            self._buf.clear()
            if not bodies:
                raise
            self.error = e
        return bodies

    def _split(self, data: bytes, bodies: list[bytes]) -> None:
        buf = self._buf
        buf += data
        start = 0
        while True:
            if self._need < 0:
                end = buf.find(b"\r\n\r\n", start)
                if end == -1:
                    if b"\n" in buf[start:].replace(b"\r\n", b""):
                        raise _malformed("a header line ends in a bare \\n (LSP needs \\r\\n)")
                    if len(buf) - start > MAX_HEADER:
                        raise _malformed(f"no end of header (`\\r\\n\\r\\n`) within "
                                         f"{MAX_HEADER} bytes")
                    break
                if end - start > MAX_HEADER:
                    raise _malformed(f"a header part over {MAX_HEADER} bytes")
                self._need = self._parse_header(bytes(buf[start:end]))
                start = end + 4
            if len(buf) - start < self._need:
                break
            bodies.append(bytes(buf[start:start + self._need]))
            start += self._need
            self._need = -1
        if start:
            del buf[:start]

    def _parse_header(self, header: bytes) -> int:
        try:
            text = header.decode("ascii")
        except UnicodeDecodeError:
            raise _malformed("the header part is not ASCII") from None
        length: int | None = None
        for line in text.split("\r\n"):
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip() or "\r" in line or "\n" in line:
                raise _malformed(f"{line[:80]!r} is not a `Name: value` header field ended "
                                 "by \\r\\n")
            key, value = name.lower(), value.strip()
            if key == "content-length":
                if not value.isdigit() or not value.isascii() or len(value) > 12:
                    raise _malformed(f"Content-Length must be a number of bytes; got "
                                     f"{value[:40]!r}")
                n = int(value)
                if length is not None and n != length:
                    raise _malformed("two different Content-Length fields")
                length = n
            elif key == "content-type":
                _check_content_type(value)
        if length is None:
            raise _malformed("Content-Length is missing (it is required)")
        if length > self.max_body:
            raise MessageTooLarge(
                f"message over the {self.max_body}-byte limit (Content-Length: {length}); the "
                "connection is closed. Send smaller messages.",
                {"limit": self.max_body, "framing": "lsp"})
        return length


def _check_content_type(value: str) -> None:
    for part in value.split(";")[1:]:
        key, _, charset = part.partition("=")
        if key.strip().lower() == "charset":
            charset = charset.strip().strip('"').lower()
            if charset not in ("utf-8", "utf8"):
                raise _malformed(f"charset {charset[:40]!r} is not supported; the body must be "
                                 "utf-8")


def _malformed(what: str) -> ParseError:
    return ParseError(f"malformed LSP header: {what}; the connection is closed. {_HINT}.",
                      {"framing": "lsp"})
