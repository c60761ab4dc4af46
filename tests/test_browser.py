"""The playground page in a real browser: Debian's chromium driven by Playwright (headless).

Real daemon, real bridge, real browser; the page is opened the way a user opens it, with
the one-time ``#code=`` URL kitplay-bridge prints. No ``playwright install``: Playwright
drives /usr/bin/chromium.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kitplay.daemon.protocol.version import __version__

from tests.bridge_helpers import Bridge, bridge_fixture, make_bridge_fixture  # noqa: F401
from tests.browser_helpers import chromium, needs_chromium, signed_in, xpra_canvas_sum, xpra_window
from tests.helpers import Daemon, create_and_build, wait_for, write_app

pytestmark = [pytest.mark.browser, needs_chromium]

TIMEOUT_MS = 30_000
APP = "my_company.browser_app"


@pytest.fixture
def page(bridge: Bridge) -> Iterator[Any]:
    with chromium(1600, 900, origin=f"{bridge.page_url}/") as p:
        yield signed_in(p, bridge.login_url)


def job_row(page: Any, job_id: str) -> Any:
    return page.locator(f'#jobs tr[data-job="{job_id}"]')


def create_from_gallery(page: Any, template: str, name: str, display_name: str = "") -> None:
    """Gallery -> the template's Create... -> the dialog -> Create app, as a user does."""
    page.click("#new-app")
    page.locator(f'.tcard[data-template="{template}"] button.create').click()
    page.fill("#create-name", name)
    if display_name:
        page.fill("#create-display-name", display_name)
    page.click("#create-submit")


def test_create_build_and_watch_the_log(page: Any, bridge: Bridge, daemon: Daemon,
                                       tmp_path: Path) -> None:
    from playwright.sync_api import expect

    assert page.url == f"{bridge.page_url}/"  # the login code left the address bar
    expect(page.locator("#daemon")).to_contain_text(f"kitplayd {__version__}")
    expect(page.locator("#gallery-view")).to_be_visible()  # no apps yet: the gallery shows
    expect(page.locator("#templates")).to_contain_text("Console App")

    create_from_gallery(page, "console_app", APP, "Browser App")
    app_row = page.locator(f'#tree .app-row[data-app="{APP}"]')
    expect(app_row).to_contain_text("Browser App")  # appears once the create job succeeded
    expect(page.locator("#appbar")).to_contain_text("Browser App")  # and is selected
    create = daemon.call("jobs.list", {"kind": "create"})["jobs"][0]
    expect(job_row(page, create["id"])).to_contain_text("succeeded")
    expect(page.locator("#statusbar")).to_contain_text(f"Create of {APP} succeeded")

    page.locator("#appbar button.build").click()
    build = wait_for(lambda: daemon.call("jobs.list", {"kind": "build"})["jobs"], 30,
                     "the build job")[0]
    expect(page.locator("#log-title")).to_contain_text(build["id"])  # the view follows it
    expect(page.locator("#log")).to_contain_text("[kitplay] job succeeded")
    expect(page.locator("#log-status")).to_contain_text("succeeded")
    log_text = page.locator("#log").text_content()
    assert log_text == daemon.job_log(build["id"])  # every line once, in order
    assert "Ran 7 tests" in log_text
    expect(job_row(page, build["id"])).to_contain_text("succeeded")
    expect(app_row).to_contain_text("built")
    expect(page.locator("#statusbar")).to_contain_text(f"Build of {APP} succeeded in")
    page.screenshot(path=str(tmp_path / "playground.png"))


def test_log_resumes_after_a_dropped_connection(page: Any, bridge: Bridge,
                                                daemon: Daemon) -> None:
    from playwright.sync_api import expect

    create_and_build(daemon, name=APP)
    job = bridge.ok("POST", "/api/launch",
                    {"app": APP, "args": ["--lines", "300", "--sleep", "0.02"]})["job"]
    row = job_row(page, job["id"])
    row.locator("a.follow").click()
    expect(page.locator("#log")).to_contain_text("line 20")
    page.evaluate("kitplay.dropStream()")  # the connection drops mid-stream...
    expect(page.locator("#log")).to_contain_text("[kitplay] job succeeded", timeout=60_000)
    assert page.evaluate("kitplay.stream.connects") == 2
    # ...and the view resumed from next_offset: nothing lost, nothing twice.
    assert page.locator("#log").text_content() == daemon.job_log(job["id"])
    expect(page.locator("#log-status")).to_contain_text("succeeded")


def test_cancel_from_the_page(page: Any, bridge: Bridge, daemon: Daemon) -> None:
    from playwright.sync_api import expect

    create_and_build(daemon, name=APP)
    job = bridge.ok("POST", "/api/launch", {"app": APP, "args": ["--forever"]})["job"]
    row = job_row(page, job["id"])
    expect(row).to_contain_text("running")
    row.locator("button.cancel").click()
    expect(row).to_contain_text("cancelled")
    assert daemon.call("jobs.get", {"job_id": job["id"]})["job"]["status"] == "cancelled"


TICKER_TITLE = "Both Views"
TICKER_APP = f"""import tkinter as tk
root = tk.Tk()
root.title({TICKER_TITLE!r})
label = tk.Label(root, text="count 0", font=("TkDefaultFont", 14), width=24)
label.pack(padx=24, pady=16)
count = 0
def tick():
    global count
    count += 1
    label.config(text="count %d %s" % (count, "#" * (count % 8)))
    root.after(250, tick)
root.after(250, tick)
print("window shown", flush=True)
root.mainloop()
"""


def changes(views: dict[str, Any], times: int = 3) -> None:
    """Each view's window is redrawn ``times`` times (the app draws every 0.25 s)."""
    last = {name: xpra_canvas_sum(v, TICKER_TITLE) for name, v in views.items()}
    seen = dict.fromkeys(views, 0)

    def all_changed() -> bool:
        for name, view in views.items():
            now = xpra_canvas_sum(view, TICKER_TITLE)
            if now is not None and now != last[name]:
                seen[name] += 1
                last[name] = now
        return min(seen.values()) >= times

    wait_for(all_changed, 30, f"the window redrawn in {', '.join(views)}")


@pytest.mark.xpra
@pytest.mark.skipif(shutil.which("xpra") is None, reason="needs xpra")
def test_launch_in_xpra_shows_the_display_beside_the_editor_and_full_size_too(
        page: Any, bridge: Bridge, daemon: Daemon, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    app = "my_company.both_views"
    write_app(daemon.workspace, app, launch=["{python}", "ticker.py"],
              files={"ticker.py": TICKER_APP})
    page.reload()
    expect(page.locator("#appbar")).to_contain_text(app)
    # The display offered first is one the daemon has: never native without a desktop.
    status = daemon.call("daemon.status")
    expect(page.locator("#display")).to_be_enabled()  # once the page has the daemon's status
    first = page.locator("#display").input_value()
    assert status["displays"][first]["available"] is not False, (first, status["displays"])
    wait_for(lambda: daemon.call("daemon.status")["displays"]["xpra"]["available"], 60,
             "xpra's check")
    expect(page.locator('#display option[value="xpra"]')).to_be_enabled(timeout=TIMEOUT_MS)
    page.select_option("#display", "xpra")
    page.click("#launch")
    job = wait_for(lambda: daemon.call("jobs.list", {"kind": "launch"})["jobs"], 30,
                   "the launch job")[0]
    # The launch is the followed job: its display is framed beside the editor...
    expect(page.locator("#log-title")).to_contain_text(job["id"])
    panel = page.locator("#display-panel")
    expect(panel).to_be_visible(timeout=60_000)
    job = daemon.call("jobs.get", {"job_id": job["id"]})["job"]
    path = job["result"]["display"]["path"]
    assert page.locator("#display-frame").get_attribute("src") == path  # no port, no password
    editor, shown = page.locator("#editor-view").bounding_box(), panel.bounding_box()
    assert shown["x"] >= editor["x"] + editor["width"]  # beside it, not under it
    frame = page.locator("#display-frame").element_handle().content_frame()
    window = xpra_window(frame, TICKER_TITLE, bands=1)  # the app's window, drawn in the frame
    r = window["rect"]  # ...and nothing of Xpra's own page covers it
    assert frame.evaluate("([x, y]) => document.elementFromPoint(x, y).tagName",
                          [r["x"] + r["w"] / 2, r["y"] + r["h"] / 2]) == "CANVAS"
    wait_for(lambda: page.evaluate("kitplay.display.state") == "connected", 30,
             "the panel to hear that its display connected")
    # Xpra's own server lines stay behind a toggle; the app's output shows.
    expect(page.locator("#log")).to_contain_text("window shown")
    assert "xpra is ready" not in page.locator("#log").text_content()
    page.check("#log-xpra")  # (in its own pane where the daemon keeps it apart)
    expect(page.locator(".log-panel")).to_contain_text("xpra is ready")
    page.screenshot(path=str(tmp_path / "playground-display.png"))

    # The display is made wider from its left edge (arrow keys on the handle), the editor
    # narrower; the session goes on drawing in the wider frame.
    before = panel.bounding_box()["width"]
    page.locator("#display-split").focus()
    for _ in range(5):
        page.keyboard.press("ArrowLeft")
    assert abs(panel.bounding_box()["width"] - (before + 120)) <= 1
    assert page.locator("#editor-view").bounding_box()["width"] >= 280
    changes({"the widened view": frame})

    # ...and opens full size in a tab of its own, while the embedded view stays live.
    with page.context.expect_page() as opened:
        page.click("#display-full")
    full = opened.value
    full.wait_for_load_state()
    assert full.url == bridge.page_url + path
    xpra_window(full, TICKER_TITLE, bands=1)
    changes({"the embedded view": frame, "the full-size tab": full})
    assert frame.evaluate("() => client.connected") and full.evaluate("() => client.connected")
    assert page.evaluate("kitplay.display.state") == "connected"
    xlog = daemon.call("jobs.logs", {"job_id": job["id"], "log": "display"})["data"]
    assert "does not wish to share" not in xlog and "client   2" in xlog
    full.close()
    changes({"the embedded view": frame})

    page.click("#stop")
    expect(job_row(page, job["id"])).to_contain_text("cancelled")
    expect(panel).to_be_hidden()  # the session ended with the job
    assert page.locator("#display-frame").get_attribute("src") == "about:blank"
    expect(page.locator("#stop")).to_have_count(0)
    expect(job_row(page, job["id"]).locator("button")).to_have_count(0)  # nothing left to do


def test_log_rides_through_daemon_restarts(page: Any, bridge: Bridge, daemon: Daemon,
                                           tmp_path: Path) -> None:
    """SIGTERM and start, then SIGKILL and start: the page says so, reconnects by itself and
    shows every line of the app once."""
    from playwright.sync_api import expect

    from tests.test_follow_reconnect import TICKER, grows

    stop = tmp_path / "stop"
    write_app(daemon.workspace, "my_company.ticker", launch=[*TICKER, str(stop)])
    job = bridge.ok("POST", "/api/launch", {"app": "my_company.ticker",
                                            "display": "headless"})["job"]
    log = daemon.state / "logs" / f"{job['id']}.log"
    job_row(page, job["id"]).locator("a.follow").click()
    expect(page.locator("#log")).to_contain_text("line 20")
    for down in (daemon.stop, daemon.kill9):
        down()
        expect(page.locator("#log-conn")).to_contain_text("reconnecting from byte")
        grows(log, 10, "the app to print while no daemon runs")
        daemon.start()
        expect(page.locator("#log-conn")).to_have_text("live", timeout=TIMEOUT_MS)
    stop.touch()
    expect(page.locator("#log")).to_contain_text("[kitplay] job succeeded", timeout=60_000)
    assert page.locator("#log").text_content() == daemon.job_log(job["id"])
    assert page.evaluate("kitplay.stream.connects") >= 3


def test_bridge_restart_is_said_on_the_page(page: Any, bridge: Bridge, daemon: Daemon,
                                            tmp_path: Path) -> None:
    """The page's session ends with the bridge (no ambient authority survives it): across a
    bridge restart on the same port the page says so, and a new link resumes the view."""
    from playwright.sync_api import expect

    from tests.test_follow_reconnect import TICKER

    stop = tmp_path / "stop"
    write_app(daemon.workspace, "my_company.ticker", launch=[*TICKER, str(stop)])
    job = bridge.ok("POST", "/api/launch", {"app": "my_company.ticker",
                                            "display": "headless"})["job"]
    job_row(page, job["id"]).locator("a.follow").click()
    expect(page.locator("#log")).to_contain_text("line 20")
    bridge.bind = f"127.0.0.1:{bridge.port}"  # the same port; the page has a new origin
    bridge.stop()
    expect(page.locator("#log-conn")).to_contain_text("reconnecting from byte")
    bridge.start()
    expect(page.locator("#log-conn")).to_contain_text("kitplay open", timeout=TIMEOUT_MS)
    page.goto("about:blank")  # as a user opens the new link: a fresh load, not a hash change
    page.goto(bridge.login_url)
    job_row(page, job["id"]).locator("a.follow").click()
    stop.touch()
    expect(page.locator("#log")).to_contain_text("[kitplay] job succeeded", timeout=60_000)
    assert page.locator("#log").text_content() == daemon.job_log(job["id"])
