"""The generated parts of docs/api.md: the routes table and the error table.

``python -m kitplay.bridge.docs`` rewrites the text between the ``<!-- generated: NAME -->`` and
``<!-- end: NAME -->`` markers of docs/api.md; ``--check`` only says whether it is up to date
(exit 1 when not). ``tests/test_bridge_docs.py`` runs the check.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

from kitplay.daemon.protocol.errors import ERRORS, KitplayError
from kitplay.daemon.protocol.registry import METHODS, Method, Param

from .errors import REFUSALS

__all__ = ["DOC_PATH", "errors_table", "render", "routes_table"]

DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "api.md"


def _param(p: Param, in_path: bool) -> str:
    text = f"`{p.name}`"
    if in_path:
        return text + " (path)"
    return text + ("" if not p.required else " (required)")


def _cli(m: Method) -> str:
    if not m.has_command:
        return "none (`--follow` streams a job)"
    words = " ".join(m.cli_words)
    pos = [p.name.upper() for p in m.params if p.positional and p.required]
    return "`kitplay " + " ".join([words, *pos]) + "`"


def _route(m: Method) -> str:
    if m.http is None:
        return f"none ({m.http_note})" if m.http_note else "none"
    verb, path = m.http
    return f"`{verb} /api{path}`"


def routes_table() -> str:
    rows = ["| JSON-RPC method | REST (also under `/api/v1`) | parameters | CLI |",
            "|---|---|---|---|"]
    for m in METHODS.values():
        path = m.http[1] if m.http else ""
        params = ", ".join(_param(p, "{" + p.name + "}" in path) for p in m.params) or "none"
        rows.append(f"| `{m.name}` | {_route(m)} | {params} | {_cli(m)} |")
    return "\n".join(rows)


def _error_row(cls: type[KitplayError], exit_code: str) -> str:
    return (f"| `{cls.__name__}` | {cls.code} | {cls.http_status} | {exit_code} | "
            f"{cls.title} |")


def errors_table() -> str:
    rows = ["| error class | JSON-RPC code | HTTP status | CLI exit code | meaning |",
            "|---|---|---|---|---|"]
    rows += [_error_row(cls, str(cls.exit_code)) for cls in ERRORS]
    rows += ["", "Refusals only the bridge makes (a JSON-RPC reader sees `InvalidRequest`):", "",
             "| refusal | JSON-RPC code | HTTP status | CLI exit code | meaning |",
             "|---|---|---|---|---|"]
    rows += [_error_row(cls, "n/a") for cls in REFUSALS]
    return "\n".join(rows)


SECTIONS: dict[str, Callable[[], str]] = {"routes": routes_table, "errors": errors_table}


def render(text: str) -> str:
    """``text`` with every generated section replaced by its current content."""
    for name, make in SECTIONS.items():
        pattern = re.compile(
            rf"(<!-- generated: {name} -->\n).*?(<!-- end: {name} -->)", re.DOTALL)
        if not pattern.search(text):
            raise ValueError(f"docs/api.md has no '<!-- generated: {name} -->' section")
        body = make()

        def fill(mo: re.Match[str], body: str = body) -> str:
            return mo.group(1) + body + "\n" + mo.group(2)

        text = pattern.sub(fill, text)
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m kitplay.bridge.docs", description=__doc__)
    p.add_argument("path", nargs="?", type=Path, default=DOC_PATH)
    p.add_argument("--check", action="store_true", help="exit 1 if the file is out of date")
    ns = p.parse_args(argv)
    old = ns.path.read_text()
    new = render(old)
    if ns.check:
        if new != old:
            print(f"{ns.path} is out of date: run `python -m kitplay.bridge.docs {ns.path}`",
                  file=sys.stderr)
            return 1
        return 0
    if new != old:
        ns.path.write_text(new)
        print(f"updated {ns.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
