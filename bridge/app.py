"""The Quart app: guards, the REST routes from the registry, the stream, OpenAPI and the page."""

from __future__ import annotations

import json
from typing import Any

from kitplay.daemon.protocol.aclient import DaemonLink
from kitplay.daemon.protocol.errors import (
    InvalidRequest,
    KitplayError,
    MessageTooLarge,
    MethodNotFound,
)
from kitplay.daemon.protocol.registry import Method
from quart import Response, request, websocket
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import MethodNotAllowed as RouteMethodNotAllowed

from .credentials import CODE_TTL_S, TICKET_TTL_S, Credentials
from .displays import add_display_routes
from .errors import (
    Forbidden,
    MethodNotAllowed,
    Unauthorized,
    UnsupportedMediaType,
    error_response,
    refusal_data,
)
from .openapi import openapi_document
from .page import add_page_routes, elsewhere
from .rest import PREFIXES, add_rest_routes
from .security import SAFE_METHODS, Guard, RateLimiter
from .settings import BridgeSettings
from .stream import StreamStats, stream_job

__all__ = ["create_app"]

PAGE_HEADERS = {
    # Scripts and styles from this origin only: no inline script, no eval, no inline style
    # (the editor's styles go to its shadow root as constructed style sheets). Images from
    # this origin and blob: (template icons, fetched with the session header). frame-src:
    # the display panel frames a session's Xpra client, served by this origin under
    # /display/ (displays.py).
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "connect-src 'self'; img-src 'self' blob: data:; "
                               "frame-src 'self'; object-src 'none'; "
                               "worker-src 'none'; frame-ancestors 'none'; "
                               "base-uri 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def create_app(settings: BridgeSettings) -> QuartTrio:
    app = QuartTrio(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.config["BACKGROUND_TASK_SHUTDOWN_TIMEOUT"] = None
    # A request body that does not arrive within this many seconds is given up (Quart's
    # BODY_TIMEOUT, 60 by default): loopback bodies of at most max_body_bytes take far less.
    app.config["BODY_TIMEOUT"] = settings.idle_timeout_s * 2
    credentials = Credentials(settings.token)
    guard = Guard(settings, credentials)
    limiter = RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst)
    anon_limiter = RateLimiter(settings.anon_rate_per_s, settings.anon_burst)
    stats = StreamStats()
    app.extensions["kitplay"] = {"settings": settings, "guard": guard, "streams": stats,
                                 "credentials": credentials}
    link: dict[str, DaemonLink] = {}
    openapi = json.dumps(openapi_document()).encode()
    login_paths = {f"{prefix}/login" for prefix in PREFIXES}
    openapi_paths = {f"{prefix}/openapi.json" for prefix in PREFIXES}

    @app.before_serving
    async def start_link() -> None:
        link["daemon"] = DaemonLink(app.nursery, settings.socket)
        app.nursery.start_soon(stats.settle)

    @app.after_serving
    async def stop_link() -> None:
        await link["daemon"].aclose()

    async def call(method: Method, params: dict[str, Any]) -> bytes:
        # The result's JSON as the daemon wrote it: the REST body, never decoded here.
        result: bytes = await link["daemon"].call(method.name, params, raw=True,
                                                  idempotent=not method.mutates)
        return result

    def too_large() -> MessageTooLarge:
        return MessageTooLarge(
            f"the request body is over the bridge's {settings.max_body_bytes}-byte limit",
            {"limit": settings.max_body_bytes})

    def rate_limited(limit: RateLimiter, key: str) -> Response | None:
        retry = limit.check(key)
        if retry is None:
            return None
        err, extra = limit.refusal(retry)
        return error_response(err, extra)

    def refuse_anonymous(err: KitplayError) -> Response:
        """A request without a valid credential: from the anonymous bucket, then 401."""
        return rate_limited(anon_limiter, "anonymous") or error_response(
            err, {"WWW-Authenticate": 'Bearer realm="kitplay"'})

    @app.before_request
    async def guard_http() -> Response | None:
        refused = refuse_http()
        if refused is not None and (request.content_length
                                    or "Transfer-Encoding" in request.headers):
            # The body stays unread: close the connection rather than reuse it (Hypercorn
            # can stall the next request on a connection with an unread chunked body).
            refused.headers["Connection"] = "close"
        return refused

    def authenticated(scope: Any) -> None:
        """This connection carries a valid credential: near the connection cap, it is one of
        the last to be closed for a newcomer (serving.py)."""
        connections = app.extensions["kitplay"].get("connections")
        if connections is not None:
            connections.mark_authenticated(scope.get("client"))

    def admit(headers: Any, scope: Any) -> Response | None:
        """Authenticate first, then rate-limit by credential: a request without a valid
        credential is refused from the anonymous budget and never touches the user's."""
        who, err = guard.authenticate(headers)
        if err is not None:
            return refuse_anonymous(err)
        assert who is not None
        authenticated(scope)
        return rate_limited(limiter, who)

    def refuse_http() -> Response | None:
        err = guard.check_host(request.headers)
        if err is not None:
            return error_response(err)
        if not request.path.startswith("/api"):
            return None  # the page and its static files hold no secret
        if request.path in openapi_paths and "Authorization" not in request.headers:
            # The OpenAPI document holds no secret, and generators fetch it by URL: no
            # credential needed (the Host check above still applies, so no rebound DNS name
            # reaches it, and no CORS header lets another origin's page read it); requests
            # without one share the anonymous budget.
            refused = rate_limited(anon_limiter, "anonymous")
            if refused is not None:
                return refused
        # A login's credential is the code in its body, checked by the view.
        elif not (request.path in login_paths and request.method == "POST"):
            refused = admit(request.headers, request.scope)
            if refused is not None:
                return refused
        exc = request.routing_exception
        if isinstance(exc, RouteMethodNotAllowed):
            allowed = sorted(exc.valid_methods or [])
            return error_response(MethodNotAllowed(
                f"{request.method} is not allowed on {request.path[:100]}; use "
                f"{', '.join(allowed)}", refusal_data("method", allowed=allowed)),
                {"Allow": ", ".join(allowed)})
        if request.method not in SAFE_METHODS:
            err = guard.check_origin(request.headers)
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
        err = guard.check_host(websocket.headers)
        if err is not None:
            return error_response(err)
        ticket = websocket.args.get("ticket")
        if ticket is not None:
            if not credentials.redeem_ticket(ticket):
                return refuse_anonymous(Unauthorized(
                    "this stream ticket is used up, expired or wrong: ask for a new one with "
                    "POST /api/v1/stream-tickets", refusal_data("ticket")))
            authenticated(websocket.scope)
            refused = rate_limited(limiter, "session")
        else:
            refused = admit(websocket.headers, websocket.scope)
        if refused is not None:
            return refused
        err = guard.check_origin(websocket.headers)
        return error_response(err) if err is not None else None

    def who_is_calling() -> str | None:
        return credentials.identify(guard.bearer(request.headers) or "")

    def json_response(value: Any, status: int = 200) -> Response:
        return Response(json.dumps(value), status=status, content_type="application/json",
                        headers={"Cache-Control": "no-store"})

    async def new_login_code() -> Response:
        """Master token only: a one-time page URL (what `kitplay open` prints)."""
        await request.get_data()
        if who_is_calling() != "master":
            return error_response(Unauthorized(
                "only the master token (bridge.json) can mint login codes",
                refusal_data("token")))
        code = credentials.mint_code()
        return json_response({"url": f"{settings.page_origin()}/#code={code}", "code": code,
                              "expires_in_s": CODE_TTL_S})

    async def new_session() -> Response:
        """``{"code": ...}`` -> ``{"session": ...}``: the page trades its login code.

        Only on the page's own origin, and the answer clears that origin's HTTP cache
        (``Clear-Site-Data``): nothing cached before the sign-in is used after it."""
        body = await request.get_data()  # read first: the connection stays usable
        if not guard.on_page_host(request.headers):
            return error_response(Forbidden(
                "sign in on the page's own address (the URL kitplay-bridge printed, or "
                "`kitplay open --browser`), not on "
                f"{(request.headers.get('Host') or '')[:100]!r}", refusal_data("host")))
        try:
            code = json.loads(body).get("code")
        except (ValueError, AttributeError):
            code = None
        session = credentials.redeem_code(code) if isinstance(code, str) else None
        if session is None:
            return refuse_anonymous(Unauthorized(
                "this login code is used up, expired or wrong: run `kitplay open` for a new "
                "page URL", refusal_data("code")))
        response = json_response({"session": session})
        # Not "storage" too: it would end the sessions of the page's other tabs.
        response.headers["Clear-Site-Data"] = '"cache"'
        return response

    async def new_stream_ticket() -> Response:
        await request.get_data()
        return json_response({"ticket": credentials.mint_ticket(),
                              "expires_in_s": TICKET_TTL_S})

    for prefix in PREFIXES:
        for rule, view in (("login-codes", new_login_code), ("login", new_session),
                           ("stream-tickets", new_stream_ticket)):
            app.add_url_rule(f"{prefix}/{rule}", f"{prefix}:{rule}", view, methods=["POST"],
                             provide_automatic_options=False)

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

    # The displays' client pages belong to the page: served on its origin only.
    add_display_routes(app, settings.socket,
                       lambda headers: None if guard.on_page_host(headers)
                       else elsewhere(PAGE_HEADERS))
    add_page_routes(app, PAGE_HEADERS, guard.on_page_host)

    return app
