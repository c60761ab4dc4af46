"""The registry is declared once; every surface is derived from it.  Drift fails here.

Surfaces: the daemon's dispatch table, ``rpc.discover``, the bridge's REST routes and
OpenAPI document, and the CLI's subcommands.
"""

from __future__ import annotations

from pathlib import Path

from kitplay.cli_client.main import LOCAL_COMMANDS, build_parser
from kitplay.daemon.config import Config
from kitplay.daemon.handlers import Handlers
from kitplay.daemon.protocol.registry import METHODS

from tests.helpers import Daemon


def test_handlers_match_registry() -> None:
    handlers = Handlers(Config(), None, Path("/nonexistent"))  # type: ignore[arg-type]
    assert set(handlers.table()) == set(METHODS)
    for name, fn in handlers.table().items():
        assert fn.__name__ == name.replace(".", "_")


def test_discover_matches_registry(daemon: Daemon) -> None:
    doc = daemon.call("rpc.discover")
    assert [m["name"] for m in doc["methods"]] == list(METHODS)
    for m in doc["methods"]:
        spec = METHODS[m["name"]]
        assert [p["name"] for p in m["params"]] == [p.name for p in spec.params]
        assert [p["required"] for p in m["params"]] == [p.required for p in spec.params]
        assert m["result"]["schema"] == spec.result


# Methods that are no `kitplay` subcommand: their effect lives on the connection that calls
# them, and a command's connection ends with the command (`--follow` streams a job instead).
CONNECTION_SCOPED = {"jobs.subscribe", "jobs.unsubscribe"}


def test_cli_leaves_out_exactly_the_connection_scoped_methods() -> None:
    assert {m.name for m in METHODS.values() if not m.has_command} == CONNECTION_SCOPED
    for name in CONNECTION_SCOPED:
        # Over HTTP too they are no plain route: a WebSocket, or nothing.
        http = METHODS[name].http
        assert http is None or http[0] == "WS", name


def test_cli_matches_registry() -> None:
    parser = build_parser()
    groups = next(a for a in parser._actions if a.dest == "_cmd").choices  # type: ignore[union-attr]
    seen = set()
    for word, sub in groups.items():
        if (word, None) in LOCAL_COMMANDS:
            continue
        inner = [a for a in sub._actions if a.dest == "_sub"]
        if inner:
            for word2, sub2 in inner[0].choices.items():  # type: ignore[union-attr]
                if (word, word2) in LOCAL_COMMANDS:
                    continue
                name = sub2.get_default("_method")  # files.list is `kitplay files ls`
                assert METHODS[name].cli_words == (word, word2)
                seen.add(name)
                flags = {a.dest for a in sub2._actions if a.option_strings}
                assert {p.name for p in METHODS[name].params} <= flags
        else:
            seen.add(word)
    assert seen == set(METHODS) - CONNECTION_SCOPED


def test_bridge_routes_and_openapi_match_registry() -> None:
    from kitplay.bridge.openapi import openapi_document

    doc = openapi_document()
    ops = {(verb.upper(), path): op for path, item in doc["paths"].items()
           for verb, op in item.items() if isinstance(op, dict) and "operationId" in op}
    for m in METHODS.values():
        if m.http is None or m.http[0] == "WS":
            continue
        verb, path = m.http
        key = (verb, path)  # relative to the servers /api/v1 and /api
        assert key in ops, f"{m.name}: {key} missing from OpenAPI"
        assert ops[key]["operationId"] == m.name
