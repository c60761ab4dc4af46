"""Xpra launch: time from the ``launch`` call to the session's URL answering ``GET /`` 200,
and to the app's window drawn in a browser.

A real kitplayd and the builtin ``gui_app`` (Tk) shown through Debian's xpra.  Each run
sends ``launch`` with ``display: "xpra"``, follows the job on the same connection until a
``jobs.state`` notification carries ``result.url``, confirms that the URL answers 200 (the
first clock stops there), opens the URL in chromium (one browser for all runs) and waits
until the app's window is in the page with its text drawn on the canvas (the second clock
stops there: a 200 alone also answers when Xpra cannot serve a client), then cancels the job.
Prints the medians.

``python -m bench.xpra_launch [RUNS]``; ``measure(runs)`` returns the seconds to the URL per
run, ``measure_drawn(runs)`` (URL seconds, window-drawn seconds) per run.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from .procs import DaemonProc, short_tmpdir

__all__ = ["main", "measure", "measure_drawn"]

APP = "bench.xpra_app"
TITLE = "Tk GUI App"  # the gui_app template's default display name: its window's title


def _url_status(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as r:
        return int(r.status)


def _prepare(d: DaemonProc) -> None:
    for method, params in (("templates.create", {"template": "gui_app", "name": APP}),
                           ("build", {"app": APP})):
        job = d.call(method, params)["job"]
        done = d.wait_job(job["id"])
        if done["status"] != "succeeded":
            raise RuntimeError(f"{method} failed: {done['error']}")


def _one_launch(d: DaemonProc, page: Any = None) -> tuple[float, float | None]:
    with d.client() as c:
        t0 = time.perf_counter()
        job = c.call("launch", {"app": APP, "display": "xpra"})["job"]
        url: str | None = None
        for note in c.follow(job["id"]):
            rec: dict[str, Any] = note["params"].get("job") or {}
            url = (rec.get("result") or {}).get("url")
            if url or note["params"].get("final"):
                break
        if not url:
            raise RuntimeError(f"the xpra session never got a URL: {rec.get('error')}")
        if _url_status(url) != 200:
            raise RuntimeError(f"{url} does not answer 200")
        answered = time.perf_counter() - t0
        drawn = None
        if page is not None:
            from tests.browser_helpers import xpra_window

            page.goto(url)
            xpra_window(page, TITLE, bands=2)
            drawn = time.perf_counter() - t0
    d.call("jobs.cancel", {"job_id": job["id"]})
    d.wait_job(job["id"])
    return answered, drawn


def _run(runs: int, base: Path | None, page: Any) -> list[tuple[float, float | None]]:
    if shutil.which("xpra") is None:
        raise RuntimeError("xpra is not installed (sudo apt-get install xpra)")
    base = base or short_tmpdir("kpbx")
    d = DaemonProc(base)
    try:
        d.start()
        _prepare(d)
        _one_launch(d, page)  # warm-up: first start loads xpra's Python modules from disk
        return [_one_launch(d, page) for _ in range(runs)]
    finally:
        d.cleanup()


def measure(runs: int = 7, base: Path | None = None) -> list[float]:
    """Seconds from ``launch`` to the URL answering, for each of ``runs`` launches."""
    return [answered for answered, _ in _run(runs, base, None)]


def measure_drawn(runs: int = 7, base: Path | None = None) -> list[tuple[float, float]]:
    """(seconds to the URL answering, seconds to the window drawn in chromium) per launch."""
    from tests.browser_helpers import chromium

    with chromium(1000, 700) as page:
        return [(a, d) for a, d in _run(runs, base, page) if d is not None]


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    runs = int(args[0]) if args else 7
    pairs = measure_drawn(runs)
    answered, drawn = [a for a, _ in pairs], [d for _, d in pairs]
    print(f"xpra launch -> URL answering: median {statistics.median(answered):.3f} s over "
          f"{len(answered)} runs (min {min(answered):.3f}, max {max(answered):.3f}; bar 1.5 s)")
    print(f"xpra launch -> window drawn in chromium: median {statistics.median(drawn):.3f} s "
          f"(min {min(drawn):.3f}, max {max(drawn):.3f}; bar 2 s)")


if __name__ == "__main__":
    main()
