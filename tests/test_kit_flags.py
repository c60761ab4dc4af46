"""kit-app-template as its real files take it: one-part names and four-part versions end to end
(create, build, launch, package, package_container), build and package configurations,
``launch`` with ``container``, ``package_container`` with ``from_package`` and ``generate``,
``templates.create`` with ``dry_run`` and ``extension_names``; through the socket, the
``kitplay`` command and REST.

Real daemon and the stand-in checkout's real ``repo.sh``. There is no docker daemon and no GPU
here: container paths run a recording ``docker`` (and ``nvidia-smi``) put first on the daemon's
PATH, which answers ``docker images`` / ``docker image inspect`` as docker does and records the
``docker run`` it gets.
"""

from __future__ import annotations

import json
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest
from kitplay.daemon.protocol.errors import InvalidParams, InvalidState, NotFound, Unsupported

from tests.bridge_helpers import make_bridge_fixture  # noqa: F401
from tests.helpers import Daemon
from tests.test_kit_toolchain import _recording, copy_checkout, create, error_of, kitplay, run_job

# tools/ci/PLAYBACK.template as tools/ci/container_builder.py fills it for usd_composer.
APP, VERSION = "usd_composer", "110.1.2.4242"
SETUP = {"omni_usd_composer_setup": "usd_composer_setup_extension"}

FAKE_DOCKER = """#!/usr/bin/env python3
# Answers like docker for the images it is told of (images.json beside it); records each call.
import json, os, sys
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "docker_calls.jsonl"), "a") as f:
    f.write(json.dumps({"argv": sys.argv[1:], "NVDA_KIT_ARGS": os.environ.get("NVDA_KIT_ARGS"),
                        "NVDA_KIT_NUCLEUS": os.environ.get("NVDA_KIT_NUCLEUS")}) + "\\n")
images = json.load(open(os.path.join(here, "images.json")))
args = sys.argv[1:]
if args[:1] == ["images"]:
    assert args[1:] == ["--filter", "label=kit_app_template", "--format", "json"], args
    for img in images:
        print(json.dumps({"ID": img["ID"], "Repository": img["Repository"], "Tag": img["Tag"]}))
elif args[:2] == ["image", "inspect"]:
    by_id = {img["ID"]: img for img in images}
    print(json.dumps([{"Id": "sha256:" + i, "Config": {"Labels": by_id[i]["Labels"]}}
                      for i in args[2:]]))
elif args[:1] == ["run"]:
    print("Starting Kit with /app/kit/kit", " ".join(args[1:]), flush=True)
else:
    sys.exit("fake docker: unexpected " + " ".join(args))
"""


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return copy_checkout(tmp_path / "kat")


def fake_bin(tmp_path: Path, images: list[dict[str, Any]], gpu: bool = True) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    (bin_dir / "images.json").write_text(json.dumps(images))
    if gpu:
        (bin_dir / "nvidia-smi").write_text("#!/bin/sh\necho 'GPU 0: NVIDIA RTX (UUID: x)'\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    return bin_dir


def docker_calls(bin_dir: Path) -> list[dict[str, Any]]:
    path = bin_dir / "docker_calls.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_one_part_name_four_part_version_end_to_end(make_daemon: type[Daemon], ws: Path,
                                                    tmp_path: Path) -> None:
    """The app container_builder.py makes (PLAYBACK.template: usd_composer, 110.1.2.<job>,
    the NVCF layer), through every tool kitplay drives."""
    bin_dir = fake_bin(tmp_path, [])
    calls = _recording(ws)
    d = make_daemon(workspace=ws, env={"PATH": f"{bin_dir}:/usr/bin:/bin"}).start()
    made = create(d, "omni_usd_composer", APP, display_name="USD Composer", version=VERSION,
                  layers=["nvcf_streaming"], extension_names=SETUP)["result"]
    assert made["layers"] == [f"{APP}_nvcf"] and made["extensions"] == list(SETUP.values())
    kit = tomllib.loads((ws / f"source/apps/{APP}.kit").read_text())
    assert kit["package"]["version"] == VERSION and kit["package"]["title"] == "USD Composer"
    setup = ws / "source/extensions/usd_composer_setup_extension/config/extension.toml"
    assert tomllib.loads(setup.read_text())["package"]["version"] == VERSION

    built = run_job(d, "build", {"app": APP})["result"]
    assert built["apps"] == [APP, f"{APP}_nvcf"]
    apps = {a["name"]: a for a in d.call("apps.list")["apps"]}
    assert (apps[APP]["version"], apps[APP]["built"]) == (VERSION, True)
    assert apps[f"{APP}_nvcf"]["parent"] == APP

    launched = run_job(d, "launch", {"app": APP, "display": "headless",
                                     "args": ["--/app/quitAfter=0"]})
    assert f"Starting {APP} (Kit 110.1.2, release)" in d.job_log(launched["id"])
    run_job(d, "launch", {"app": f"{APP}.kit", "display": "headless",
                          "args": ["--/app/quitAfter=0"]})  # the .kit file's name works too

    [archive] = run_job(d, "package", {"name": "usd_composer_pkg"})["result"]["archives"]
    with zipfile.ZipFile(archive) as z:
        assert f"apps/{APP}_nvcf.kit" in z.namelist()
    rel = str(Path(archive).relative_to(ws))
    done = run_job(d, "package_container", {
        "app": f"{APP}_nvcf", "image_tag": "usd_composer:110-1-2_abc", "from_package": rel},
        status="failed")
    # The stand-in models no container build; the job ran the tool with the real flags.
    assert "package_container --from-package is not modelled" in done["error"]["message"]
    assert calls.read_text().splitlines()[-1] == (
        f"package_container --app source/apps/{APP}_nvcf.kit --image-tag "
        f"usd_composer:110-1-2_abc --from-package {rel}")
    assert done["params"]["from_package"] == rel


def test_build_and_package_configurations(make_daemon: type[Daemon], ws: Path) -> None:
    calls = _recording(ws)
    d = make_daemon(workspace=ws).start()
    create(d, "kit_service", "svc")
    debug = run_job(d, "build", {"config": "debug"})
    assert debug["result"]["config"] == "debug"
    assert debug["result"]["build_dir"] == str(ws / "_build/linux-x86_64/debug")
    assert "BUILD (DEBUG) SUCCEEDED" in d.job_log(debug["id"])
    assert (ws / "_build/linux-x86_64/debug/svc.kit.sh").is_file()
    assert not (ws / "_build/linux-x86_64/release").exists()
    # launch runs the release build (launch.py: config = "release").
    err = error_of(d, "launch", {"app": "svc", "display": "headless"})
    assert isinstance(err, InvalidState) and "not built yet" in err.message
    [archive] = run_job(d, "package", {"config": "debug", "thin": True})["result"]["archives"]
    assert archive.endswith(".linux-x86_64.debug.zip")
    run_job(d, "build", {"clean": True, "config": "debug"})
    assert calls.read_text().splitlines()[-3:] == [
        "build -d", "package -c debug --thin", "build -x -d"]
    err = error_of(d, "build", {"config": "profile"})
    assert isinstance(err, InvalidParams) and "release, debug" in err.message


def test_launch_a_container_as_repo_launch_container_does(make_daemon: type[Daemon], ws: Path,
                                                          tmp_path: Path) -> None:
    bin_dir = fake_bin(tmp_path, [
        {"ID": "aaa111", "Repository": "other", "Tag": "1",
         "Labels": {"kit_app_template": "other.kit"}},
        {"ID": "bbb222", "Repository": "usd_composer", "Tag": "110-1-2_x",
         "Labels": {"kit_app_template": "usd_composer_nvcf.kit"}},
        {"ID": "ccc333", "Repository": "usd_composer", "Tag": "older",
         "Labels": {"kit_app_template": "usd_composer_nvcf.kit"}}])
    d = make_daemon(workspace=ws, env={"PATH": f"{bin_dir}:/usr/bin:/bin",
                                       "NVDA_KIT_ARGS": "--/secret/token=abc"}).start()
    create(d, "omni_usd_composer", APP, version=VERSION, layers=["nvcf_streaming"],
           extension_names=SETUP)
    done = run_job(d, "launch", {"app": f"{APP}_nvcf", "container": True,
                                 "display": "headless", "dev_bundle": True,
                                 "args": ["--/app/quitAfter=0"]})
    run = docker_calls(bin_dir)[-1]
    # launch.py's run_selected_image, with the environment passed by name.
    assert run["argv"] == [
        "run", "--gpus=all", "--env", "OM_KIT_VERBOSE=0", "--env", "NVDA_KIT_ARGS",
        "--env", "NVDA_KIT_NUCLEUS",
        "--mount", "type=volume,src=omniverse_shader_cache,dst=/home/ubuntu/.cache/ov,"
                   "volume-driver=local",
        "--mount", "type=volume,src=omniverse_extension_cache,dst=/home/ubuntu/.local/share/ov,"
                   "volume-driver=local",
        "--network=host", "bbb222", "--enable", "omni.kit.developer.bundle", "--no-window",
        "--/app/quitAfter=0"]
    assert run["NVDA_KIT_ARGS"] == "--/secret/token=abc"  # in docker's environment only
    log = d.job_log(done["id"])
    assert "--network=host bbb222 --enable" in log and "Starting Kit with /app/kit/kit" in log
    assert "secret/token" not in log
    assert done["params"]["container"] is True

    # An app without an image of its own; xpra; a builtin workspace.
    err = error_of(d, "launch", {"app": APP, "container": True})
    assert isinstance(err, InvalidState) and "package_container usd_composer" in err.message
    err = error_of(d, "launch", {"app": f"{APP}_nvcf", "container": True, "display": "xpra"})
    assert isinstance(err, InvalidParams) and err.data == {"param": "display"}
    err = error_of(d, "launch", {"app": "nothing", "container": True})
    assert isinstance(err, NotFound)


def test_launch_container_needs_docker_and_a_gpu(make_daemon: type[Daemon], ws: Path,
                                                 tmp_path: Path) -> None:
    d = make_daemon(workspace=ws, env={"PATH": "/usr/bin:/bin"}).start()
    create(d, "kit_service", "svc")
    err = error_of(d, "launch", {"app": "svc", "container": True})
    assert isinstance(err, Unsupported) and err.data == {"needs": "docker"}
    assert "docker is not installed here" in err.message
    bin_dir = fake_bin(tmp_path, [], gpu=False)
    d2 = make_daemon(workspace=ws, env={"PATH": f"{bin_dir}:/usr/bin:/bin"}).start()
    err = error_of(d2, "launch", {"app": "svc", "container": True})
    assert isinstance(err, Unsupported) and err.data == {"needs": "nvidia-smi"}
    assert d2.call("jobs.list", {"kind": "launch"})["jobs"] == []
    assert docker_calls(bin_dir) == []


def test_package_container_generate_and_from_package(make_daemon: type[Daemon], ws: Path) -> None:
    calls = _recording(ws)
    # No docker on PATH: generate writes files only, so it still runs (CHANGELOG 109.0.1).
    d = make_daemon(workspace=ws, env={"PATH": "/usr/bin:/bin"}).start()
    create(d, "kit_service", "svc")
    done = run_job(d, "package_container", {"app": "svc", "generate": True}, status="failed")
    assert calls.read_text().splitlines()[-1] == \
        "package_container --app source/apps/svc.kit --generate"
    assert "package_container --generate is not modelled by this stand-in" in \
        done["error"]["message"]
    err = error_of(d, "package_container", {"app": "svc"})
    assert isinstance(err, Unsupported) and "generate: true" in err.message
    (ws / "_build/packages").mkdir(parents=True)
    (ws / "_build/packages/x.zip").write_bytes(b"PK")
    for value, cls, text in (
            ("/etc/passwd", InvalidParams, "leaves the workspace"),
            ("../x.zip", InvalidParams, "leaves the workspace"),
            ("_build/packages/none.zip", NotFound, "no archive"),
            ("repo.toml", InvalidParams, "not a package archive")):
        err = error_of(d, "package_container", {"app": "svc", "generate": True,
                                                "from_package": value})
        assert isinstance(err, cls) and text in err.message, (value, err)
    run_job(d, "package_container", {"app": "svc", "generate": True,
                                     "from_package": str(ws / "_build/packages/x.zip")},
            status="failed")
    assert calls.read_text().splitlines()[-1] == ("package_container --app source/apps/svc.kit "
                                                  "--from-package _build/packages/x.zip "
                                                  "--generate")


def test_dry_run_and_extension_names_from_the_command_line(make_daemon: type[Daemon],
                                                           ws: Path) -> None:
    d = make_daemon(workspace=ws).start()
    args = ("templates", "create", "omni_usd_viewer", "dsx", "--display-name", "DSX",
            "--layers", "nvcf_streaming",
            "--extension-names", "omni_usd_viewer_messaging=dsx.messaging_extension",
            "--extension-names", "omni_usd_viewer_setup=dsx.setup_extension")
    shown = kitplay(d, *args, "--dry-run")
    assert shown.returncode == 0, shown.stderr
    replay = tomllib.loads(shown.stdout)
    assert replay["omni_usd_viewer"]["extensions"]["omni_usd_viewer_setup"][
        "extension_name"] == "dsx.setup_extension"
    assert d.call("jobs.list")["jobs"] == [] and not (ws / "source/apps/dsx.kit").exists()
    as_json = kitplay(d, *args, "--dry-run", "--json", "--follow")  # no job to follow
    assert as_json.returncode == 0 and json.loads(as_json.stdout) == {"replay": shown.stdout}
    made = kitplay(d, *args, "--follow")
    assert made.returncode == 0, made.stderr
    assert (ws / "_kitplay/replay-dsx.toml").read_text() == shown.stdout
    assert (ws / "source/extensions/dsx.setup_extension").is_dir()
    again = kitplay(d, *args, "--dry-run")
    assert again.returncode == InvalidState.exit_code and "already exists" in again.stderr
    bad = kitplay(d, *args[:4], "--extension-names", "nokey", "--dry-run")
    assert bad.returncode == 2 and "takes KEY=VALUE" in bad.stderr


def test_the_kit_app_flags_over_rest(make_daemon: type[Daemon], ws: Path,
                                     make_bridge: Any) -> None:
    d = make_daemon(workspace=ws, env={"PATH": "/usr/bin:/bin"}).start()
    b = make_bridge(d, "--rate-limit", "10000", "--rate-burst", "10000")
    job = b.ok("POST", "/api/templates/create", {
        "template": "kit_service", "name": "svc", "version": "1.2.3.4",
        "extension_names": {"kit_service_setup": "svc.setup"}})["job"]
    assert d.wait_job(job["id"])["status"] == "succeeded", d.job_log(job["id"])
    job = b.ok("POST", "/api/build", {"config": "debug", "clean": True})["job"]
    assert d.wait_job(job["id"])["status"] == "succeeded"
    assert "./repo.sh build -x -d" in d.job_log(job["id"])
    assert (ws / "_build/linux-x86_64/debug/svc.kit.sh").is_file()
    r = b.post("/api/launch", {"app": "svc", "container": True})
    assert r.status_code == 501 and r.json()["error"]["data"] == {"needs": "docker"}, r.text
    r = b.post("/api/package_container", {"app": "svc", "generate": True,
                                          "from_package": "../outside.zip"})
    assert r.status_code == 400 and "leaves the workspace" in r.json()["error"]["message"]
