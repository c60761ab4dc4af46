"""One call to kitplayd, for ``kitplay``'s common commands, without the ``json`` module.

``json`` imports ``re`` (and ``re`` imports ``enum``, ``functools`` and ``collections``): about
a third of a bare interpreter's start, for a command that decodes one line.  The C accelerator
behind ``json`` (``_json``) needs none of it: its scanner decodes a whole JSON text, and its
string encoder writes the request's strings; this module uses them directly.  It speaks the
socket as ``daemon.protocol.client.Client`` does (NDJSON, the peer's uid checked before a byte
is sent) for exactly one request; everything longer (following, waiting, reconnecting) uses
that client.  Anything the C module cannot do (it is missing from a Python build) falls back
to ``json``.
"""

from __future__ import annotations

from _socket import AF_UNIX, SOCK_STREAM
from _socket import socket as _Socket

from kitplay.daemon.protocol.errors import DaemonUnreachable, error_for_code
from kitplay.daemon.protocol.paths import check_peer, default_socket

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing slows `kitplay` down
if TYPE_CHECKING:
    from typing import Any

__all__ = ["call", "dumps", "loads"]

START_HINT = "start it with `kitplayd` (or `systemctl --user start kitplayd.socket`)"

try:
    import _json
except ImportError:  # pragma: no cover - a Python without the accelerator
    _json = None  # type: ignore[assignment]
_quote = _json.encode_basestring_ascii if _json is not None else None


class _Context:
    """What ``_json.make_scanner`` reads off a decoder: the defaults of ``json.loads``."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict[str, str] = {}

    @staticmethod
    def parse_constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")


_scan = _json.make_scanner(_Context()) if _json is not None else None  # type: ignore[arg-type]


def loads(text: str) -> Any:
    """The JSON value ``text`` holds (a whole text, as ``json.loads``)."""
    text = text.strip()
    if _scan is not None:
        try:
            value, end = _scan(text, 0)
        except StopIteration:
            raise ValueError(f"not JSON: {text[:80]!r}") from None
        if end == len(text):
            return value
    import json

    return json.loads(text)


def dumps(value: Any) -> str:
    """Compact JSON of a request: dicts, lists, strings, numbers, booleans and None."""
    if _quote is None:
        import json

        return json.dumps(value, separators=(",", ":"))
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return str(_quote(value))
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{value} is not JSON")
        return repr(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{_quote(str(k))}:{dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    raise TypeError(f"cannot send {type(value).__name__} as JSON")


def call(method: str, params: dict[str, Any], socket: str | None = None,
         timeout: float | None = None) -> Any:
    """Call ``method`` once and return its result; raise the error it answered (or
    DaemonUnreachable when no daemon of ours answers on the socket)."""
    path = socket or default_socket()
    s = _Socket(AF_UNIX, SOCK_STREAM)
    try:
        s.settimeout(timeout)
        try:
            s.connect(path)
        except (FileNotFoundError, ConnectionRefusedError) as e:
            raise DaemonUnreachable(
                f"no kitplay daemon is listening on {path} ({e.strerror}); {START_HINT}",
                {"socket": path}) from None
        except OSError as e:
            raise DaemonUnreachable(f"cannot connect to {path}: {e}", {"socket": path}) from None
        try:
            check_peer(s, path)
        except PermissionError as e:
            raise DaemonUnreachable(str(e), {"socket": path, "reason": "peer"}) from None
        request = dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        chunks: list[bytes] = []
        try:
            s.sendall(request.encode() + b"\n")
            while True:
                data = s.recv(1 << 20)
                if not data:
                    raise DaemonUnreachable(
                        f"the daemon closed the connection on {path}; {START_HINT}")
                chunks.append(data)
                if data.endswith(b"\n"):
                    break
        except OSError as e:
            raise DaemonUnreachable(f"lost the daemon connection: {e}") from None
    finally:
        s.close()
    msg = loads(b"".join(chunks).decode("utf-8"))
    if "error" in msg:
        err = msg["error"]
        raise error_for_code(err.get("code", -32603), err.get("message", ""), err.get("data"))
    return msg.get("result")
