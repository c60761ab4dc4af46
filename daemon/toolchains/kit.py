"""The kit-app-template toolchain: drives a checkout of NVIDIA's kit-app-template, no prompts.

- catalogue: read in Python from ``templates/templates.toml`` and its collections
  (``kit_catalogue``), never by running ``repo.sh template list``;
- create: a replay file in ``<workspace>/_kitplay/`` (git-ignored by its own ``.gitignore``)
  and ``./repo.sh template replay FILE`` with ``yes`` on stdin, as the real CI runs it
  (``tools/ci/container_builder.py``, ``_make_project``: ``yes | repo.sh template replay``).
  kitplay answers every question in the file and refuses, before the tool runs, any app or
  extension that already exists, so no answer can overwrite anything; the interactive
  ``template new`` is never run. ``dry_run`` returns the file instead;
- build: ``./repo.sh build -r`` (``-d`` for debug; ``-x`` first when ``clean``), one at a time
  per workspace (creates share the queue: both rewrite ``premake5.lua`` and ``repo.toml``);
- launch: ``_build/<platform>/release/<app>.kit.sh`` directly, never the ``repo.sh launch``
  picker; with ``container``, ``docker run`` of the app's image as ``repo.sh launch
  --container`` runs it;
- test: ``./repo.sh test``; package: ``./repo.sh package -c CONFIG [-n NAME] [--thin]``, its
  result the archives that appeared under ``_build/packages/``; package_container:
  ``./repo.sh package_container --app source/apps/<app>.kit [--image-tag TAG]
  [--from-package ARCHIVE] [--generate]``;
- modify (add layers, ``template modify``): refused as unsupported; the real command is
  interactive and no real file shows a scripted form of it.

What the tool made is read back by ``kit_apps``; replay files are written by
``kit_catalogue.replay_tables``.

The licence is accepted when ``.omniverse_eula_accepted.txt`` exists at the root; kitplay
creates it only on an explicit ``accept_license: true``, and requires it only for the template
tool (see ``check_license``).
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

from ..logs import tail_lines
from ..protocol.errors import (
    InvalidParams,
    InvalidState,
    LicenseNotAccepted,
    NotFound,
    ToolchainError,
    Unsupported,
)
from .base import Plan, Step, StepLog, inside
from .builtin import check_display_name
from .icons import icon_result
from .kit_apps import kit_version, list_apps, project_version
from .kit_catalogue import (
    Catalogue,
    load_catalogue,
    nest,
    replay_tables,
    replay_toml,
)

__all__ = ["EULA_FILE", "KitToolchain", "LICENSE_URL", "PLAY_DIR", "check_kit_name",
           "check_kit_version", "kit_platform"]

EULA_FILE = ".omniverse_eula_accepted.txt"
# README.md, "Governing Terms".
LICENSE_URL = ("https://www.nvidia.com/en-us/agreements/enterprise-software/"
               "nvidia-software-license-agreement/")
TERMS_URL = ("https://www.nvidia.com/en-us/agreements/enterprise-software/"
             "product-specific-terms-for-omniverse/")
PLAY_DIR = "_kitplay"  # replay files and create snapshots, inside the workspace
DEV_BUNDLE = "omni.kit.developer.bundle"
# What `yes` writes, as the real CI pipes it into `template replay`
# (tools/ci/container_builder.py, _make_project). kitplay's file answers every question and
# existing targets are refused first, so these answers have nothing left to say yes to.
REPLAY_STDIN = b"y\n" * 1024
TRACKED = ("premake5.lua", "repo.toml")  # files replay edits besides source/
CONFIGS = ("release", "debug")

# Names: the wizard asks for "name of application .kit file [name-spaced, lowercase,
# alphanumeric]" (README.md, templates/apps/*/README.md); real records hold one-part names
# (`dsx` in kreeuwijk/omniverse-dsx-blueprint-for-ai-factories, `schneider` in NVIDIA's own
# committed metadata at f7b0dac, `usd_composer` in tools/ci/PLAYBACK.template as
# tools/ci/container_builder.py fills it) and underscores in every part.
KIT_NAME_RE = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)*$")
KIT_NAME_RULE = ("lowercase letters, digits and _ in one or more dot-separated parts, like "
                 "my_app or my_company.my_app (the template tool's rule: name-spaced, "
                 "lowercase, alphanumeric)")


def kit_platform() -> str:
    machine = platform.machine().lower()
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    return f"linux-{arch}"


def check_kit_name(name: str, param: str = "name") -> str:
    if len(name) > 100 or not KIT_NAME_RE.match(name):
        raise InvalidParams(f"{param} {name[:100]!r} is not a valid name: it must be "
                            f"{KIT_NAME_RULE}", {"param": param, "rule": KIT_NAME_RULE})
    return name


def check_kit_version(value: str, param: str = "version") -> str:
    """Any version text: README.md says "While you can use any format, semantic versioning
    (e.g., 0.1.0) is recommended", and tools/ci/container_builder.py writes 110.1.2.<job id>.
    The templates render it into TOML strings (``version = "{{ version }}"`` in every .kit and
    extension.toml), so quotes and backslashes, which would break those files, are refused."""
    if not value.strip() or len(value) > 64 or any(c in value for c in '"\\') or any(
            ord(c) < 32 for c in value):
        raise InvalidParams(f"{param} {value[:64]!r} must be 1-64 characters without quotes, "
                            "backslashes or control characters (any format: 0.1.0, "
                            "110.1.2.4242, ...)", {"param": param})
    return value


class KitToolchain:
    kind = "kit-app-template"

    def __init__(self, root: Path) -> None:
        self.root = root
        self._catalogue: Catalogue | None = None

    # -- facts about the checkout -----------------------------------------------------------

    @property
    def catalogue(self) -> Catalogue:
        if self._catalogue is None:
            self._catalogue = load_catalogue(self.root)
        return self._catalogue

    @property
    def repo_sh(self) -> str:
        return str(self.root / "repo.sh")

    def build_dir(self, config: str = "release") -> Path:
        # _build/${platform}/${config}: repo.toml [repo_package.packages.*] root, launch.py.
        return self.root / "_build" / kit_platform() / config

    @property
    def release_dir(self) -> Path:
        return self.build_dir("release")

    def kit_version(self) -> str | None:
        return kit_version(self.root)

    def license_accepted(self) -> bool:
        return (self.root / EULA_FILE).is_file()

    def markers(self) -> list[Path]:
        """The files ``info()`` reads, or whose presence it reports: a change to any of them
        (or to the root's entries) means ``info()`` must be read again."""
        return [self.root / "VERSION.md", self.root / "tools", self.root / "tools" / "VERSION.md",
                *self.catalogue.files]

    def info(self) -> dict[str, Any]:
        return {"kind": self.kind, "workspace": str(self.root), "kit_version": self.kit_version(),
                "project_version": project_version(self.root), "platform": kit_platform(),
                "license_accepted": self.license_accepted(),
                "templates_config": str(self.catalogue.config),
                "errors": list(self.catalogue.errors)}

    def license_info(self) -> dict[str, Any]:
        return {"required": True, "accepted": self.license_accepted(), "url": LICENSE_URL,
                "summary": (
                    "The kit-app-template tools are governed by the NVIDIA Software License "
                    f"Agreement ({LICENSE_URL}) and the Product-Specific Terms for NVIDIA "
                    f"Omniverse ({TERMS_URL}). Its template tool asks you to accept them before "
                    "it creates anything. Accepting here (accept_license: true on "
                    f"templates.create) creates {EULA_FILE} at the workspace's root, the file "
                    "the tool keeps as your answer; kitplay never creates it otherwise.")}

    # -- catalogue --------------------------------------------------------------------------

    def list_templates(self) -> list[dict[str, Any]]:
        return [self.catalogue.public(t) for t in self.catalogue.entries]

    def get_template(self, name: str) -> dict[str, Any]:
        cat = self.catalogue
        if name not in cat.entries:
            known = ", ".join(t for t in cat.entries if cat.public(t, docs=False)["creatable"])
            raise NotFound(f"no template named {name!r} in {cat.config} (templates you can "
                           f"create from: {known or 'none'})", {"template": name})
        return cat.public(name)

    def template_icon(self, name: str) -> dict[str, Any]:
        self.get_template(name)  # NotFound for an unknown template
        found = self.catalogue.icon(name)
        if found is None:
            raise NotFound(f"template {name!r} has no icon (no image file where the template "
                           "names one, inside the workspace)", {"template": name})
        return icon_result(name, *found)

    def list_apps(self) -> list[dict[str, Any]]:
        return list_apps(self.root, self.catalogue, self.release_dir)

    # -- licence ----------------------------------------------------------------------------

    def accept_license(self, params: dict[str, Any]) -> None:
        """``accept_license: true`` accepts on any call: the caller said so."""
        if params.get("accept_license") and not params.get("_recover") and \
                not self.license_accepted():
            (self.root / EULA_FILE).write_text(
                "Accepted through kitplay (accept_license: true) on "
                f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n")

    def check_license(self, params: dict[str, Any], how: str) -> None:
        """Only the template tool needs the licence: README.md ("If this is your first time
        running the `template new` tool, you'll be prompted to accept the Omniverse Licensing
        Terms"), and tools/ci/build.py creates the breadcrumb ("Need the EULA breadcrumb.")
        before its `template replay`. No real file shows build, launch, test, package or
        package_container checking it (tools/repoman/launch.py, package.py do not)."""
        self.accept_license(params)
        if self.license_accepted():
            return
        raise LicenseNotAccepted(
            f"the NVIDIA Omniverse licence has not been accepted for {self.root} "
            f"({EULA_FILE} is missing). The kit-app-template tools are governed by the NVIDIA "
            "Software License Agreement and the Product-Specific Terms for NVIDIA Omniverse; "
            f"to accept them, repeat the call with accept_license: true, or run `{how} "
            "--accept-license`", {"license_file": str(self.root / EULA_FILE),
                                  "accept_param": "accept_license", "url": LICENSE_URL})

    # -- create -----------------------------------------------------------------------------

    def _create_spec(self, params: dict[str, Any]) -> dict[str, Any]:
        """Everything a create needs, checked: the replay tables, the files it makes."""
        cat = self.catalogue
        tid = params["template"]
        template = self.get_template(tid)
        kind = template["type"]
        if not template["creatable"]:
            hint = (" add it to an application with layers: [...]" if kind == "application_layer"
                    else " an application template adds it by itself")
            raise InvalidParams(f"template {tid!r} is a {template['class']} and cannot be "
                                f"created on its own;{hint}", {"param": "template"})
        name = check_kit_name(params["name"])
        var = template["variables"]
        prefix = "application" if kind == "application" else "extension"
        display_name = check_display_name(
            params.get("display_name") or var.get(f"{prefix}_display_name") or name)
        version = check_kit_version(params.get("version") or var.get("version") or "0.1.0")
        layers = list(dict.fromkeys(params.get("layers") or []))
        offered = {t["id"]: t for t in template["layers"]}
        named = params.get("extension_names") or {}
        if kind != "application":
            for key in ("layers", "extension_names"):
                if params.get(key):
                    raise InvalidParams(f"template {tid!r} is an extension template and takes "
                                        f"no {key}; leave out '{key}'", {"param": key})
        for layer in layers:
            if layer not in offered:
                valid = ", ".join(offered) or "none (this template takes no layers)"
                raise InvalidParams(f"unknown layer {layer!r} for template {tid!r}; valid "
                                    f"layers: {valid}", {"param": "layers",
                                                         "valid": list(offered)})
        linked = cat.extensions_for(tid)
        for key, value in named.items():
            if key not in linked:
                raise InvalidParams(
                    f"extension_names: template {tid!r} adds no setup extension {key!r} (it "
                    f"adds: {', '.join(linked) or 'none'})", {"param": "extension_names",
                                                             "valid": linked})
            if not isinstance(value, str):
                raise InvalidParams(f"extension_names.{key} must be a string (the extension's "
                                    "name)", {"param": "extension_names"})
            check_kit_name(value, f"extension_names.{key}")
        exts: list[dict[str, str]] = []
        if kind == "application":
            targets = [inside(self.root, "source", "apps", f"{name}.kit")]
            targets += [inside(self.root, "source", "apps",
                               f"{name}_{_layer_type(offered[x])}.kit") for x in layers]
            # Every question answered, as .vscode/replay_files/* do: an unanswered one would
            # be answered "y" by `yes`.
            exts = [self._setup_extension(tid, ext_id, version, named.get(ext_id))
                    for ext_id in linked]
            targets += [inside(self.root, "source", "extensions", e["extension_name"])
                        for e in exts]
            answers: dict[str, Any] = {
                "application_name": name, "application_display_name": display_name,
                "version": version, "layers": layers,
                "extensions": {e["template"]: {k: v for k, v in e.items() if k != "template"}
                               for e in exts}}
        else:
            targets = [inside(self.root, "source", "extensions", name)]
            answers = {"extension_name": name, "extension_display_name": display_name,
                       "version": version}
        if len(set(targets)) != len(targets):
            raise InvalidParams(f"two of the files this create makes would have the same name "
                                f"({', '.join(str(t.relative_to(self.root)) for t in targets)}); "
                                "give the setup extensions other names with extension_names",
                                {"param": "extension_names"})
        try:
            tables = replay_tables(cat, tid, answers)
        except ValueError as e:
            raise ToolchainError(f"cannot answer template {tid!r}: {e}; check {cat.config}") \
                from None
        return {"tid": tid, "kind": kind, "name": name, "layers": layers, "offered": offered,
                "exts": exts, "targets": targets, "tables": tables, "named": named}

    def _refuse_existing(self, spec: dict[str, Any], meanwhile: bool = False) -> None:
        for t, ext in zip(spec["targets"], [None] * (len(spec["targets"]) - len(spec["exts"]))
                          + spec["exts"], strict=True):
            if not t.exists():
                continue
            rel = t.relative_to(self.root)
            if meanwhile:
                raise InvalidState(f"{rel} appeared meanwhile; not overwriting it")
            hint = "choose another name"
            if ext is not None and ext["template"] not in spec["named"]:
                hint = (f"{ext['extension_name']} is the catalogue's default name of the setup "
                        f"extension {ext['template']}; give it another with extension_names: "
                        f"{{\"{ext['template']}\": \"...\"}}")
            raise InvalidState(f"{rel} already exists in {self.root}; {hint} (kitplay never "
                               "overwrites)", {"path": str(t)})

    def create_replay(self, params: dict[str, Any]) -> str:
        """The replay file a create would run (``dry_run``): nothing is written."""
        spec = self._create_spec(params)
        self._refuse_existing(spec)
        return replay_toml(spec["tables"])

    def plan_create(self, params: dict[str, Any]) -> Plan:
        recover = bool(params.get("_recover"))
        spec = self._create_spec(params)
        name, tid, kind = spec["name"], spec["tid"], spec["kind"]
        targets, tables = spec["targets"], spec["tables"]
        if not recover:
            self.check_license(params, "kitplay templates create TEMPLATE NAME")
            self._refuse_existing(spec)
        play = self.root / PLAY_DIR
        replay = play / f"replay-{name}.toml"
        snapshot = play / f"replay-{name}.before.json"
        text = replay_toml(tables)

        def prepare(log: StepLog) -> None:
            self._refuse_existing(spec, meanwhile=True)
            play.mkdir(exist_ok=True)
            (play / ".gitignore").write_text("# kitplay's replay files\n*\n")
            _atomic_write(snapshot, json.dumps(self._snapshot()))
            _atomic_write(replay, text)
            if tomllib.loads(text) != nest(tables):
                raise ToolchainError("kitplay wrote a replay file that does not read back "
                                     "as written (a kitplay bug)")
            log.write(f"[kitplay] replay file {replay}:\n{text}")

        def finish() -> dict[str, Any]:
            missing = [str(t.relative_to(self.root)) for t in targets if not t.exists()]
            if missing:
                raise ToolchainError(f"`repo.sh template replay` succeeded but did not create "
                                     f"{', '.join(missing)}; see the job's log")
            try:
                before = json.loads(snapshot.read_text())
            except (OSError, ValueError):
                before = {}
            after = self._snapshot()
            return {"app": name, "template": tid, "type": kind, "path": str(targets[0]),
                    "files": sorted(set(after) - set(before)),
                    "modified": sorted(k for k in after if k in before and after[k] != before[k]),
                    "layers": [f"{name}_{_layer_type(spec['offered'][x])}"
                               for x in spec["layers"]],
                    "extensions": [e["extension_name"] for e in spec["exts"]],
                    "replay_file": str(replay)}

        step = f"yes | ./repo.sh template replay {PLAY_DIR}/{replay.name}"
        return Plan(
            kind="create", workspace=self.root, toolchain=self.kind,
            steps=[Step(f"write {PLAY_DIR}/{replay.name}", func=prepare),
                   Step(step, argv=[self.repo_sh, "template", "replay", str(replay)],
                        cwd=self.root, stdin=REPLAY_STDIN)],
            finish=finish, serial_key=f"kit:{self.root}",
            describe_failure=_describer("create", "create_timeout_s"))

    def _setup_extension(self, tid: str, ext_id: str, version: str,
                         name: str | None) -> dict[str, str]:
        """The replay sub-table of a setup extension: the name the caller gives, else the
        catalogue's default, as the wizard offers it (NVIDIA's committed metadata at f7b0dac
        keeps my_company.my_usd_viewer_messaging_extension for the app
        my_company.my_usd_viewer09_15); the version is the app's, as the CI's replay files
        give it (tools/ci/automated_templating/usd_viewer.toml.j2)."""
        cat = self.catalogue
        if ext_id not in cat.entries:
            raise ToolchainError(f"template {tid!r} requires extension template {ext_id!r}, "
                                 f"which the catalogue does not define; check {cat.config}")
        entry = cat.entries[ext_id]
        var = entry["variables"] if isinstance(entry.get("variables"), dict) else {}
        default = var.get("extension_name")
        if name is None:
            if not isinstance(default, str) or not KIT_NAME_RE.match(default):
                raise ToolchainError(
                    f"the catalogue gives setup extension {ext_id!r} no valid default name "
                    f"({default!r}); name it with extension_names: {{\"{ext_id}\": \"...\"}}")
            name = default
        display = var.get("extension_display_name")
        if not isinstance(display, str) or not display.strip():
            display = str(entry.get("name") or ext_id)
        return {"template": ext_id, "extension_name": name,
                "extension_display_name": check_display_name(display), "version": version}

    def _snapshot(self) -> dict[str, list[int]]:
        """(mtime, size) of every file replay may create or change."""
        out: dict[str, list[int]] = {}
        paths = [p for p in (self.root / "source").rglob("*")] if (
            self.root / "source").is_dir() else []
        for p in [*paths, *(self.root / t for t in TRACKED)]:
            try:
                st = p.stat()
            except OSError:
                continue
            if p.is_file():
                out[str(p.relative_to(self.root))] = [st.st_mtime_ns, st.st_size]
        return out

    # -- build ------------------------------------------------------------------------------

    def _kit_file(self, app: str) -> Path:
        name = check_kit_name(app.removesuffix(".kit"), "app")
        kit = inside(self.root, "source", "apps", f"{name}.kit")
        if not kit.is_file():
            known = ", ".join(a["name"] for a in self.list_apps()
                              if a["path"].endswith(".kit")) or "none yet"
            raise NotFound(f"no app named {name!r} in {self.root}/source/apps (apps: {known}); "
                           "create it with `kitplay templates create`", {"app": name})
        return kit

    def plan_build(self, params: dict[str, Any]) -> Plan:
        app = params.get("app")
        if app:
            app = self._kit_file(app).name.removesuffix(".kit")
        self.accept_license(params)
        config = _config(params)
        # -r/-d choose the configuration (the Omniverse developer guide, "Build a Project":
        # "-r [default] will build only the release pipeline. -d will build only the debug
        # pipeline."); -x/--rebuild "Rebuilds the project from scratch" (the tooling guide):
        # kitplay's clean build, one step.
        argv = [self.repo_sh, "build", *(["-x"] if params.get("clean") else []),
                "-r" if config == "release" else "-d"]
        out = self.build_dir(config)

        def finish() -> dict[str, Any]:
            scripts = sorted(out.glob("*.kit.sh"))
            built = [s.name.removesuffix(".kit.sh") for s in scripts]
            if app and app not in built:
                raise ToolchainError(
                    f"the build succeeded but did not produce {app}.kit.sh in {out}; is "
                    f"source/apps/{app}.kit listed with define_app in premake5.lua?")
            return {"apps": built, "app": app, "platform": kit_platform(), "config": config,
                    "build_dir": str(out)}

        return Plan(kind="build", workspace=self.root, toolchain=self.kind,
                    steps=[Step(" ".join(["./repo.sh", *argv[1:]]), argv=argv, cwd=self.root)],
                    finish=finish, serial_key=f"kit:{self.root}",
                    describe_failure=_describer("build", "step_timeout_s"))

    # -- launch -----------------------------------------------------------------------------

    def plan_launch(self, params: dict[str, Any]) -> Plan:
        recover = bool(params.get("_recover"))
        name = check_kit_name(params["app"].removesuffix(".kit"), "app")
        self.accept_license(params)
        if params.get("container"):
            return self._plan_container_launch(name, params, recover)
        script = self.release_dir / f"{name}.kit.sh"
        if not recover and not script.is_file():
            self._kit_file(name)  # NotFound when there is no such app at all
            raise InvalidState(
                f"app {name!r} is not built yet ({script.relative_to(self.root)} does not "
                f"exist); build it first with `kitplay build` (or the build method), then "
                "launch it again", {"app": name, "script": str(script)})
        display = params.get("display", "native")
        argv = [str(script)]
        if display == "headless":
            argv.append("--no-window")
        if params.get("dev_bundle"):
            argv += ["--enable", DEV_BUNDLE]
        argv += list(params.get("args") or [])
        return Plan(kind="launch", workspace=self.root, toolchain=self.kind,
                    steps=[Step(f"{name}.kit.sh", argv=argv, cwd=self.root)], app=name,
                    display=display, needs_display=True,
                    describe_failure=_describer("launch", None))

    def _plan_container_launch(self, name: str, params: dict[str, Any], recover: bool) -> Plan:
        """``docker run`` of the app's image, with the arguments tools/repoman/launch.py
        (``run_selected_image``) gives it: every GPU, OM_KIT_VERBOSE, NVDA_KIT_ARGS and
        NVDA_KIT_NUCLEUS from the environment (passed by name, so their values stay out of
        any command line), the shader and extension cache volumes, host networking; then
        ``--enable omni.kit.developer.bundle`` and the extra arguments, which the image's
        entry point hands to Kit."""
        display = params.get("display", "native")
        if display == "xpra":
            raise InvalidParams("a container's app shows no window on this machine's displays "
                                "(it streams); use display native or headless with container",
                                {"param": "display"})
        docker = shutil.which("docker")
        if docker is None:
            raise Unsupported(
                "launching an app's container runs docker, and docker is not installed here "
                "(no `docker` on the daemon's PATH); install docker, or launch the built app "
                "without container", {"needs": "docker"})
        if recover:
            # Re-planned after a restart: a running container is followed as it is; one that
            # never started is not started again with an image chosen anew.
            image, image_id = "(chosen before the restart)", ""
        else:
            self._kit_file(name)
            _gpu_check()
            image, image_id = _container_image(docker, name)
        argv = [docker, "run", "--gpus=all", "--env", "OM_KIT_VERBOSE=0",
                "--env", "NVDA_KIT_ARGS", "--env", "NVDA_KIT_NUCLEUS",
                "--mount", "type=volume,src=omniverse_shader_cache,dst=/home/ubuntu/.cache/ov,"
                           "volume-driver=local",
                "--mount", "type=volume,src=omniverse_extension_cache,"
                           "dst=/home/ubuntu/.local/share/ov,volume-driver=local",
                "--network=host", image_id]
        if not image_id:
            argv = [sys.executable, "-c", "import sys; sys.exit('kitplay: the container image "
                    "of this launch was chosen before the daemon restarted; launch it again')"]
        if params.get("dev_bundle"):
            argv += ["--enable", DEV_BUNDLE]
        if display == "headless":
            argv.append("--no-window")
        argv += list(params.get("args") or [])
        return Plan(kind="launch", workspace=self.root, toolchain=self.kind,
                    steps=[Step(f"docker run {image}", argv=argv, cwd=self.root, stdin=b"")],
                    app=name, display=display, needs_display=False,
                    describe_failure=_describer("launch", None))

    # -- test, package, package_container, modify -------------------------------------------
    # The tooling guide (readme-assets/additional-docs/kit_app_template_tooling_guide.md)
    # lists these tools and their options; kitplay passes nothing it does not document.

    def plan_test(self, params: dict[str, Any]) -> Plan:
        if params.get("app"):
            raise InvalidParams(
                "kit-app-template's `repo.sh test` tests every built app and extension and "
                "documents no option for one app; leave out 'app'", {"param": "app"})
        self.accept_license(params)
        return Plan(kind="test", workspace=self.root, toolchain=self.kind,
                    steps=[Step("./repo.sh test", argv=[self.repo_sh, "test"], cwd=self.root)],
                    finish=lambda: {"command": "./repo.sh test", "output": "the job's log"},
                    serial_key=f"kit:{self.root}", describe_failure=_describer("test", None))

    def plan_package(self, params: dict[str, Any]) -> Plan:
        if params.get("app"):
            raise InvalidParams(
                "kit-app-template's `repo.sh package` packages everything in the build and "
                "documents no option for one app; leave out 'app'", {"param": "app"})
        config = _config(params)
        # tools/repoman/package.py: -c/--config (omni.repo.man.add_config_arg), -n, --thin.
        argv = [self.repo_sh, "package", "-c", config]
        if params.get("name"):
            argv += ["-n", _check_package_name(params["name"])]
        if params.get("thin"):
            argv.append("--thin")
        self.accept_license(params)
        packages = self.root / "_build" / "packages"
        # Kept on disk, so a daemon that restarts mid-package still knows what was there.
        snapshot_file = self.root / PLAY_DIR / "package.before.json"

        def snapshot(log: StepLog) -> None:
            before = _files(packages)
            snapshot_file.parent.mkdir(exist_ok=True)
            (snapshot_file.parent / ".gitignore").write_text("# kitplay's replay files\n*\n")
            _atomic_write(snapshot_file, json.dumps(before))
            log.write(f"[kitplay] {len(before)} file(s) in {packages} before packaging\n")

        def finish() -> dict[str, Any]:
            try:
                before = json.loads(snapshot_file.read_text())
            except (OSError, ValueError):
                before = {}
            after = _files(packages)
            made = sorted(p for p, st in after.items() if before.get(p) != st)
            if not made:
                raise ToolchainError(f"`repo.sh package` wrote no archive under {packages}; "
                                     "see the job's log")
            return {"archives": made, "packages_dir": str(packages),
                    "project_version": project_version(self.root),
                    "thin": bool(params.get("thin")), "config": config}

        return Plan(kind="package", workspace=self.root, toolchain=self.kind,
                    steps=[Step("list _build/packages", func=snapshot),
                           Step(" ".join(["./repo.sh", *argv[1:]]), argv=argv, cwd=self.root)],
                    finish=finish, serial_key=f"kit:{self.root}",
                    describe_failure=_describer("package", "step_timeout_s"))

    def plan_package_container(self, params: dict[str, Any]) -> Plan:
        # The guide: "Packages the application as a container image (Linux only)"; it builds
        # with docker. --app names the .kit (without it the tool prompts), --image-tag the
        # image, -p/--from-package uses a package archive "instead of a root folder",
        # -g/--generate writes the container files without building the image (CHANGELOG
        # 109.0.1: "You can generate and not containerize by running `repo package_container
        # --app ${path_to_kit_file} --generate`"), so only a build needs docker.
        kit = self._kit_file(params["app"])
        generate = bool(params.get("generate"))
        if not generate and shutil.which("docker") is None:
            raise Unsupported(
                "package_container builds a docker image, and docker is not installed here (no "
                "`docker` on the daemon's PATH); install docker, use generate: true to write "
                "the container files only, or use `kitplay package`", {"needs": "docker"})
        argv = [self.repo_sh, "package_container", "--app", str(kit.relative_to(self.root))]
        if params.get("image_tag"):
            argv += ["--image-tag", _check_image_tag(params["image_tag"])]
        archive = None
        if params.get("from_package"):
            archive = self._package_archive(params["from_package"])
            argv += ["--from-package", archive]
        if generate:
            argv.append("--generate")
        self.accept_license(params)
        return Plan(kind="package_container", workspace=self.root, toolchain=self.kind,
                    steps=[Step(" ".join(["./repo.sh", *argv[1:]]), argv=argv, cwd=self.root,
                                stdin=b"")],
                    finish=lambda: {"app": kit.stem, "image_tag": params.get("image_tag"),
                                    "from_package": archive, "generate": generate},
                    serial_key=f"kit:{self.root}",
                    describe_failure=_describer("package_container", "step_timeout_s"))

    def _package_archive(self, value: str) -> str:
        """``from_package``: a package archive inside the workspace (absolute, or relative to
        its root), as a path relative to the root. The formats repo.toml's packages may use
        ("7z", "zip", "tar.gz", "tar.bz2")."""
        rel = os.path.relpath(value, self.root) if os.path.isabs(value) else value
        path = inside(self.root, *[p for p in rel.split("/") if p])
        if not path.name.endswith((".zip", ".7z", ".tar.gz", ".tar.bz2")):
            raise InvalidParams(f"from_package {value[:200]!r} is not a package archive (.zip, "
                                ".7z, .tar.gz or .tar.bz2)", {"param": "from_package"})
        if not path.is_file():
            raise NotFound(f"from_package: no archive {value[:200]!r} in {self.root}; "
                           "`kitplay package` lists the archives it makes in its result",
                           {"param": "from_package"})
        return str(path.relative_to(self.root))

    def plan_modify(self, params: dict[str, Any]) -> Plan:
        # `template modify` is interactive (the tooling guide: pick the .kit, tick layers with
        # Space; kit_app_streaming_config.md, README.md say the same). Looked for a scripted
        # form: kit-app-template 110.1.2 and its release branches (107.3 added modify; the
        # CHANGELOG documents no flag), the CI scripts (tools/ci/*, never run modify), forks'
        # scripts (jordanhubbard/kit-app-template's kit_playground drives only `template
        # replay`; a public build recipe answers `template new --input 'Yes;Application>;...'`
        # but nothing shows `--input` or a replay file driving modify). So kitplay cannot
        # answer its screens without guessing them.
        kit = self._kit_file(params["app"])
        raise Unsupported(
            f"adding layers to {kit.stem} needs kit-app-template's interactive `template "
            "modify`, which has no documented non-interactive form; run `./repo.sh template "
            f"modify` in {self.root} yourself, or create the app again with layers",
            {"app": kit.stem, "command": "./repo.sh template modify"})


# -- helpers --------------------------------------------------------------------------------

def _config(params: dict[str, Any]) -> str:
    config = params.get("config") or "release"
    if config not in CONFIGS:  # the registry checks it too
        raise InvalidParams(f"config must be release or debug, not {config!r}",
                            {"param": "config"})
    return str(config)


def _gpu_check() -> None:
    """launch.py's nvidia_driver_check: nvidia-smi on PATH, and it lists a GPU."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        raise Unsupported("launching a container needs an NVIDIA GPU and its driver "
                          "(`repo.sh launch --container` checks for nvidia-smi, and it is not "
                          "on the daemon's PATH)", {"needs": "nvidia-smi"})
    try:
        done = subprocess.run([smi, "--list-gpus"], capture_output=True, text=True,
                              timeout=20, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise Unsupported(f"nvidia-smi --list-gpus failed ({e}); no NVIDIA GPU found",
                          {"needs": "nvidia-smi"}) from None
    if done.returncode != 0:
        raise Unsupported("nvidia-smi --list-gpus found no NVIDIA GPU: "
                          f"{(done.stderr or done.stdout).strip()[:300]}",
                          {"needs": "nvidia-smi"})


def _docker_json(argv: list[str], what: str) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ToolchainError(f"`{what}` failed: {e}") from None
    if done.returncode != 0:
        raise ToolchainError(f"`{what}` failed (exit {done.returncode}): "
                             f"{done.stderr.strip()[-500:]}")
    return done.stdout


def _container_image(docker: str, app: str) -> tuple[str, str]:
    """The newest image of ``app``, as (``repository:tag``, id).

    As launch.py finds them: images labelled ``kit_app_template`` (``docker images --filter
    label=kit_app_template --format json``, "<none>" repositories left out), whose label, read
    with ``docker image inspect``, names the app's .kit file (the label is the container's
    .kit: ``LABEL kit_app_template=$KIT_FILE_NAME_BREADCRUMB`` in the 108.1 branch's
    tools/containers/Dockerfile.j2). Docker lists the newest first; kitplay takes it where
    the real tool would ask which one.
    """
    out = _docker_json([docker, "images", "--filter", "label=kit_app_template", "--format",
                        "json"], "docker images --filter label=kit_app_template")
    images = []
    for line in out.splitlines():
        try:
            rec = json.loads(line) if line.strip() else None
        except ValueError:
            raise ToolchainError(f"`docker images` printed something that is not JSON: "
                                 f"{line[:200]!r}") from None
        if isinstance(rec, dict) and rec.get("Repository") not in (None, "<none>"):
            images.append(rec)
    wanted = {f"{app}.kit", f"source/apps/{app}.kit"}
    if images:
        ids = [str(i.get("ID")) for i in images]
        try:
            inspected = json.loads(_docker_json([docker, "image", "inspect", *ids],
                                                "docker image inspect"))
        except ValueError:
            raise ToolchainError("`docker image inspect` printed something that is not "
                                 "JSON") from None
        for rec, info in zip(images, inspected if isinstance(inspected, list) else []):
            labels = ((info or {}).get("Config") or {}).get("Labels") or {}
            if str(labels.get("kit_app_template", "")).removeprefix("./") in wanted:
                return f"{rec.get('Repository')}:{rec.get('Tag')}", str(rec.get("ID"))
    raise InvalidState(f"no container image of {app} (labelled kit_app_template={app}.kit) in "
                       "docker; build one with `kitplay package_container "
                       f"{app}`", {"app": app})


def _describer(what: str, timeout_key: str | None) -> Any:
    """Plan.describe_failure: the job kind, the failing step (in ``message``), the tool's lines."""
    def describe(step: str, message: str, log_path: Path) -> str:
        lines = tool_lines(log_path)
        if not message.startswith(f"step '{step}'"):
            message = f"step '{step}': {message}"
        out = f"{what} failed: {message}"
        if timeout_key and " timed out after " in message:
            out += f" (raise {timeout_key} in kitplayd's config.toml for a slower machine)"
        if lines:
            out += "; the tool's last lines:\n" + "\n".join(f"  {x}" for x in lines)
        return out
    return describe


def tool_lines(log_path: Path, n: int = 12) -> list[str]:
    """The last ``n`` lines the failing step's tool printed (kitplay's own lines left out)."""
    text = tail_lines(log_path, 400)
    lines = text.splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith(("[kitplay] step ", "[kitplay] launching ")):
            lines = lines[i + 1:]
            break
    return [x.rstrip() for x in lines if x.strip() and not x.startswith("[kitplay]")][-n:]


def _layer_type(layer: dict[str, Any]) -> str:
    """A layer's type names its .kit file: ``<app>_<type>.kit`` (``_streaming.kit``)."""
    return str(layer.get("kit_type") or "layer")


# tools/repoman/package.py package_name_check.
_PACKAGE_NAME = re.compile(r"^[A-Za-z0-9._]{1,100}(?<!\.)$")
_IMAGE_TAG = re.compile(r"^[a-z0-9][a-z0-9._/-]{0,127}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$")


def _check_package_name(value: str) -> str:
    # The real tool prints its complaint and exits 0 (package.py), so kitplay checks first.
    if not _PACKAGE_NAME.match(value):
        raise InvalidParams(f"package name {value[:100]!r} must be 1-100 letters, digits, dots "
                            "or underscores, not ending with a dot (the package tool's rule)",
                            {"param": "name"})
    return value


def _check_image_tag(value: str) -> str:
    if not _IMAGE_TAG.match(value):
        raise InvalidParams(f"image_tag {value[:100]!r} is not a docker image reference like "
                            "my_company/my_app:1.0", {"param": "image_tag"})
    return value


def _files(d: Path) -> dict[str, list[int]]:
    """(mtime, size) of the files under ``d``."""
    out: dict[str, list[int]] = {}
    for p in d.rglob("*") if d.is_dir() else []:
        if p.is_file():
            st = p.stat()
            out[str(p)] = [st.st_mtime_ns, st.st_size]
    return out


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
