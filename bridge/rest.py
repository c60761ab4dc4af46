"""REST routes, one per method of the registry that has an ``http`` route.

Every route is served under ``/api/v1`` and, as an alias of the current version, ``/api``.
GET (and DELETE) parameters come from the query string, converted to the registry's types;
POST (and DELETE) parameters from a JSON object body; ``{name}`` segments from the path.
The success body is the method's result, the same JSON as over the socket.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from kitplay.daemon.protocol.errors import InvalidParams, KitplayError, ParseError
from kitplay.daemon.protocol.registry import METHODS, Method, Param, validate_params
from quart import Quart, Response, request

from .errors import error_response

__all__ = ["PREFIXES", "add_rest_routes", "creates_job", "job_location", "path_params",
           "quart_rule", "rest_methods"]

PREFIXES = ("/api/v1", "/api")
_PATH_PARAM = re.compile(r"\{([a-z_]+)\}")
_INT = re.compile(r"^[+-]?[0-9]{1,18}$")
_NUM = re.compile(r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$")
_BOOLS = {"true": True, "1": True, "false": False, "0": False}

# The result's compact JSON, as the daemon wrote it (``DaemonLink.call(..., raw=True)``).
Caller = Callable[[Method, dict[str, Any]], Awaitable[bytes]]


def rest_methods() -> list[Method]:
    """Methods with a plain HTTP route (the WebSocket one is served by ``stream``)."""
    return [m for m in METHODS.values() if m.http is not None and m.http[0] != "WS"]


def path_params(path: str) -> list[str]:
    return _PATH_PARAM.findall(path)


def quart_rule(path: str) -> str:
    return _PATH_PARAM.sub(r"<\1>", path)


def convert(spec: Param, raw: str) -> Any:
    """One query-string value to the parameter's JSON type, or InvalidParams."""
    t = spec.items if spec.type == "array" else spec.type
    if t == "integer" and _INT.match(raw):
        return int(raw)
    if t == "number" and _NUM.match(raw):
        return float(raw) if any(c in raw for c in ".eE") else int(raw)
    if t == "boolean" and raw.lower() in _BOOLS:
        return _BOOLS[raw.lower()]
    if t == "string":
        return raw
    raise InvalidParams(
        f"query parameter '{spec.name}' must be {_describe(t)}; got {raw[:80]!r}",
        {"param": spec.name, "expected": t})


def _describe(t: str | None) -> str:
    return {"integer": "an integer", "number": "a number",
            "boolean": "true or false"}.get(t or "", f"a {t}")


def from_query(method: Method, args: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in args:
        spec = method.param(key)
        if spec is None:
            known = ", ".join(p.name for p in method.params) or "none"
            raise InvalidParams(f"{method.name} has no parameter {key[:80]!r} (parameters: "
                                f"{known})", {"param": key[:80]})
        values = args.getlist(key)
        if spec.type == "array":
            out[key] = [convert(spec, v) for v in values]
        elif len(values) > 1:
            raise InvalidParams(f"query parameter '{key}' is given {len(values)} times",
                                {"param": key})
        else:
            out[key] = convert(spec, values[0])
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def from_body(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        value = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as e:
        raise ParseError(f"the body is not valid JSON: {str(e)[:200]}") from None
    if not isinstance(value, dict):
        raise InvalidParams("the body must be a JSON object of the method's parameters")
    return value


def merge(into: dict[str, Any], more: dict[str, Any], where: str) -> None:
    for key, value in more.items():
        if key in into and into[key] != value:
            raise InvalidParams(f"parameter '{key}' is given in the path and in the {where} "
                                "with different values", {"param": key})
        into[key] = value


async def collect_params(method: Method, verb: str, view_args: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = dict(view_args)
    # Read the body before any refusal: a body left unread can stall the next request on
    # the same keep-alive connection (Hypercorn).
    body = await request.get_data(as_text=False) if verb in ("POST", "DELETE") else b""
    if verb in ("GET", "DELETE"):
        merge(params, from_query(method, request.args), "query")
    elif request.args:
        raise InvalidParams(f"{verb} takes its parameters in a JSON body, not in the query",
                            {"param": next(iter(request.args))[:80]})
    if verb in ("POST", "DELETE"):
        merge(params, from_body(body), "body")  # type: ignore[arg-type]
    return validate_params(method, params)


_NO_STORE = {"Cache-Control": "no-store"}
# The image types a media route may answer; anything else is sent as a download.
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/x-icon",
                         "image/svg+xml"})
# Bytes a workspace supplied (a template's icon, maybe an SVG) must not run on the bridge's
# origin: no script, no plugin, no sniffing; opened directly, the document is sandboxed.
MEDIA_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src 'self' data:; "
                               "style-src 'unsafe-inline'; sandbox",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def media_response(result: bytes) -> Response:
    """A media method's result (``content_type``, ``data_base64``) as the bytes themselves."""
    try:
        value = json.loads(result)
        data = base64.b64decode(value["data_base64"], validate=True)
        content_type = str(value["content_type"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise KitplayError("the daemon's answer to a media route is not an image record") \
            from None
    headers = dict(MEDIA_HEADERS)
    if content_type not in IMAGE_TYPES:
        content_type = "application/octet-stream"
        headers["Content-Disposition"] = "attachment"
    return Response(data, status=200, content_type=content_type, headers=headers)


def make_view(method: Method, call: Caller) -> Callable[..., Awaitable[Response]]:
    assert method.http is not None
    verb = method.http[0]

    creates = creates_job(method)

    async def view(**view_args: Any) -> Response:
        try:
            params = await collect_params(method, verb, view_args)
            result = await call(method, params)
            if method.http_media:
                return media_response(result)
        except KitplayError as e:
            return error_response(e)
        headers = _NO_STORE
        if creates:  # where the new job's record is (v1 answers 200: docs/api.md)
            job = json.loads(result).get("job")  # none for templates.create's dry_run
            if job is not None:
                headers = {**_NO_STORE, "Location": job_location(job["id"])}
        return Response(result + b"\n", status=200, content_type="application/json",
                        headers=headers)

    view.__name__ = method.name.replace(".", "_")
    return view


def creates_job(method: Method) -> bool:
    """Whether a POST of ``method`` starts a job (its answer is the new job's record)."""
    assert method.http is not None
    return (method.http[0] == "POST" and method.mutates
            and "job" in method.result.get("properties", {}))


def job_location(job_id: str) -> str:
    """The URL path of a job's record, in the current API version (``Location``)."""
    return f"{PREFIXES[0]}/jobs/{job_id}"


def add_rest_routes(app: Quart, call: Caller) -> None:
    for method in rest_methods():
        assert method.http is not None
        verb, path = method.http
        view = make_view(method, call)
        for prefix in PREFIXES:
            app.add_url_rule(prefix + quart_rule(path), f"{prefix}:{method.name}", view,
                             methods=[verb], provide_automatic_options=False,
                             strict_slashes=True)
