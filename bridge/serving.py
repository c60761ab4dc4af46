"""Hypercorn's trio worker, with a cap on open connections (Hypercorn 0.18 has none).

This is ``hypercorn.trio.run.worker_serve`` (Hypercorn 0.18.0, MIT licence) cut down to what the
bridge uses, one plain TCP listener, with one change: each accepted connection is counted, and
one over ``max_connections`` is answered ``503`` with a JSON error and closed at once. Without
a cap, 2,000 idle connections used up the process's file descriptors and the bridge stopped
accepting anyone (EMFILE); with it, the user's next request is refused clearly or served.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Awaitable, Callable
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

__all__ = ["ConnectionCap", "serve_capped"]

log = logging.getLogger("kitplay.bridge")


class ConnectionCap:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self.refused = 0

    def refusal(self) -> bytes:
        body = json.dumps({"error": {
            "code": -32600,
            "message": f"the bridge has {self.limit} connections open, its limit; close some "
                       "(or raise [bridge] max_connections) and retry",
            "data": {"reason": "connections", "limit": self.limit}}}).encode()
        return (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                b"Retry-After: 1\r\nConnection: close\r\nContent-Length: "
                + str(len(body)).encode() + b"\r\n\r\n" + body)


async def _handle(cap: ConnectionCap, server: Callable[[trio.SocketStream], Any],
                  stream: trio.SocketStream) -> None:
    if cap.open >= cap.limit:
        cap.refused += 1
        with trio.move_on_after(1):
            try:
                await stream.send_all(cap.refusal())
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
        await trio.aclose_forcefully(stream)
        return
    cap.open += 1
    try:
        await server(stream)
    finally:
        cap.open -= 1


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
