"""The playground page in Debian's chromium: its weight, its first jobs row, and Launch (Xpra)
to the app's window drawn in the page.

A real kitplayd and kitplay-bridge (``tests.bridge_helpers.Bridge``), the page opened as a user
opens it (a fresh login URL, a fresh browser context: nothing cached).

- weight: the bytes the bridge sends for the page once its editor has opened a file (every
  module, the stylesheet and the vendored CodeMirror/markdown-it bundle), gzip-compressed as
  the bridge sends them to a browser that asks; and every file under static/ compressed, for
  the whole of what ships;
- first jobs row: from the navigation's start to the ``kitplay:first-job-row`` mark the jobs
  panel sets when it draws its first row (30 jobs in the list), median of N loads;
- Launch: a click on the app bar's Launch with display "xpra" to the Tk app's window drawn in
  the page's display frame (its title set and its text on the canvas, as the browser tests
  read it), median of N launches after one warm-up; each launch is stopped from the page.

``python -m bench.page [RUNS]`` prints the figures.
"""

from __future__ import annotations

import gzip
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from .context import Ctx
from .procs import ROOT, short_tmpdir
from .report import Figure, at_most, info, skipped

__all__ = ["measure", "run"]

APP = "bench.page_app"
TITLE = "Tk GUI App"
STATIC = ROOT / "bridge" / "static"
TIMEOUT_MS = 60_000


def shipped_gzip_bytes() -> int:
    """Every file under static/ (what the wheel carries for the page), gzip-compressed."""
    return sum(len(gzip.compress(p.read_bytes(), 6, mtime=0)) for p in STATIC.rglob("*")
               if p.is_file() and p.name != "LICENSES.txt")


def _prepare(d: Any) -> None:
    for method, params in (("templates.create", {"template": "gui_app", "name": APP}),
                           ("build", {"app": APP})):
        job = d.call(method, params)["job"]
        if d.wait_job(job["id"])["status"] != "succeeded":
            raise RuntimeError(f"{method} failed: {d.job_log(job['id'])[-500:]}")
    for _ in range(28):  # a list of jobs to draw (30 with the two above)
        d.call("launch", {"app": APP, "display": "headless", "args": ["--exit-after", "0"]})


def _load(browser: Any, bridge: Any, width: int = 1500,
          height: int = 900) -> tuple[Any, Any, float]:
    """A fresh context and page signed in with a fresh login URL; ms to the first jobs row."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(bridge.new_login_url())
    expect(page.locator("#jobs tr[data-job]").first).to_be_visible()
    ms = page.evaluate("performance.getEntriesByName('kitplay:first-job-row')[0].startTime")
    return context, page, float(ms)


def _weight(page: Any) -> int:
    """Bytes sent for the page with a file open in its editor (compressed as sent)."""
    from playwright.sync_api import expect

    page.locator(f'#tree .app-row[data-app="{APP}"]').wait_for()
    files = page.locator(".tree-row.file")
    if files.count():
        files.first.click()
        expect(page.locator("#editor-host")).to_be_visible()
    else:  # no files.list in this kitplayd: load the editor's code as opening a file would
        page.evaluate("import('/static/vendor/vendor.js')")
    page.wait_for_function("() => performance.getEntriesByType('resource').some("
                           "(e) => e.name.endsWith('/vendor/vendor.js') && e.responseEnd > 0)")
    sizes = page.evaluate("""() => [performance.getEntriesByType('navigation')[0],
        ...performance.getEntriesByType('resource')]
        .filter((e) => new URL(e.name).pathname.match(/^\\/($|static\\/)/))
        .map((e) => e.encodedBodySize)""")
    return int(sum(sizes))


def _launch(page: Any) -> dict[str, float]:
    """Seconds from the click on Launch to: the display frame navigating to the session
    (the daemon's Xpra is ready), the frame's WebSocket opening (Xpra's HTML5 client loaded),
    the app's window drawn in it."""
    from playwright.sync_api import expect

    from tests.browser_helpers import XPRA_WINDOW_JS

    page.select_option("#display", "xpra")
    marks: dict[str, float] = {}

    def on_nav(frame: Any) -> None:
        if frame.parent_frame is not None and frame.url.startswith("http"):
            marks.setdefault("frame", time.perf_counter() - t0)

    def on_ws(ws: Any) -> None:
        if "/api/" not in ws.url:
            marks.setdefault("socket", time.perf_counter() - t0)

    page.on("framenavigated", on_nav)
    page.on("websocket", on_ws)
    t0 = time.perf_counter()
    page.click("#launch")
    expect(page.locator("#display-panel")).to_be_visible(timeout=TIMEOUT_MS)
    deadline = time.monotonic() + 60
    while True:
        handle = page.locator("#display-frame").element_handle()
        frame = handle.content_frame() if handle else None
        if frame is not None:
            try:
                frame.wait_for_function(
                    f"(title) => {{ const w = ({XPRA_WINDOW_JS})(title); "
                    "return w && w.bands.length >= 2; }", arg=TITLE, timeout=TIMEOUT_MS,
                    polling=20)
                break
            except Exception:  # the frame navigated (its URL changed) while we waited
                if time.monotonic() > deadline:
                    raise
    marks["drawn"] = time.perf_counter() - t0
    page.remove_listener("framenavigated", on_nav)
    page.remove_listener("websocket", on_ws)
    page.click("#stop")
    expect(page.locator("#display-panel")).to_be_hidden(timeout=TIMEOUT_MS)
    expect(page.locator("#stop")).to_have_count(0, timeout=TIMEOUT_MS)
    return marks


def measure(runs: int = 7, base: Path | None = None, launches: int | None = None,
            ) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    from tests.bridge_helpers import Bridge
    from tests.browser_helpers import CHROMIUM, CHROMIUM_ARGS
    from tests.helpers import Daemon

    base = base or short_tmpdir("kpbp")
    d = Daemon(base=base)
    bridge = None
    out: dict[str, Any] = {"shipped": shipped_gzip_bytes()}
    try:
        d.start()
        _prepare(d)
        bridge = Bridge(d.socket, "--rate-limit", "100000", "--rate-burst", "100000").start()
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                context, page, _ = _load(browser, bridge)  # warm-up: disk caches, Python
                out["weight"] = _weight(page)
                context.close()
                loads = []
                for _ in range(runs):
                    context, page, ms = _load(browser, bridge)
                    loads.append(ms)
                    context.close()
                out["first_row_ms"] = loads
                if shutil.which("xpra") is not None:
                    context, page, _ = _load(browser, bridge)
                    page.wait_for_function(
                        "() => [...document.querySelectorAll('#display option')].some("
                        "(o) => o.value === 'xpra' && !o.disabled && "
                        "!o.textContent.includes('checking'))", timeout=TIMEOUT_MS)
                    _launch(page)  # warm-up: xpra's Python modules from disk
                    marks = [_launch(page) for _ in range(launches or runs)]
                    out["launch_s"] = [m["drawn"] for m in marks]
                    out["launch_marks"] = marks
                    context.close()
            finally:
                browser.close()
    finally:
        if bridge is not None:
            bridge.stop()
        d.cleanup()
    return out


LABELS = {
    "weight": "Page: bytes sent for the page with its editor open (gzip as sent)",
    "first": "Page: load to the first jobs row drawn",
    "launch": "Page: click Launch (xpra) to the app's window drawn in the page",
}


def run(ctx: Ctx) -> list[Figure]:
    if not Path("/usr/bin/chromium").exists():
        return [skipped("page.first_row", LABELS["first"], "chromium is not installed")]
    runs = ctx.pick(3, 7)
    got = measure(runs, ctx.tmp("page"))
    loads = got["first_row_ms"]
    figures = [
        at_most("page.weight", LABELS["weight"], got["weight"] / 1024, "KiB", 400,
                note=f"everything under static/ compressed: {got['shipped'] / 1024:.0f} KiB"),
        at_most("page.first_row", LABELS["first"], statistics.median(loads), "ms", 300,
                note=f"median of {runs} loads, each in a fresh browser context with a fresh "
                     f"login URL; min {min(loads):.0f}, max {max(loads):.0f} ms"),
    ]
    if "launch_s" in got:
        t = got["launch_s"]
        figures.append(at_most("page.launch", LABELS["launch"], statistics.median(t), "s", 3.0,
                               note=f"median of {len(t)} launches of the builtin gui_app "
                                    f"after one warm-up; min {min(t):.2f}, max {max(t):.2f} s; "
                                    + breakdown(got)))
    else:
        figures.append(skipped("page.launch", LABELS["launch"], "xpra is not installed"))
    figures.append(info("page.shipped", "Page: every file under static/, gzip-compressed",
                        got["shipped"] / 1024, "KiB"))
    return figures


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    runs = int(args[0]) if args else 7
    got = measure(runs)
    loads, launches = got["first_row_ms"], got.get("launch_s", [])
    print(f"page weight with the editor open: {got['weight'] / 1024:.0f} KiB gzip "
          f"(bar 400 KiB); all of static/: {got['shipped'] / 1024:.0f} KiB")
    print(f"load -> first jobs row: median {statistics.median(loads):.0f} ms over {len(loads)} "
          f"loads (min {min(loads):.0f}, max {max(loads):.0f}; bar 300 ms)")
    if launches:
        print(f"click Launch (xpra) -> window drawn in the page: median "
              f"{statistics.median(launches):.2f} s over {len(launches)} (min "
              f"{min(launches):.2f}, max {max(launches):.2f}; bar 3 s)")
        print("  where the time goes (medians from the click): " + breakdown(got))


def breakdown(got: dict[str, Any]) -> str:
    marks = got.get("launch_marks") or []
    words = {"frame": "display frame opens the session (Xpra ready)",
             "socket": "Xpra's client loaded, its WebSocket opens", "drawn": "window drawn"}
    return "; ".join(f"{words[k]} {statistics.median(m[k] for m in marks):.2f} s"
                     for k in ("frame", "socket", "drawn") if all(k in m for m in marks))


if __name__ == "__main__":
    main()
