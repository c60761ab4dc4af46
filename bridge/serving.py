"""Hypercorn's trio worker, with a cap on open connections (Hypercorn 0.18 has none) that
keeps room for the user.

This is ``hypercorn.trio.run.worker_serve`` (Hypercorn 0.18.0, MIT licence) cut down to what the
bridge uses, plain TCP listeners, with one change: each accepted connection is counted and
admitted or not by ``ConnectionCap``. Without a cap, 2,000 idle connections used up the
process's file descriptors and the bridge stopped accepting anyone (EMFILE). With a plain cap,
another local user holding ~1,100 half-sent requests made 20 of 25 of the user's requests
answer 503. So, near the cap, connections are told apart by whose they are:

- below ``soft`` (the cap less a tenth) anyone is admitted;
- from there on, only the user's own connections (the peer socket's owner, ``peers.py``):
  anyone else's is answered 503 and closed at once;
- at the cap, a connection of the user's is admitted by closing another: one that is not the
  user's first, then one of the user's that never sent a valid credential, oldest first. The
  user's authenticated connections are never closed for a newcomer; when only those are left,
  the newcomer gets the 503.

A connection becomes authenticated when one of its requests passes the bridge's credential
check (``mark_authenticated``, called by the app with the ASGI scope's client address).
Idle and half-sent connections end on their own after Hypercorn's ``keep_alive_timeout``
(server.py), so what the cap holds keeps turning over.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.statsd import StatsdLogger
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState, LifespanState
from hypercorn.utils import ShutdownError, raise_shutdown, wrap_app

from .peers import peer_uid

__all__ = ["ConnectionCap", "serve_capped"]

log = logging.getLogger("kitplay.bridge")


@dataclass(eq=False)
class Conn:
    peer: tuple[str, int]
    sock: Any  # the connection's socket (trio's)
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    uid: int | None = None
    uid_known: bool = False
    authenticated: bool = False
    shed: bool = False


class ConnectionCap:
    def __init__(self, limit: int, owner_uid: int | None = None,
                 lookup: Callable[[Any], int | None] = peer_uid) -> None:
        self.limit = limit
        self.soft = max(1, limit - max(1, limit // 10))
        self.owner_uid = os.getuid() if owner_uid is None else owner_uid
        self.lookup = lookup
        self.conns: dict[tuple[str, int], Conn] = {}  # oldest first
        self.refused = 0
        self.shed = 0

    @property
    def open(self) -> int:
        return len(self.conns)

    def is_users(self, conn: Conn) -> bool:
        if not conn.uid_known:
            conn.uid, conn.uid_known = self.lookup(conn.sock), True
        return conn.uid == self.owner_uid

    def mark_authenticated(self, client: Any) -> None:
        """The connection from ``client`` (ASGI scope's ``(host, port)``) sent a valid
        credential."""
        try:
            conn = self.conns.get((client[0], client[1]))
        except (TypeError, IndexError):
            return
        if conn is not None:
            conn.authenticated = True

    def admit(self, conn: Conn) -> bool:
        """Take ``conn`` in (closing another if need be), or say no."""
        if self.open < self.soft:
            return True
        if not self.is_users(conn):
            return False
        if self.open < self.limit:
            return True
        victim = self._victim()
        if victim is None:
            return False
        victim.shed = True
        victim.scope.cancel()
        self.conns.pop(victim.peer, None)
        self.shed += 1
        return True

    def _victim(self) -> Conn | None:
        best, best_rank = None, (2, 2)
        for conn in self.conns.values():
            mine = self.is_users(conn)
            if mine and conn.authenticated:
                continue
            rank = (int(mine), int(conn.authenticated))
            if rank < best_rank:
                best, best_rank = conn, rank
                if rank == (0, 0):
                    break  # the oldest of the first kind: none comes before it
        return best

    def refusal(self) -> bytes:
        body = json.dumps({"error": {            "code": -32600,
            "message": f"the bridge has {self.limit} connections open, its limit; close some "
                       "(or raise [bridge] max_connections) and retry",
            "data": {"reason": "connections", "limit": self.limit}}}).encode()
        return (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                b"Retry-After: 1\r\nConnection: close\r\nContent-Length: "
                + str(len(body)).encode() + b"\r\n\r\n" + body)


async def _handle(cap: ConnectionCap, server: Callable[[trio.SocketStream], Any],
                  stream: trio.SocketStream) -> None:
    try:
        peer = stream.socket.getpeername()
        conn = Conn((peer[0], peer[1]), stream.socket)
    except OSError:
        await trio.aclose_forcefully(stream)
        return
    if not cap.admit(conn):
        cap.refused += 1
        with trio.move_on_after(1):
            try:
                await stream.send_all(cap.refusal())
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
        await trio.aclose_forcefully(stream)
        return
    cap.conns[conn.peer] = conn
    try:
        with conn.scope:
            await server(stream)
    finally:
        if cap.conns.get(conn.peer) is conn:
            del cap.conns[conn.peer]
        await trio.aclose_forcefully(stream)  # a shed connection's server was cancelled


async def serve_capped(app: Any, config: Config, socks: list[socket.socket],
                       cap: ConnectionCap, *,
                       shutdown_trigger: Callable[[], Awaitable[Any]],
                       task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Serve ``app`` on the listening ``socks`` until ``shutdown_trigger`` returns."""
    config.set_statsd_logger_class(StatsdLogger)
    app = wrap_app(app, config.wsgi_max_body_size, None)
    lifespan_state: LifespanState = {}
    lifespan = Lifespan(app, config, lifespan_state)
    context = WorkerContext(None)
    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()
        async with trio.open_nursery() as server_nursery:
            listeners = [trio.SocketListener(trio.socket.from_stdlib_socket(sock))
                         for sock in socks]
            server = partial(TCPServer, app, config, context,
                             ConnectionState(lifespan_state.copy()))
            task_status.started()
            try:
                async with trio.open_nursery(strict_exception_groups=True) as nursery:
                    nursery.start_soon(raise_shutdown, shutdown_trigger)
                    nursery.start_soon(raise_shutdown, context.terminate.wait)
                    nursery.start_soon(partial(
                        trio.serve_listeners, partial(_handle, cap, server), listeners,
                        handler_nursery=server_nursery))
                    await trio.sleep_forever()
            except BaseExceptionGroup as error:
                _, other = error.split((ShutdownError, KeyboardInterrupt))
                if other is not None:
                    raise other from None
            finally:
                await context.terminated.set()
                server_nursery.cancel_scope.deadline = trio.current_time() + \
                    config.graceful_timeout
        await lifespan.wait_for_shutdown()
        lifespan_nursery.cancel_scope.cancel()
