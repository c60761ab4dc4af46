"""A trio client of the daemon socket: concurrent calls on one connection, and subscriptions.

Used by the bridge (and by any trio program)::

    async with open_client(socket_path) as c:       # or open_client(path, framing="lsp")
        status = await c.call("daemon.status")
        async with c.subscribe(job_id, offset=0) as sub:
            async for method, params in sub:
                ...

- Calls are multiplexed by id: many may be in flight at once on one connection.
- Notifications of a subscription go into a small bounded channel. When its reader is slow the
  connection's reader task waits, so the daemon's follower waits too: nobody buffers without
  bound. Give a subscription its own connection when other calls must not wait behind it.
- When the connection is lost, pending calls and subscriptions raise ``DaemonUnreachable``;
  ``DaemonLink`` reconnects on the next call.
- ``follow`` rides through a daemon restart: it says so (``notice``), reconnects with backoff
  for up to ``reconnect_s`` seconds (default 60) and subscribes again from the next byte not
  yet delivered, so nothing is lost or repeated::

      async with follow(socket_path, job_id) as notes:
          async for method, params in notes:
              ...

Errors are the protocol's classes (``daemon.protocol.errors``), rebuilt from their codes.

This module needs trio; the rest of ``daemon.protocol`` is standard library only.
"""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from .client import BACKOFF_FIRST_S, BACKOFF_MAX_S, LOST, RECONNECT_S, lost_notice
from .errors import (
    DaemonUnreachable,
    InvalidParams,
    KitplayError,
    error_for_code,
)
from .framing import MAX_LINE, encode, request
from .passthrough import split_output, split_result
from .paths import check_peer, default_socket_path
from .wire import framing_of

__all__ = ["AsyncClient", "DaemonLink", "Follower", "Subscription", "connect_stream", "follow",
           "open_client"]

START_HINT = "start it with `kitplayd` (or `kitplay-bridge --with-daemon`)"
# A notification carries at most a 256 KiB chunk, escaped: leave plenty of room.
MAX_FRAME = 64 * MAX_LINE


async def connect_stream(path: Path | str | None = None) -> trio.SocketStream:
    """Open the Unix socket, or raise DaemonUnreachable saying how to start the daemon."""
    p = Path(path) if path else default_socket_path()
    try:
        stream = await trio.open_unix_socket(str(p))
    except (FileNotFoundError, ConnectionRefusedError) as e:
        raise DaemonUnreachable(
            f"no kitplay daemon is listening on {p} ({e.strerror}); {START_HINT}",
            {"socket": str(p)}) from None
    except OSError as e:
        raise DaemonUnreachable(f"cannot connect to {p}: {e}", {"socket": str(p)}) from None
    try:
        check_peer(stream.socket, p)
    except PermissionError as e:
        await stream.aclose()
        raise DaemonUnreachable(str(e), {"socket": str(p), "reason": "peer"}) from None
    return stream


class _Pending:
    __slots__ = ("done", "error", "on_result", "raw", "result")

    def __init__(self, on_result: Callable[[Any], None] | None = None,
                 raw: bool = False) -> None:
        self.done = trio.Event()
        self.result: Any = None
        self.error: KitplayError | None = None
        self.on_result = on_result
        self.raw = raw  # the result as the JSON bytes the daemon wrote, not decoded


class Subscription:
    """Notifications of one ``jobs.subscribe``: ``async for method, params in sub``.

    Iteration ends after the job's final ``jobs.state``; it raises DaemonUnreachable when the
    connection is lost before that.

    With ``raw``, a ``jobs.output`` comes with ``data_json`` (bytes: the data's JSON string
    literal as the daemon wrote it, quotes included) instead of ``data``: a relay places it in
    its own JSON as it is, and the log is never decoded nor encoded again on the way.
    """

    def __init__(self, client: AsyncClient, buffer: int, raw: bool = False) -> None:
        self.client = client
        self.id: str | None = None
        self.final = False
        self.raw = raw
        self._send, self._receive = trio.open_memory_channel[tuple[str, dict[str, Any]]](buffer)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> tuple[str, dict[str, Any]]:
        if self.final:
            raise StopAsyncIteration
        try:
            method, params = await self._receive.receive()
        except trio.EndOfChannel:
            if self.final:
                raise StopAsyncIteration from None
            raise self.client.lost_error() from None
        if method == "jobs.state" and params.get("final"):
            self.final = True
        return method, params


class AsyncClient:
    """One connection to the daemon. Create with ``open_client`` or ``AsyncClient.start``."""

    def __init__(self, stream: trio.SocketStream, path: Path, framing: str = "ndjson") -> None:
        self.stream = stream
        self.path = path
        # The daemon answers in the framing this client sends ("ndjson" or "lsp").
        self.framing = framing_of(framing)
        self.closed = False
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._subs: dict[str, Subscription] = {}
        self._send_lock = trio.Lock()
        self._lost: str | None = None

    @classmethod
    async def start(cls, nursery: trio.Nursery, path: Path | str | None = None,
                    framing: str = "ndjson") -> AsyncClient:
        """Connect, and run the reader task in ``nursery`` until the connection ends."""
        p = Path(path) if path else default_socket_path()
        framing_of(framing)  # an unknown name fails before connecting
        client = cls(await connect_stream(p), p, framing)
        nursery.start_soon(client._reader)
        return client

    def lost_error(self) -> DaemonUnreachable:
        why = self._lost or "the connection was closed"
        return DaemonUnreachable(f"lost the connection to the daemon on {self.path}: {why}",
                                 {"socket": str(self.path)})

    async def call(self, method: str, params: Any = None) -> Any:
        """Call a method; return its result or raise the error class it answered."""
        return await self._call(method, params, None)

    async def call_raw(self, method: str, params: Any = None) -> bytes:
        """As ``call``, but the result as compact JSON bytes, passed on as the daemon wrote
        them without a decode (for a relay: the bridge's REST answers)."""
        result = await self._call(method, params, None, raw=True)
        return result if type(result) is bytes else encode(result)

    async def _call(self, method: str, params: Any,
                    on_result: Callable[[Any], None] | None, raw: bool = False) -> Any:
        if self.closed:
            raise self.lost_error()
        rid = next(self._ids)
        pending = _Pending(on_result, raw)
        self._pending[rid] = pending
        try:
            try:
                msg = request(method, params if params is not None else {}, rid)
                frame = self.framing.dumps(msg)
            except (TypeError, ValueError) as e:  # not JSON (NaN, bytes, ...): the caller's fault
                raise InvalidParams(f"params of {method} are not valid JSON: {e}") from None
            await self._send_frame(frame)
            await pending.done.wait()
        finally:
            self._pending.pop(rid, None)
        if pending.error is not None:
            raise pending.error
        return pending.result

    @asynccontextmanager
    async def subscribe(self, job_id: str, offset: int = 0, buffer: int = 1,
                        unsubscribe: bool = True, raw: bool = False,
                        encoding: str = "text") -> AsyncIterator[Subscription]:
        """Subscribe to a job from ``offset``; at most ``buffer`` notifications wait here.

        Leaving the block early unsubscribes (pass ``unsubscribe=False`` when the connection
        is closed right after anyway: the daemon drops a closed connection's subscriptions).
        ``raw``: output data as its JSON literal (see ``Subscription``).  ``encoding``: how
        output data comes (``jobs.subscribe``; ``auto`` and ``base64`` are exact, and
        ``passthrough.chunk_bytes(params)`` gives the bytes).
        """
        sub = Subscription(self, buffer, raw)

        def register(result: Any) -> None:
            # Runs in the reader, before it reads the first notification of this subscription.
            sub.id = result["subscription"]
            self._subs[sub.id] = sub

        try:
            await self._call("jobs.subscribe", {"job_id": job_id, "offset": offset,
                                                "encoding": encoding}, register)
            yield sub
        finally:
            sid = sub.id
            self._subs.pop(sid or "", None)
            sub._receive.close()
            if unsubscribe and not sub.final and not self.closed and sid is not None:
                with trio.move_on_after(1) as scope:
                    scope.shield = True
                    try:
                        await self.call("jobs.unsubscribe", {"subscription": sid})
                    except KitplayError:
                        pass  # already ended, or the connection is gone: nothing to stop

    async def aclose(self) -> None:
        self._close("closed by the client")
        await self.stream.aclose()

    async def _send_frame(self, frame: bytes) -> None:
        # Taken without a checkpoint of its own when free (the usual case): send_all has its
        # own, and each extra one is a pass of the scheduler on the bridge's REST hot path.
        try:
            self._send_lock.acquire_nowait()
        except trio.WouldBlock:
            await self._send_lock.acquire()
        try:
            # Shielded: a frame cut in half by a cancelled caller would break the
            # connection for every other call on it.
            with trio.CancelScope(shield=True):
                await self.stream.send_all(frame)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as e:
            self._close(f"send failed ({e})")
            raise self.lost_error() from None
        finally:
            self._send_lock.release()

    def _close(self, why: str) -> None:
        if self.closed:
            return
        self.closed = True
        self._lost = why
        err = self.lost_error()
        for pending in self._pending.values():
            pending.error = err
            pending.done.set()
        for sub in self._subs.values():
            sub._send.close()
        self._subs.clear()

    async def _reader(self) -> None:
        lines = self.framing.buffer(MAX_FRAME)
        why = "the daemon closed the connection"
        try:
            while True:
                try:
                    data = await self.stream.receive_some(1 << 20)
                except (trio.BrokenResourceError, trio.ClosedResourceError) as e:
                    why = f"receive failed ({e})"
                    break
                if not data:
                    break
                try:
                    batch = lines.feed(data)
                except KitplayError as e:
                    why = e.message
                    break
                try:
                    for line in batch:
                        if self._answer_raw(line):
                            continue
                        # Log output is split, not decoded: its data goes on as it came.
                        split = split_output(line) if self._subs else None
                        if split is None:
                            await self._route(json.loads(line))
                        else:
                            await self._output(*split)
                except ValueError as e:
                    why = f"the daemon sent invalid JSON ({e})"
                    break
        finally:
            self._close(why)
            with trio.CancelScope(shield=True):
                await self.stream.aclose()

    def _answer_raw(self, line: bytes) -> bool:
        """Hand a success answer to a ``call_raw`` caller undecoded; False for other lines."""
        split = split_result(line)
        if split is None:
            return False
        pending = self._pending.get(split[0])
        if pending is None or not pending.raw:
            return False
        pending.result = split[1]
        pending.done.set()
        return True

    async def _output(self, params: dict[str, Any], data_json: bytes) -> None:
        sub = self._subs.get(params.get("subscription", ""))
        if sub is None:
            return
        if sub.raw:
            params["data_json"] = data_json
        else:
            params["data"] = json.loads(data_json)
        await self._deliver(sub, "jobs.output", params)

    async def _deliver(self, sub: Subscription, method: str, params: dict[str, Any]) -> None:
        try:
            await sub._send.send((method, params))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._subs.pop(sub.id or "", None)  # its reader left

    async def _route(self, msg: Any) -> None:
        if not isinstance(msg, dict):
            return  # batches are never sent by this client
        if "id" not in msg and "method" in msg:
            params = msg.get("params") or {}
            sub = self._subs.get(params.get("subscription", ""))
            if sub is not None:
                await self._deliver(sub, msg["method"], params)
            return
        pending = self._pending.get(msg.get("id"))  # type: ignore[arg-type]
        if pending is None:
            return
        if "error" in msg:
            e = msg["error"] if isinstance(msg["error"], dict) else {}
            pending.error = error_for_code(e.get("code", -32603), e.get("message", ""),
                                           e.get("data"))
        else:
            pending.result = msg.get("result")
            if pending.on_result is not None:
                try:
                    pending.on_result(pending.result)
                except (KeyError, TypeError):
                    pending.error = KitplayError(f"unexpected answer from the daemon: {msg!r:.200}")
        pending.done.set()


@asynccontextmanager
async def open_client(path: Path | str | None = None,
                      framing: str = "ndjson") -> AsyncIterator[AsyncClient]:
    """A connection for the duration of the block (its reader runs in a nursery of its own).

    ``framing`` is ``"ndjson"`` (one message per line) or ``"lsp"`` (Content-Length headers).
    Errors raised in the block come out as they are, not wrapped in an exception group.
    """
    p = Path(path) if path else default_socket_path()
    framing_of(framing)  # an unknown name fails before connecting
    client = AsyncClient(await connect_stream(p), p, framing)
    error: Exception | None = None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client._reader)
        try:
            yield client
        except Exception as e:
            error = e
        finally:
            await client.aclose()
            nursery.cancel_scope.cancel()
    if error is not None:
        raise error


class DaemonLink:
    """A shared connection, opened on first use and re-opened after the daemon restarts.

    Calls of methods that change nothing are retried once on a fresh connection when the old
    one turns out to be dead; calls that change state are never retried (they might have run).

    Calls that may wait long (``OWN_CONNECTION``: ``jobs.wait``, up to a day) go over a
    short-lived connection of their own: the daemon serves at most
    ``max_inflight_per_connection`` (64) waiting calls per connection, and that many waits on
    the shared one would leave every other call waiting behind them.
    """

    OWN_CONNECTION = frozenset({"jobs.wait"})

    def __init__(self, nursery: trio.Nursery, path: Path | str | None = None) -> None:
        self.nursery = nursery
        self.path = Path(path) if path else default_socket_path()
        self._client: AsyncClient | None = None
        self._lock = trio.Lock()

    async def client(self) -> AsyncClient:
        client = self._client
        if client is not None and not client.closed:
            return client  # no lock (and no checkpoint) while the connection is up
        async with self._lock:
            if self._client is None or self._client.closed:
                self._client = await AsyncClient.start(self.nursery, self.path)
            return self._client

    async def call(self, method: str, params: Any = None, *, idempotent: bool = False,
                   raw: bool = False) -> Any:
        """The method's result; with ``raw``, as JSON bytes (``AsyncClient.call_raw``)."""
        if method in self.OWN_CONNECTION:  # a fresh connection: none to find dead
            async with open_client(self.path) as own:
                if raw:
                    return await own.call_raw(method, params)
                return await own.call(method, params)
        for attempt in (1, 2):
            client = await self.client()
            try:
                if raw:
                    return await client.call_raw(method, params)
                return await client.call(method, params)
            except DaemonUnreachable:
                if attempt == 2 or not idempotent:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        if self._client is not None and not self._client.closed:
            await self._client.aclose()


def _stderr_notice(text: str) -> None:
    print(f"kitplay: {text}", file=sys.stderr, flush=True)


class Follower:
    """The notifications of one job, across daemon restarts; made by ``follow``."""

    def __init__(self, nursery: trio.Nursery, path: Path, job_id: str, offset: int,
                 reconnect_s: float, notice: Callable[[str], None] | None, buffer: int,
                 encoding: str = "auto") -> None:
        self.nursery = nursery
        self.path = path
        self.job_id = job_id
        self.offset = offset  # the next byte not yet delivered
        self.reconnect_s = reconnect_s
        self.notice = notice
        self.buffer = buffer
        self.encoding = encoding
        self.reconnects = 0
        self._client: AsyncClient | None = None
        self._sub: Subscription | None = None
        self._sub_cm: Any = None
        self._lost_at: float | None = None
        self._opened = False  # the first connection fails at once: nothing to ride through

    def __aiter__(self) -> Follower:
        return self

    async def __anext__(self) -> tuple[str, dict[str, Any]]:
        delay = BACKOFF_FIRST_S
        while True:
            try:
                if self._sub is None:
                    await self._open()
                assert self._sub is not None
                method, params = await self._sub.__anext__()  # StopAsyncIteration at the end
            except LOST as e:
                await self.aclose()
                now = trio.current_time()
                if self._lost_at is None:
                    self._lost_at = now
                    if self.reconnect_s <= 0 or not self._opened:
                        raise
                    if self.notice:
                        self.notice(lost_notice(e, self.reconnect_s,
                                                f"resume job {self.job_id} at byte {self.offset}"))
                elif now + delay > self._lost_at + self.reconnect_s:
                    raise DaemonUnreachable(f"the daemon did not come back: {e.message}",
                                            e.data) from None
                await trio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            if method == "jobs.output":
                self.offset = params["next_offset"]
            return method, params

    async def _open(self) -> None:
        client = await AsyncClient.start(self.nursery, self.path)
        try:
            cm = client.subscribe(self.job_id, self.offset, buffer=self.buffer,
                                  unsubscribe=False, encoding=self.encoding)
            self._sub = await cm.__aenter__()
        except BaseException:
            await client.aclose()
            raise
        self._client, self._sub_cm = client, cm
        self._opened = True
        if self._lost_at is not None:
            self.reconnects += 1
            self._lost_at = None
            if self.notice:
                self.notice(f"reconnected; following job {self.job_id} from byte {self.offset}")

    async def aclose(self) -> None:
        cm, client = self._sub_cm, self._client
        self._sub = self._sub_cm = self._client = None
        with trio.CancelScope(shield=True):
            if cm is not None:
                await cm.__aexit__(None, None, None)
            if client is not None:
                await client.aclose()


@asynccontextmanager
async def follow(path: Path | str | None, job_id: str, offset: int = 0, *,
                 reconnect_s: float = RECONNECT_S,
                 notice: Callable[[str], None] | None = _stderr_notice,
                 buffer: int = 1, encoding: str = "auto") -> AsyncIterator[Follower]:
    """A job's ``(method, params)`` notifications until its final state, riding through
    daemon restarts (``reconnect_s=0``: raise DaemonUnreachable at the first loss).  Output
    data comes in ``encoding`` (by default ``auto``: exact; ``passthrough.chunk_bytes``)."""
    p = Path(path) if path else default_socket_path()
    error: Exception | None = None
    async with trio.open_nursery() as nursery:
        follower = Follower(nursery, p, job_id, offset, reconnect_s, notice, buffer, encoding)
        try:
            yield follower
        except Exception as e:
            error = e
        finally:
            await follower.aclose()
            nursery.cancel_scope.cancel()
    if error is not None:
        raise error
