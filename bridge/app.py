"""The Quart app: guards, the REST routes from the registry, the stream, OpenAPI and the page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from quart import Response, redirect, request, websocket
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import MethodNotAllowed as RouteMethodNotAllowed

from daemon.protocol.aclient import DaemonLink
from daemon.protocol.errors import InvalidRequest, KitplayError, MessageTooLarge, MethodNotFound
from daemon.protocol.registry import Method

from .errors import MethodNotAllowed, UnsupportedMediaType, error_response, refusal_data
from .openapi import openapi_document
from .rest import PREFIXES, add_rest_routes
from .security import SAFE_METHODS, Guard, RateLimiter
from .settings import BridgeSettings
from .stream import StreamStats, stream_job

__all__ = ["create_app"]

STATIC = Path(__file__).resolve().parent / "static"
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; connect-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _page(status: int, title: str, text: str) -> Response:
    body = (f"<!doctype html><meta charset=utf-8><title>{title}</title>"
            f"<body style='font-family:sans-serif;margin:3em'><h1>{title}</h1><p>{text}</p>")
    return Response(body, status=status, content_type="text/html; charset=utf-8",
                    headers=PAGE_HEADERS)


def create_app(settings: BridgeSettings) -> QuartTrio:
    app = QuartTrio(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.config["BACKGROUND_TASK_SHUTDOWN_TIMEOUT"] = None
    guard = Guard(settings)
    limiter = RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst)
    stats = StreamStats()
    app.extensions["kitplay"] = {"settings": settings, "guard": guard, "streams": stats}
    link: dict[str, DaemonLink] = {}
    openapi = json.dumps(openapi_document(guard.cookie_name)).encode()

    @app.before_serving
    async def start_link() -> None:
        link["daemon"] = DaemonLink(app.nursery, settings.socket)

    @app.after_serving
    async def stop_link() -> None:
        await link["daemon"].aclose()

    async def call(method: Method, params: dict[str, Any]) -> Any:
        return await link["daemon"].call(method.name, params, idempotent=not method.mutates)

    def too_large() -> MessageTooLarge:
        return MessageTooLarge(
            f"the request body is over the bridge's {settings.max_body_bytes}-byte limit",
            {"limit": settings.max_body_bytes})

    def common_guard(headers: Any, client: str | None) -> Response | None:
        err = guard.check_host(headers)
        if err is not None:
            return error_response(err)
        retry = limiter.check(client or "")
        if retry is not None:
            err, extra = limiter.refusal(retry)
            return error_response(err, extra)
        return None

    @app.before_request
    async def guard_http() -> Response | None:
        refused = refuse_http()
        if refused is not None and (request.content_length
                                    or "Transfer-Encoding" in request.headers):
            # The body stays unread: close the connection rather than reuse it (Hypercorn
            # can stall the next request on a connection with an unread chunked body).
            refused.headers["Connection"] = "close"
        return refused

    def refuse_http() -> Response | None:
        refused = common_guard(request.headers, request.remote_addr)
        if refused is not None or not request.path.startswith("/api"):
            return refused
        via, err = guard.authenticate(request.headers, request.cookies)
        if err is not None:
            return error_response(err, {"WWW-Authenticate": 'Bearer realm="kitplay"'})
        assert via is not None
        exc = request.routing_exception
        if isinstance(exc, RouteMethodNotAllowed):
            allowed = sorted(exc.valid_methods or [])
            return error_response(MethodNotAllowed(
                f"{request.method} is not allowed on {request.path[:100]}; use "
                f"{', '.join(allowed)}", refusal_data("method", allowed=allowed)),
                {"Allow": ", ".join(allowed)})
        if request.method not in SAFE_METHODS:
            err = guard.check_origin(request.headers, via)
            if err is not None:
                return error_response(err)
            length = request.content_length
            if length is not None and length > settings.max_body_bytes:
                return error_response(too_large())
            ctype = (request.mimetype or "").lower()
            has_body = bool(length) or "Transfer-Encoding" in request.headers
            if (request.method == "POST" or has_body) and ctype != "application/json":
                return error_response(UnsupportedMediaType(
                    f"send the parameters as a JSON object with Content-Type: application/json "
                    f"(got {ctype or 'no content type'!r})", refusal_data("content-type")))
        return None

    @app.before_websocket
    async def guard_ws() -> Response | None:
        refused = common_guard(websocket.headers, websocket.remote_addr)
        if refused is not None:
            return refused
        via, err = guard.authenticate(websocket.headers, websocket.cookies)
        if err is None:
            assert via is not None
            err = guard.check_origin(websocket.headers, via)
        return error_response(err) if err is not None else None

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        err: KitplayError
        if status == 404:
            err = MethodNotFound(f"no route {request.method} {request.path[:100]}; "
                                 "GET /api/openapi.json lists the routes")
        elif status == 413:
            return error_response(too_large(), {"Connection": "close"})
        elif status == 400 and "/stream/" in request.path:
            err = InvalidRequest(f"{request.path[:100]} is a WebSocket: connect with an "
                                 "`Upgrade: websocket` request (GET)",
                                 {"reason": "websocket"})
            err.http_status = 426
            return error_response(err, {"Upgrade": "websocket"})
        elif status >= 500:
            err = KitplayError(f"internal error in the bridge ({exc.name}); its log has the "
                               "details")
            err.http_status = status
        else:
            err = InvalidRequest(exc.description or exc.name)
            err.http_status = status
        headers = {k: v for k, v in exc.get_headers() if k.lower() == "allow"}
        return error_response(err, headers)

    add_rest_routes(app, call)

    for prefix in PREFIXES:
        app.add_url_rule(f"{prefix}/openapi.json", f"{prefix}:openapi",
                         lambda: Response(openapi, content_type="application/json"),
                         methods=["GET"])

        async def ws_view(job_id: str) -> Response | None:
            return await stream_job(job_id, settings.socket, stats)

        app.add_websocket(f"{prefix}/stream/<job_id>", f"{prefix}:stream", ws_view,
                          provide_automatic_options=False)

    @app.get("/")
    async def page() -> Response:
        token = request.args.get("token")
        if token is not None:
            if not guard.token_ok(token):
                return _page(403, "Wrong token",
                             "This link's token is not the bridge's. Open the URL that "
                             "<code>kitplay-bridge</code> printed, or run <code>kitplay open"
                             "</code>.")
            resp = redirect("/", 303)
            resp.set_cookie(guard.cookie_name, settings.token, httponly=True,
                            samesite="Strict", path="/")
            resp.headers.update(PAGE_HEADERS)
            return resp  # type: ignore[return-value]
        if not guard.token_ok(request.cookies.get(guard.cookie_name)):
            return _page(401, "Token needed",
                         "Open the URL that <code>kitplay-bridge</code> printed (it carries a "
                         "one-time <code>?token=</code>), or run <code>kitplay open</code>.")
        return Response((STATIC / "index.html").read_bytes(),
                        content_type="text/html; charset=utf-8", headers=PAGE_HEADERS)

    @app.get("/static/<name>")
    async def static_file(name: str) -> Response:
        path = STATIC / name
        types = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
        if name.startswith(".") or path.suffix not in types or not path.is_file():
            return _page(404, "Not found", "No such file.")
        return Response(path.read_bytes(), content_type=f"{types[path.suffix]}; charset=utf-8",
                        headers={**PAGE_HEADERS, "Cache-Control": "no-cache"})

    return app
