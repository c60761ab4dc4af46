"""The REST baseline: a bare quart-trio app on Hypercorn answering ``GET /api/jobs/<id>``.

One route, no authentication, no daemon: it answers every job id with the same JSON record (the
one the bench got from kitplayd, so both answers have the same size), and Hypercorn is
configured as the bridge configures it (no access log, no server header).  Its round trip is
the floor of any quart-trio REST route on Hypercorn here; the bridge's ``GET /api/jobs/<id>``
(token, Host and rate checks, a call to the daemon) is compared against it in the same run.

Run: ``python -m bench.bare_quart RECORD.json`` (prints ``port N`` once it serves).
"""

from __future__ import annotations

import json
import socket
import sys
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart_trio import QuartTrio

__all__ = ["main"]


def create_app(record: dict[str, Any]) -> QuartTrio:
    app = QuartTrio(__name__)

    @app.get("/api/jobs/<job_id>")
    async def get_job(job_id: str) -> dict[str, Any]:
        return {"job": record}

    return app


async def _serve(record: dict[str, Any]) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]
    config.accesslog = None
    config.include_server_header = False
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: serve(create_app(record), config,
                                                      shutdown_trigger=trio.sleep_forever,
                                                      task_status=task_status))
        print(f"port {port}", flush=True)


def main() -> None:
    with open(sys.argv[1]) as f:
        record = json.load(f)
    try:
        trio.run(_serve, record)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
