"""``WS /api/stream/<job_id>?offset=N``: a job's log and state, live, resumable.

Messages (JSON text frames)::

    {"type": "output", "offset": 0, "next_offset": 4096, "data": "..."}   a chunk of the log
    (with ``?encoding=auto`` or ``base64``, also "encoding": "utf-8" or "base64": exact bytes)
    {"type": "state", "job": {...}}                                      the job changed
    {"type": "end", "job": {...}}                                        final state; then close

``offset`` and ``next_offset`` are byte offsets of the log file: reconnect with the last
``next_offset`` and nothing is lost or repeated.  While the daemon is away the upgrade is
refused with 503, and a stream it drops ends with an ``error`` message and close code 1013
(try again later): both mean "reconnect with backoff".

Each stream has its own daemon connection with one ``jobs.subscribe``. Between that connection
and the WebSocket there is one small bounded channel, so a slow browser makes the bridge stop
reading the connection, the daemon stop sending, and the daemon's follower stop reading the
log file: it catches up from the file later, and nobody's memory grows.

The log's text is passed through: the subscription is ``raw``, so an output message is built
around the ``data`` string literal exactly as the daemon wrote it (``daemon.protocol
.passthrough``); the bridge never decodes nor re-encodes the log as JSON.
"""

from __future__ import annotations

import json
from typing import Any

import trio
from kitplay.daemon.protocol.aclient import open_client
from kitplay.daemon.protocol.errors import InvalidParams, KitplayError
from kitplay.daemon.protocol.process import Bursts
from kitplay.daemon.protocol.registry import METHODS, validate_params
from quart import Response, websocket

from .errors import error_response

__all__ = ["StreamStats", "stream_job"]

SUBSCRIBE = METHODS["jobs.subscribe"]
BUFFER = 1  # notifications waiting between the daemon connection and the WebSocket
# RFC 6455 registry: 1013 "Try Again Later". The daemon went away (restart, crash): the
# client reconnects with its last next_offset, as it does after a 503 refusal before accept.
TRY_AGAIN = 1013


class StreamStats(Bursts):
    """Live counters (``active``, ``total``), for tests and the status log.

    Hundreds of streams at once leave their memory in the heap once they close (glibc keeps
    freed pages, and reference cycles wait for a full collection): ``settle`` releases it a
    moment after a burst's last stream ends, so the bridge returns near its idle size instead
    of keeping its largest burst's (bench/bridge_memory.py).
    """


def _message(method: str, params: dict[str, Any]) -> str:
    if method == "jobs.output":
        encoding = params.get("encoding")
        if "data_json" in params:  # the daemon's literal, placed as it came
            return (f'{{"type":"output","offset":{int(params["offset"])},'
                    f'"next_offset":{int(params["next_offset"])},'
                    + (f'"encoding":"{encoding}",' if encoding in _EXACT else "")
                    + '"data":' + params["data_json"].decode("utf-8") + "}")
        msg = {"type": "output", "offset": params["offset"],
               "next_offset": params["next_offset"], "data": params["data"]}
        if encoding in _EXACT:
            msg["encoding"] = encoding
    elif params.get("final"):
        msg = {"type": "end", "job": params["job"]}
    else:
        msg = {"type": "state", "job": params["job"]}
    return json.dumps(msg, ensure_ascii=False, separators=(",", ":"))


_EXACT = ("utf-8", "base64")  # what an output message's "encoding" may say


def _offset() -> int:
    raw = websocket.args.get("offset", "0")
    # ASCII digits only: str.isdigit() also takes "²" and other digits int() refuses.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise InvalidParams(f"offset must be a byte offset (an integer >= 0); got {raw[:40]!r}",
                            {"param": "offset"})
    return int(raw)


async def stream_job(job_id: str, socket_path: Any, stats: StreamStats) -> Response | None:
    try:
        params = validate_params(SUBSCRIBE, {"job_id": job_id, "offset": _offset(),
                                             "encoding": websocket.args.get("encoding")})
        extra = set(websocket.args) - {"offset", "ticket", "encoding"}
        if extra:
            raise InvalidParams(f"unknown query parameter(s): {', '.join(sorted(extra))[:100]}")
    except KitplayError as e:
        return error_response(e)
    stats.opened()
    try:
        async with open_client(socket_path) as client:
            try:
                async with client.subscribe(params["job_id"], params["offset"],
                                            buffer=BUFFER, unsubscribe=False, raw=True,
                                            encoding=params.get("encoding", "text")) as sub:
                    await websocket.accept()
                    await _pump(sub)
            except KitplayError as e:
                # Before accept: an HTTP refusal (404 unknown job, 400 offset past the end).
                return error_response(e)
    except KitplayError as e:  # the daemon is unreachable
        return error_response(e)
    finally:
        stats.closed()
    return None


async def _pump(sub: Any) -> None:
    async with trio.open_nursery() as nursery:

        async def watch_client() -> None:
            # A receive beside the send loop: when the client leaves, everything stops now.
            try:
                while True:
                    await websocket.receive()
            finally:
                nursery.cancel_scope.cancel()

        nursery.start_soon(watch_client)
        try:
            async for method, params in sub:
                await websocket.send(_message(method, params))
                await trio.lowlevel.checkpoint()
        except KitplayError as e:  # lost the daemon mid-stream: say so; the client resumes
            await websocket.send(json.dumps({"type": "error", "error": e.to_json()}))
            await websocket.close(TRY_AGAIN, "lost the daemon; reconnect from next_offset")
        else:
            await websocket.close(1000, "job ended")
        nursery.cancel_scope.cancel()
