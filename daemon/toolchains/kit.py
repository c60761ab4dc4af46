"""The kit-app-template toolchain: drives a checkout of NVIDIA's kit-app-template, no prompts.

- catalogue: read in Python from ``templates/templates.toml`` and its collections
  (``kit_catalogue``), never by running ``repo.sh template list``;
- create: a replay file in ``<workspace>/_kitplay/`` (git-ignored by its own ``.gitignore``)
  and ``./repo.sh template replay FILE`` with every question answered "n", so an overwrite
  prompt can never overwrite anything; the interactive ``template new`` is never run;
- build: ``./repo.sh build -r`` (``-c`` first when ``clean``), one at a time per workspace
  (creates share the queue: both rewrite ``premake5.lua`` and ``repo.toml``);
- launch: ``_build/<platform>/release/<app>.kit.sh`` directly, never the ``repo.sh launch``
  picker;
- test: ``./repo.sh test``; package: ``./repo.sh package [-n NAME] [--thin]``, its result the
  archives that appeared under ``_build/packages/``; package_container: ``./repo.sh
  package_container --app source/apps/<app>.kit [--image-tag TAG]`` where docker is installed;
- modify (add layers, ``template modify``): refused as unsupported; the real command is
  interactive and documents no replay form.

What the tool made is read back by ``kit_apps``; replay files are written by
``kit_catalogue.replay_tables``.

The licence is accepted when ``.omniverse_eula_accepted.txt`` exists at the root; kitplay
creates it only on an explicit ``accept_license: true``.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
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
from .builtin import check_app_name, check_display_name, check_version
from .kit_apps import kit_version, list_apps, project_version
from .kit_catalogue import (
    Catalogue,
    load_catalogue,
    nest,
    replay_tables,
    replay_toml,
)

__all__ = ["EULA_FILE", "KitToolchain", "PLAY_DIR", "kit_platform"]

EULA_FILE = ".omniverse_eula_accepted.txt"
PLAY_DIR = "_kitplay"  # replay files and create snapshots, inside the workspace
DEV_BUNDLE = "omni.kit.developer.bundle"
# Answers for any question `template replay` still asks: "no" (never overwrite).
REPLAY_STDIN = b"n\n" * 64
TRACKED = ("premake5.lua", "repo.toml")  # files replay edits besides source/


def kit_platform() -> str:
    machine = platform.machine().lower()
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    return f"linux-{arch}"


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

    @property
    def release_dir(self) -> Path:
        return self.root / "_build" / kit_platform() / "release"

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

    # -- catalogue --------------------------------------------------------------------------

    def list_templates(self) -> list[dict[str, Any]]:
        return [self.catalogue.public(t) for t in self.catalogue.entries]

    def get_template(self, name: str) -> dict[str, Any]:
        cat = self.catalogue
        if name not in cat.entries:
            known = ", ".join(t for t in cat.entries if cat.public(t)["creatable"]) or "none"
            raise NotFound(f"no template named {name!r} in {cat.config} (templates you can "
                           f"create from: {known})", {"template": name})
        out = cat.public(name)
        out["layers"] = [{"name": t, "display_name": cat.public(t)["display_name"],
                          "label": cat.label(t), "kit_type": cat.public(t).get("kit_type")}
                         for t in cat.layers_for(name)]
        out["extensions"] = [
            {"name": t, "display_name": cat.public(t)["display_name"] if t in cat.entries
             else None, "kit_type": cat.entries.get(t, {}).get("type", "setup")}
            for t in cat.extensions_for(name)]
        return out

    def list_apps(self) -> list[dict[str, Any]]:
        return list_apps(self.root, self.catalogue, self.release_dir)

    # -- licence ----------------------------------------------------------------------------

    def check_license(self, params: dict[str, Any], how: str) -> None:
        if self.license_accepted():
            return
        if params.get("accept_license"):
            (self.root / EULA_FILE).write_text(
                "Accepted through kitplay (accept_license: true) on "
                f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n")
            return
        raise LicenseNotAccepted(
            f"the NVIDIA Omniverse licence has not been accepted for {self.root} "
            f"({EULA_FILE} is missing). The kit-app-template tools are governed by the NVIDIA "
            "Software License Agreement and the Product-Specific Terms for NVIDIA Omniverse; "
            f"to accept them, repeat the call with accept_license: true, or run `{how} "
            "--accept-license`", {"license_file": str(self.root / EULA_FILE),
                                  "accept_param": "accept_license"})

    # -- create -----------------------------------------------------------------------------

    def plan_create(self, params: dict[str, Any]) -> Plan:
        recover = bool(params.get("_recover"))
        cat = self.catalogue
        tid = params["template"]
        template = self.get_template(tid)
        kind = template["type"]
        if not template["creatable"]:
            hint = (" add it to an application with layers: [...]" if kind == "application_layer"
                    else " an application template adds it by itself")
            raise InvalidParams(f"template {tid!r} is a {template['class']} and cannot be "
                                f"created on its own;{hint}", {"param": "template"})
        name = check_app_name(params["name"])
        var = template["variables"]
        prefix = "application" if kind == "application" else "extension"
        display_name = check_display_name(
            params.get("display_name") or var.get(f"{prefix}_display_name") or name)
        version = check_version(params.get("version") or var.get("version") or "0.1.0")
        layers = list(dict.fromkeys(params.get("layers") or []))
        offered = {t["name"]: t for t in template["layers"]}
        if layers and kind != "application":
            raise InvalidParams(f"template {tid!r} is an extension template and takes no "
                                "layers; leave out 'layers'", {"param": "layers"})
        for layer in layers:
            if layer not in offered:
                valid = ", ".join(offered) or "none (this template takes no layers)"
                raise InvalidParams(f"unknown layer {layer!r} for template {tid!r}; valid "
                                    f"layers: {valid}", {"param": "layers",
                                                         "valid": list(offered)})
        answers: dict[str, Any]
        exts: list[dict[str, str]] = []
        if kind == "application":
            targets = [inside(self.root, "source", "apps", f"{name}.kit")]
            targets += [inside(self.root, "source", "apps", f"{name}_{_layer_type(offered[x])}.kit")
                        for x in layers]
            # kitplay answers every question, as .vscode/replay_files/* do: names and display
            # names of the setup extensions too (the CI files leave them to the tool's defaults).
            exts = [self._setup_extension(tid, ext_id, name, display_name, version)
                    for ext_id in cat.extensions_for(tid)]
            targets += [inside(self.root, "source", "extensions", e["extension_name"])
                        for e in exts]
            answers = {"application_name": name, "application_display_name": display_name,
                       "version": version, "layers": layers,
                       "extensions": {e["template"]: {k: v for k, v in e.items()
                                                      if k != "template"} for e in exts}}
        else:
            targets = [inside(self.root, "source", "extensions", name)]
            answers = {"extension_name": name, "extension_display_name": display_name,
                       "version": version}
        try:
            tables = replay_tables(cat, tid, answers)
        except ValueError as e:
            raise ToolchainError(f"cannot answer template {tid!r}: {e}; check {cat.config}") \
                from None
        if not recover:
            self.check_license(params, "kitplay templates create TEMPLATE NAME")
            for t in targets:
                if t.exists():
                    raise InvalidState(
                        f"{t.relative_to(self.root)} already exists in {self.root}; choose "
                        "another name (kitplay never overwrites)", {"path": str(t)})
        play = self.root / PLAY_DIR
        replay = play / f"replay-{name}.toml"
        snapshot = play / f"replay-{name}.before.json"
        text = replay_toml(tables)

        def prepare(log: StepLog) -> None:
            for t in targets:
                if t.exists():
                    raise InvalidState(f"{t.relative_to(self.root)} appeared meanwhile; not "
                                       "overwriting it")
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
                    "layers": [f"{name}_{_layer_type(offered[x])}" for x in layers],
                    "extensions": [e["extension_name"] for e in exts],
                    "replay_file": str(replay)}

        step = f"./repo.sh template replay {PLAY_DIR}/{replay.name}"
        return Plan(
            kind="create", workspace=self.root, toolchain=self.kind,
            steps=[Step(f"write {PLAY_DIR}/{replay.name}", func=prepare),
                   Step(step, argv=[self.repo_sh, "template", "replay", str(replay)],
                        cwd=self.root, stdin=REPLAY_STDIN)],
            finish=finish, serial_key=f"kit:{self.root}",
            describe_failure=_describer("create", "create_timeout_s"))

    def _setup_extension(self, tid: str, ext_id: str, app: str, display: str,
                         version: str) -> dict[str, str]:
        """The replay sub-table of a required extension, its names derived from the app's."""
        cat = self.catalogue
        if ext_id not in cat.entries:
            raise ToolchainError(f"template {tid!r} requires extension template {ext_id!r}, "
                                 f"which the catalogue does not define; check {cat.config}")
        entry = cat.entries[ext_id]
        app_var = cat.entries[tid].get("variables") or {}
        ext_var = entry.get("variables") or {}
        return {
            "template": ext_id,
            "extension_name": app + _suffix(ext_var.get("extension_name"),
                                            app_var.get("application_name"),
                                            f"_{entry.get('type', 'setup')}_extension"),
            "extension_display_name": display + _suffix(
                ext_var.get("extension_display_name"), app_var.get("application_display_name"),
                f" {entry.get('name', ext_id)}"),
            "version": version,
        }

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
        name = check_app_name(app.removesuffix(".kit"), "app")
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
        if not params.get("_recover"):
            self.check_license(params, "kitplay build")
        steps = []
        if params.get("clean"):
            steps.append(Step("./repo.sh build -c", argv=[self.repo_sh, "build", "-c"],
                              cwd=self.root))
        steps.append(Step("./repo.sh build -r", argv=[self.repo_sh, "build", "-r"],
                          cwd=self.root))

        def finish() -> dict[str, Any]:
            scripts = sorted(self.release_dir.glob("*.kit.sh"))
            built = [s.name.removesuffix(".kit.sh") for s in scripts]
            if app and app not in built:
                raise ToolchainError(
                    f"the build succeeded but did not produce {app}.kit.sh in "
                    f"{self.release_dir}; is source/apps/{app}.kit listed with define_app in "
                    "premake5.lua?")
            return {"apps": built, "app": app, "platform": kit_platform(),
                    "build_dir": str(self.release_dir)}

        return Plan(kind="build", workspace=self.root, toolchain=self.kind, steps=steps,
                    finish=finish, serial_key=f"kit:{self.root}",
                    describe_failure=_describer("build", "step_timeout_s"))

    # -- launch -----------------------------------------------------------------------------

    def plan_launch(self, params: dict[str, Any]) -> Plan:
        recover = bool(params.get("_recover"))
        name = check_app_name(params["app"].removesuffix(".kit"), "app")
        script = self.release_dir / f"{name}.kit.sh"
        if not recover:
            self.check_license(params, "kitplay launch APP")
            if not script.is_file():
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


    # -- test, package, package_container, modify -------------------------------------------
    # The tooling guide (readme-assets/additional-docs/kit_app_template_tooling_guide.md)
    # lists these tools and their options; kitplay passes nothing it does not document.

    def plan_test(self, params: dict[str, Any]) -> Plan:
        if params.get("app"):
            raise InvalidParams(
                "kit-app-template's `repo.sh test` tests every built app and extension and "
                "documents no option for one app; leave out 'app'", {"param": "app"})
        if not params.get("_recover"):
            self.check_license(params, "kitplay test")
        return Plan(kind="test", workspace=self.root, toolchain=self.kind,
                    steps=[Step("./repo.sh test", argv=[self.repo_sh, "test"], cwd=self.root)],
                    finish=lambda: {"command": "./repo.sh test", "output": "the job's log"},
                    serial_key=f"kit:{self.root}", describe_failure=_describer("test", None))

    def plan_package(self, params: dict[str, Any]) -> Plan:
        if params.get("app"):
            raise InvalidParams(
                "kit-app-template's `repo.sh package` packages everything in the build and "
                "documents no option for one app; leave out 'app'", {"param": "app"})
        argv = [self.repo_sh, "package"]
        if params.get("name"):
            argv += ["-n", _check_package_name(params["name"])]
        if params.get("thin"):
            argv.append("--thin")
        if not params.get("_recover"):
            self.check_license(params, "kitplay package")
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
                raise ToolchainError(f"`repo.sh package` succeeded but wrote no archive under "
                                     f"{packages}; see the job's log")
            return {"archives": made, "packages_dir": str(packages),
                    "project_version": project_version(self.root),
                    "thin": bool(params.get("thin"))}

        return Plan(kind="package", workspace=self.root, toolchain=self.kind,
                    steps=[Step("list _build/packages", func=snapshot),
                           Step(" ".join(["./repo.sh", *argv[1:]]), argv=argv, cwd=self.root)],
                    finish=finish, serial_key=f"kit:{self.root}",
                    describe_failure=_describer("package", "step_timeout_s"))

    def plan_package_container(self, params: dict[str, Any]) -> Plan:
        # The guide: "Packages the application as a container image (Linux only)"; it builds
        # with docker. --app names the .kit (without it the tool prompts), --image-tag the image.
        kit = self._kit_file(params["app"])
        if shutil.which("docker") is None:
            raise Unsupported(
                "package_container builds a docker image, and docker is not installed here (no "
                "`docker` on the daemon's PATH); install docker, or use `kitplay package`",
                {"needs": "docker"})
        argv = [self.repo_sh, "package_container", "--app", str(kit.relative_to(self.root))]
        if params.get("image_tag"):
            argv += ["--image-tag", _check_image_tag(params["image_tag"])]
        if not params.get("_recover"):
            self.check_license(params, "kitplay package_container APP")
        return Plan(kind="package_container", workspace=self.root, toolchain=self.kind,
                    steps=[Step(" ".join(["./repo.sh", *argv[1:]]), argv=argv, cwd=self.root,
                                stdin=b"")],
                    finish=lambda: {"app": kit.stem, "image_tag": params.get("image_tag")},
                    serial_key=f"kit:{self.root}",
                    describe_failure=_describer("package_container", "step_timeout_s"))

    def plan_modify(self, params: dict[str, Any]) -> Plan:
        # The guide: `template modify` is interactive (pick the .kit, tick layers with Space);
        # no replay form or flag for it is documented in kit-app-template 110.1.2, so kitplay
        # cannot drive it without guessing the wizard's screens.
        kit = self._kit_file(params["app"])
        raise Unsupported(
            f"adding layers to {kit.stem} needs kit-app-template's interactive `template "
            "modify`, which has no documented non-interactive form; run `./repo.sh template "
            f"modify` in {self.root} yourself, or create the app again with layers",
            {"app": kit.stem, "command": "./repo.sh template modify"})

# -- helpers --------------------------------------------------------------------------------

def _describer(what: str, timeout_key: str | None) -> Any:
    """Plan.describe_failure: the job kind, the failing step (in ``message``), the tool's lines."""
    def describe(step: str, message: str, log_path: Path) -> str:
        lines = tool_lines(log_path)
        if not message.startswith(f"step '{step}'"):
            message = f"step '{step}': {message}"
        out = f"{what} failed: {message}"
        if timeout_key and " timed out after " in message:
            out += f" (raise {timeout_key} in kitplayd's config.toml for a slower machine)"
        if any(x.startswith("Overwrite existing ") for x in lines):
            out += " (nothing was overwritten: kitplay answers no to every overwrite question)"
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


def _suffix(default_ext: Any, default_app: Any, fallback: str) -> str:
    """What the template's default extension name adds to its default app name."""
    if isinstance(default_ext, str) and isinstance(default_app, str) and \
            default_ext.startswith(default_app) and len(default_ext) > len(default_app):
        return default_ext[len(default_app):]
    return fallback


_PACKAGE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_IMAGE_TAG = re.compile(r"^[a-z0-9][a-z0-9._/-]{0,127}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$")


def _check_package_name(value: str) -> str:
    if not _PACKAGE_NAME.match(value):
        raise InvalidParams(f"package name {value[:100]!r} must be 1-100 letters, digits, dots, "
                            "dashes or underscores", {"param": "name"})
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
