"""JSON-RPC 2.0 dispatch: framing in, jsonrpcserver for the call, trio for concurrency.

jsonrpcserver 5.0.9 is used for what it does well (method lookup, argument binding, response
envelopes) and bypassed where it does not fit:

- batches: its ``asyncio.gather`` fails under trio, and it answers a batch with one invalid
  member with one error; here each member is dispatched on its own in a trio nursery;
- request validation: its jsonschema pass costs ~37 us a call; a structural check here does
  the same job, and parameter *types* are checked from the registry (it checks only names).

Handlers come in two kinds.  A plain function (``def``) never waits: the connection loop
answers its calls inline, without a task per request (``completes_nowait`` and
``answer_nowait``).  A coroutine function (``async def``) may wait (``jobs.wait``, file reads
in a worker thread, subscriptions, the commit of a submission) and runs in a task of its own,
so several such calls can be in flight on one connection.

An inline call of a well-formed request skips jsonrpcserver: its lookup, binding and envelope
reduce to a dict lookup, the registry's check and a dict literal here, and its ``call``,
``to_response`` and ``to_serializable`` cost about 3 us of a ~6 us dispatch, which is a fifth
of the round trip's margin over a raw echo.  Everything else (batches, malformed requests,
methods that wait) takes jsonrpcserver's path; ``tests/test_rpc_inline.py`` checks that both
paths answer every kind of message alike.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from .protocol.errors import (
    InvalidParams,
    InvalidRequest,
    KitplayError,
    MethodNotFound,
    ParseError,
    describe_bug,
)
from .protocol.framing import Encoded, encode, error_response
from .protocol.registry import METHODS, named_params, validate_params

__all__ = ["Dispatcher", "Handler", "load_jsonrpcserver"]

log = logging.getLogger("kitplayd.rpc")

# A handler is ``async def`` (may wait) or a plain ``def`` (never waits: answered inline).
Handler = Callable[[Any, dict[str, Any]], Any]
_VALID_ID = (str, int, float, type(None))


class _Jsonrpcserver:
    """The pieces of jsonrpcserver the task path uses, imported on first use.

    Importing jsonrpcserver costs about 50 ms (it imports jsonschema and http.server), a sixth
    of the daemon's start, and no inline call needs it: ``main`` loads it in a worker thread
    once the socket is ready, and the first call that needs it earlier waits for the import.
    """

    def __init__(self) -> None:
        from jsonrpcserver import Success
        from jsonrpcserver.async_dispatcher import call
        from jsonrpcserver.dispatcher import create_request, to_response
        from jsonrpcserver.exceptions import JsonRpcError
        from jsonrpcserver.response import to_serializable

        self.Success = Success
        self.JsonRpcError = JsonRpcError
        self.call = call
        self.create_request = create_request
        self.to_response = to_response
        self.to_serializable = to_serializable


_lib: _Jsonrpcserver | None = None


def load_jsonrpcserver() -> _Jsonrpcserver:
    global _lib
    if _lib is None:
        _lib = _Jsonrpcserver()
    return _lib


def _wrap(name: str, handler: Handler) -> Callable[..., Awaitable[Any]]:
    method = METHODS[name]
    waits = inspect.iscoroutinefunction(handler)

    async def call(context: Any, /, **params: Any) -> Any:
        lib = _lib or load_jsonrpcserver()
        try:
            checked = validate_params(method, params)
            result = await handler(context, checked) if waits else handler(context, checked)
            return lib.Success(result.value if type(result) is Encoded else result)
        except KitplayError as e:
            raise lib.JsonRpcError(e.code, e.message, e.data) from None
        except trio.Cancelled:
            raise
        except Exception as e:
            log.exception("method %s failed", name)
            raise lib.JsonRpcError(KitplayError.code, _bug_message(name, e), None) from None

    call.__name__ = name
    return call


_NO_ID = object()


def _bug_message(name: str, e: Exception) -> str:
    """What a caller hears of a bug in a handler (the same on both paths)."""
    return (f"internal error in {name}: {describe_bug(e)}. The daemon keeps running; its log "
            "has the details. Please report it.")


def _inline(name: str, handler: Handler) -> Callable[[dict[str, Any], Any], Any]:
    """A well-formed request of a method whose handler never waits, answered directly: the
    same answers as ``_wrap`` through jsonrpcserver, without its envelopes."""
    method = METHODS[name]

    def answer(msg: dict[str, Any], context: Any) -> Any:
        rid = msg.get("id", _NO_ID)
        params = msg.get("params")
        if type(params) is list:
            try:
                params = named_params(method, params)
            except InvalidParams as e:
                return None if rid is _NO_ID else error_response(e, rid)
        try:
            result = handler(context, validate_params(method, params))
        except KitplayError as e:  # as jsonrpcserver writes a JsonRpcError: "data" always
            error = {"code": e.code, "message": e.message, "data": e.data}
        except Exception as e:
            log.exception("method %s failed", name)
            error = {"code": KitplayError.code, "message": _bug_message(name, e), "data": None}
        else:
            if rid is _NO_ID:
                return None
            if type(result) is Encoded:  # the response's body, built around the kept JSON
                return b'{"jsonrpc":"2.0","result":%s,"id":%s}' % (result.json, encode(rid))
            return {"jsonrpc": "2.0", "result": result, "id": rid}
        return None if rid is _NO_ID else {"jsonrpc": "2.0", "error": error, "id": rid}

    return answer


class Dispatcher:
    def __init__(self, handlers: dict[str, Handler]) -> None:
        missing = set(METHODS) - set(handlers)
        extra = set(handlers) - set(METHODS)
        if missing or extra:
            raise RuntimeError(f"handlers drift from the registry: missing {missing}, "
                               f"extra {extra}")
        self.methods = {name: _wrap(name, h) for name, h in handlers.items()}
        # Methods whose handler never waits: their calls are answered inline.
        self.inline = {name: _inline(name, h) for name, h in handlers.items()
                       if not inspect.iscoroutinefunction(h)}

    @staticmethod
    def parse(frame: bytes | str, hint: str = "Send one JSON-RPC 2.0 message per line.") -> Any:
        """One frame's JSON message; raises ParseError (answer it with ``error_response``)
        ending with ``hint``, how to send a message in the connection's framing."""
        try:
            # Strict UTF-8 (json.loads on bytes would let encoded surrogates through).
            text = frame.decode("utf-8") if isinstance(frame, bytes) else frame
            try:  # the scanner itself: decode() adds two whitespace regex matches (~0.5 us)
                msg, end = _scan(text, 0)
                if end == len(text):
                    return msg
            except StopIteration:
                pass
            return _decoder.decode(text)  # spaces around the value, or its error
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            raise ParseError(f"invalid JSON: {_short(e)}. {hint}") from None

    def completes_nowait(self, msg: Any) -> bool:
        """Whether answering ``msg`` never waits: a single request (or notification) of an
        inline method, or one answered by an error (not a request, unknown method).  Batches
        and methods that may wait take the task path."""
        if type(msg) is not dict:
            return not isinstance(msg, list)
        name = msg.get("method")
        return type(name) is not str or name in self.inline or name not in self.methods

    def answer_nowait(self, msg: Any, context: Any) -> Any:
        """The response to a message ``completes_nowait`` accepted, computed without waiting:
        a dict, or bytes (the response already encoded as compact JSON, when the handler
        returned an ``Encoded`` result), or None for a notification.  A well-formed request
        goes straight to its handler; any other message takes ``handle_one``, whose coroutine
        is driven here and finishes on its first step, since nothing on its way waits."""
        if _check_request(msg) is None:
            answer = self.inline.get(msg["method"])
            if answer is not None:
                return answer(msg, context)
        coro = self.handle_one(msg, context)
        try:
            coro.send(None)
        except StopIteration as done:
            return done.value
        coro.close()
        raise RuntimeError(f"method {msg.get('method')!r} waited inside an inline handler")

    async def handle_message(self, msg: Any, context: Any) -> Any:
        """One parsed message in; the response object (dict, list) or None."""
        if isinstance(msg, list):
            if not msg:
                return error_response(InvalidRequest(
                    "empty batch: a batch must hold at least one request"))
            results: list[Any] = [None] * len(msg)

            async def one(i: int, member: Any) -> None:
                results[i] = await self.handle_one(member, context)

            async with trio.open_nursery() as nursery:
                for i, member in enumerate(msg):
                    nursery.start_soon(one, i, member)
            out = [r for r in results if r is not None]
            return out or None
        return await self.handle_one(msg, context)

    async def handle_one(self, msg: Any, context: Any) -> dict[str, Any] | None:
        problem = _check_request(msg)
        if problem is not None:
            rid = msg.get("id") if isinstance(msg, dict) else None
            if isinstance(rid, bool) or not isinstance(rid, _VALID_ID):
                rid = None
            return error_response(InvalidRequest(problem), rid)
        name = msg["method"]
        is_notification = "id" not in msg
        if name not in self.methods:
            if is_notification:
                return None
            return error_response(MethodNotFound(
                f"unknown method {name[:100]!r}; rpc.discover lists the methods",
                {"method": name[:100]}), msg["id"])
        params = msg.get("params", {})
        if isinstance(params, list):
            try:
                msg = {**msg, "params": named_params(METHODS[name], params)}
            except InvalidParams as e:
                # A notification is never answered, not even with an error.
                return None if is_notification else error_response(e, msg.get("id"))
        # jsonrpcserver's dispatch_request would re-bind inspect.signature(method) on every
        # call (~15 us): the method is known here and ``call`` takes any names, so its
        # lower-level ``call`` runs it directly; names and types are checked from the registry.
        lib = _lib or load_jsonrpcserver()
        request = lib.create_request(msg)
        result = await lib.call(request, context, self.methods[name])
        if is_notification:
            return None
        out: dict[str, Any] = lib.to_serializable(lib.to_response(request, result))  # type: ignore[assignment]
        return out


def _check_request(msg: Any) -> str | None:
    if not isinstance(msg, dict):
        return "a request must be a JSON object"
    if msg.get("jsonrpc") != "2.0":
        return 'a request needs "jsonrpc": "2.0"'
    method = msg.get("method")
    if not isinstance(method, str):
        return 'a request needs "method" as a string'
    if "params" in msg and not isinstance(msg["params"], (dict, list)):
        return '"params" must be an object or an array'
    if "id" in msg and (isinstance(msg["id"], bool) or not isinstance(msg["id"], _VALID_ID)):
        return '"id" must be a string, a number or null'
    if len(msg) > 2 and not _MEMBERS.issuperset(msg):
        extra = set(msg) - _MEMBERS
        return f"unknown member(s) in request: {', '.join(sorted(extra))[:100]}"
    return None


_MEMBERS = frozenset({"jsonrpc", "method", "params", "id"})


def _no_constant(name: str) -> Any:
    # NaN and Infinity are not JSON (RFC 8259); echoed back in an id they could not be encoded.
    raise ValueError(f"{name} is not a JSON value")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


# One decoder for every frame (json.loads with options would build one, ~4 us, per call).
_decoder = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite_float)
_scan = _decoder.scan_once  # type: ignore[attr-defined]


def _short(e: Exception) -> str:
    return str(e).split("\n", 1)[0][:200]
