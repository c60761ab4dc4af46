"""The kit-app-template toolchain against the stand-in checkout, through a real daemon's socket.

Every test copies ``tests/fixtures/kit_app_template`` to a temporary directory and points a
real kitplayd at the copy; the stand-in's ``repo.sh`` is a real process in every create and
build, and the built ``<app>.kit.sh`` is a real process in every launch.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import psutil
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kitplay.daemon.protocol.errors import (
    InvalidParams,
    InvalidState,
    KitplayError,
    LicenseNotAccepted,
    NotFound,
)
from kitplay.daemon.protocol.registry import METHODS
from kitplay.daemon.protocol.schemas import COMPONENTS
from kitplay.daemon.toolchains.kit import EULA_FILE, KitToolchain
from kitplay.daemon.toolchains.kit_catalogue import replay_toml, toml_string

from tests.bridge_helpers import make_bridge_fixture  # noqa: F401
from tests.helpers import FIXTURES, ROOT, Daemon, wait_for

STANDIN = FIXTURES / "kit_app_template"
RELEASE = Path("_build/linux-x86_64/release")
STREAMING = "[omni_default_streaming]: Omniverse Kit App Streaming (Default)"


def copy_checkout(dest: Path, accept: bool = True) -> Path:
    shutil.copytree(STANDIN, dest)
    if accept:
        (dest / EULA_FILE).write_text("accepted by the test\n")
    return dest


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """A copy of the stand-in with the licence accepted."""
    return copy_checkout(tmp_path / "kat")


@pytest.fixture
def kit(make_daemon: type[Daemon], ws: Path) -> Daemon:
    return make_daemon(workspace=ws).start()


def error_of(d: Daemon, method: str, params: dict[str, Any]) -> Any:
    with pytest.raises(Exception) as info:
        d.call(method, params)
    return info.value


def run_job(d: Daemon, method: str, params: dict[str, Any], status: str = "succeeded",
            timeout: float = 60) -> dict[str, Any]:
    job = d.call(method, params)["job"]
    done = d.wait_job(job["id"], timeout)
    assert done["status"] == status, (done, d.job_log(job["id"]))
    return done


def create(d: Daemon, template: str, name: str, status: str = "succeeded",
           **kw: Any) -> dict[str, Any]:
    return run_job(d, "templates.create", {"template": template, "name": name, **kw}, status)


def replay_file(ws: Path, name: str) -> dict[str, Any]:
    with (ws / "_kitplay" / f"replay-{name}.toml").open("rb") as f:
        return tomllib.load(f)


# -- detection and catalogue -------------------------------------------------------------------


def test_detection_status_and_kit_version(kit: Daemon, ws: Path, tmp_path: Path) -> None:
    status = kit.call("daemon.status")
    assert status["toolchain"]["kind"] == "kit-app-template"
    # tools/VERSION.md is Kit's version; the root VERSION.md the project's (repo.toml
    # [repo.folders] version_file), as in kit-app-template 110.1.2.
    assert status["toolchain"]["kit_version"] == "110.1.2"
    assert status["toolchain"]["project_version"] == "0.1.0"
    assert status["toolchain"]["license_accepted"] is True
    listed = kit.call("templates.list")
    assert listed["toolchain"]["kind"] == "kit-app-template"
    assert listed["toolchain"]["kit_version"] == "110.1.2"
    assert listed["toolchain"]["errors"] == []

    other = copy_checkout(tmp_path / "other", accept=False)
    (other / "VERSION.md").write_text("2.5.0\n")
    (other / "tools" / "VERSION.md").unlink()  # then the kit-kernel package pins it
    xml = other / "tools" / "deps" / "kit-sdk.packman.xml"
    xml.write_text(xml.read_text().replace('version="110.1.2+', 'version="109.0.3+'))
    info = kit.call("templates.list", {"workspace": str(other)})["toolchain"]
    assert (info["kit_version"], info["project_version"], info["license_accepted"]) == (
        "109.0.3", "2.5.0", False)

    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "repo.sh").write_text("")  # not a checkout: repo.toml and templates missing
    info = kit.call("templates.list", {"workspace": str(plain)})["toolchain"]
    assert info["kind"] == "builtin"


def test_catalogue_contents_and_classes(kit: Daemon) -> None:
    templates = {t["name"]: t for t in kit.call("templates.list")["templates"]}
    expected = {
        "kit_base_editor": "application", "kit_service": "application",
        "omni_usd_composer": "application", "omni_usd_explorer": "application",
        "omni_usd_viewer": "application", "omni_default_streaming": "application_layer",
        "nvcf_streaming": "application_layer", "basic_python_extension": "extension",
        "basic_python_ui_extension": "extension", "basic_cpp_extension": "extension",
        "basic_python_binding": "binding_extension",
        "kit_service_setup": "setup_extension", "omni_usd_viewer_setup": "setup_extension",
        "omni_usd_viewer_messaging": "setup_extension",
    }
    for tid, kind in expected.items():
        assert templates[tid]["type"] == kind, tid
        assert templates[tid]["toolchain"] == "kit-app-template"
        assert templates[tid]["description"]
    assert templates["omni_usd_viewer"]["class"] == "ApplicationTemplate"
    assert templates["omni_usd_viewer"]["collection"] == "Sample Templates"
    assert templates["omni_default_streaming"]["display_name"] == \
        "Omniverse Kit App Streaming (Default)"
    assert templates["omni_default_streaming"]["kit_type"] == "streaming"
    assert templates["omni_default_streaming"]["creatable"] is False
    assert templates["basic_python_binding"]["class"] == "BindingExtensionTemplate"
    assert templates["basic_python_binding"]["creatable"] is True
    assert templates["kit_base_editor"]["variables"] == {
        "application_name": "my_company.my_editor", "application_display_name": "My Editor",
        "version": "0.1.0"}

    viewer = kit.call("templates.get", {"name": "omni_usd_viewer"})["template"]
    assert [x["label"] for x in viewer["layers"]] == [
        STREAMING, "[nvcf_streaming]: NVCF Streaming"]
    assert [(x["id"], x["name"]) for x in viewer["layers"]] == [
        ("omni_default_streaming", "Omniverse Kit App Streaming (Default)"),
        ("nvcf_streaming", "NVCF Streaming")]
    assert {(x["id"], x["kit_type"], x["extension_name"]) for x in viewer["extensions"]} == {
        ("omni_usd_viewer_setup", "setup", "my_company.my_usd_viewer_setup_extension"),
        ("omni_usd_viewer_messaging", "extra", "my_company.my_usd_viewer_messaging_extension")}
    service = kit.call("templates.get", {"name": "kit_service"})["template"]
    assert service["layers"] == []
    assert [x["id"] for x in service["extensions"]] == ["kit_service_setup"]

    err = error_of(kit, "templates.get", {"name": "no_such_template"})
    assert isinstance(err, NotFound)
    assert "kit_base_editor" in err.message


def test_missing_or_broken_collection_is_reported(kit: Daemon, tmp_path: Path) -> None:
    missing = copy_checkout(tmp_path / "missing")
    (missing / "templates" / "sample_templates.toml").unlink()
    res = kit.call("templates.list", {"workspace": str(missing)})
    names = {t["name"] for t in res["templates"]}
    assert "kit_base_editor" in names and "omni_usd_viewer" not in names
    [error] = res["toolchain"]["errors"]
    assert "sample_templates" in error and "does not exist" in error
    assert kit.call("daemon.status")["toolchain"]["errors"] == []  # the daemon's own is fine

    broken = copy_checkout(tmp_path / "broken")
    (broken / "templates" / "core_templates.toml").write_text("[templates.oops\n")
    index = broken / "templates" / "templates.toml"
    index.write_text(index.read_text() + '\n[templates."remote"]\nclass = '
                     '"TemplateCollection"\nname = "Remote"\nurl = "https://example.invalid/x"\n')
    res = kit.call("templates.list", {"workspace": str(broken)})
    assert "omni_usd_viewer" in {t["name"] for t in res["templates"]}
    errors = "\n".join(res["toolchain"]["errors"])
    assert "core_templates.toml is not valid TOML" in errors
    assert "not a local file:// url" in errors
    err = error_of(kit, "templates.get", {"name": "kit_base_editor", "workspace": str(broken)})
    assert isinstance(err, NotFound)


def _inline(schema: Any) -> Any:
    """A result schema with its ``#/components/schemas/X`` references inlined."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            return _inline(COMPONENTS[schema["$ref"].rsplit("/", 1)[1]])
        return {k: _inline(v) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_inline(v) for v in schema]
    return schema


def test_results_match_the_registry_schemas(kit: Daemon) -> None:
    create(kit, "omni_usd_viewer", "acme.viewer", layers=["nvcf_streaming"])
    create(kit, "basic_cpp_extension", "acme.cpp")
    for method, params in [("templates.list", {}), ("templates.get", {"name": "kit_service"}),
                           ("templates.get", {"name": "nvcf_streaming"}), ("apps.list", {}),
                           ("daemon.status", {})]:
        result = kit.call(method, params)
        jsonschema.validate(result, _inline(METHODS[method].result))
    assert len(kit.call("apps.list")["apps"]) == 5  # app, layer, 2 setup extensions, extension


# -- licence -----------------------------------------------------------------------------------


def test_licence_refused_until_explicitly_accepted(make_daemon: type[Daemon],
                                                   tmp_path: Path) -> None:
    """Only the template tool needs the licence (README.md: `template new` asks for it;
    tools/ci/build.py creates the breadcrumb before its `template replay`); no real file shows
    build, launch, test or package checking it, so kitplay does not refuse them."""
    ws = copy_checkout(tmp_path / "kat", accept=False)
    d = make_daemon(workspace=ws).start()
    listed = d.call("templates.list")["license"]
    assert listed["required"] is True and listed["accepted"] is False
    assert EULA_FILE in listed["summary"] and "accept_license" in listed["summary"]
    assert listed["url"].startswith("https://www.nvidia.com/")
    for params in ({"template": "kit_base_editor", "name": "my_company.ed"},
                   {"template": "kit_base_editor", "name": "ed", "accept_license": False}):
        err = error_of(d, "templates.create", params)
        assert isinstance(err, LicenseNotAccepted), err
        assert err.code == -32003
        assert "accept_license: true" in err.message and "--accept-license" in err.message
        assert "kitplay templates create" in err.message
    # A dry run runs no tool: no licence needed, nothing written.
    assert "application_name" in d.call("templates.create", {
        "template": "kit_base_editor", "name": "ed", "dry_run": True})["replay"]
    assert not (ws / EULA_FILE).exists()
    assert d.call("jobs.list")["jobs"] == []
    # The other tools run without it (the stand-in, like the real tools, does not ask).
    run_job(d, "build", {})
    assert not (ws / EULA_FILE).exists()
    assert d.call("daemon.status")["toolchain"]["license_accepted"] is False

    create(d, "kit_base_editor", "my_company.ed", accept_license=True)
    assert (ws / EULA_FILE).is_file()
    assert d.call("daemon.status")["toolchain"]["license_accepted"] is True
    assert d.call("templates.list")["license"]["accepted"] is True
    create(d, "kit_service", "my_company.svc")  # accepted once, for the checkout

    # accept_license on another tool accepts too: the caller said so.
    other = copy_checkout(tmp_path / "other", accept=False)
    run_job(d, "build", {"workspace": str(other), "accept_license": True})
    assert (other / EULA_FILE).is_file()


# -- create ------------------------------------------------------------------------------------


def test_create_application_with_streaming_layer(kit: Daemon, ws: Path) -> None:
    done = create(kit, "kit_base_editor", "my_company.my_editor", display_name="My Editor é",
                  version="1.2.3", layers=["omni_default_streaming"])
    assert replay_file(ws, "my_company.my_editor") == {"kit_base_editor": {
        "application_name": "my_company.my_editor", "application_display_name": "My Editor é",
        "version": "1.2.3", "add_layers": "Yes", "selected_layers": [STREAMING],
        "applications": {"omni_default_streaming": {}}}}
    assert (ws / "source/apps/my_company.my_editor.kit").is_file()
    assert (ws / "source/apps/my_company.my_editor_streaming.kit").is_file()
    result = done["result"]
    assert result["files"] == ["source/apps/my_company.my_editor.kit",
                               "source/apps/my_company.my_editor_streaming.kit",
                               "source/rendered_template_metadata.json"]
    assert result["modified"] == ["premake5.lua", "repo.toml"]
    assert result["layers"] == ["my_company.my_editor_streaming"]
    assert 'define_app("my_company.my_editor_streaming.kit")' in (ws / "premake5.lua").read_text()

    apps = {a["name"]: a for a in kit.call("apps.list")["apps"]}
    assert apps["my_company.my_editor"]["type"] == "application"
    assert apps["my_company.my_editor"]["display_name"] == "My Editor é"
    assert apps["my_company.my_editor"]["version"] == "1.2.3"
    assert apps["my_company.my_editor"]["template"] == "kit_base_editor"
    assert apps["my_company.my_editor"]["built"] is False
    assert apps["my_company.my_editor_streaming"]["type"] == "application_layer"
    assert apps["my_company.my_editor_streaming"]["parent"] == "my_company.my_editor"
    log = kit.job_log(done["id"])
    assert "./repo.sh template replay _kitplay/replay-my_company.my_editor.toml" in log
    assert "Application 'my_company.my_editor_streaming' created successfully" in log


def test_create_application_with_setup_extensions(kit: Daemon, ws: Path) -> None:
    """Setup extensions keep the catalogue's names unless the caller names them (NVIDIA's
    committed metadata at f7b0dac keeps my_company.my_usd_viewer_messaging_extension for the
    app my_company.my_usd_viewer09_15)."""
    done = create(kit, "omni_usd_viewer", "acme.viewer", display_name="Viewer",
                  version="2.0.1.7",
                  extension_names={"omni_usd_viewer_setup": "acme.viewer_setup"})
    replay = replay_file(ws, "acme.viewer")["omni_usd_viewer"]
    assert "add_layers" not in replay and "applications" not in replay
    assert list(replay["extensions"]) == ["omni_usd_viewer_messaging", "omni_usd_viewer_setup"]
    assert replay["extensions"]["omni_usd_viewer_setup"] == {
        "extension_name": "acme.viewer_setup",
        "extension_display_name": "My USD Viewer Setup Extension", "version": "2.0.1.7"}
    assert replay["extensions"]["omni_usd_viewer_messaging"] == {
        "extension_name": "my_company.my_usd_viewer_messaging_extension",
        "extension_display_name": "My USD Viewer Messaging Extension", "version": "2.0.1.7"}
    for ext in ("acme.viewer_setup", "my_company.my_usd_viewer_messaging_extension"):
        assert (ws / "source/extensions" / ext / "config/extension.toml").is_file()
    assert done["result"]["extensions"] == ["my_company.my_usd_viewer_messaging_extension",
                                            "acme.viewer_setup"]
    assert "source/extensions/acme.viewer_setup/config/extension.toml" in \
        done["result"]["files"]
    kinds = {a["name"]: a["type"] for a in kit.call("apps.list")["apps"]}
    assert kinds["acme.viewer_setup"] == "setup_extension"

    # A second viewer with the default messaging name: refused before anything runs, saying
    # how to name it; then named, it is made.
    err = error_of(kit, "templates.create", {"template": "omni_usd_viewer", "name": "two"})
    assert isinstance(err, InvalidState) and err.exit_code == 5
    assert "my_company.my_usd_viewer_messaging_extension already exists" in err.message
    assert 'extension_names: {"omni_usd_viewer_messaging": "..."}' in err.message
    create(kit, "omni_usd_viewer", "two", extension_names={
        "omni_usd_viewer_messaging": "two.messaging", "omni_usd_viewer_setup": "two.setup"})
    for params, text in (
            ({"extension_names": {"omni_usd_viewer_nope": "x"}},
             "adds no setup extension 'omni_usd_viewer_nope'"),
            ({"extension_names": {"omni_usd_viewer_setup": "Bad Name"}},
             "extension_names.omni_usd_viewer_setup 'Bad Name' is not a valid name"),
            ({"extension_names": {"omni_usd_viewer_setup": 3}}, "must be a string"),
            ({"extension_names": {"omni_usd_viewer_setup": "three.x",
                                  "omni_usd_viewer_messaging": "three.x"}},
             "would have the same name")):
        err = error_of(kit, "templates.create", {"template": "omni_usd_viewer",
                                                 "name": "three", **params})
        assert isinstance(err, InvalidParams) and text in err.message, err
    err = error_of(kit, "templates.create", {"template": "basic_python_extension", "name": "x",
                                             "extension_names": {"a": "b"}})
    assert isinstance(err, InvalidParams) and "takes no extension_names" in err.message


def test_create_extension(kit: Daemon, ws: Path) -> None:
    done = create(kit, "basic_python_extension", "my_company.my_ext", display_name="My Ext")
    assert replay_file(ws, "my_company.my_ext") == {"basic_python_extension": {
        "extension_name": "my_company.my_ext", "extension_display_name": "My Ext",
        "version": "0.1.0"}}
    ext = ws / "source/extensions/my_company.my_ext"
    assert (ext / "my_company/my_ext/extension.py").is_file()
    assert done["result"]["path"] == str(ext)
    assert "source/extensions/my_company.my_ext/config/extension.toml" in done["result"]["files"]
    apps = {a["name"]: a for a in kit.call("apps.list")["apps"]}
    assert apps["my_company.my_ext"]["type"] == "extension"
    assert apps["my_company.my_ext"]["built"] is False  # not in _build/<platform>/release/exts

    # basic_python_binding (BindingExtensionTemplate): answered like the CI's
    # basic_pybind11_extension.toml.j2, plus the display name.
    done = create(kit, "basic_python_binding", "my_company.my_binding")
    assert replay_file(ws, "my_company.my_binding") == {"basic_python_binding": {
        "extension_name": "my_company.my_binding",
        "extension_display_name": "My Pybind11 Extension", "version": "0.1.0"}}
    assert (ws / "source/extensions/my_company.my_binding/config/extension.toml").is_file()
    apps = {a["name"]: a for a in kit.call("apps.list")["apps"]}
    assert apps["my_company.my_binding"]["type"] == "binding_extension"
    assert apps["my_company.my_binding"]["template"] == "basic_python_binding"


def test_bad_create_params_are_refused_before_a_job(kit: Daemon) -> None:
    cases: list[tuple[dict[str, Any], type[KitplayError], str]] = [
        ({"template": "kit_base_editor", "name": "My.App", "layers": ["omni_default_streaming"]},
         InvalidParams, "not a valid name: it must be lowercase letters, digits and _"),
        ({"template": "kit_base_editor", "name": "a..b"}, InvalidParams, "not a valid name"),
        ({"template": "kit_base_editor", "name": "a.b", "layers": ["no_layer"]},
         InvalidParams, "valid layers: omni_default_streaming, nvcf_streaming"),
        ({"template": "basic_python_extension", "name": "a.b", "layers": ["nvcf_streaming"]},
         InvalidParams, "takes no layers"),
        ({"template": "omni_default_streaming", "name": "a.b"}, InvalidParams,
         "cannot be created on its own"),
        ({"template": "kit_base_editor", "name": "a.b", "version": 'one"two'}, InvalidParams,
         "without quotes, backslashes"),
        ({"template": "kit_base_editor", "name": "a.b", "version": " "}, InvalidParams,
         "must be 1-64 characters"),
        ({"template": "nope", "name": "a.b"}, NotFound, "no template named 'nope'"),
    ]
    for params, cls, text in cases:
        err = error_of(kit, "templates.create", params)
        assert isinstance(err, cls) and text in err.message, (params, err)
    assert kit.call("jobs.list")["jobs"] == []


def test_create_existing_app_is_refused(make_daemon: type[Daemon], ws: Path) -> None:
    _recording(ws)
    d = make_daemon(workspace=ws, env={"KIT_TEST_HOLD": "build"}).start()
    create(d, "kit_base_editor", "my_company.app")
    before = (ws / "source/apps/my_company.app.kit").read_bytes()
    err = error_of(d, "templates.create", {"template": "kit_service", "name": "my_company.app"})
    assert isinstance(err, InvalidState) and "already exists" in err.message
    # Two creates of one name, both accepted while a build (held) keeps them queued: creates
    # and builds of a checkout share one queue; the second create finds the app at run time.
    build = d.call("build", {})["job"]
    wait_for(lambda: "BUILD (RELEASE) SUCCEEDED" in d.job_log(build["id"]), 30, "the build")
    a = d.call("templates.create", {"template": "kit_base_editor", "name": "my_company.twin"})
    b = d.call("templates.create", {"template": "kit_service", "name": "my_company.twin"})
    assert d.call("jobs.get", {"job_id": a["job"]["id"]})["job"]["status"] == "queued"
    (ws / "go").touch()
    assert d.wait_job(build["id"])["status"] == "succeeded"
    assert d.wait_job(a["job"]["id"])["status"] == "succeeded"
    second = d.wait_job(b["job"]["id"])
    assert second["status"] == "failed"
    assert second["error"]["step"] == "write _kitplay/replay-my_company.twin.toml"
    assert "source/apps/my_company.twin.kit appeared meanwhile" in second["error"]["message"]
    # Untouched by the failed create (the build appended its generated part, as precache does).
    assert (ws / "source/apps/my_company.app.kit").read_bytes().startswith(before)
    records = json.loads((ws / "source/rendered_template_metadata.json").read_text())
    assert [tid for tid, apps in records["Application"].items()
            if "my_company.twin" in apps] == ["kit_base_editor"]


def test_replay_gets_yes_as_the_real_ci_gives_it(ws: Path) -> None:
    """kitplay pipes what `yes` writes into `template replay`, as tools/ci/container_builder.py
    does; a target that appears after kitplay's checks is still kept: the tool refuses it, and
    the preparing step refuses it before the tool runs."""
    tc = KitToolchain(ws)
    plan = tc.plan_create({"template": "kit_base_editor", "name": "app"})
    prepare = plan.steps[0].func
    assert prepare is not None
    log = _Log()
    prepare(log)
    assert "application_name = \"app\"" in log.text
    step = plan.steps[1]
    assert step.argv is not None and step.stdin == b"y\n" * 1024
    assert step.name == "yes | ./repo.sh template replay _kitplay/replay-app.toml"
    target = ws / "source/apps/app.kit"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("mine\n")
    proc = subprocess.run(step.argv, cwd=step.cwd, input=step.stdin, capture_output=True,
                          timeout=60)
    assert proc.returncode == 1 and b"already exists; nothing was written" in proc.stderr
    assert target.read_text() == "mine\n"
    with pytest.raises(InvalidState, match="appeared meanwhile"):
        prepare(log)


def test_replay_tool_failure_names_the_step(kit: Daemon, ws: Path) -> None:
    src = ws / "templates/apps/kit_service/kit_service.kit"
    src.write_text(src.read_text() + "\n# {{ undefined_variable }}\n")
    done = create(kit, "kit_service", "my_company.svc", status="failed")
    step = "yes | ./repo.sh template replay _kitplay/replay-my_company.svc.toml"
    assert done["error"]["step"] == step
    msg = done["error"]["message"]
    assert msg.startswith(f"create failed: step '{step}' exited with code 1; the tool's last "
                          "lines:\n")
    assert "Error: template variable 'undefined_variable' has no value" in msg
    assert not (ws / "source/apps/my_company.svc.kit").exists()


# -- build -------------------------------------------------------------------------------------


def test_build_and_launch_headless(kit: Daemon, ws: Path) -> None:
    create(kit, "kit_base_editor", "my_company.ed", layers=["omni_default_streaming"])
    (ws / "_build").mkdir()
    (ws / "_build" / "stale").write_text("from an older build\n")
    done = run_job(kit, "build", {"clean": True})
    log = kit.job_log(done["id"])
    # -x/--rebuild "Rebuilds the project from scratch" (the tooling guide): one step.
    assert "[kitplay] step 1/1: ./repo.sh build -x -r" in log
    assert "BUILD (RELEASE) SUCCEEDED" in log
    assert not (ws / "_build" / "stale").exists()
    assert done["result"]["config"] == "release"
    assert done["result"]["apps"] == ["my_company.ed", "my_company.ed_streaming"]
    assert {a["name"]: a["built"] for a in kit.call("apps.list")["apps"]} == {
        "my_company.ed": True, "my_company.ed_streaming": True}

    done = run_job(kit, "launch", {"app": "my_company.ed", "display": "headless",
                                   "dev_bundle": True,
                                   "args": ["--/app/quitAfter=1", "--foo"]})
    log = kit.job_log(done["id"])
    script = ws / RELEASE / "my_company.ed.kit.sh"
    assert f"{script} --no-window --enable omni.kit.developer.bundle --/app/quitAfter=1 " \
           "--foo" in log
    assert "running without window" in log
    assert "enabled omni.kit.developer.bundle" in log
    assert "Arguments: --no-window --enable omni.kit.developer.bundle --/app/quitAfter=1 --foo" \
        in log
    assert "[omni.kit.app] app ready" in log


def test_build_one_app_and_unknown_app(kit: Daemon) -> None:
    create(kit, "kit_service", "my_company.svc")
    assert run_job(kit, "build", {"app": "my_company.svc"})["result"]["app"] == "my_company.svc"
    err = error_of(kit, "build", {"app": "my_company.other"})
    assert isinstance(err, NotFound) and "my_company.svc" in err.message


def test_build_fetch_failure_names_step_and_tool_lines(make_daemon: type[Daemon],
                                                       ws: Path) -> None:
    d = make_daemon(workspace=ws, env={"KIT_STANDIN_FAIL_FETCH": "1"}).start()
    create(d, "kit_service", "my_company.svc")
    done = run_job(d, "build", {}, status="failed")
    assert done["error"]["step"] == "./repo.sh build -r"
    msg = done["error"]["message"]
    assert msg.startswith("build failed: step './repo.sh build -r' exited with code 1; the "
                          "tool's last lines:\n")
    assert "packman(ERROR): Failed to download package 'kit-kernel@110.1.2" in msg
    assert "BUILD (RELEASE) FAILED" in msg
    assert "[kitplay]" not in msg
    assert done["exit_code"] == 1


def test_build_of_a_malformed_app_fails(kit: Daemon, ws: Path) -> None:
    create(kit, "kit_service", "my_company.svc")
    (ws / "source/apps/my_company.svc.kit").write_text("[settings]\nx = 1\n")
    done = run_job(kit, "build", {}, status="failed")
    assert "Error: source/apps/my_company.svc.kit has no [package] table" in \
        done["error"]["message"]


# -- launch ------------------------------------------------------------------------------------


def test_launch_not_built_or_unknown(kit: Daemon) -> None:
    create(kit, "kit_service", "my_company.svc")
    err = error_of(kit, "launch", {"app": "my_company.svc", "display": "headless"})
    assert isinstance(err, InvalidState)
    assert "not built yet" in err.message and "kitplay build" in err.message
    err = error_of(kit, "launch", {"app": "my_company.nothing", "display": "headless"})
    assert isinstance(err, NotFound) and "my_company.svc" in err.message
    assert kit.call("jobs.list", {"kind": "launch"})["jobs"] == []


def _app_processes(ws: Path) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(str(ws / RELEASE) in a for a in p.info["cmdline"] or []):
                out.append(p)
        except psutil.Error:
            pass
    return out


def test_cancel_a_launch_leaves_no_process(kit: Daemon, ws: Path) -> None:
    create(kit, "kit_service", "my_company.svc")
    run_job(kit, "build", {})
    job = kit.call("launch", {"app": "my_company.svc", "display": "headless"})["job"]
    wait_for(lambda: "heartbeat 1" in kit.job_log(job["id"]), 30, "the app's first heartbeat")
    assert _app_processes(ws)
    done = kit.call("jobs.cancel", {"job_id": job["id"], "grace_s": 5})["job"]
    assert done["status"] == "cancelled"
    assert "[omni.kit.app] shutting down" in kit.job_log(job["id"])
    assert _app_processes(ws) == []


# -- never interactive -------------------------------------------------------------------------

RECORDER = """#!/usr/bin/env bash
# Records each invocation, then runs the stand-in; with KIT_TEST_HOLD=template (or build),
# that command then waits for a file named "go" before it exits.
printf '%s\\n' "$*" >> "$(dirname "$0")/repo_calls.txt"
python3 "$(dirname "$0")/tools/repoman/repo.py" "$@"
rc=$?
if [ "$1" = "$KIT_TEST_HOLD" ]; then
  while [ ! -e "$(dirname "$0")/go" ]; do sleep 0.05; done
fi
exit $rc
"""


def _recording(ws: Path) -> Path:
    (ws / "repo.sh").write_text(RECORDER)
    (ws / "repo.sh").chmod(0o755)
    return ws / "repo_calls.txt"


def test_kitplay_never_runs_the_interactive_commands(kit: Daemon, ws: Path) -> None:
    calls = _recording(ws)
    create(kit, "kit_base_editor", "my_company.ed", layers=["omni_default_streaming"])
    create(kit, "basic_cpp_extension", "my_company.cpp")
    run_job(kit, "build", {"clean": True})
    launched = run_job(kit, "launch", {"app": "my_company.ed", "display": "headless",
                                       "args": ["--/app/quitAfter=0"]})
    play = ws / "_kitplay"
    assert calls.read_text().splitlines() == [
        f"template replay {play}/replay-my_company.ed.toml",
        f"template replay {play}/replay-my_company.cpp.toml",
        "build -x -r"]
    log = kit.job_log(launched["id"])
    assert "? Select" not in log and "Starting my_company.ed (Kit 110.1.2, release)" in log
    assert (play / ".gitignore").read_text().splitlines()[-1] == "*"


def test_create_timeout_and_recovery_after_a_daemon_crash(make_daemon: type[Daemon],
                                                          ws: Path) -> None:
    _recording(ws)
    d = make_daemon(workspace=ws, env={"KIT_TEST_HOLD": "template"},
                    config="create_timeout_s = 1.0\n").start()
    done = create(d, "kit_service", "my_company.slow", status="failed")
    assert "step 'yes | ./repo.sh template replay _kitplay/replay-my_company.slow.toml' " \
        "timed out after 1 s (raise create_timeout_s" in done["error"]["message"]
    shutil.rmtree(ws / "source")  # what the held replay wrote
    (ws / "source").mkdir()
    d.stop()

    d.config.write_text("")
    d.start()
    job = d.call("templates.create", {"template": "kit_service", "name": "my_company.app"})["job"]
    wait_for(lambda: (ws / "source/apps/my_company.app.kit").exists(), 30, "the replay's .kit")
    d.kill9()
    d.start()  # re-plans the running create; its .kit already exists
    (ws / "go").touch()
    done = d.wait_job(job["id"])
    assert done["status"] == "succeeded", (done, d.job_log(job["id"]))
    assert "source/apps/my_company.app.kit" in done["result"]["files"]


# -- replay file writing (unit) ----------------------------------------------------------------


@settings(max_examples=300, database=None, deadline=None)
@given(st.text())
def test_toml_string_round_trips(value: str) -> None:
    assert tomllib.loads(f"v = {toml_string(value)}\n") == {"v": value}


def test_replay_toml_shape() -> None:
    text = replay_toml([(["a b"], {"x": "q\"\\\n", "flag": True, "list": ["[id]: N"]}),
                        (["a b", "extensions", "e"], {"n": 1}), (["a b", "applications", "l"], {})])
    assert tomllib.loads(text) == {"a b": {"x": "q\"\\\n", "flag": True, "list": ["[id]: N"],
                                           "extensions": {"e": {"n": 1}},
                                           "applications": {"l": {}}}}


class _Log:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text



# -- the same through the kitplay command and the REST bridge -----------------------------------


def kitplay(d: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KITPLAY_SOCKET": str(d.socket),
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "kitplay.cli_client", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_create_build_launch(make_daemon: type[Daemon], tmp_path: Path) -> None:
    ws = copy_checkout(tmp_path / "kat", accept=False)
    d = make_daemon().start()  # its default workspace is not the checkout: --workspace is
    w = ("--workspace", str(ws))
    app = "my_company.cli_app"
    refused = kitplay(d, "templates", "create", "kit_base_editor", app, *w)
    assert refused.returncode == LicenseNotAccepted.exit_code, refused.stderr
    assert "--accept-license" in refused.stderr

    made = kitplay(d, "templates", "create", "kit_base_editor", app, "--layers",
                   "omni_default_streaming", "--accept-license", "--json", "--follow", *w)
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["job"]["toolchain"] == "kit-app-template"
    assert f"Application '{app}_streaming' created successfully" in made.stderr  # the log
    assert (ws / EULA_FILE).is_file() and (ws / f"source/apps/{app}.kit").is_file()

    listed = kitplay(d, "templates", "list", *w)
    assert "toolchain: kit-app-template" in listed.stdout
    assert re.search(r"^omni_default_streaming +application_layer +Omniverse Kit App Streaming "
                     r"\(Default\) +Layer for an app's `layers` \(Core Templates\)$",
                     listed.stdout, re.M), listed.stdout
    assert "licence is not accepted" not in listed.stderr  # accepted by the create above

    assert kitplay(d, "launch", app, "--display", "headless", *w).returncode == \
        InvalidState.exit_code
    built = kitplay(d, "build", "--follow", *w)
    assert built.returncode == 0 and "BUILD (RELEASE) SUCCEEDED" in built.stdout, built.stderr
    apps = json.loads(kitplay(d, "apps", "list", "--json", *w).stdout)["apps"]
    assert {a["name"]: a["built"] for a in apps} == {app: True, f"{app}_streaming": True}
    ran = kitplay(d, "launch", app, "--display", "headless", "--follow", *w, "--",
                  "--/app/quitAfter=0")
    assert ran.returncode == 0, ran.stderr
    assert "running without window" in ran.stdout and "--/app/quitAfter=0" in ran.stdout


def test_rest_create_build_launch_cancel(make_daemon: type[Daemon], ws: Path,
                                         make_bridge: Any) -> None:
    (ws / EULA_FILE).unlink()
    d = make_daemon(workspace=ws).start()
    b = make_bridge(d, "--rate-limit", "10000", "--rate-burst", "10000")
    listed = b.ok("GET", "/api/templates/list")
    assert listed["toolchain"]["kind"] == "kit-app-template"
    assert listed["toolchain"]["kit_version"] == "110.1.2"
    viewer = b.ok("GET", "/api/templates/get/omni_usd_viewer")["template"]
    assert viewer["layers"][0]["label"] == STREAMING
    app = "my_company.rest_app"
    body = {"template": "kit_base_editor", "name": app, "layers": ["omni_default_streaming"]}
    r = b.post("/api/templates/create", body)
    assert r.status_code == 403 and r.json()["error"]["code"] == -32003, r.text

    def wait(job: dict[str, Any]) -> dict[str, Any]:
        res = b.ok("GET", f"/api/jobs/{job['id']}/wait?timeout_s=60")
        assert not res["timed_out"]
        final: dict[str, Any] = res["job"]
        return final

    job = b.ok("POST", "/api/templates/create", {**body, "accept_license": True})["job"]
    assert wait(job)["status"] == "succeeded", d.job_log(job["id"])
    assert replay_file(ws, app)["kit_base_editor"]["selected_layers"] == [STREAMING]
    r = b.post("/api/launch", {"app": app, "display": "headless"})
    assert r.status_code == 409 and "not built yet" in r.json()["error"]["message"]
    job = b.ok("POST", "/api/build", {"clean": True})["job"]
    assert wait(job)["status"] == "succeeded"
    assert "BUILD (RELEASE) SUCCEEDED" in d.job_log(job["id"])
    job = b.ok("POST", "/api/launch", {"app": app, "display": "headless",
                                        "args": ["--rest-arg"]})["job"]
    wait_for(lambda: "heartbeat 1" in d.job_log(job["id"]), 30, "the app's first heartbeat")
    assert "Arguments: --no-window --rest-arg" in d.job_log(job["id"])
    assert b.ok("DELETE", f"/api/jobs/{job['id']}")["job"]["status"] == "cancelled"
    assert _app_processes(ws) == []


@pytest.mark.xpra
@pytest.mark.skipif(shutil.which("xpra") is None, reason="xpra is not installed")
def test_launch_in_an_xpra_display(kit: Daemon, ws: Path) -> None:
    create(kit, "kit_service", "my_company.svc")
    run_job(kit, "build", {})
    with kit.client(timeout=60) as c:
        job = c.call("launch", {"app": "my_company.svc", "display": "xpra"})["job"]
        rec: dict[str, Any] = {}
        for note in c.follow(job["id"]):
            rec = note["params"].get("job") or {}
            display = (rec.get("result") or {}).get("display")
            if note["method"] == "jobs.state" and display and display["ready"]:
                break
    [session] = kit.call("sessions.list")["sessions"]
    assert session["path"] == rec["result"]["display"]["path"]
    wait_for(lambda: "app ready" in kit.job_log(job["id"]), 30, "the app under Xpra")
    script = str(ws / RELEASE / "my_company.svc.kit.sh")
    [app] = [p for p in _app_processes(ws) if p.name() == "bash" and p.cmdline()[-1] == script]
    assert app.environ().get("DISPLAY") == session["x_display"]
    assert "running without window" not in kit.job_log(job["id"])
    assert kit.call("jobs.cancel", {"job_id": job["id"]})["job"]["status"] == "cancelled"
    assert _app_processes(ws) == []
