"""Xpra launch to URL answering: ``bench.xpra_launch.measure`` (written with the Xpra sessions)."""

from __future__ import annotations

import importlib
import shutil
import statistics

from .context import Ctx
from .report import Figure, at_most, skipped

__all__ = ["run"]

LABEL = "Xpra launch: `launch` call to the session URL answering 200"


def run(ctx: Ctx) -> list[Figure]:
    if shutil.which("xpra") is None:
        return [skipped("xpra.launch", LABEL, "xpra is not installed")]
    try:
        mod = importlib.import_module("bench.xpra_launch")
    except ImportError as e:
        return [skipped("xpra.launch", LABEL, f"bench/xpra_launch.py is not there yet ({e})")]
    measure = getattr(mod, "measure", None)
    if measure is None:
        return [skipped("xpra.launch", LABEL, "bench.xpra_launch has no measure(runs)")]
    runs = ctx.pick(3, 7)
    times = measure(runs, ctx.tmp("xpra"))
    return [at_most("xpra.launch", LABEL, statistics.median(times), "s", 1.5,
                    note=f"median of {runs} launches of the builtin gui_app (Tk) after one "
                         f"warm-up; min {min(times):.2f} s, max {max(times):.2f} s")]
