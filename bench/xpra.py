"""Xpra launch to the session up and to the window drawn in chromium through the bridge
(``bench.xpra_launch``)."""

from __future__ import annotations

import importlib
import shutil
import statistics

from .context import Ctx
from .report import Figure, at_most, skipped

__all__ = ["run"]

LABEL = "Xpra launch: `launch` call to the session up (Xpra answering on its socket)"
DRAWN = "Xpra launch: `launch` call to the app's window drawn in the browser (through the bridge)"


def run(ctx: Ctx) -> list[Figure]:
    if shutil.which("xpra") is None:
        return [skipped("xpra.launch", LABEL, "xpra is not installed")]
    try:
        mod = importlib.import_module("bench.xpra_launch")
    except ImportError as e:
        return [skipped("xpra.launch", LABEL, f"bench/xpra_launch.py is not there yet ({e})")]
    runs = ctx.pick(3, 7)
    if not shutil.which("chromium"):
        times = mod.measure(runs, ctx.tmp("xpra"))
        return [at_most("xpra.launch", LABEL, statistics.median(times), "s", 1.5,
                        note=f"median of {runs} launches of the builtin gui_app (Tk) after one "
                             f"warm-up; min {min(times):.2f} s, max {max(times):.2f} s"),
                skipped("xpra.drawn", DRAWN, "chromium is not installed")]
    runs_phases = mod.phases(runs, ctx.tmp("xpra"))
    times, drawn = [r["ready"] for r in runs_phases], [r["drawn"] for r in runs_phases]
    spent = ", ".join(f"{name} {statistics.median(r[name] for r in runs_phases):.2f} s"
                      for name in mod.PHASES)
    note = f"median of {runs} launches of the builtin gui_app (Tk) after one warm-up"
    return [at_most("xpra.launch", LABEL, statistics.median(times), "s", 1.5,
                    note=f"{note}; min {min(times):.2f} s, max {max(times):.2f} s"),
            at_most("xpra.drawn", DRAWN, statistics.median(drawn), "s", 2.0,
                    note=f"{note}, each opened in chromium at its path on the bridge as soon "
                         f"as the job has its display, until its title and text are on the "
                         f"canvas; min {min(drawn):.2f} s, max {max(drawn):.2f} s; phases "
                         f"from the call (medians): {spent}")]
