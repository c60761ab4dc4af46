"""Browser helpers: Debian's chromium driven by Playwright, and reading an Xpra window.

Playwright drives /usr/bin/chromium (no ``playwright install``, no download).  An Xpra
window in the HTML5 client (Xpra 3.1.3's www/js/Window.js) is a ``div.window`` whose
``span.windowtitle`` holds the window's title and whose ``canvas`` holds its pixels;
``XPRA_WINDOW_JS`` reads both, so a test can wait until the app's window is really drawn
(title set and text on the canvas) rather than until the server answers HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "XPRA_WINDOW_JS", "chromium", "needs_chromium",
           "persistent_chromium", "signed_in", "xpra_canvas_sum", "xpra_window"]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 30_000
XPRA_CLOSE_BUG = ("win is not defined", "at XpraClient.do_reconnect")

needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                    reason="needs Debian's chromium (apt-get install chromium)")


@contextmanager
def chromium(width: int = 1400, height: int = 900, origin: str | None = None) -> Iterator[Any]:
    """A new page in a fresh headless chromium; page errors fail the test at the end.

    With ``origin``, only errors thrown by that origin's scripts count (not a framed page's).
    Xpra 3.1.3's HTML5 client throws "win is not defined" from ``do_reconnect`` whenever its
    server goes away (its own bug, js/Client.js): that one never counts.
    """
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": width, "height": height}).new_page()
            page.set_default_timeout(TIMEOUT_MS)
            errors: list[Any] = []
            page.on("pageerror", lambda e: errors.append(e))
            yield page
            mine = [f"{e}\n{e.stack}" for e in errors
                    if (origin is None or origin in (e.stack or origin))
                    and not (str(e) == XPRA_CLOSE_BUG[0] and XPRA_CLOSE_BUG[1] in (e.stack or ""))]
            assert not mine, mine
        finally:
            browser.close()


def signed_in(page: Any, login_url: str) -> Any:
    """``page`` opened at ``login_url`` and signed in (the page's ``kitplay:signed-in`` mark).

    The page trades its one-time code as soon as it loads and takes it off the address bar
    at once: a reload before the answer came would find neither code nor session.
    """
    page.goto(login_url)
    page.wait_for_function(
        "() => performance.getEntriesByName('kitplay:signed-in').length > 0")
    return page


@contextmanager
def persistent_chromium(profile: Path) -> Iterator[Any]:
    """A browser context on a profile directory that outlives it, as a user's browser does:
    its service workers, caches and storage stay for the next visit."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            context.set_default_timeout(TIMEOUT_MS)
            yield context
        finally:
            context.close()


# The window titled ``title``: its canvas's bands of dark (text) rows, each with the
# horizontal extent of its dark pixels, in canvas pixels, and the canvas's place on the page.
# null while there is no such window or its canvas is still blank.
XPRA_WINDOW_JS = """
(title) => {
  const win = Array.from(document.querySelectorAll("div.window")).find(
      w => (w.querySelector(".windowtitle") || {}).textContent?.trim() === title);
  const canvas = win && win.querySelector("canvas");
  if (!canvas || !canvas.width || !canvas.height) return null;
  const {width, height} = canvas;
  const px = canvas.getContext("2d").getImageData(0, 0, width, height).data;
  const bands = [];
  let band = null;
  for (let y = 0; y < height; y++) {
    let x0 = width, x1 = -1;
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 4;
      const lum = 0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2];
      if (px[i + 3] > 0 && lum < 96) { if (x < x0) x0 = x; x1 = x; }
    }
    if (x1 >= 0) {
      if (band) { band.y1 = y; band.x0 = Math.min(band.x0, x0); band.x1 = Math.max(band.x1, x1); }
      else { band = {y0: y, y1: y, x0: x0, x1: x1}; bands.push(band); }
    } else band = null;
  }
  if (!bands.length) return null;
  const r = canvas.getBoundingClientRect();
  return {bands, width, height, rect: {x: r.x, y: r.y, w: r.width, h: r.height}};
}
"""


def xpra_window(page: Any, title: str, bands: int, timeout_ms: int = 60_000) -> dict[str, Any]:
    """Wait until the Xpra window titled ``title`` shows at least ``bands`` lines of text."""
    handle = page.wait_for_function(
        f"(title) => {{ const w = ({XPRA_WINDOW_JS})(title); "
        f"return w && w.bands.length >= {bands} ? w : null; }}",
        arg=title, timeout=timeout_ms, polling=100)
    window: dict[str, Any] = handle.json_value()
    return window


def click_canvas(page: Any, window: dict[str, Any], x: float, y: float) -> None:
    """Click at canvas pixel (x, y) of a window found by ``xpra_window``."""
    r = window["rect"]
    page.mouse.click(r["x"] + x * r["w"] / window["width"],
                     r["y"] + y * r["h"] / window["height"])


XPRA_CANVAS_SUM_JS = """
(title) => {
  const win = Array.from(document.querySelectorAll("div.window")).find(
      w => (w.querySelector(".windowtitle") || {}).textContent?.trim() === title);
  const canvas = win && win.querySelector("canvas");
  if (!canvas || !canvas.width || !canvas.height) return null;
  const px = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let sum = 0;
  for (let i = 0; i < px.length; i += 4) sum = (sum * 31 + px[i] + 7 * px[i + 1]) % 1000000007;
  return sum;
}
"""


def xpra_canvas_sum(page: Any, title: str) -> int | None:
    """A checksum of the pixels of the Xpra window titled ``title`` (None: no such window):
    it changes when the app draws something new."""
    value = page.evaluate(XPRA_CANVAS_SUM_JS, title)
    return None if value is None else int(value)
