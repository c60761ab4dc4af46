"""A small blocking JSON-RPC client of the daemon socket (standard library only).

Used by the ``kitplay`` command and by editor plugins written in Python::

    with Client.connect() as c:                    # or Client.connect(framing="lsp")
        job = c.call("build", {"workspace": "."})["job"]
        for note in c.follow(job["id"]):  # passthrough.chunk_bytes(params): exact bytes
            ...
        c.wait(job["id"], timeout_s=600)

``follow`` and ``wait`` ride through a daemon restart: when the connection is lost they say so
(``notice``, stderr by default), reconnect with backoff for up to ``reconnect_s`` seconds
(default 60) and resume, ``follow`` at the byte offset it had reached, so nothing is lost or
repeated.  Plain ``call`` never retries: a call that changes state might have run.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import time
from _socket import AF_UNIX, SOCK_STREAM
from _socket import socket as _Socket
from collections import deque
from collections.abc import Iterator

from .errors import DaemonUnreachable, KitplayError, RequestCancelled, error_for_code
from .framing import MAX_LINE, LineBuffer, dumps, request
from .paths import check_peer, default_socket

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing slows `kitplay` down
if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path
    from typing import Any

    from .lsp import LspBuffer

__all__ = ["RECONNECT_S", "Client", "stderr_notice"]

START_HINT = "start it with `kitplayd` (or `systemctl --user start kitplayd.socket`)"
RECONNECT_S = 60.0  # how long follow and wait try to get the daemon back
BACKOFF_FIRST_S, BACKOFF_MAX_S = 0.05, 2.0
# The daemon going away: the connection drops, or (SIGTERM) a request in flight is answered
# with -32800 before it closes.
LOST = (DaemonUnreachable, RequestCancelled)


def stderr_notice(text: str) -> None:
    """The default ``notice``: one line on stderr."""
    sys.stderr.write(f"kitplay: {text}\n")
    sys.stderr.flush()


class Client:
    def __init__(self, sock: _Socket, path: Path | str, framing: str = "ndjson",
                 timeout: float | None = 10.0) -> None:
        self.sock = sock
        self.path = path
        self.timeout = timeout
        self._ids = itertools.count(1)
        # The daemon answers in the framing this client sends ("ndjson" or "lsp").
        self.framing = framing
        self._dumps, self._lines = _framing(framing)
        self._pending: deque[bytes] = deque()
        self.notifications: deque[dict[str, Any]] = deque()

    @classmethod
    def connect(cls, path: Path | str | None = None, timeout: float | None = 10.0,
                framing: str = "ndjson") -> Client:
        # A string, not a Path: pathlib imports urllib.parse (~5 ms of `kitplay`'s start).
        p = os.fspath(path) if path else default_socket()
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
        return cls(s, p, framing, timeout)

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

    def reconnect(self, deadline: float) -> None:
        """Replace the connection with a fresh one, backing off until ``deadline``
        (``time.monotonic()``); raise DaemonUnreachable when it passes."""
        delay = BACKOFF_FIRST_S
        while True:
            try:
                fresh = Client.connect(self.path, self.timeout, self.framing)
            except DaemonUnreachable as e:
                if time.monotonic() + delay > deadline:
                    raise DaemonUnreachable(f"the daemon did not come back: {e.message}",
                                            e.data) from None
                time.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            self.sock.close()
            self.sock, self._lines = fresh.sock, fresh._lines
            self._pending.clear()
            self.notifications.clear()  # notifications of the old connection's subscriptions
            return

    def _ride_through(self, e: KitplayError, lost_at: float | None, reconnect_s: float,
                      notice: Callable[[str], None] | None, goal: str) -> float:
        """The connection was lost (``e``) while ``follow`` or ``wait`` worked towards
        ``goal``: at the first loss, raise ``e`` when ``reconnect_s`` is 0, else say so; then
        reconnect until ``reconnect_s`` after the first loss.  Returns when that was."""
        if lost_at is None:
            lost_at = time.monotonic()
            if reconnect_s <= 0:
                raise e
            if notice:
                notice(lost_notice(e, reconnect_s, goal))
        self.reconnect(lost_at + reconnect_s)
        return lost_at

    def follow(self, job_id: str, offset: int = 0, *, encoding: str = "auto",
               reconnect_s: float = RECONNECT_S,
               notice: Callable[[str], None] | None = stderr_notice,
               ) -> Iterator[dict[str, Any]]:
        """Subscribe to a job and yield its notifications until its final state.

        ``encoding`` is how output data comes (``jobs.subscribe``): by default ``auto``, the
        log's exact bytes, as text or base64 (``passthrough.chunk_bytes(params)`` gives them).
        When the daemon goes away, reconnect for up to ``reconnect_s`` seconds and subscribe
        again from the next byte not yet yielded (``reconnect_s=0``: raise at once).
        """
        lost_at: float | None = None
        while True:
            try:
                sub = self.call("jobs.subscribe", {"job_id": job_id, "offset": offset,
                                                   "encoding": encoding})["subscription"]
                if lost_at is not None and notice:
                    notice(f"reconnected; following job {job_id} from byte {offset}")
                lost_at = None
                while True:
                    note = self.next_notification()
                    params = note.get("params") or {}
                    if params.get("subscription") != sub:
                        continue
                    if note["method"] == "jobs.output":
                        offset = params["next_offset"]
                    yield note
                    if note["method"] == "jobs.state" and params.get("final"):
                        return
            except LOST as e:
                lost_at = self._ride_through(e, lost_at, reconnect_s, notice,
                                             f"resume job {job_id} at byte {offset}")

    def wait(self, job_id: str, timeout_s: float = 30, *, reconnect_s: float = RECONNECT_S,
             notice: Callable[[str], None] | None = stderr_notice) -> dict[str, Any]:
        """``jobs.wait`` that rides through a daemon restart; the same result.

        ``timeout_s`` counts from this call, the time spent reconnecting included.
        """
        end = time.monotonic() + timeout_s
        lost_at: float | None = None
        while True:
            try:
                left = max(0.0, end - time.monotonic())
                res: dict[str, Any] = self.call("jobs.wait", {"job_id": job_id,
                                                              "timeout_s": round(left, 3)})
                if lost_at is not None and notice:
                    notice(f"reconnected; waiting for job {job_id}")
                return res
            except LOST as e:
                lost_at = self._ride_through(e, lost_at, reconnect_s, notice,
                                             f"keep waiting for job {job_id}")


def lost_notice(e: KitplayError, reconnect_s: float, goal: str) -> str:
    """What a client says when it starts to ride through a lost daemon (sync and trio)."""
    return f"lost the daemon ({e.message}); reconnecting for up to {reconnect_s:g} s to {goal}"


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
