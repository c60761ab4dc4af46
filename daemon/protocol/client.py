"""A small blocking JSON-RPC client of the daemon socket (standard library only).

Used by the ``kitplay`` command and by editor plugins written in Python::

    with Client.connect() as c:                    # or Client.connect(framing="lsp")
        job = c.call("build", {"workspace": "."})["job"]
        for note in c.follow(job["id"]):
            ...
"""

from __future__ import annotations

import itertools
import json
from _socket import AF_UNIX, SOCK_STREAM
from _socket import socket as _Socket
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from .errors import DaemonUnreachable, KitplayError, error_for_code
from .framing import MAX_LINE, LineBuffer, dumps, request
from .paths import check_peer, default_socket_path

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing slows `kitplay` down
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from .lsp import LspBuffer

__all__ = ["Client"]

START_HINT = "start it with `kitplayd` (or `systemctl --user start kitplayd.socket`)"


class Client:
    def __init__(self, sock: _Socket, path: Path, framing: str = "ndjson") -> None:
        self.sock = sock
        self.path = path
        self._ids = itertools.count(1)
        # The daemon answers in the framing this client sends ("ndjson" or "lsp").
        self.framing = framing
        self._dumps, self._lines = _framing(framing)
        self._pending: deque[bytes] = deque()
        self.notifications: deque[dict[str, Any]] = deque()

    @classmethod
    def connect(cls, path: Path | str | None = None, timeout: float | None = 10.0,
                framing: str = "ndjson") -> Client:
        p = Path(path) if path else default_socket_path()
        _framing(framing)  # an unknown name fails before connecting
        # The C socket type: the ``socket`` module around it imports selectors, array and
        # enum conversions, ~1.5 ms of `kitplay`'s start (python -X importtime), for nothing
        # this client uses.
        s = _Socket(AF_UNIX, SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(str(p))
        except (FileNotFoundError, ConnectionRefusedError) as e:
            s.close()
            raise DaemonUnreachable(
                f"no kitplay daemon is listening on {p} ({e.strerror}); {START_HINT}",
                {"socket": str(p)}) from None
        except OSError as e:
            s.close()
            raise DaemonUnreachable(f"cannot connect to {p}: {e}", {"socket": str(p)}) from None
        try:
            check_peer(s, p)
        except PermissionError as e:
            s.close()
            raise DaemonUnreachable(str(e), {"socket": str(p), "reason": "peer"}) from None
        return cls(s, p, framing)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, msg: Any) -> None:
        try:
            self.sock.sendall(self._dumps(msg))
        except OSError as e:
            raise DaemonUnreachable(f"lost the daemon connection on {self.path}: {e}") from None

    def read_message(self) -> Any:
        """The next message from the daemon (a response or a notification)."""
        while not self._pending:
            try:
                data = self.sock.recv(1 << 20)
            except TimeoutError:
                raise
            except OSError as e:
                raise DaemonUnreachable(f"lost the daemon connection: {e}") from None
            if not data:
                raise DaemonUnreachable(
                    f"the daemon closed the connection on {self.path}; {START_HINT}")
            self._pending.extend(self._lines.feed(data))
        return json.loads(self._pending.popleft())

    def call(self, method: str, params: Any = None) -> Any:
        """Call a method and return its result, or raise the error it answered."""
        rid = next(self._ids)
        self.send(request(method, params if params is not None else {}, rid))
        while True:
            msg = self.read_message()
            if isinstance(msg, dict) and "method" in msg and "id" not in msg:
                self.notifications.append(msg)
                continue
            if isinstance(msg, dict) and msg.get("id") == rid:
                if "error" in msg:
                    e = msg["error"]
                    raise error_for_code(e.get("code", -32603), e.get("message", ""),
                                         e.get("data"))
                return msg.get("result")
            # A response to some other request (e.g. after a timeout): skip it.

    def notify(self, method: str, params: Any = None) -> None:
        self.send(request(method, params))

    def next_notification(self) -> dict[str, Any]:
        if self.notifications:
            return self.notifications.popleft()
        while True:
            msg = self.read_message()
            if isinstance(msg, dict) and "method" in msg and "id" not in msg:
                return msg

    def follow(self, job_id: str, offset: int = 0) -> Iterator[dict[str, Any]]:
        """Subscribe to a job and yield its notifications until its final state."""
        sub = self.call("jobs.subscribe", {"job_id": job_id, "offset": offset})["subscription"]
        while True:
            note = self.next_notification()
            params = note.get("params") or {}
            if params.get("subscription") != sub:
                continue
            yield note
            if note["method"] == "jobs.state" and params.get("final"):
                return


def _framing(name: str) -> tuple[Callable[[Any], bytes], LineBuffer | LspBuffer]:
    """The writer and reader of a framing; LSP's are imported only when asked for (the
    ``kitplay`` command speaks NDJSON and starts faster without them)."""
    if name == "ndjson":
        return dumps, LineBuffer(64 * MAX_LINE)
    from .wire import framing_of

    f = framing_of(name)
    return f.dumps, f.buffer(64 * MAX_LINE)


def raise_for(msg: dict[str, Any]) -> None:
    if "error" in msg:
        e = msg["error"]
        raise error_for_code(e["code"], e["message"], e.get("data"))


_ = KitplayError  # re-exported for callers catching client errors
