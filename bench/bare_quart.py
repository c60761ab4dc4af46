"""The REST baseline: a bare quart-trio app on Hypercorn answering ``GET /api/jobs/<id>``.

One route, no authentication, no daemon: it answers every job id with the same JSON record (the
one the bench got from kitplayd, so both answers have the same size), and Hypercorn is
configured as the bridge configures it (no access log, no server header).  Its round trip is
the floor of any quart-trio REST route on Hypercorn here; the bridge's ``GET /api/jobs/<id>``
(token, Host and rate checks, a call to the daemon) is compared against it in the same run.

With ``--daemon SOCKET`` it answers each request with one round trip to kitplayd instead: the
request's ``jobs.get`` line is sent on one kept-open Unix socket connection and the daemon's
answer line is sent back as it is (no JSON decode or encode, no checks). That is the floor of any
REST route that must ask a separate daemon process: the same run shows how much of the bridge's
gap to the bare app is the second process (two more context switches on a shared CPU) and how
much is the bridge's own code.

Run: ``python -m bench.bare_quart RECORD.json [--daemon SOCKET]`` (prints ``port N`` once it
serves).
"""

from __future__ import annotations

import json
import socket
import sys
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart import Response
from quart_trio import QuartTrio

__all__ = ["main"]


def create_app(record: dict[str, Any]) -> QuartTrio:
    app = QuartTrio(__name__)

    @app.get("/api/jobs/<job_id>")
    async def get_job(job_id: str) -> dict[str, Any]:
        return {"job": record}

    return app


def create_relay_app(socket_path: str) -> QuartTrio:
    """One route that relays ``jobs.get`` to the daemon and its answer line back, untouched."""
    app = QuartTrio(__name__)
    conn: dict[str, Any] = {}

    @app.before_serving
    async def connect() -> None:
        conn["stream"] = await trio.open_unix_socket(socket_path)
        conn["lock"] = trio.Lock()
        conn["buf"] = b""

    @app.get("/api/jobs/<job_id>")
    async def get_job(job_id: str) -> Response:
        line = b'{"jsonrpc":"2.0","id":1,"method":"jobs.get","params":{"job_id":"%s"}}\n' % (
            job_id.encode())
        async with conn["lock"]:
            await conn["stream"].send_all(line)
            buf = conn["buf"]
            while (end := buf.find(b"\n")) < 0:
                buf += await conn["stream"].receive_some(1 << 16)
            answer, conn["buf"] = buf[:end], buf[end + 1:]
        return Response(answer, content_type="application/json")

    return app


async def _serve(app: QuartTrio) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]
    config.accesslog = None
    config.include_server_header = False
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: serve(app, config,
                                                      shutdown_trigger=trio.sleep_forever,
                                                      task_status=task_status))
        print(f"port {port}", flush=True)


def main() -> None:
    with open(sys.argv[1]) as f:
        record = json.load(f)
    relay = sys.argv[2:3] == ["--daemon"]
    app = create_relay_app(sys.argv[3]) if relay else create_app(record)
    try:
        trio.run(_serve, app)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
