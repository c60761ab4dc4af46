"""``python -m bench [--quick] [--json PATH] [--only SECTION ...]``: measure, print, write JSON."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from pathlib import Path

from .context import Ctx
from .report import Figure, render_table, skipped, write_json

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "latest.json"

# Section name -> module (each has ``run(ctx) -> list[Figure]``), in running order.
SECTIONS = {
    "rpc": "bench.rpc",
    "supervisord": "bench.vs_supervisord",
    "jobs": "bench.jobs",
    "logs": "bench.logs",
    "startup": "bench.startup",
    "scale": "bench.scale",
    "bridge": "bench.bridge",
    "bridge_memory": "bench.bridge_memory",
    "xpra": "bench.xpra",
    "page": "bench.page",
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="short run for CI (seconds)")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON,
                   help=f"where to write the figures (default: {DEFAULT_JSON})")
    p.add_argument("--only", nargs="+", choices=list(SECTIONS), metavar="SECTION",
                   help=f"run only these sections: {', '.join(SECTIONS)}")
    ns = p.parse_args(argv)
    ctx = Ctx(quick=ns.quick)
    figures: list[Figure] = []
    started = time.perf_counter()
    try:
        for name in ns.only or SECTIONS:
            t0 = time.perf_counter()
            print(f"== {name} ...", file=sys.stderr, flush=True)
            try:
                got = importlib.import_module(SECTIONS[name]).run(ctx)
            except Exception as e:  # one broken section must not hide the others
                traceback.print_exc()
                got = [skipped(f"{name}.error", f"section {name}", f"failed: {e!r}"[:200])]
            for f in got:
                if f.skipped is not None:
                    print(f"   {f.label}: skipped: {f.skipped}", file=sys.stderr)
            figures += got
            print(f"   {name} took {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    finally:
        ctx.cleanup()
    mode = "quick" if ns.quick else "full"
    print(f"\nkitplay bench ({mode} run, {time.perf_counter() - started:.0f} s)\n")
    print(render_table(figures))
    ns.json.parent.mkdir(parents=True, exist_ok=True)
    write_json(ns.json, figures, {"mode": mode})
    print(f"\nwrote {ns.json}")
    return 1 if any(f.fails for f in figures) else 0


if __name__ == "__main__":
    sys.exit(main())
