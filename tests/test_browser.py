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
from tests.browser_helpers import chromium, needs_chromium, xpra_canvas_sum, xpra_window
from tests.helpers import Daemon, create_and_build, wait_for, write_app

pytestmark = [pytest.mark.browser, needs_chromium]

TIMEOUT_MS = 30_000
APP = "my_company.browser_app"


@pytest.fixture
def page(bridge: Bridge) -> Iterator[Any]:
    with chromium(1600, 900, origin=f"{bridge.page_url}/") as p:
        p.goto(bridge.login_url)
        yield p


def job_row(page: Any, job_id: str) -> Any:
    return page.locator(f'#jobs tr[data-job="{job_id}"]')


def test_create_build_and_watch_the_log(page: Any, bridge: Bridge, daemon: Daemon,
                                       tmp_path: Path) -> None:
    from playwright.sync_api import expect

    assert page.url == f"{bridge.page_url}/"  # the login code left the address bar
    expect(page.locator("#templates")).to_contain_text("Console App")
    expect(page.locator("#daemon")).to_contain_text(f"kitplayd {__version__}")

    page.select_option("#create-template", "console_app")
    page.fill("#create-name", APP)
    page.fill("#create-display-name", "Browser App")
    page.click("#create-submit")
    app_row = page.locator(f'#apps tr[data-app="{APP}"]')
    expect(app_row).to_contain_text("Browser App")  # appears once the create job succeeded
    create = daemon.call("jobs.list", {"kind": "create"})["jobs"][0]
    expect(job_row(page, create["id"])).to_contain_text("succeeded")

    app_row.locator("button.build").click()
    build = wait_for(lambda: daemon.call("jobs.list", {"kind": "build"})["jobs"], 30,
                     "the build job")[0]
    expect(page.locator("#log-title")).to_have_text(build["id"])  # the view follows it
    expect(page.locator("#log")).to_contain_text("[kitplay] job succeeded")
    expect(page.locator("#log-status")).to_contain_text("succeeded")
    log_text = page.locator("#log").text_content()
    assert log_text == daemon.job_log(build["id"])  # every line once, in order
    assert "Ran 7 tests" in log_text
    expect(job_row(page, build["id"])).to_contain_text("succeeded")
    expect(app_row).to_contain_text("yes")  # built
    page.screenshot(path=str(tmp_path / "playground.png"), full_page=True)


def test_log_resumes_after_a_dropped_connection(page: Any, bridge: Bridge,
                                                daemon: Daemon) -> None:
    from playwright.sync_api import expect

    create_and_build(daemon, name=APP)
    job = bridge.ok("POST", "/api/launch",
                    {"app": APP, "args": ["--lines", "300", "--sleep", "0.02"]})["job"]
    row = job_row(page, job["id"])
    row.locator("a").click()
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
def test_launch_in_xpra_shows_the_display_beside_the_log_and_full_size_too(
        page: Any, bridge: Bridge, daemon: Daemon, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    app = "my_company.both_views"
    write_app(daemon.workspace, app, launch=["{python}", "ticker.py"],
              files={"ticker.py": TICKER_APP})
    page.reload()
    page.select_option("#display", "xpra")
    page.locator(f'#apps tr[data-app="{app}"] button.launch').click()
    link = page.locator("#jobs a.session")
    expect(link).to_have_count(1, timeout=60_000)
    job = daemon.call("jobs.list", {"kind": "launch"})["jobs"][0]
    path = job["result"]["display"]["path"]
    assert link.get_attribute("href") == path  # on the bridge's own origin: no port, no password

    # The launch is the followed job: its display is framed beside its log...
    expect(page.locator("#log-title")).to_have_text(job["id"])
    panel = page.locator("#display-panel")
    expect(panel).to_be_visible()
    assert page.locator("#display-frame").get_attribute("src") == path
    log_box, panel_box = page.locator("#log").bounding_box(), panel.bounding_box()
    assert panel_box["x"] >= log_box["x"] + log_box["width"]  # beside it, not under it
    frame = page.locator("#display-frame").element_handle().content_frame()
    window = xpra_window(frame, TICKER_TITLE, bands=1)  # the app's window, drawn in the frame
    r = window["rect"]  # ...and nothing of Xpra's own page covers it
    assert frame.evaluate("([x, y]) => document.elementFromPoint(x, y).tagName",
                          [r["x"] + r["w"] / 2, r["y"] + r["h"] / 2]) == "CANVAS"
    wait_for(lambda: page.evaluate("kitplay.display.state") == "connected", 30,
             "the panel to hear that its display connected")
    page.screenshot(path=str(tmp_path / "playground-display.png"))

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

    page.locator(f'#jobs tr[data-job="{job["id"]}"] button.cancel').click()
    expect(job_row(page, job["id"])).to_contain_text("cancelled")
    expect(panel).to_be_hidden()  # the session ended with the job
    assert page.locator("#display-frame").get_attribute("src") == "about:blank"
    expect(link).to_have_count(0)  # an ended job offers no display


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
    job_row(page, job["id"]).locator("a").click()
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
    job_row(page, job["id"]).locator("a").click()
    expect(page.locator("#log")).to_contain_text("line 20")
    bridge.bind = f"127.0.0.1:{bridge.port}"  # the same port; the page has a new origin
    bridge.stop()
    expect(page.locator("#log-conn")).to_contain_text("reconnecting from byte")
    bridge.start()
    expect(page.locator("#log-conn")).to_contain_text("kitplay open", timeout=TIMEOUT_MS)
    page.goto("about:blank")  # as a user opens the new link: a fresh load, not a hash change
    page.goto(bridge.login_url)
    job_row(page, job["id"]).locator("a").click()
    stop.touch()
    expect(page.locator("#log")).to_contain_text("[kitplay] job succeeded", timeout=60_000)
    assert page.locator("#log").text_content() == daemon.job_log(job["id"])
