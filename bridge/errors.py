"""Refusals only HTTP has, and the JSON error body every bridge error uses.

They are InvalidRequest (-32600) to a JSON-RPC reader, each with its own HTTP status; the table
in docs/api.md is rendered from ``REFUSALS``.  Everything else comes from the daemon's classes
(``daemon.protocol.errors``), whose ``http_status`` the bridge uses as it is.
"""

from __future__ import annotations

from typing import Any

from kitplay.daemon.protocol.errors import InvalidRequest, KitplayError
from kitplay.daemon.protocol.framing import dumps
from quart import Response

__all__ = [
    "REFUSALS",
    "Forbidden",
    "MethodNotAllowed",
    "TooManyRequests",
    "Unauthorized",
    "UnsupportedMediaType",
    "error_body",
    "error_response",
]


class Unauthorized(InvalidRequest):
    http_status, title = 401, "missing or wrong token"


class Forbidden(InvalidRequest):
    http_status, title = 403, "refused Host or Origin"


class MethodNotAllowed(InvalidRequest):
    http_status, title = 405, "method not allowed on this route"


class UnsupportedMediaType(InvalidRequest):
    http_status, title = 415, "body is not application/json"


class TooManyRequests(InvalidRequest):
    http_status, title = 429, "rate limit"


REFUSALS: tuple[type[KitplayError], ...] = (
    Unauthorized, Forbidden, MethodNotAllowed, UnsupportedMediaType, TooManyRequests)


def error_body(err: KitplayError) -> bytes:
    return dumps({"error": {"code": err.code, "message": err.message, "data": err.data}})


def error_response(err: KitplayError, headers: dict[str, str] | None = None) -> Response:
    resp = Response(error_body(err), status=err.http_status, content_type="application/json",
                    headers=headers or {})
    resp.headers["Cache-Control"] = "no-store"
    return resp


def refusal_data(reason: str, **extra: Any) -> dict[str, Any]:
    return {"reason": reason, **extra}
