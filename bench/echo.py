"""The baseline server: a raw trio NDJSON echo server with the daemon's framing.

It binds a Unix socket (0600, in a 0700 directory), reads each connection through the daemon's
``LineBuffer`` with the same line cap, and writes every line straight back.  It imports only
trio and the framing module, and does no JSON work at all: its round trip, start time and RSS
are the floor of a trio server on this socket, and the daemon's are compared against them.

Run: ``python -m bench.echo SOCKET`` (sends sd_notify READY=1 when ``NOTIFY_SOCKET`` is set).
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import trio
from kitplay.daemon.protocol.framing import MAX_LINE, LineBuffer

__all__ = ["bind", "main", "serve_echo"]


async def _echo(stream: trio.SocketStream) -> None:
    lines = LineBuffer(MAX_LINE)
    async with stream:
        while True:
            try:
                data = await stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            if not data:
                return
            out = lines.feed(data)
            if out:
                try:
                    await stream.send_all(b"".join(line + b"\n" for line in out))
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return


def bind(path: Path) -> socket.socket:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    os.chmod(path, 0o600)
    sock.listen(128)
    sock.setblocking(False)
    return sock


async def serve_echo(sock: socket.socket) -> None:
    listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
    _notify_ready()
    await trio.serve_listeners(_echo, [listener])


def _notify_ready() -> None:
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(b"READY=1", addr)


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: python -m bench.echo SOCKET")
    try:
        trio.run(serve_echo, bind(Path(sys.argv[1])))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
