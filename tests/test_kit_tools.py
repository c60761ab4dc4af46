"""Every tool of kit-app-template 110.1.2 through kitplay: create (all application templates,
with and without layers), build, apps.list after a build, test, package, package_container,
apps.modify; over the socket, the kitplay command and REST.  Also the builtin toolchain's test
and package.

Real daemon, real ``repo.sh`` (the stand-in checkout, tests/fixtures/kit_app_template), real
processes; the checkout is copied for every test.
"""

from __future__ import annotations

import json
import os
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest
from kitplay.daemon.protocol.errors import InvalidParams, InvalidState, NotFound, Unsupported
from kitplay.daemon.toolchains.kit_catalogue import load_catalogue

from tests.bridge_helpers import make_bridge_fixture  # noqa: F401
from tests.helpers import Daemon, create_and_build
from tests.test_kit_toolchain import (
    STANDIN,
    _recording,
    copy_checkout,
    create,
    error_of,
    kitplay,
    run_job,
)

APP_TEMPLATES = [t for t, e in load_catalogue(STANDIN).entries.items()
                 if e["class"] == "ApplicationTemplate"]


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return copy_checkout(tmp_path / "kat")


@pytest.fixture
def kit(make_daemon: type[Daemon], ws: Path) -> Daemon:
    return make_daemon(workspace=ws).start()


def test_all_five_application_templates_are_here() -> None:
    assert sorted(APP_TEMPLATES) == ["kit_base_editor", "kit_service", "omni_usd_composer",
                                     "omni_usd_explorer", "omni_usd_viewer"]


@pytest.mark.parametrize("tid", APP_TEMPLATES)
def test_application_template_with_and_without_layers(kit: Daemon, ws: Path, tid: str) -> None:
    tpl = kit.call("templates.get", {"name": tid})["template"]
    layers = [x["id"] for x in tpl["layers"]]
    exts = [x["id"] for x in tpl["extensions"]]
    plain = create(kit, tid, "acme.plain", display_name="Plain", version="1.0.0",
                   extension_names={e: f"acme.plain_{e}" for e in exts})["result"]
    assert plain["layers"] == [] and len(plain["extensions"]) == len(exts)
    layered = create(kit, tid, "acme.layered", display_name="Layered", layers=layers,
                     extension_names={e: f"acme.layered_{e}" for e in exts})["result"]
    assert len(layered["layers"]) == len(layers)
    run_job(kit, "build", {})

    # apps.list after the build: precache appended its generated part to every .kit.
    kit_file = ws / "source/apps/acme.layered.kit"
    assert "# BEGIN GENERATED PART" in kit_file.read_text()
    apps = {a["name"]: a for a in kit.call("apps.list")["apps"]}
    assert apps["acme.plain"] | {"path": ""} == {
        "name": "acme.plain", "type": "application", "template": tid, "display_name": "Plain",
        "version": "1.0.0", "path": "", "parent": None, "exists": True, "built": True}
    assert apps["acme.layered"]["display_name"] == "Layered"
    types = {"streaming": "omni_default_streaming", "nvcf": "nvcf_streaming"}
    made_layers = sorted(n for n, a in apps.items() if a["type"] == "application_layer")
    assert made_layers == sorted(f"acme.layered_{k}" for k, v in types.items() if v in layers)
    for name in made_layers:
        assert apps[name]["parent"] == "acme.layered" and apps[name]["built"] is True
        assert apps[name]["display_name"].startswith("Layered ")
    setups = sorted((a["template"], a["parent"]) for a in apps.values()
                    if a["type"] == "setup_extension")
    assert setups == sorted((e, p) for e in exts for p in ("acme.layered", "acme.plain"))
    assert all(apps[n]["built"] for n in apps if apps[n]["type"] == "setup_extension")
    assert kit.call("daemon.status")["toolchain"]["kit_version"] == "110.1.2"


def test_kit_file_with_a_generated_part_is_read_leniently(kit: Daemon, ws: Path) -> None:
    create(kit, "kit_base_editor", "acme.editor", display_name="Editor", version="2.0.0")
    run_job(kit, "build", {})
    text = (ws / "source/apps/acme.editor.kit").read_text()
    with pytest.raises(tomllib.TOMLDecodeError, match="Cannot declare"):
        tomllib.loads(text)  # the real base editor's [settings.app.exts], declared twice
    # Without the metadata file, [package] of the .kit is all there is.
    (ws / "source/rendered_template_metadata.json").unlink()
    [app] = kit.call("apps.list")["apps"]
    assert (app["name"], app["display_name"], app["version"], app["template"]) == (
        "acme.editor", "Editor", "2.0.0", None)


def test_test_job(make_daemon: type[Daemon], ws: Path) -> None:
    d = make_daemon(workspace=ws, env={"KIT_STANDIN_FAIL_TEST": "acme.bad.kit"}).start()
    create(d, "kit_service", "acme.svc")
    early = run_job(d, "test", {}, status="failed")  # "A successful build is required"
    assert "run `./repo.sh build` first" in early["error"]["message"]
    run_job(d, "build", {})
    done = run_job(d, "test", {})
    log = d.job_log(done["id"])
    assert "[kitplay] step 1/1: ./repo.sh test" in log
    assert "[PASSED] startup/shutdown: acme.svc.kit" in log
    assert "[PASSED] extension tests: my_company.my_service_setup_extension" in log

    create(d, "kit_base_editor", "acme.bad")
    run_job(d, "build", {})
    failed = run_job(d, "test", {}, status="failed")
    assert failed["error"]["step"] == "./repo.sh test"
    assert "[FAILED] startup/shutdown: acme.bad.kit" in failed["error"]["message"]
    err = error_of(d, "test", {"app": "acme.svc"})
    assert isinstance(err, InvalidParams) and "documents no option for one app" in err.message


def test_package_job_names_its_archives(kit: Daemon, ws: Path) -> None:
    create(kit, "kit_service", "acme.svc")
    run_job(kit, "build", {})
    fat = run_job(kit, "package", {})["result"]
    [archive] = fat["archives"]
    assert Path(archive).parent == ws / "_build/packages"
    # repo.toml archive_name "${conf:repo.name}-fat", stamped with the project's VERSION.md
    assert Path(archive).name.startswith("kit-sdk-fat@0.1.0")
    assert fat["project_version"] == "0.1.0" and fat["thin"] is False
    thin = run_job(kit, "package", {"name": "acme_pkg", "thin": True})
    assert thin["params"]["thin"] is True
    [archive2] = thin["result"]["archives"]  # only the archive this job made
    assert Path(archive2).name.startswith("acme_pkg@0.1.0")
    with zipfile.ZipFile(archive2) as z:
        assert "apps/acme.svc.kit" in z.namelist()
    assert "./repo.sh package -c release -n acme_pkg --thin" in kit.job_log(thin["id"])
    for bad in ("../evil", "acme-pkg", "acme."):  # package.py's package_name_check
        err = error_of(kit, "package", {"name": bad})
        assert isinstance(err, InvalidParams) and "the package tool's rule" in err.message
    err = error_of(kit, "package", {"app": "acme.svc"})
    assert isinstance(err, InvalidParams) and "documents no option for one app" in err.message


def test_package_container_needs_docker(make_daemon: type[Daemon], ws: Path) -> None:
    calls = _recording(ws)
    # A PATH without docker (it is in /usr/local/bin on this machine, when at all).
    d = make_daemon(workspace=ws, env={"PATH": "/usr/bin:/bin"}).start()
    create(d, "omni_usd_viewer", "acme.viewer")
    err = error_of(d, "package_container", {"app": "acme.viewer", "image_tag": "acme:1"})
    assert isinstance(err, Unsupported) and "docker" in err.message
    assert err.data == {"needs": "docker"}
    err = error_of(d, "package_container", {"app": "acme.nothing"})
    assert isinstance(err, NotFound)
    assert d.call("jobs.list", {"kind": "package_container"})["jobs"] == []
    assert all(not c.startswith("package_container") for c in calls.read_text().splitlines())


def test_package_container_runs_the_tool_where_docker_is(make_daemon: type[Daemon], ws: Path,
                                                         tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "docker").chmod(0o755)
    calls = _recording(ws)
    d = make_daemon(workspace=ws, env={"PATH": f"{bin_dir}:/usr/bin:/bin"}).start()
    create(d, "kit_service", "acme.svc")
    err = error_of(d, "package_container", {"app": "acme.svc", "image_tag": "bad tag!"})
    assert isinstance(err, InvalidParams)
    # The stand-in models no container build: the job fails, naming the tool's own words.
    done = run_job(d, "package_container", {"app": "acme.svc", "image_tag": "acme/svc:1.0"},
                   status="failed")
    assert "container builds are not modelled by this stand-in" in done["error"]["message"]
    assert calls.read_text().splitlines()[-1] == \
        "package_container --app source/apps/acme.svc.kit --image-tag acme/svc:1.0"


def test_apps_modify_is_refused_as_unsupported(kit: Daemon) -> None:
    create(kit, "kit_base_editor", "acme.editor")
    err = error_of(kit, "apps.modify", {"app": "acme.editor", "layers": ["nvcf_streaming"]})
    assert isinstance(err, Unsupported) and "template modify" in err.message
    assert err.data == {"app": "acme.editor", "command": "./repo.sh template modify"}
    err = error_of(kit, "apps.modify", {"app": "acme.none", "layers": ["nvcf_streaming"]})
    assert isinstance(err, NotFound)
    assert kit.call("jobs.list", {"kind": "modify"})["jobs"] == []


def test_cli_and_rest_test_and_package(kit: Daemon, ws: Path, make_bridge: Any) -> None:
    create(kit, "kit_service", "acme.svc")
    run_job(kit, "build", {})
    tested = kitplay(kit, "test", "--follow")
    assert tested.returncode == 0, tested.stderr
    assert "[PASSED] startup/shutdown: acme.svc.kit" in tested.stdout
    packed = kitplay(kit, "package", "--name", "cli_pkg", "--thin", "--json", "--follow")
    assert packed.returncode == 0, packed.stderr
    job_id = json.loads(packed.stdout)["job"]["id"]
    got = kitplay(kit, "jobs", "get", job_id, "--json")
    [archive] = json.loads(got.stdout)["job"]["result"]["archives"]
    assert Path(archive).name.startswith("cli_pkg@")
    modify = kitplay(kit, "apps", "modify", "acme.svc", "--layers", "nvcf_streaming")
    assert modify.returncode == Unsupported.exit_code and "template modify" in modify.stderr
    status = kitplay(kit, "daemon", "status")
    assert "kit_version=110.1.2" in status.stdout and "project_version=0.1.0" in status.stdout

    b = make_bridge(kit, "--rate-limit", "10000", "--rate-burst", "10000")
    job = b.ok("POST", "/api/package", {})["job"]
    res = b.ok("GET", f"/api/jobs/{job['id']}/wait?timeout_s=60")["job"]
    assert res["status"] == "succeeded" and res["result"]["archives"][0].endswith(".zip")
    job = b.ok("POST", "/api/test", {})["job"]
    assert b.ok("GET", f"/api/jobs/{job['id']}/wait?timeout_s=60")["job"]["status"] == \
        "succeeded"
    r = b.post("/api/apps/modify", {"app": "acme.svc", "layers": ["nvcf_streaming"]})
    assert r.status_code == 501 and r.json()["error"]["code"] == Unsupported.code


# -- the builtin toolchain -----------------------------------------------------------------------


def test_builtin_test_and_package(daemon: Daemon) -> None:
    create_and_build(daemon, "console_app", "my_company.console")
    create_and_build(daemon, "service_app", "my_company.svc")
    done = run_job(daemon, "test", {})
    reports = daemon.workspace / "_build" / "tests"
    assert done["result"] == {"apps": ["my_company.console", "my_company.svc"],
                              "junit": [str(reports / "my_company.console.junit.xml"),
                                        str(reports / "my_company.svc.junit.xml")]}
    assert "[kitplay] step 2/2: my_company.svc: test" in daemon.job_log(done["id"])
    one = run_job(daemon, "test", {"app": "my_company.console"})
    assert one["result"] == {"apps": ["my_company.console"],
                             "junit": [str(reports / "my_company.console.junit.xml")]}

    packed = run_job(daemon, "package", {"app": "my_company.console"})["result"]
    [archive] = packed["archives"]
    assert archive == str(daemon.workspace / "_build/packages/my_company.console-0.1.0.zip")
    with zipfile.ZipFile(archive) as z:
        names = z.namelist()
    assert "my_company.console/app.py" in names
    assert not any("__pycache__" in n for n in names)
    both = run_job(daemon, "package", {})["result"]["archives"]
    assert [Path(a).name for a in both] == ["my_company.console-0.1.0.zip",
                                            "my_company.svc-0.1.0.zip"]
    for method, params in [("apps.modify", {"app": "my_company.svc", "layers": ["x"]}),
                           ("package_container", {"app": "my_company.svc"})]:
        err = error_of(daemon, method, params)
        assert isinstance(err, InvalidState) and "builtin workspace" in err.message


def test_builtin_test_failure_is_a_failed_job(daemon: Daemon) -> None:
    create_and_build(daemon, "console_app", "my_company.console")
    test_file = daemon.workspace / "source/apps/my_company.console/test_app.py"
    test_file.write_text("raise SystemExit('a test failed')\n")
    done = run_job(daemon, "test", {}, status="failed")
    assert done["error"]["step"] == "my_company.console: test"
    assert os.path.exists(test_file)
