"""Job output on a terminal: colours pass, every other control sequence is shown, not obeyed.

A job's log holds whatever its processes wrote, and some of that comes from outside: a
service app logs the request lines it receives. Written raw to a terminal, ``ESC ] 0 ; title
BEL`` sets the window's title, ``ESC [ 2 J`` clears the screen, and other sequences can move
the cursor over earlier lines, remap keys or (in some terminals) answer back as if typed. So,
as ``less -R`` does, only SGR sequences (``ESC [ ... m``: colours, bold) pass; every other
control character is written in caret notation (``^[``, ``^G``; C1 controls as ``<9B>``), and
a carriage return only as part of a line end. Tab and newline pass.

Used only when the output is a terminal (piped output stays byte for byte what the job
wrote) and not with ``--raw``. Standard library only, like the rest of the CLI.
"""

from __future__ import annotations

import re

__all__ = ["TerminalText", "neutralize"]

# A colour/attribute sequence (SGR), and what may still become one at a chunk's end.
_SGR = re.compile(r"\x1b\[[0-9;:]{0,64}m")
_SGR_PREFIX = re.compile(r"\x1b(\[[0-9;:]{0,64})?\Z")
_CONTROL = re.compile("\r\n|[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _show(m: re.Match[str]) -> str:
    c = m.group()
    if c == "\r\n":
        return c
    n = ord(c)
    if n < 0x20 or n == 0x7F:
        return "^" + chr(n ^ 0x40)
    return f"<{n:02X}>"


def _plain(text: str) -> str:
    return _CONTROL.sub(_show, text)


def neutralize(text: str) -> str:
    """``text`` with its SGR sequences kept and every other control character shown."""
    out, last = [], 0
    for m in _SGR.finditer(text):
        out.append(_plain(text[last:m.start()]))
        out.append(m.group())
        last = m.end()
    out.append(_plain(text[last:]))
    return "".join(out)


class TerminalText:
    """``neutralize`` over a stream cut in chunks: a colour sequence (or a CR LF) split
    between two chunks is joined before it is judged."""

    def __init__(self) -> None:
        self._held = ""

    def feed(self, chunk: str) -> str:
        text = self._held + chunk
        self._held = ""
        m = _SGR_PREFIX.search(text)
        if m is not None:
            text, self._held = text[:m.start()], text[m.start():]
        elif text.endswith("\r"):
            text, self._held = text[:-1], "\r"
        return neutralize(text)

    def flush(self) -> str:
        held, self._held = self._held, ""
        return neutralize(held)
