"""An app's window through Xpra in a real browser: drawn, clicked, quit.

The readiness the daemon checks (``GET /`` answers 200) is not what a user sees: without
Pillow in xpra's Python the HTML5 client connects, then shows "server error" and no window.
So this test opens the session URL in Debian's chromium, waits until the Tk app's window is
in the page with its title and its text drawn on the canvas (two bands of dark pixels: the
greeting and the Quit button's label), clicks Quit through the browser, and sees the launch
job end ``succeeded`` with the app's own exit status.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.browser_helpers import chromium, click_canvas, needs_chromium, xpra_window
from tests.helpers import Daemon, wait_for

pytestmark = [
    pytest.mark.xpra, pytest.mark.browser, needs_chromium,
    pytest.mark.skipif(shutil.which("xpra") is None,
                       reason="xpra is not installed (sudo apt-get install xpra)"),
]

APP = "my_company.pixels"
TITLE = "Pixel Proof"


def session_url(d: Daemon, job_id: str) -> str:
    def url() -> Any:
        job = d.call("jobs.get", {"job_id": job_id})["job"]
        assert job["status"] in ("queued", "running"), d.job_log(job_id)
        return (job.get("result") or {}).get("url")
    return str(wait_for(url, 60, "the session's URL"))


def test_the_window_is_drawn_in_the_browser_and_quits_from_it(
        daemon: Daemon, tmp_path: Path) -> None:
    job = daemon.call("templates.create", {"template": "gui_app", "name": APP,
                                           "display_name": TITLE})["job"]
    assert daemon.wait_job(job["id"])["status"] == "succeeded"
    build = daemon.call("build", {"app": APP})["job"]
    assert daemon.wait_job(build["id"])["status"] == "succeeded", daemon.job_log(build["id"])

    launch = daemon.call("launch", {"app": APP, "display": "xpra"})["job"]
    url = session_url(daemon, launch["id"])
    with chromium(1000, 700) as page:
        page.goto(url)
        window = xpra_window(page, TITLE, bands=2)
        page.screenshot(path=str(tmp_path / "window.png"))
        greeting, button = window["bands"][0], window["bands"][-1]
        # "Hello from Pixel Proof 0.1.0" above a much shorter "Quit".
        assert greeting["y1"] < button["y0"]
        assert greeting["x1"] - greeting["x0"] > 3 * (button["x1"] - button["x0"])
        assert (tmp_path / "window.png").stat().st_size > 0

        click_canvas(page, window, (button["x0"] + button["x1"]) / 2,
                     (button["y0"] + button["y1"]) / 2)
        done = daemon.wait_job(launch["id"], timeout=60)
    log = daemon.job_log(launch["id"])
    assert done["status"] == "succeeded", log
    assert done["exit_code"] == 0
    assert "quitting" in log  # the app's own Quit path, not a signal
    assert daemon.call("sessions.list")["sessions"] == []
