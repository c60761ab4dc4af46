"""Xpra launch: time from the ``launch`` call to the session's URL answering ``GET /`` 200.

A real kitplayd and the builtin ``gui_app`` (Tk) shown through Debian's xpra.  Each run
sends ``launch`` with ``display: "xpra"``, follows the job on the same connection until a
``jobs.state`` notification carries ``result.url``, confirms that the URL answers 200 (the
clock stops there), then cancels the job.  Prints the median.

``python -m bench.xpra_launch [RUNS]``; ``measure(runs)`` returns the seconds per run.
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

__all__ = ["main", "measure"]

APP = "bench.xpra_app"


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


def _one_launch(d: DaemonProc) -> float:
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
        elapsed = time.perf_counter() - t0
    d.call("jobs.cancel", {"job_id": job["id"]})
    return elapsed


def measure(runs: int = 7, base: Path | None = None) -> list[float]:
    """Seconds from ``launch`` to the URL answering, for each of ``runs`` launches."""
    if shutil.which("xpra") is None:
        raise RuntimeError("xpra is not installed (sudo apt-get install xpra)")
    base = base or short_tmpdir("kpbx")
    d = DaemonProc(base)
    try:
        d.start()
        _prepare(d)
        _one_launch(d)  # warm-up: first start loads xpra's Python modules from disk
        return [_one_launch(d) for _ in range(runs)]
    finally:
        d.cleanup()


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    runs = int(args[0]) if args else 7
    times = measure(runs)
    print(f"xpra launch -> URL answering: median {statistics.median(times):.3f} s over "
          f"{len(times)} runs (min {min(times):.3f}, max {max(times):.3f}; bar 1.5 s)")


if __name__ == "__main__":
    main()
