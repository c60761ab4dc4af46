"""Xpra launch: time from the ``launch`` call to the display session up, and to the app's
window drawn in a browser through the bridge, with where the time goes.

A real kitplayd and kitplay-bridge, and the builtin ``gui_app`` (Tk) shown through Debian's
xpra.  One chromium tab signs in once, as the page does (the login URL's code, traded for a
session in its sessionStorage).  Each run sends ``launch`` with ``display: "xpra"`` over the
daemon's socket and follows the job on the same connection; as soon as a ``jobs.state``
notification carries ``result.display`` the tab goes to its path on the bridge (as the page's
display panel does), and the clock stops when the app's window is in the page with its title
and text drawn on its canvas.  Then the job is cancelled.  The phases, each from the
``launch`` call (wall clock: the tab's ``performance.timeOrigin + now()`` and this process's
``time.time()`` on the same machine):

- ``display``: the job's record carries its display (the session's path);
- ``ready``: Xpra answers on the session's socket (``result.display.ready``);
- ``loaded``: the client page's load event;
- ``connected``: the client's connection is up (Xpra's hello answered: ``client.connected``);
- ``drawn``: the window's title and text are on the canvas.

``python -m bench.xpra_launch [RUNS]``; ``measure(runs)`` returns the seconds to ``ready``
per run, ``measure_drawn(runs)`` (ready seconds, drawn seconds) per run, ``phases(runs)`` the
phases of each run.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from .procs import DaemonProc, short_tmpdir

__all__ = ["PHASES", "main", "measure", "measure_drawn", "phases"]

APP = "bench.xpra_app"
TITLE = "Tk GUI App"  # the gui_app template's default display name: its window's title
PHASES = ("display", "ready", "loaded", "connected", "drawn")

# Runs in the tab from the navigation on: the load event, the client's connection and the
# window drawn (the tests' XPRA_WINDOW_JS), each as a wall-clock time in ms, polled at every
# animation frame.
WATCH_JS = """
async (title) => {
  const drawn = %s;
  const wall = () => performance.timeOrigin + performance.now();
  const out = {};
  while (!out.drawn) {
    const nav = performance.getEntriesByType("navigation")[0];
    if (!out.loaded && nav && nav.loadEventEnd) {
      out.loaded = performance.timeOrigin + nav.loadEventEnd;
    }
    if (!out.connected && window.client && window.client.connected) out.connected = wall();
    const w = drawn(title);
    if (w && w.bands.length >= 2) out.drawn = wall();
    await new Promise((r) => requestAnimationFrame(r));
  }
  return out;
}
"""


def _prepare(d: DaemonProc) -> None:
    for method, params in (("templates.create", {"template": "gui_app", "name": APP}),
                           ("build", {"app": APP})):
        job = d.call(method, params)["job"]
        done = d.wait_job(job["id"])
        if done["status"] != "succeeded":
            raise RuntimeError(f"{method} failed: {done['error']}")


def _one_launch(d: DaemonProc, bridge: Any = None, page: Any = None) -> dict[str, float]:
    """The phases of one launch (seconds from the ``launch`` call); without a tab, only
    ``display`` and ``ready``."""
    from tests.browser_helpers import XPRA_WINDOW_JS

    out: dict[str, float] = {}
    with d.client() as c:
        t0 = time.time()
        job = c.call("launch", {"app": APP, "display": "xpra"})["job"]
        for note in c.follow(job["id"]):
            rec: dict[str, Any] = note["params"].get("job") or {}
            display = (rec.get("result") or {}).get("display")
            if note["params"].get("final"):
                raise RuntimeError(f"the launch ended: {rec.get('error')}")
            if display and "display" not in out:
                out["display"] = time.time() - t0
            if display and (page is not None or display.get("ready", True)):
                break
    if page is not None:
        page.goto(bridge.page_url + display["path"], wait_until="commit")
        marks = page.evaluate(WATCH_JS % XPRA_WINDOW_JS, TITLE)  # until the window is drawn
        for name in ("loaded", "connected", "drawn"):
            out[name] = marks[name] / 1000 - t0
    # When Xpra answered on its socket: the session's "since" (the daemon's wall clock).
    [since] = [s["since"] for s in d.call("sessions.list")["sessions"]
               if s["job_id"] == job["id"]]
    out["ready"] = since - t0
    d.call("jobs.cancel", {"job_id": job["id"]})
    d.wait_job(job["id"])
    return out


def _run(runs: int, base: Path | None, browser: bool) -> list[dict[str, float]]:
    if shutil.which("xpra") is None:
        raise RuntimeError("xpra is not installed (sudo apt-get install xpra)")
    base = base or short_tmpdir("kpbx")
    d = DaemonProc(base)
    bridge = None
    try:
        d.start()
        _prepare(d)
        if not browser:
            _one_launch(d)  # warm-up: the first start loads xpra's Python modules from disk
            return [_one_launch(d) for _ in range(runs)]
        from tests.browser_helpers import chromium

        from .bridge import _Bridge

        bridge = _Bridge(d.socket, d.config)
        with chromium(1000, 700) as page:
            page.goto(bridge.login_url)
            page.wait_for_function("() => sessionStorage.getItem('kitplay.session')")
            _one_launch(d, bridge, page)  # warm-up (xpra's modules, the bridge's kept files)
            return [_one_launch(d, bridge, page) for _ in range(runs)]
    finally:
        if bridge is not None:
            bridge.stop()
        d.cleanup()


def measure(runs: int = 7, base: Path | None = None) -> list[float]:
    """Seconds from ``launch`` to the session up (Xpra answering), for each of ``runs``."""
    return [r["ready"] for r in _run(runs, base, False)]


def phases(runs: int = 7, base: Path | None = None) -> list[dict[str, float]]:
    """Each run's phases in seconds from the ``launch`` call (``PHASES``)."""
    return _run(runs, base, True)


def measure_drawn(runs: int = 7, base: Path | None = None) -> list[tuple[float, float]]:
    """(seconds to the session up, seconds to the window drawn in chromium) per launch."""
    return [(r["ready"], r["drawn"]) for r in phases(runs, base)]


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    runs = int(args[0]) if args else 7
    got = phases(runs)
    print(f"xpra launch through the bridge, {runs} runs after one warm-up "
          "(seconds from the launch call; median, min-max):")
    for name in PHASES:
        values = [r[name] for r in got]
        print(f"  {name:<10} {statistics.median(values):6.3f}   "
              f"({min(values):.3f}-{max(values):.3f})")
    print("bars: ready 1.5 s, drawn 2 s")


if __name__ == "__main__":
    main()
