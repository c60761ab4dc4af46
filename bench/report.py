"""Figures and their bars: one record per measured figure, a printed table, a JSON file.

Absolute times drift on shared machines, so a figure is a ratio against a baseline measured in
the same run, or a count.  Each constructor below states how its bar reads.

A bar that the same run shows to be out of reach for any implementation (its own baseline
misses it: e.g. the bare interpreter is not 3x faster than ``supervisorctl``) is reported as
``not met (out of reach)`` and does not fail the run: ``python -m bench`` exits non-zero only
on bars that can be met.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "Figure",
    "at_least",
    "at_most",
    "faster_by",
    "info",
    "ratio_at_least",
    "ratio_at_most",
    "render_table",
    "skipped",
    "write_json",
]


@dataclass
class Figure:
    key: str                      # stable id, e.g. "rpc.p50"
    label: str                    # what was measured
    value: float | None           # kitplay's figure, in ``unit``
    unit: str
    baseline: str = ""            # what it is compared with
    baseline_value: float | None = None
    ratio: float | None = None    # as the bar reads it (see the constructors)
    bar: str = ""                 # the bar in words (docs/bench.md lists them)
    ok: bool | None = None        # None: no bar, or skipped
    note: str = ""
    skipped: str | None = None    # why it was not measured
    reachable: bool = True        # False: the run shows no implementation could meet the bar

    @property
    def status(self) -> str:
        if self.skipped is not None:
            return "skipped"
        if self.ok is None:
            return "-"
        if self.ok:
            return "met"
        return "NOT MET" if self.reachable else "not met (out of reach)"

    @property
    def fails(self) -> bool:
        """Whether this figure fails the run: a bar not met that could have been."""
        return self.ok is False and self.reachable


def ratio_at_most(key: str, label: str, value: float, unit: str, baseline: str,
                  base: float, limit: float, note: str = "",
                  floor: float | None = None) -> Figure:
    """kitplay / baseline must be <= ``limit`` (costs: times, sizes).

    ``floor``: the least any implementation could cost, measured in the same run; when it is
    itself over ``limit`` times the baseline, the bar is out of reach and does not fail the run."""
    ratio = value / base if base else float("inf")
    reachable = floor is None or not base or floor / base <= limit
    if not reachable:
        assert floor is not None
        note = (note + "; " if note else "") + (
            f"out of reach here: the floor itself ({_num(floor, unit)}) is "
            f"{floor / base:.2f}x {baseline}")
    return Figure(key, label, value, unit, baseline, base, ratio, f"<= {limit:g}x {baseline}",
                  ratio <= limit, note, reachable=reachable)


def ratio_at_least(key: str, label: str, value: float, unit: str, baseline: str,
                   base: float, limit: float, note: str = "") -> Figure:
    """kitplay / baseline must be >= ``limit`` (rates: more is better)."""
    ratio = value / base if base else float("inf")
    return Figure(key, label, value, unit, baseline, base, ratio, f">= {limit:g}x {baseline}",
                  ratio >= limit, note)


def faster_by(key: str, label: str, value: float, unit: str, baseline: str, base: float,
              limit: float, note: str = "", floor: float | None = None) -> Figure:
    """baseline / kitplay must be >= ``limit`` (kitplay is ``limit`` times faster).

    ``floor``: the least any implementation could take, measured in the same run (the bare
    interpreter for a command); when even it is not ``limit`` times faster than the baseline,
    the bar is out of reach and does not fail the run."""
    ratio = base / value if value else float("inf")
    reachable = floor is None or (floor > 0 and base / floor >= limit)
    if not reachable:
        note = (note + "; " if note else "") + (
            f"out of reach here: the floor itself ({_num(floor)}) is only "
            f"{base / floor:.2f}x faster than {baseline}" if floor else "out of reach")
    return Figure(key, label, value, unit, baseline, base, ratio,
                  f">= {limit:g}x faster than {baseline}", ratio >= limit, note,
                  reachable=reachable)


def at_least(key: str, label: str, value: float, unit: str, limit: float,
             baseline: str = "", base: float | None = None, note: str = "") -> Figure:
    """An absolute floor (a rate); the baseline, if any, is shown for context (kitplay/base)."""
    ratio = value / base if base else None
    return Figure(key, label, value, unit, baseline, base, ratio, f">= {limit:g} {unit}",
                  value >= limit, note)


def at_most(key: str, label: str, value: float, unit: str, limit: float,
            baseline: str = "", base: float | None = None, note: str = "",
            base_is_floor: bool = False) -> Figure:
    """An absolute ceiling (a size, a delay); the baseline, if any, is context (kitplay/base).

    ``base_is_floor``: the baseline is the least any implementation could take here (the echo
    server's start for a trio daemon's); when it is itself over the ceiling, the bar is out of
    reach in this run and does not fail it."""
    ratio = value / base if base else None
    reachable = not (base_is_floor and base is not None and base > limit)
    if not reachable:
        note = (note + "; " if note else "") + (
            f"out of reach in this run: the {baseline} itself took {_num(base, unit)}")
    return Figure(key, label, value, unit, baseline, base, ratio, f"<= {limit:g} {unit}",
                  value <= limit, note, reachable=reachable)


def info(key: str, label: str, value: float, unit: str, baseline: str = "",
         base: float | None = None, higher_is_better: bool = False, speedup: bool = False,
         note: str = "") -> Figure:
    """Measured for context; no bar.  The ratio reads kitplay/baseline, or baseline/kitplay
    with ``speedup`` (how many times faster kitplay is)."""
    if speedup:
        ratio = base / value if base and value else None
        higher_is_better = True
    else:
        ratio = value / base if base else None
    if higher_is_better and ratio is not None:
        note = (note + "; " if note else "") + "ratio: higher is better"
    return Figure(key, label, value, unit, baseline, base, ratio, "", None, note)


def skipped(key: str, label: str, reason: str) -> Figure:
    return Figure(key, label, None, "", skipped=reason)


def _num(v: float | None, unit: str = "") -> str:
    if v is None:
        return ""
    if abs(v) >= 1000:
        s = f"{v:,.0f}"
    elif abs(v) >= 100:
        s = f"{v:.0f}"
    elif abs(v) >= 10:
        s = f"{v:.1f}"
    else:
        s = f"{v:.3g}"
    return f"{s} {unit}".strip()


def render_table(figures: list[Figure]) -> str:
    """A Markdown table: figure, kitplay, baseline, ratio, bar, status."""
    rows = [("figure", "kitplay", "baseline (same run)", "ratio", "bar", "status")]
    for f in figures:
        if f.skipped is not None:
            rows.append((f.label, "", "", "", "", f"skipped: {f.skipped}"))
            continue
        base = f"{f.baseline}: {_num(f.baseline_value, f.unit)}" if f.baseline else ""
        ratio = f"{f.ratio:.2f}x" if f.ratio is not None else ""
        rows.append((f.label, _num(f.value, f.unit), base, ratio, f.bar, f.status))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, r in enumerate(rows):
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")
        if n == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    notes = [f"- {f.label}: {f.note}" for f in figures if f.note and f.skipped is None]
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines)


def write_json(path: Path, figures: list[Figure], meta: dict[str, Any]) -> None:
    doc = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "cpus": _cpus()},
        **meta,
        "figures": [{**asdict(f), "status": f.status} for f in figures],
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))
