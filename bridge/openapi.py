"""The OpenAPI 3.1 document of the REST routes, generated from the registry."""

from __future__ import annotations

from typing import Any

from kitplay.daemon.protocol.errors import ERRORS, KitplayError
from kitplay.daemon.protocol.registry import METHODS, Method
from kitplay.daemon.protocol.schemas import COMPONENTS
from kitplay.daemon.protocol.version import API_VERSION, __version__

from .errors import REFUSALS
from .rest import creates_job, path_params, rest_methods

__all__ = ["openapi_document"]

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every error: the JSON-RPC error object the daemon answered (or the "
                   "bridge's refusal), under `error`.",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "integer", "description": "JSON-RPC error code"},
                "message": {"type": "string"},
                "data": {"description": "Details, such as the parameter at fault."},
            },
            "required": ["code", "message", "data"],
        },
    },
    "required": ["error"],
}

# Which errors each kind of route can answer: every route can be refused by the bridge or find
# the daemon gone; routes with a body can be too large or of the wrong type.
_ALWAYS = (400, 401, 403, 404, 405, 429, 503)
_WITH_BODY = (413, 415)


def _statuses(method: Method) -> list[int]:
    assert method.http is not None
    out = set(_ALWAYS)
    if method.http[0] in ("POST", "DELETE"):
        out.update(_WITH_BODY)
    if method.mutates or method.name.startswith("templates.") or method.name == "apps.list":
        out.update((409, 422, 501))  # invalid state, toolchain failure, unsupported
    if method.name.startswith("files."):
        out.update((409, 413, 422))  # invalid state, file too large, not text
    return sorted(out)


def _title(status: int) -> str:
    names = [c.title for c in (*ERRORS, *REFUSALS) if c.http_status == status
             and c is not KitplayError]
    return "; ".join(dict.fromkeys(names)) or "error"


def _error_response(status: int) -> dict[str, Any]:
    resp: dict[str, Any] = {
        "description": _title(status),
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if status == 429:
        resp["headers"] = {"Retry-After": {"description": "Seconds to wait.",
                                           "schema": {"type": "integer", "minimum": 1}}}
    if status == 405:
        resp["headers"] = {"Allow": {"description": "The methods this route takes.",
                                     "schema": {"type": "string"}}}
    if status == 401:
        resp["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    return resp


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional parameter given as null means "not given" (``validate_params``)."""
    out = {**schema, "type": [schema["type"], "null"]}
    if "enum" in out:
        out["enum"] = [*out["enum"], None]
    return out


def _operation(method: Method) -> dict[str, Any]:
    assert method.http is not None
    verb, path = method.http
    in_path = set(path_params(path))
    op: dict[str, Any] = {
        "operationId": method.name,
        "summary": method.doc,
        "description": f"JSON-RPC method `{method.name}`: the response body is its result."
                       + (f" {method.http_note}" if method.http_note else ""),
        "tags": [method.name.split(".")[0]],
        "parameters": [],
        "responses": {"200": {
            "description": f"The result of `{method.name}`.",
            "content": {"application/json": {"schema": method.result}},
        }},
    }
    if creates_job(method):
        op["responses"]["200"]["description"] += (
            " The job is recorded and queued; Location names its record (GET it, or "
            "GET .../wait, for its outcome). API v1 answers 200 with the record, not 202.")
        op["responses"]["200"]["headers"] = {"Location": {
            "description": "The new job's record: /api/v1/jobs/{job_id} (whenever the result "
                           "holds a job).",
            "required": "job" in method.result.get("required", []),
            "schema": {"type": "string"}}}
    if method.http_media:
        op["description"] = (f"JSON-RPC method `{method.name}`: the response body is the "
                             "bytes of its result's `data_base64`, with its `content_type`."
                             + (f" {method.http_note}" if method.http_note else ""))
        op["responses"]["200"] = {
            "description": f"The image `{method.name}` returns.",
            # application/octet-stream too: what the route answers for a file of another
            # type (as an attachment), and what generators map to bytes (openapi-python-client
            # knows no image/*).
            "content": {method.http_media: {"schema": {"type": "string",
                                                       "format": "binary"}},
                        "application/octet-stream": {"schema": {"type": "string",
                                                                "format": "binary"}}},
            "headers": {"Content-Security-Policy": {"schema": {"type": "string"},
                                                    "description": "Always sandboxing."},
                        "X-Content-Type-Options": {"schema": {"type": "string",
                                                              "const": "nosniff"}}}}
    body_props: dict[str, Any] = {}
    body_required: list[str] = []
    for p in method.params:
        if p.name in in_path:
            op["parameters"].append({"name": p.name, "in": "path", "required": True,
                                     "description": p.doc, "schema": p.schema()})
        elif verb in ("GET", "DELETE"):
            q: dict[str, Any] = {"name": p.name, "in": "query", "required": p.required,
                                 "description": p.doc, "schema": p.schema()}
            if p.type == "array":
                q.update(style="form", explode=True)
            op["parameters"].append(q)
        else:
            body_props[p.name] = p.schema() if p.required else _nullable(p.schema())
            if p.required:
                body_required.append(p.name)
    if verb == "POST":
        op["requestBody"] = {
            "required": True,  # `{}` when no parameter is needed: POST is always JSON
            "content": {"application/json": {"schema": {
                "type": "object", "properties": body_props, "required": body_required,
                "additionalProperties": False}}},
        }
    for status in _statuses(method):
        op["responses"][str(status)] = {"$ref": f"#/components/responses/E{status}"}
    return op


def openapi_document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    statuses: set[int] = set()
    for method in rest_methods():
        assert method.http is not None
        verb, path = method.http
        paths.setdefault(path, {})[verb.lower()] = _operation(method)
        statuses.update(_statuses(method))
    ws = [m for m in METHODS.values() if m.http is not None and m.http[0] == "WS"]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "kitplay bridge",
            "version": __version__,
            "x-api-version": API_VERSION,
            "description": (
                "REST face of the kitplay daemon's JSON-RPC methods, generated from the method "
                "registry. Every route is served under /api/v1 and, as an alias of the current "
                "version, /api. Authenticate with `Authorization: Bearer <token>` (bridge.json "
                "beside the daemon socket holds the token; the playground page uses a session "
                "token instead, see x-login); this document itself (GET /api/openapi.json) "
                "needs none. Job-creating POSTs answer 200 with the new job's record and a "
                "Location header naming it. WebSocket routes, which OpenAPI cannot describe, "
                "are listed under x-websockets."),
        },
        "servers": [{"url": "/api/v1"}, {"url": "/api"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": {**COMPONENTS, "Error": ERROR_SCHEMA},
            "responses": {f"E{s}": _error_response(s) for s in sorted(statuses)},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "The token from bridge.json, or a page session."},
            },
        },
        "x-websockets": {
            m.http[1]: {"method": m.name, "description": m.http_note or m.doc,  # type: ignore[index]
                        "query": {"offset": "byte offset to resume from",
                                  "ticket": "a one-time stream ticket (browsers), instead of "
                                            "the Authorization header"}}
            for m in ws
        },
        "x-login": {
            "POST /api/v1/login-codes": "master token only: {url, code, expires_in_s}, a "
                                        "one-time page URL (`kitplay open`)",
            "POST /api/v1/login": "{code} -> {session}: the page trades its one-time login "
                                     "code for a session token (ends with the bridge)",
            "POST /api/v1/stream-tickets": "{} -> {ticket, expires_in_s}: opens one WebSocket",
        },
    }
