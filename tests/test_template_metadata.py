"""What a template record says for the workbench page, on both toolchains: whether it can be
created alone, its kind, the layers it takes, its docs (README) and icon, and the workspace's
licence; and the icon route, which serves image bytes only, sandboxed.

Real daemon, real bridge; a hostile kit-app-template workspace (symlinks out, a script in an
SVG, HTML named .png) and Debian's chromium opening the icon URL directly.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest
from kitplay.daemon.protocol.errors import InvalidParams, InvalidState, NotFound
from kitplay.daemon.toolchains.kit import EULA_FILE

from tests.bridge_helpers import Bridge, bridge_fixture, make_bridge_fixture  # noqa: F401
from tests.browser_helpers import chromium, needs_chromium
from tests.helpers import Daemon
from tests.test_kit_toolchain import copy_checkout, error_of

EXT_ICON = "templates/extensions/basic_python/template/data/icon.png"
SVG_ATTACK = """<?xml version="1.0"?>
<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16"
     onload="new Image().src='/pwned-onload'">
  <script>new Image().src = '/pwned-script';</script>
  <rect width="16" height="16" fill="red"/>
</svg>
"""


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return copy_checkout(tmp_path / "kat", accept=False)


@pytest.fixture
def kit(make_daemon: type[Daemon], ws: Path) -> Daemon:
    return make_daemon(workspace=ws).start()


# -- builtin ------------------------------------------------------------------------------------


def test_builtin_templates_have_their_own_docs_and_icons(daemon: Daemon, bridge: Bridge) -> None:
    listed = daemon.call("templates.list")
    assert listed["license"] == {
        "required": False, "accepted": True, "url": None,
        "summary": "The builtin templates are part of kitplay and need no licence."}
    templates = {t["name"]: t for t in listed["templates"]}
    assert set(templates) == {"console_app", "gui_app", "service_app"}
    icons = set()
    for name, t in templates.items():
        assert (t["creatable"], t["kind"], t["layers"]) == (True, "application", []), name
        assert t["docs"].startswith(f"# {t['display_name']}\n"), name
        assert "kitplay templates create" in t["docs"]
        assert t["icon"] == f"/api/templates/icon/{name}"
        assert daemon.call("templates.get", {"name": name})["template"]["docs"] == t["docs"]
        r = bridge.http.get(t["icon"])
        assert r.status_code == 200 and r.headers["content-type"] == "image/svg+xml"
        assert r.content.startswith(b"<svg ") and b"<script" not in r.content
        assert "sandbox" in r.headers["content-security-policy"]
        assert r.headers["x-content-type-options"] == "nosniff"
        icons.add(r.content)
        via_socket = daemon.call("templates.icon", {"name": name})
        assert base64.b64decode(via_socket["data_base64"]) == r.content
        assert via_socket["size"] == len(r.content)
    assert len(icons) == 3  # each template its own
    err = error_of(daemon, "templates.icon", {"name": "no_such"})
    assert isinstance(err, NotFound)
    r = bridge.http.get("/api/templates/icon/no_such")
    assert r.status_code == 404 and r.json()["error"]["code"] == NotFound.code
    # The route takes a template id, never a path.
    for bad in ("..%2f..%2fetc%2fpasswd", "a%2fb", "%2e%2e"):
        r = bridge.http.get(f"/api/templates/icon/{bad}")
        assert r.status_code in (400, 404) and r.headers["content-type"].startswith(
            "application/json"), bad


def test_builtin_refuses_what_it_has_no_counterpart_for(daemon: Daemon) -> None:
    err = error_of(daemon, "templates.create", {"template": "console_app", "name": "a.b",
                                                "dry_run": True})
    assert isinstance(err, InvalidState) and "dry_run is for kit-app-template" in err.message
    for params in ({"extension_names": {"x": "y"}}, {"layers": ["x"]}):
        err = error_of(daemon, "templates.create",
                       {"template": "console_app", "name": "a.b", **params})
        assert isinstance(err, InvalidParams), params
    err = error_of(daemon, "build", {"config": "debug"})
    assert isinstance(err, InvalidParams) and "one configuration" in err.message
    assert daemon.call("jobs.list")["jobs"] == []


# -- kit-app-template ---------------------------------------------------------------------------


def test_kit_records_say_what_the_page_needs(kit: Daemon, ws: Path) -> None:
    listed = kit.call("templates.list")
    assert listed["license"]["required"] is True and listed["license"]["accepted"] is False
    t = {x["name"]: x for x in listed["templates"]}
    assert {n for n, x in t.items() if x["creatable"]} == {
        "kit_base_editor", "kit_service", "omni_usd_composer", "omni_usd_explorer",
        "omni_usd_viewer", "basic_python_extension", "basic_python_ui_extension",
        "basic_cpp_extension", "basic_python_binding"}
    assert {n: x["kind"] for n, x in t.items() if n in (
        "kit_base_editor", "nvcf_streaming", "basic_python_binding", "kit_service_setup")} == {
        "kit_base_editor": "application", "nvcf_streaming": "layer",
        "basic_python_binding": "extension", "kit_service_setup": "setup_extension"}
    # Layers only where the application's entry links them (link_all = true).
    assert [x["id"] for x in t["kit_base_editor"]["layers"]] == ["omni_default_streaming",
                                                                 "nvcf_streaming"]
    assert t["kit_service"]["layers"] == [] and t["basic_python_extension"]["layers"] == []
    assert all({"id", "name", "description"} <= set(x) for x in t["omni_usd_viewer"]["layers"])
    # Docs: the README beside the template (apps/<x>/, extensions/<x>/).
    assert t["kit_service"]["docs"].startswith("# Kit Service App Template")
    assert t["basic_python_extension"]["docs"].startswith("# Basic Python Extension Template")
    assert t["nvcf_streaming"]["docs"].startswith("# Streaming Configurations")
    # Icons: an extension's [package] icon; an application's window icon, from its setup
    # extension (omni.usd_composer.kit's iconPath); none where the template names none.
    assert t["basic_python_extension"]["icon"] == "/api/templates/icon/basic_python_extension"
    assert t["omni_usd_composer"]["icon"] == "/api/templates/icon/omni_usd_composer"
    assert t["kit_base_editor"]["icon"] is None and t["nvcf_streaming"]["icon"] is None
    icon = kit.call("templates.icon", {"name": "omni_usd_composer"})
    assert icon["content_type"] == "image/png"
    assert base64.b64decode(icon["data_base64"]) == (
        ws / "templates/extensions/usd_composer.setup/template/data"
        "/nvidia-omniverse-usd_composer.png").read_bytes()
    err = error_of(kit, "templates.icon", {"name": "kit_base_editor"})
    assert isinstance(err, NotFound) and "has no icon" in err.message


def test_icon_paths_name_the_workspace_of_the_call(make_daemon: type[Daemon], ws: Path,
                                                   make_bridge: Any) -> None:
    d = make_daemon().start()  # its own workspace is a builtin one
    b = make_bridge(d)
    listed = b.ok("GET", f"/api/templates/list?workspace={ws}")
    [t] = [x for x in listed["templates"] if x["name"] == "basic_cpp_extension"]
    assert t["icon"].startswith("/api/templates/icon/basic_cpp_extension?workspace=")
    r = b.http.get(t["icon"])
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content == (ws / "templates/extensions/basic_cpp/template/data/icon.png").read_bytes()
    got = b.ok("GET", f"/api/templates/get/basic_cpp_extension?workspace={ws}")["template"]
    assert got["icon"] == t["icon"]


def test_a_hostile_workspace_shows_nothing_from_outside(kit: Daemon, ws: Path,
                                                        tmp_path: Path, bridge: Bridge) -> None:
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not yours" * 10)
    readme_secret = tmp_path / "notes.md"
    readme_secret.write_text("# private notes\n")
    # A README and an icon that are symlinks out of the workspace.
    (ws / "templates/apps/kit_service/README.md").unlink()
    os.symlink(readme_secret, ws / "templates/apps/kit_service/README.md")
    (ws / EXT_ICON).unlink()
    os.symlink(secret, ws / EXT_ICON)
    # A directory on the way that is a symlink out.
    cpp = ws / "templates/extensions/basic_cpp/template/data"
    outside = tmp_path / "data"
    cpp.rename(outside)
    os.symlink(outside, cpp)
    # HTML named .png; an icon path that climbs out.
    (ws / "templates/extensions/python_ui/template/data/icon.png").write_text(
        "<html><script>alert(1)</script></html>")
    toml = ws / "templates/extensions/basic_python_binding/template/config/extension.toml"
    toml.write_text(toml.read_text().replace('icon = "data/icon.png"',
                                             f'icon = "../../../../../../{secret}"'))
    t = {x["name"]: x for x in kit.call("templates.list")["templates"]}
    assert t["kit_service"]["docs"] == ""
    for name in ("basic_python_extension", "basic_cpp_extension", "basic_python_ui_extension",
                 "basic_python_binding"):
        assert t[name]["icon"] is None, name
        assert isinstance(error_of(kit, "templates.icon", {"name": name}), NotFound)
    # The daemon's own workspace was not that one: over the bridge, name it.
    r = bridge.http.get("/api/templates/icon/basic_python_extension",
                        params={"workspace": str(ws)})
    assert r.status_code == 404 and b"not yours" not in r.content


def test_an_svg_icon_is_served_sandboxed(ws: Path, make_daemon: type[Daemon],
                                         make_bridge: Any) -> None:
    (ws / "templates/extensions/basic_python/template/data/icon.svg").write_text(SVG_ATTACK)
    toml = ws / "templates/extensions/basic_python/template/config/extension.toml"
    toml.write_text(toml.read_text().replace('"data/icon.png"', '"data/icon.svg"'))
    d = make_daemon(workspace=ws).start()
    b = make_bridge(d)
    r = b.http.get("/api/templates/icon/basic_python_extension")
    assert r.status_code == 200 and r.headers["content-type"] == "image/svg+xml"
    assert r.content == SVG_ATTACK.encode()
    csp = r.headers["content-security-policy"]
    assert "sandbox" in csp.split("; ") and "default-src 'none'" in csp
    assert "script-src" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "no-store"


@needs_chromium
def test_a_hostile_svg_runs_no_script_on_the_bridge_origin(ws: Path, make_daemon: type[Daemon],
                                                           make_bridge: Any) -> None:
    """Opened directly in chromium (the worst case: a top-level document on the bridge's
    origin), the SVG's script and onload do nothing; the same bytes served without kitplay's
    headers do run (so the test can fail)."""
    (ws / "templates/extensions/basic_python/template/data/icon.svg").write_text(SVG_ATTACK)
    toml = ws / "templates/extensions/basic_python/template/config/extension.toml"
    toml.write_text(toml.read_text().replace('"data/icon.png"', '"data/icon.svg"'))
    d = make_daemon(workspace=ws).start()
    b = make_bridge(d)
    with chromium() as page:
        seen: list[str] = []
        page.on("request", lambda req: seen.append(req.url))
        page.route(f"{b.url}/pwned-*", lambda route: route.fulfill(status=204, body=""))
        page.set_extra_http_headers({"Authorization": f"Bearer {b.token}"})
        # goto returns after the load event: an inline script or onload has run by then.
        loaded = page.goto(f"{b.url}/api/templates/icon/basic_python_extension")
        assert loaded is not None and loaded.status == 200
        assert loaded.headers["content-type"] == "image/svg+xml"
        assert not [u for u in seen if "pwned" in u], seen
        page.route(f"{b.url}/control.svg", lambda route: route.fulfill(
            status=200, content_type="image/svg+xml", body=SVG_ATTACK))
        with page.expect_request(lambda req: "pwned" in req.url):
            page.goto(f"{b.url}/control.svg")  # the same bytes without kitplay's headers


def test_dry_run_and_licence_state_over_rest(kit: Daemon, ws: Path, make_bridge: Any) -> None:
    b = make_bridge(kit)
    listed = b.ok("GET", "/api/templates/list")
    assert listed["license"]["accepted"] is False
    body = {"template": "omni_usd_viewer", "name": "dsx", "layers": ["nvcf_streaming"],
            "extension_names": {"omni_usd_viewer_messaging": "dsx.messaging_extension",
                                "omni_usd_viewer_setup": "dsx.setup_extension"},
            "version": "0.1.0.9", "dry_run": True}
    replay = b.ok("POST", "/api/templates/create", body)["replay"]
    assert 'application_name = "dsx"' in replay and "[omni_usd_viewer.applications." \
        "nvcf_streaming]" in replay and 'version = "0.1.0.9"' in replay
    assert not (ws / EULA_FILE).exists() and not (ws / "_kitplay").exists()
    r = b.post("/api/templates/create", {**body, "accept_license": True})
    assert r.status_code == 400 and r.json()["error"]["data"]["param"] == "accept_license"
    job = b.ok("POST", "/api/templates/create", {**body, "dry_run": False,
                                                  "accept_license": True})["job"]
    assert kit.wait_job(job["id"])["status"] == "succeeded"
    assert (ws / "_kitplay/replay-dsx.toml").read_text() == replay  # what it said it would run
    assert b.ok("GET", "/api/templates/list")["license"]["accepted"] is True
    r = b.post("/api/templates/create", body)  # the app exists now: refused, as a create is
    assert r.status_code == 409 and "already exists" in r.json()["error"]["message"]
