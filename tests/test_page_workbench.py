"""The playground workbench in Debian's chromium, against a real daemon and bridge.

- jobs: filters by app, kind and status, pages, start date and duration;
- the log: search, download of the whole log;
- template docs are Markdown from a possibly hostile workspace: rendered with no HTML, no
  script, no handler, no link but http(s)/mailto, no image fetched;
- on the kit-app-template stand-in: only templates that can be created alone are offered,
  layers only where an application template takes them, and the licence step;
- end to end on the builtin toolchain: gallery -> create -> app.py in the editor -> a new
  greeting -> save -> build -> launch in Xpra -> the window in the page shows the new
  greeting -> Open full size -> the embedded view is still live;
- a file changed on disk while open: the save is refused and the banner offers reload,
  overwrite and the differences;
- the display path: no password in any URL the page holds.

The editor and display parts need the daemon's files.* methods and displays served through
the bridge; without them those tests skip (saying which is missing).
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kitplay.daemon.protocol.registry import METHODS

from tests.bridge_helpers import Bridge, bridge_fixture, make_bridge_fixture  # noqa: F401
from tests.browser_helpers import chromium, needs_chromium, signed_in, xpra_window
from tests.helpers import FIXTURES, Daemon, create_and_build, wait_for, write_app

pytestmark = [pytest.mark.browser, needs_chromium]

TIMEOUT_MS = 30_000
APP = "my_company.workbench"

needs_files = pytest.mark.skipif(
    not {"files.list", "files.read", "files.write"} <= set(METHODS),
    reason="needs the daemon's files.* methods (branch files)")
needs_bridge_displays = pytest.mark.skipif(
    importlib.util.find_spec("kitplay.bridge.displays") is None,
    reason="needs Xpra sessions served through the bridge (branch display)")


@pytest.fixture
def page(bridge: Bridge) -> Iterator[Any]:
    with chromium(1500, 900, origin=f"{bridge.page_url}/") as p:
        yield signed_in(p, bridge.login_url)


def open_app_py(page: Any) -> str:
    """Open the selected app's app.py from the tree; the editor's text once it has it."""
    page.locator('#tree .tree-row.file[data-path$="/app.py"]').click()
    text: str = wait_for(lambda: page.evaluate("kitplay.editorText()"), 30, "the editor's text")
    return text


def rows(page: Any) -> list[str]:
    ids: list[str] = page.eval_on_selector_all("#jobs tr[data-job]",
                                               "(trs) => trs.map((tr) => tr.dataset.job)")
    return ids


def run(d: Daemon, method: str, params: dict[str, Any], status: str = "succeeded") -> str:
    job = d.call(method, params)["job"]
    done = d.wait_job(job["id"])
    assert done["status"] == status, (done, d.job_log(job["id"]))
    return str(job["id"])


# ------------------------------------------------------------------------------------ jobs

def test_jobs_filter_by_app_kind_and_status_and_page(page: Any, daemon: Daemon) -> None:
    from playwright.sync_api import expect

    a, b = "my_company.alpha", "my_company.beta"
    write_app(daemon.workspace, a, build=[["{python}", "-c", "pass"]])
    write_app(daemon.workspace, b, launch=["{python}", "-c", "raise SystemExit(3)"])
    run(daemon, "build", {"app": a})
    a_runs = [run(daemon, "launch", {"app": a, "display": "headless"}) for _ in range(22)]
    b_fail = run(daemon, "launch", {"app": b, "display": "headless"}, "failed")
    page.reload()
    expect(page.locator("#jobs tr[data-job]")).to_have_count(20)  # a page of 20, newest first
    assert rows(page)[0] == b_fail
    expect(page.locator("#jobs-range")).to_have_text("1\u201320 of 24")
    first = page.locator(f'#jobs tr[data-job="{a_runs[-1]}"]')
    assert first.locator(".when").text_content().strip()  # its start...
    assert first.locator(".took").text_content().endswith(" s")  # ...and how long it took

    page.click("#jobs-older")
    expect(page.locator("#jobs-range")).to_have_text("21\u201324 of 24")
    expect(page.locator("#jobs tr[data-job]")).to_have_count(4)
    expect(page.locator("#jobs-older")).to_be_disabled()
    page.click("#jobs-newer")
    expect(page.locator("#jobs-range")).to_have_text("1\u201320 of 24")

    page.select_option("#filter-app", b)
    expect(page.locator("#jobs tr[data-job]")).to_have_count(1)
    assert rows(page) == [b_fail]
    expect(page.locator("#filter-app")).to_have_class("active")
    page.select_option("#filter-app", a)
    page.select_option("#filter-kind", "build")
    expect(page.locator("#jobs tr[data-job]")).to_have_count(1)
    page.select_option("#filter-kind", "")
    page.select_option("#filter-status", "failed")
    expect(page.locator("#jobs")).to_contain_text("No job matches these filters.")
    page.select_option("#filter-app", "")
    expect(page.locator("#jobs tr[data-job]")).to_have_count(1)
    assert rows(page) == [b_fail]
    # The failed job says why, in words, where the user looks.
    page.locator(f'#jobs tr[data-job="{b_fail}"] a.follow').click()
    expect(page.locator("#log-status")).to_contain_text("failed")


# ------------------------------------------------------------------------------------- log

def test_log_search_and_download(page: Any, daemon: Daemon, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    create_and_build(daemon, name=APP)
    job = run(daemon, "launch", {"app": APP, "display": "headless",
                                 "args": ["--lines", "300"]})
    page.reload()
    page.locator(f'#jobs tr[data-job="{job}"] a.follow').click()
    expect(page.locator("#log")).to_contain_text("[kitplay] job succeeded")
    page.fill("#log-search", "line 7")  # line 7, line 70..79, line 700 (none): 11
    expect(page.locator("#log mark")).to_have_count(11)
    expect(page.locator("#log-matches")).to_have_text("1 of 11")
    # Typing a search leaves follow and shows the first match (line 7, far above the end).
    expect(page.locator("#log-follow")).not_to_be_checked()
    assert page.evaluate("""() => {
        const box = document.getElementById("log").getBoundingClientRect();
        const mark = document.querySelector("#log mark.current").getBoundingClientRect();
        return mark.top >= box.top && mark.bottom <= box.bottom; }"""), "the match is not in view"
    page.press("#log-search", "Enter")
    expect(page.locator("#log-matches")).to_have_text("2 of 11")
    expect(page.locator("#log mark.current")).to_have_text("line 7")
    expect(page.locator("#log-follow")).not_to_be_checked()  # a match holds the view
    page.fill("#log-search", "")
    expect(page.locator("#log mark")).to_have_count(0)
    assert page.locator("#log").text_content() == daemon.job_log(job)

    with page.expect_download() as info:
        page.click("#log-download")
    saved = tmp_path / "saved.log"
    info.value.save_as(saved)
    assert info.value.suggested_filename == f"{job}.log"
    assert saved.read_text() == daemon.job_log(job)
    expect(page.locator("#statusbar")).to_contain_text(f"Saved the log of {job}")


# -------------------------------------------------------------------------------- markdown

HOSTILE_MD = """# Title

<script>window.pwned = 1</script>
<img src="/static/x-raw.png" onerror="window.pwned = 2">

![alt text](/static/x-md.png)

[run me](javascript:window.pwned=3) [data](data:text/html,hi) [ok](https://example.org/a)
[mail](mailto:a@example.org) [local](/api/v1/jobs)

<a href="https://evil.example" onclick="window.pwned=4">raw link</a>

| a | b |
|:--|--:|
| <b>1</b> | 2 |

```python
print("<hello>")
```
"""


def test_template_docs_render_without_html_script_or_fetches(page: Any) -> None:
    from playwright.sync_api import expect

    expect(page.locator("#daemon")).to_contain_text("kitplayd")
    fetched: list[str] = []
    page.on("request", lambda r: fetched.append(r.url))
    got = page.evaluate("""async (text) => {
        const { renderMarkdown } = await import("/static/markdown.js");
        const box = document.createElement("div");
        box.append(await renderMarkdown(text));
        document.body.append(box);
        await new Promise((r) => setTimeout(r, 100));
        const all = [...box.querySelectorAll("*")];
        return { html: box.innerHTML, tags: [...new Set(all.map((e) => e.localName))],
                 attrs: [...new Set(all.flatMap((e) => e.getAttributeNames()))],
                 hrefs: all.filter((e) => e.hasAttribute("href"))
                   .map((e) => e.getAttribute("href")),
                 text: box.textContent }; }""", HOSTILE_MD)
    assert page.evaluate("window.pwned") is None
    html = got["html"]
    assert set(got["tags"]) <= {"h3", "p", "a", "table", "thead", "tbody", "tr", "th", "td",
                                "pre", "code"}, got["tags"]
    assert set(got["attrs"]) <= {"href", "target", "rel", "class"}, got["attrs"]
    assert got["hrefs"] == ["https://example.org/a", "mailto:a@example.org"], got["hrefs"]
    assert "<script>window.pwned = 1</script>" in got["text"]  # raw HTML shows as text
    assert "[alt text]" in got["text"]  # an image is its alt text
    assert '<a href="https://example.org/a" target="_blank" rel="noopener noreferrer">' in html
    assert '<td class="align-right">2</td>' in html and "&lt;b&gt;1&lt;/b&gt;" in html
    assert 'class="language-python"' in html and "&lt;hello&gt;" in html
    assert not [u for u in fetched if "x-raw" in u or "x-md" in u]


# ------------------------------------------------------------- kit-app-template stand-in

@pytest.fixture
def kit_page(make_daemon: type[Daemon], make_bridge: Any, tmp_path: Path) -> Iterator[Any]:
    ws = tmp_path / "kat"
    shutil.copytree(FIXTURES / "kit_app_template", ws)  # the licence not yet accepted
    d = make_daemon(workspace=ws).start()
    b = make_bridge(d, "--rate-limit", "10000", "--rate-burst", "10000")
    with chromium(1500, 900, origin=f"{b.page_url}/") as p:
        p.goto(b.login_url)
        yield p, d


def test_kit_gallery_offers_creatable_templates_layers_and_the_licence(kit_page: Any) -> None:
    from playwright.sync_api import expect

    page, d = kit_page
    templates = d.call("templates.list")["templates"]
    creatable = {t["name"] for t in templates if t["creatable"]}
    alone_not = {t["name"] for t in templates if not t["creatable"]}
    assert "omni_default_streaming" in alone_not and "kit_service_setup" in alone_not
    expect(page.locator("#gallery-view")).to_be_visible()  # no apps yet
    expect(page.locator(".tcard")).to_have_count(len(creatable))
    shown = set(page.eval_on_selector_all(".tcard", "(cs) => cs.map((c) => c.dataset.template)"))
    assert shown == creatable
    expect(page.locator("#gallery-view .notice")).to_contain_text("licence")

    # An extension template takes no layers.
    page.locator('.tcard[data-template="basic_python_extension"] button.create').click()
    expect(page.locator("#create-dialog")).to_be_visible()
    expect(page.locator("#create-dialog fieldset.layers")).to_have_count(0)
    page.locator("#create-dialog button.secondary").click()

    # An application template offers its layers as checkboxes, and the licence.
    page.locator('.tcard[data-template="kit_base_editor"] button.create').click()
    layers = page.locator('#create-dialog input[name="layer"]')
    expect(layers).to_have_count(2)
    assert set(layers.evaluate_all("(xs) => xs.map((x) => x.value)")) == {
        "omni_default_streaming", "nvcf_streaming"}
    expect(page.locator("#create-licence")).to_be_visible()
    assert page.locator("#create-name").input_value() == "my_company.my_editor"
    page.click("#create-submit")  # not accepted: the dialog says so, nothing starts
    expect(page.locator("#create-error")).to_contain_text("Accept the licence")
    assert d.call("jobs.list", {})["jobs"] == []
    page.check('#create-dialog input[value="omni_default_streaming"]')
    page.check("#create-accept")
    page.click("#create-submit")
    expect(page.locator("#create-dialog")).to_be_hidden()
    job = wait_for(lambda: d.call("jobs.list", {"kind": "create"})["jobs"], 30, "the job")[0]
    assert job["params"]["accept_license"] is True
    assert job["params"]["layers"] == ["omni_default_streaming"]
    expect(page.locator('#tree .app-row[data-app="my_company.my_editor"]')).to_be_visible(
        timeout=60_000)
    assert (d.workspace / ".omniverse_eula_accepted.txt").exists()


# ------------------------------------------------------------------------ the whole loop

# The window's greeting (the app's tests check greeting() itself, which stays).
GREETING = "tk.Label(frame, text=greeting(meta),"
NEW_GREETING = 'tk.Label(frame, text=greeting(meta) + "\\nEdited in the page",'


def display_path(job: dict[str, Any]) -> str | None:
    display = (job.get("result") or {}).get("display")
    return display.get("path") if isinstance(display, dict) else None


@needs_files
@needs_bridge_displays
@pytest.mark.xpra
@pytest.mark.skipif(shutil.which("xpra") is None, reason="needs xpra")
def test_create_edit_build_launch_and_see_the_change(page: Any, daemon: Daemon,
                                                    tmp_path: Path) -> None:
    from playwright.sync_api import expect

    page.click("#new-app")
    page.locator('.tcard[data-template="gui_app"] button.create').click()
    page.fill("#create-name", APP)
    page.fill("#create-display-name", "Pixel Edit")
    page.click("#create-submit")
    expect(page.locator("#appbar")).to_contain_text("Pixel Edit", timeout=60_000)
    app_py = page.locator('#tree .tree-row.file[data-path$="/app.py"]')
    app_py.click()
    expect(page.locator(".tab.active")).to_contain_text("app.py")
    text = wait_for(lambda: page.evaluate("kitplay.editorText()"), 30, "the editor's text")
    assert GREETING in text
    assert page.evaluate("(t) => kitplay.setEditorText(t)", text.replace(GREETING, NEW_GREETING))
    expect(page.locator(".tab.active")).to_have_class("tab active dirty")
    page.keyboard.press("Control+s")
    expect(page.locator(".tab.active")).not_to_have_class("tab active dirty")
    expect(page.locator("#editor-status")).to_contain_text("Saved app.py")
    expect(page.locator("#editor-banner")).to_be_hidden()  # one save, no conflict with itself
    on_disk = (daemon.workspace / "source" / "apps" / APP / "app.py").read_text()
    assert NEW_GREETING in on_disk

    page.locator("#appbar button.build").click()
    expect(page.locator("#statusbar")).to_contain_text(f"Build of {APP} succeeded",
                                                       timeout=120_000)
    wait_for(lambda: daemon.call("daemon.status")["displays"]["xpra"]["available"], 60,
             "xpra's check")
    expect(page.locator('#display option[value="xpra"]')).to_be_enabled(timeout=TIMEOUT_MS)
    page.select_option("#display", "xpra")
    page.click("#launch")
    expect(page.locator("#display-panel")).to_be_visible(timeout=60_000)
    frame = page.locator("#display-frame").element_handle().content_frame()
    # Two lines of greeting now, above the Quit button: three bands of text, where the
    # template's one-line greeting draws two.
    window = xpra_window(frame, "Pixel Edit", bands=3)
    first, second, button = window["bands"][0], window["bands"][1], window["bands"][-1]
    assert first["y1"] < second["y0"] < button["y0"]
    assert (second["x1"] - second["x0"]) > 2 * (button["x1"] - button["x0"])
    page.screenshot(path=str(tmp_path / "edited.png"))

    # Open full size: a tab of its own, and the embedded view stays live.
    with page.context.expect_page() as opened:
        page.click("#display-full")
    full = opened.value
    full.wait_for_load_state()
    xpra_window(full, "Pixel Edit", bands=3)
    frame = page.locator("#display-frame").element_handle().content_frame()
    xpra_window(frame, "Pixel Edit", bands=3)
    assert "does not wish to share" not in (frame.text_content("body") or "")
    full.close()

    # No password in any URL the page holds: frame, links, history, what it fetched.
    job = daemon.call("jobs.list", {"kind": "launch"})["jobs"][0]
    urls = page.evaluate("""() => [location.href, ...[...document.querySelectorAll(
        "[src], [href]")].map((e) => e.src || e.href),
        ...performance.getEntriesByType("resource").map((e) => e.name)]""")
    urls += frame.evaluate("() => [location.href, ...performance.getEntriesByType("
                           "'resource').map((e) => e.name)]")
    assert display_path(job), "the launch job's result names no display path"
    assert not [u for u in urls if "password" in u.lower()], urls
    page.click("#stop")
    expect(page.locator("#display-panel")).to_be_hidden(timeout=60_000)


@needs_files
def test_a_file_changed_on_disk_is_not_overwritten_unasked(page: Any, daemon: Daemon) -> None:
    from playwright.sync_api import expect

    create_and_build(daemon, name=APP)
    path = daemon.workspace / "source" / "apps" / APP / "app.py"
    page.reload()
    original = open_app_py(page)
    page.evaluate("(t) => kitplay.setEditorText(t)", original + "\n")
    page.keyboard.press("Control+s")  # saved once, with its etag: no banner
    expect(page.locator("#editor-status")).to_contain_text("Saved app.py")
    expect(page.locator("#editor-banner")).to_be_hidden()
    assert path.read_text() == original + "\n"
    page.evaluate("(t) => kitplay.setEditorText(t)", original)
    page.keyboard.press("Control+s")
    expect(page.locator("#editor-status")).to_contain_text("saved")
    wait_for(lambda: path.read_text() == original, 30, "the file saved back")
    # Someone else (another editor, a tool) writes the file meanwhile.
    path.write_text(original.replace("import argparse", "import argparse  # theirs"))
    mine = original.replace("import sys", "import sys  # mine")
    page.evaluate("(t) => kitplay.setEditorText(t)", mine)
    page.keyboard.press("Control+s")
    banner = page.locator("#editor-banner")
    expect(banner).to_contain_text("app.py changed on disk")
    assert "# theirs" in path.read_text() and "# mine" not in path.read_text()
    page.click("#stale-diff")
    diff = page.locator("#stale-diff-view")
    expect(diff.locator("pre .del").first).to_have_text("- import argparse  # theirs")
    expect(diff.locator("pre .add").last).to_have_text("+ import sys  # mine")
    page.click("#stale-overwrite")
    expect(banner).to_be_hidden()
    assert "# mine" in path.read_text() and "# theirs" not in path.read_text()

    # Changed again on disk, then "Reload from disk" takes theirs and drops mine.
    path.write_text(original + "# theirs again\n")
    page.evaluate("(t) => kitplay.setEditorText(t)", mine + "# mine again\n")
    page.keyboard.press("Control+s")
    expect(banner).to_be_visible()
    page.click("#stale-reload")
    expect(banner).to_be_hidden()
    assert page.evaluate("kitplay.editorText()") == original + "# theirs again\n"


# --------------------------------------------------------------------------- API reference

def test_the_api_reference_renders_the_openapi_document(page: Any, bridge: Bridge) -> None:
    from playwright.sync_api import expect

    expect(page.locator("#daemon")).to_contain_text("kitplayd")
    doc = bridge.ok("GET", "/api/openapi.json")
    ops = [(verb, path, op) for path, item in doc["paths"].items()
           for verb, op in item.items() if verb in ("get", "post", "delete")]
    with page.context.expect_page() as opened:
        page.click("#open-reference")  # a tab of its own, signed in as this one
    ref = opened.value
    ref.set_default_timeout(TIMEOUT_MS)
    expect(ref.locator("section.op[data-filter]")).to_have_count(len(ops))
    jobs_list = ref.locator("#op-jobs\\.list")
    expect(jobs_list).to_contain_text("GET")
    expect(jobs_list).to_contain_text("/api/v1/jobs")
    for name in ("status", "kind", "limit", "app", "offset"):
        expect(jobs_list.locator("table.params")).to_contain_text(name)
    expect(jobs_list).to_contain_text("one of")  # enums and defaults are said
    expect(ref.locator("#op-launch")).to_contain_text("JSON body")
    expect(ref.locator("#schema-Job")).to_contain_text("status")
    expect(ref.locator("#websockets")).to_contain_text("/stream/{job_id}")
    ref.fill("#ref-filter", "sessions")
    expect(ref.locator("section.op[data-filter]:visible")).to_have_count(1)
    expect(ref.locator(".toc-op:visible")).to_have_count(1)


# ------------------------------------------------------------------------------- app bar

@needs_files
def test_app_bar_test_package_launch_args_clean_and_delete(page: Any, daemon: Daemon) -> None:
    from playwright.sync_api import expect

    create_and_build(daemon, name=APP)
    page.reload()
    expect(page.locator("#appbar")).to_contain_text(APP)
    statusbar = page.locator("#statusbar")

    page.locator("#appbar button.test").click()
    expect(statusbar).to_contain_text(f"Test of {APP} succeeded", timeout=60_000)

    page.locator("#appbar button.package").click()
    expect(statusbar).to_contain_text(f"Package of {APP} succeeded", timeout=60_000)
    archive = daemon.workspace / "_build" / "packages" / f"{APP}-0.1.0.zip"
    note = page.locator("#appbar-note")
    expect(note).to_contain_text(str(archive))  # the archive it made, and its size
    expect(note).to_contain_text(" KB)")

    expect(page.locator("#display")).to_be_enabled()
    page.select_option("#display", "headless")
    page.fill("#launch-args", '--lines 2 "two words"')
    page.click("#launch")
    job = wait_for(lambda: daemon.call("jobs.list", {"kind": "launch"})["jobs"], 30,
                   "the launch job")[0]
    expect(page.locator("#log-title")).to_contain_text(job["id"])
    expect(page.locator("#log")).to_contain_text("[kitplay] job succeeded")
    assert job["params"]["args"] == ["--lines", "2", "two words"]
    assert job["params"]["display"] == "headless"

    page.locator("#appbar button.clean").click()
    expect(statusbar).to_contain_text(f"Cleaned {APP}: removed")
    assert not archive.exists()

    page.locator("#appbar button.delete").click()  # asks first, naming the app and the paths
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_contain_text(f"Delete {APP}?")
    expect(dialog.locator(".removes")).to_contain_text(f"source/apps/{APP}")
    dialog.locator("button.secondary").click()  # Cancel: nothing goes
    assert (daemon.workspace / "source" / "apps" / APP).is_dir()
    page.locator("#appbar button.delete").click()
    page.click("#confirm-ok")
    expect(page.locator(f'#tree .app-row[data-app="{APP}"]')).to_have_count(0)
    assert not (daemon.workspace / "source" / "apps" / APP).exists()
    expect(statusbar).to_contain_text(f"Deleted {APP}")


# ------------------------------------------------------------------------------ splitters

def test_the_project_column_is_resized_by_drag_and_keys_and_kept(page: Any) -> None:
    from playwright.sync_api import expect

    side = page.locator("aside.side")
    handle = page.locator("#side-split")
    expect(side).to_be_visible()

    def width() -> float:
        return float(side.evaluate("(e) => e.getBoundingClientRect().width"))

    start = width()
    box = handle.bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 60, y, steps=4)
    page.mouse.up()
    assert abs(width() - (start + 60)) <= 1, (start, width())

    handle.focus()
    page.keyboard.press("ArrowLeft")
    assert abs(width() - (start + 36)) <= 1
    # Bounds: never under 200 px, never over half the window (1500 px here).
    for _ in range(40):
        page.keyboard.press("ArrowRight")
    assert abs(width() - 750) <= 1
    expect(handle).to_have_attribute("aria-valuenow", "750")

    # Kept for the next load of the page (signed in again from this tab's session).
    page.reload()
    expect(page.locator("#jobs")).to_be_visible()
    assert abs(width() - 750) <= 1
    page.locator("#side-split").dblclick()  # the default back
    assert abs(width() - start) <= 1


# ------------------------------------------------------------------------- new and delete

@needs_files
def test_new_file_and_delete_file_from_the_tree(page: Any, daemon: Daemon) -> None:
    from playwright.sync_api import expect

    create_and_build(daemon, name=APP)
    app_dir = daemon.workspace / "source" / "apps" / APP
    page.reload()
    expect(page.locator("#appbar")).to_contain_text(APP)

    # New file, in a folder that does not exist yet: made empty, listed and opened.
    page.locator("#tree .tree-row.new-file").click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_contain_text(f"New file in {APP}")
    page.fill("#prompt-input", "pkg/extra.py")
    page.click("#confirm-ok")
    expect(dialog).to_be_hidden()
    assert (app_dir / "pkg" / "extra.py").read_bytes() == b""
    row = page.locator(f'#tree .tree-row.file[data-path="source/apps/{APP}/pkg/extra.py"]')
    expect(row).to_be_visible()
    expect(page.locator(".tab.active")).to_contain_text("extra.py")

    # A name that is taken: the dialog says so and stays open; nothing is replaced.
    before = (app_dir / "app.py").read_bytes()
    page.locator("#tree .tree-row.new-file").click()
    page.fill("#prompt-input", "app.py")
    page.click("#confirm-ok")
    expect(page.locator("#prompt-error")).to_contain_text("exists already")
    expect(dialog).to_be_visible()
    page.fill("#prompt-input", "  ")
    page.click("#confirm-ok")
    expect(page.locator("#prompt-error")).to_contain_text("Give the new file a name")
    dialog.locator("button.secondary").click()
    expect(dialog).to_be_hidden()
    assert (app_dir / "app.py").read_bytes() == before

    # Delete, asked first: Cancel keeps it; Delete removes it, its row and its open tab.
    row.hover()
    row.locator("button.delete-file").click()
    expect(dialog).to_contain_text("Delete extra.py?")
    dialog.locator("button.secondary").click()
    assert (app_dir / "pkg" / "extra.py").exists()
    row.hover()
    row.locator("button.delete-file").click()
    page.click("#confirm-ok")
    expect(row).to_have_count(0)
    assert not (app_dir / "pkg" / "extra.py").exists()
    expect(page.locator(".tab", has_text="extra.py")).to_have_count(0)
    expect(page.locator("#statusbar")).to_contain_text(f"Deleted source/apps/{APP}/pkg/extra.py")

    # Changed on disk after the tree listed it: the delete is refused (its etag is stale).
    (app_dir / "README.md").write_text("changed meanwhile\n")
    readme = page.locator(f'#tree .tree-row.file[data-path="source/apps/{APP}/README.md"]')
    readme.hover()
    readme.locator("button.delete-file").click()
    page.click("#confirm-ok")
    expect(page.locator("#banner")).to_contain_text("changed since it was read")
    assert (app_dir / "README.md").read_text() == "changed meanwhile\n"


# ----------------------------------------------------------------------- save before a job

@needs_files
def test_a_job_runs_what_the_editor_shows(page: Any, daemon: Daemon) -> None:
    """Build (and Test, Package, Launch) first saves the app's unsaved tabs; a tab that cannot
    be saved (changed on disk meanwhile) stops the job from starting, and says why."""
    from playwright.sync_api import expect

    create_and_build(daemon, name=APP)
    path = daemon.workspace / "source" / "apps" / APP / "app.py"
    page.reload()
    text = open_app_py(page)
    page.evaluate("(t) => kitplay.setEditorText(t)", text + "# edited, not saved\n")
    expect(page.locator(".tab.active")).to_have_class("tab active dirty")
    builds = len(daemon.call("jobs.list", {"kind": "build"})["jobs"])

    page.locator("#appbar button.build").click()
    expect(page.locator("#statusbar")).to_contain_text(f"Build of {APP} succeeded",
                                                       timeout=120_000)
    assert path.read_text().endswith("# edited, not saved\n")  # saved before the build
    expect(page.locator(".tab.active")).not_to_have_class("tab active dirty")
    assert len(daemon.call("jobs.list", {"kind": "build"})["jobs"]) == builds + 1

    # Changed on disk by someone else, edited here: not saved, so no build either.
    path.write_text(text + "# theirs\n")
    page.evaluate("(t) => kitplay.setEditorText(t)", text + "# mine\n")
    page.locator("#appbar button.build").click()
    expect(page.locator("#statusbar")).to_contain_text(f"Build of {APP} not started: app.py "
                                                       "not saved")
    expect(page.locator("#editor-banner")).to_contain_text("app.py changed on disk")
    assert path.read_text() == text + "# theirs\n"
    assert len(daemon.call("jobs.list", {"kind": "build"})["jobs"]) == builds + 1
