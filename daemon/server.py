"""The Unix socket: binding it safely, checking peers, and serving connections.

trio has no Unix-socket listener helper and no line reader, so both are here: the socket is
bound by hand (directory 0700, socket 0600, stale file removed, live daemon refused), and
each connection is read through a ``FrameReader`` (``protocol/wire.py``), which picks the
connection's framing (NDJSON or LSP) from its first bytes, caps the message length, and writes
every answer and notification of that connection in the same framing.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import socket as stdsocket
import struct
from pathlib import Path
from typing import Any

import trio

from .following import Followable, follow_job
from .protocol.errors import (
    InvalidState,
    KitplayError,
    NotFound,
    RequestCancelled,
)
from .protocol.framing import dumps, error_response, notification
from .protocol.passthrough import output_parts
from .protocol.paths import check_socket_path, ensure_private_dir
from .protocol.process import Bursts
from .protocol.wire import NDJSON, FrameReader
from .rpc import Dispatcher

__all__ = ["Connection", "bind_socket", "serve", "socket_from_systemd"]

log = logging.getLogger("kitplayd.server")

_sub_ids = itertools.count(1)

CANCEL = "$/cancelRequest"  # the LSP notification, {"id": ...}; served in both framings

# How long a frame cut short by a cancel (the daemon stopping) may take to finish going out
# before its connection is closed instead.
FINISH_FRAME_S = 5.0


class AlreadyRunning(RuntimeError):
    pass


def socket_from_systemd() -> stdsocket.socket | None:
    """The listening socket systemd passed (LISTEN_FDS/LISTEN_PID), if any."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return None
    if int(os.environ.get("LISTEN_FDS", "0") or 0) < 1:
        return None
    for var in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(var, None)
    sock = stdsocket.socket(fileno=3)
    sock.setblocking(False)
    return sock


def bind_socket(path: Path) -> stdsocket.socket:
    """Bind and listen on ``path``: directory 0700, socket 0600; refuse a live daemon."""
    check_socket_path(path)
    # Ours and 0700 (created exclusively, checked with lstat), or a root-owned sticky dir such
    # as /tmp itself, where the 0600 socket and the peer check keep others out.
    ensure_private_dir(path.parent, "socket directory")
    if path.exists() or path.is_symlink():
        probe = stdsocket.socket(stdsocket.AF_UNIX, stdsocket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except OSError as e:
            if e.errno not in (errno.ECONNREFUSED, errno.ENOENT, errno.ENOTSOCK):
                raise
            path.unlink(missing_ok=True)  # stale: nobody answers
            log.info("removed stale socket %s", path)
        else:
            raise AlreadyRunning(
                f"another kitplayd is already listening on {path}; stop it first "
                "(`kitplay daemon status` shows its pid) or choose another --socket")
        finally:
            probe.close()
    sock = stdsocket.socket(stdsocket.AF_UNIX, stdsocket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(stdsocket.SOMAXCONN)  # many clients may connect at once (load test: 250)
    sock.setblocking(False)
    return sock


def peer_uid(sock: trio.socket.SocketType) -> int:
    creds = sock.getsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


class Connection:
    """One client connection: the context every handler receives."""

    def __init__(self, stream: trio.SocketStream, nursery: trio.Nursery,
                 frames: FrameReader | None = None) -> None:
        self.stream = stream
        self.nursery = nursery
        self.frames = frames or FrameReader()  # its framing writes every frame we send
        self._send_lock = trio.Lock()
        self.subscriptions: dict[str, trio.CancelScope] = {}
        self.closed = False

    async def send(self, msg: Any) -> None:
        await self._write(self.frames.encode(msg))

    async def send_json(self, body: bytes) -> None:
        """Send one message already encoded as compact JSON, in the connection's framing."""
        await self._write(self.frames.frame(body))

    async def send_parts(self, parts: list[bytes]) -> None:
        """The same, for a message in parts (a log chunk: one copy of it, not two)."""
        await self._write(self.frames.frame_parts(parts))

    async def _write(self, data: bytes) -> None:
        try:  # uncontended: take the lock without a scheduler round trip (bench: -1 batch)
            self._send_lock.acquire_nowait()
        except trio.WouldBlock:
            await self._send_lock.acquire()
        try:
            if self.closed:
                return
            try:
                await self._send_whole(data)
            except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
                self._close()
        finally:
            self._send_lock.release()

    async def _send_whole(self, data: bytes) -> None:
        """Send one frame whole, or nothing of it.

        A cancel (the daemon stopping, a caller's timeout) before the first byte raises
        ``Cancelled`` with nothing sent, so the caller may send another frame instead (the
        -32800).  A cancel after the first byte must not cut the frame: the client would read
        half a message followed by the next one.  The rest goes out shielded, bounded by
        ``FINISH_FRAME_S``, and the call returns normally: the frame is out, and the cancel
        still stops the caller at its next checkpoint.  A client too slow to take the rest in
        time loses the connection instead of reading a broken frame.
        """
        sock = self.stream.socket
        sent = 0
        with memoryview(data) as view:
            try:
                while sent < len(view):  # trio.socket.send: either sends, or is cancelled
                    sent += await sock.send(view[sent:])
                if not view:
                    await trio.lowlevel.checkpoint()
            except trio.Cancelled:
                if sent == 0:
                    raise
                with trio.CancelScope(shield=True) as finish:
                    finish.deadline = trio.current_time() + FINISH_FRAME_S
                    while sent < len(view):
                        sent += await sock.send(view[sent:])
                if sent < len(view):
                    log.warning("closing a connection: a client took more than %s s to read "
                                "the rest of a frame", FINISH_FRAME_S)
                    self._close()

    def _close(self) -> None:
        self.closed = True  # nothing more is written, not even the rest of a cut frame
        self.nursery.cancel_scope.cancel()

    async def subscribe(self, jobs: Followable, job_id: str, offset: int,
                        encoding: str = "text") -> str:
        jobs.get_record(job_id)  # NotFound before a subscription exists
        follower = follow_job(jobs, job_id, offset)
        # Validate the offset now, so a bad one is this call's error.
        first = await follower.__anext__()
        sub = f"s{next(_sub_ids)}"
        self.subscriptions[sub] = trio.CancelScope()
        self.nursery.start_soon(self._pump, sub, job_id, first, follower, encoding)
        return sub

    def unsubscribe(self, sub: str) -> bool:
        scope = self.subscriptions.pop(sub, None)
        if scope is None:
            raise NotFound(f"no subscription {sub!r} on this connection", {"subscription": sub})
        scope.cancel()
        return True

    async def _pump(self, sub: str, job_id: str, first: Any, follower: Any,
                    encoding: str) -> None:
        # Let the subscribe response go out before the first notification.
        await trio.lowlevel.checkpoint()
        # The subscription's cancel scope covers only the wait for more output, never a
        # write: a frame cancelled halfway (an unsubscribe while the client reads slowly)
        # would leave half a message on the stream.  Only the connection's end stops a write.
        try:
            item = first
            while True:
                await self._emit(sub, job_id, item, encoding)
                if sub not in self.subscriptions:
                    break  # unsubscribed while writing
                with trio.CancelScope() as wait:
                    self.subscriptions[sub] = wait
                    item = await follower.__anext__()
                if wait.cancelled_caught or sub not in self.subscriptions:
                    break
        except StopAsyncIteration:
            pass
        finally:
            await follower.aclose()
        self.subscriptions.pop(sub, None)

    async def _emit(self, sub: str, job_id: str, item: tuple[str, Any], encoding: str) -> None:
        kind, payload = item
        if kind == "output":
            # Escaped at the byte level, "data" last, so relays can pass its string on
            # without decoding it (daemon.protocol.passthrough).
            offset, data = payload
            await self.send_parts(output_parts(sub, job_id, offset, data, encoding))
        else:
            job, final = payload
            await self.send(notification("jobs.state", {
                "subscription": sub, "job": job, "final": final}))


async def serve(listen_sock: stdsocket.socket, dispatcher: Dispatcher, *, max_line: int,
                max_inflight: int, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Serve connections on an already-listening socket until cancelled."""
    tsock = trio.socket.from_stdlib_socket(listen_sock)
    listener = trio.SocketListener(tsock)
    my_uid = os.getuid()
    bursts = Bursts()

    async def handle(stream: trio.SocketStream) -> None:
        bursts.opened()
        try:
            await handle_one(stream)
        finally:
            bursts.closed()

    async def handle_one(stream: trio.SocketStream) -> None:
        async with stream:
            try:
                uid = peer_uid(stream.socket)
            except OSError:
                uid = -1
            if uid != my_uid:
                log.warning("refused a connection from uid %s", uid)
                err = InvalidState(f"this kitplayd belongs to uid {my_uid}; connections from "
                                   f"uid {uid} are refused. Run your own daemon.")
                try:
                    await stream.send_all(dumps(error_response(err)))
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
                return
            try:
                await _serve_connection(stream, dispatcher, max_line, max_inflight)
            except Exception:  # a bug must cost one connection, never the daemon
                log.exception("closing a connection after an internal error")

    task_status.started(listener)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(bursts.settle)
        await trio.serve_listeners(handle, [listener])



async def _serve_connection(stream: trio.SocketStream, dispatcher: Dispatcher, max_line: int,
                            max_inflight: int) -> None:
    """Read frames; answer each parsed message inline when it completes without waiting (the
    fast path: no task, no limiter), else in a task of its own (``jobs.wait``, reads, the
    commit of a submission, subscriptions), so several calls can be in flight at once.

    Responses carry ids and may leave in any order (docs/api.md); the one ordering the protocol
    documents, a subscription's answer before its first notification, is ``_pump``'s concern.
    Every frame goes out through ``conn.send``, whatever the connection's framing: the
    ``FrameReader`` picks NDJSON or LSP from the connection's first bytes.
    """
    frames = FrameReader(max_line)
    limiter = trio.CapacityLimiter(max_inflight)
    # The calls in flight in tasks, by request id: what `$/cancelRequest` can end.
    pending: dict[tuple[bool, Any], list[trio.CancelScope]] = {}
    async with trio.open_nursery() as nursery:
        conn = Connection(stream, nursery, frames)

        async def process(msg: Any, token: object, key: tuple[bool, Any] | None,
                          scope: trio.CancelScope) -> None:
            try:
                with scope:
                    response = await dispatcher.handle_message(msg, conn)
                if scope.cancelled_caught:  # `$/cancelRequest` named it before it finished
                    response = error_response(RequestCancelled(
                        "cancelled by the client ($/cancelRequest) before it finished",
                        {"reason": "client"}), msg["id"])
                if response is not None:
                    await conn.send(response)
            except trio.Cancelled:
                # The daemon is stopping (or the client left) with this request in flight:
                # answer it with -32800 rather than silence, if the client still listens.
                # (An answer whose send had begun was finished by ``_send_whole``, which then
                # returned normally: no -32800 follows a frame.)
                if isinstance(msg, dict) and "id" in msg and not conn.closed:
                    with trio.CancelScope(shield=True), trio.move_on_after(0.5):
                        await conn.send(error_response(RequestCancelled(
                            "kitplayd stopped before answering; nothing was lost: jobs and "
                            "their logs are kept. Retry the call once the daemon is back."),
                            _valid_id(msg["id"])))
                raise
            finally:
                if key is not None:
                    scopes = pending.get(key, [])
                    if scope in scopes:
                        scopes.remove(scope)
                    if not scopes:
                        pending.pop(key, None)
                limiter.release_on_behalf_of(token)

        try:
            while not conn.closed:
                try:
                    data = await stream.receive_some(65536)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    break
                if not data:
                    break
                try:
                    batch = frames.feed(data)
                except KitplayError as e:  # too large, or a malformed LSP header: say so, close
                    await conn.send(error_response(e))
                    break
                for frame in batch:
                    if not frame.strip():
                        continue
                    try:
                        msg = dispatcher.parse(frame, (frames.framing or NDJSON).hint)
                    except KitplayError as e:
                        await conn.send(error_response(e))
                        continue
                    if type(msg) is dict and msg.get("method") == CANCEL and "id" not in msg:
                        # LSP's cancellation notification: end the named call in flight (it
                        # answers -32800 and frees its slot); an unknown id is ignored.
                        target = msg.get("params")
                        key = _request_key(target) if type(target) is dict else None
                        for scope in pending.get(key, []) if key is not None else []:
                            scope.cancel()
                        continue
                    if dispatcher.completes_nowait(msg):
                        response = dispatcher.answer_nowait(msg, conn)
                        if response is not None:
                            await _send_answer(conn, response)
                        continue
                    token = object()
                    try:  # a free slot needs no scheduler round trip (bench: -1 batch)
                        limiter.acquire_on_behalf_of_nowait(token)
                    except trio.WouldBlock:
                        await limiter.acquire_on_behalf_of(token)
                    # Known to `$/cancelRequest` from now on, even before its task starts.
                    key, scope = _request_key(msg), trio.CancelScope()
                    if key is not None:
                        pending.setdefault(key, []).append(scope)
                    nursery.start_soon(process, msg, token, key, scope)
                if frames.error is not None:  # after the good frames that came before it
                    await conn.send(error_response(frames.error))
                    break
        except KitplayError:  # pragma: no cover - defensive
            log.exception("connection error")
        # The client is gone (or sent EOF): stop its subscriptions, let in-flight calls finish.
        for sub in list(conn.subscriptions):
            conn.unsubscribe(sub)
        if conn.closed:
            nursery.cancel_scope.cancel()


async def _send_answer(conn: Connection, response: Any) -> None:
    """Send an answer computed inline (a message, or its JSON body as bytes); if the daemon
    stops at this very moment, the answer (already made, its effects done) still goes out, as
    a task's -32800 would.  A cancelled send sent nothing of the frame (``_send_whole``), so
    sending it again cannot repeat part of it."""
    send = conn.send_json if type(response) is bytes else conn.send
    try:
        await send(response)
    except trio.Cancelled:
        if not conn.closed:
            with trio.CancelScope(shield=True), trio.move_on_after(0.5):
                await send(response)
        raise


def _request_key(msg: Any) -> tuple[bool, Any] | None:
    """The key of a request's id in ``pending`` (1 and "1" are different ids), or None for a
    notification, a batch, or an id no request can have."""
    if type(msg) is not dict or "id" not in msg:
        return None
    rid = msg["id"]
    if isinstance(rid, bool) or not isinstance(rid, (str, int, float)):
        return None
    return (isinstance(rid, str), rid)


def _valid_id(rid: Any) -> Any:
    return rid if isinstance(rid, (str, int, float)) and not isinstance(rid, bool) else None
