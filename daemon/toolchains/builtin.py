"""The builtin toolchain: a template catalogue shipped inside the package, no SDK needed.

Creation renders a template's files into ``<workspace>/source/apps/<name>/``; each app
declares its build steps and launch command in its own ``kitapp.toml``.

Templates are data: a template renders exactly the files its ``template.toml`` declares
(``files = [...]``, relative to its ``files/`` directory) and nothing else found there, such
as the ``__pycache__/`` that installing the package byte-compiles into the template trees.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import stat
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

from ..protocol.errors import (
    InvalidParams,
    InvalidState,
    NotFound,
    ToolchainError,
)
from ..protocol.process import user_umask
from ..protocol.registry import APP_NAME_RE
from ..trust import check_trusted
from .base import Plan, Step, StepLog, inside
from .icons import DOCS_LIMIT, ICON_LIMIT, docs_text, icon_result, sniff

__all__ = ["BuiltinToolchain", "check_app_name", "TEMPLATES_DIR"]

TEMPLATES_DIR = Path(__file__).parent / "builtin_templates"
JUNIT_RUNNER = __package__ + ".junit"  # kitplay.daemon.toolchains.junit
VERSION_RE = re.compile(r"^\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$")
NAME_RULE = ("lowercase and dot-separated like my_company.my_app: at least two parts, each "
             "starting with a letter, using only a-z, 0-9 and _")


def check_app_name(name: str, param: str = "name") -> str:
    if len(name) > 100 or not APP_NAME_RE.match(name):
        raise InvalidParams(f"{param} {name[:100]!r} is not a valid app name: it must be "
                            f"{NAME_RULE}", {"param": param, "rule": NAME_RULE})
    return name


def check_display_name(value: str) -> str:
    if not value.strip() or len(value) > 100 or any(c in value for c in '"\\') or any(
            ord(c) < 32 for c in value):
        raise InvalidParams(
            "display_name must be 1-100 characters without quotes, backslashes or control "
            "characters", {"param": "display_name"})
    return value


def check_version(value: str) -> str:
    if not VERSION_RE.match(value):
        raise InvalidParams(f"version {value[:40]!r} must look like 1.2.3 (optionally -suffix)",
                            {"param": "version"})
    return value


@functools.cache
def _catalogue() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for d in sorted(TEMPLATES_DIR.iterdir()):
        meta = d / "template.toml"
        if not meta.is_file():
            continue
        with meta.open("rb") as f:
            data = tomllib.load(f)
        t = data["template"]
        icon = _declared_file(t.get("icon"), meta, "icon")
        out[t["name"]] = {
            "_files": _declared_files(t.get("files"), meta),
            "name": t["name"],
            "display_name": t["display_name"],
            "type": t.get("type", "application"),
            "description": t.get("description", ""),
            "toolchain": "builtin",
            "variables": data.get("variables", {}),
            # What the API's template records say (the same fields as kit-app-template's).
            "creatable": True,
            "kind": t.get("type", "application"),
            "layers": [],
            "docs": _template_docs(d, _declared_file(t.get("docs"), meta, "docs")),
            "icon": "/api/templates/icon/" + t["name"] if icon else None,
            "_icon": str(d / icon) if icon else None,
            "_dir": str(d),
        }
    return out


def _declared_file(value: Any, meta: Path, key: str) -> str | None:
    """A template's ``docs`` or ``icon``: a file name beside its template.toml."""
    if value is None:
        return None
    if not isinstance(value, str) or "/" in value or value.startswith(".") or \
            not (meta.parent / value).is_file():
        raise ToolchainError(f"{meta} declares {key} = {str(value)[:100]!r}, which is not a file "
                             "beside it; reinstall kitplay")
    return value


def _template_docs(d: Path, name: str | None) -> str:
    return docs_text((d / name).read_bytes(), DOCS_LIMIT) if name else ""


def _declared_files(value: Any, meta: Path) -> list[str]:
    """A template's ``files`` list: relative paths inside ``files/``, checked once at load."""
    if not isinstance(value, list) or not value:
        raise ToolchainError(f"{meta} declares no files (files = [...]); reinstall kitplay")
    out = []
    for rel in value:
        parts = Path(rel).parts if isinstance(rel, str) else ()
        if not parts or Path(rel).is_absolute() or ".." in parts:
            raise ToolchainError(f"{meta} declares a bad file name {str(rel)[:100]!r}: it "
                                 "must be a relative path inside files/")
        out.append(Path(rel).as_posix())
    return sorted(out)


def _as_user(path: Path, mode: int) -> None:
    """Give ``path`` ``mode`` less the user's umask: the daemon runs with umask 077, and what
    a job makes in the workspace is the user's, made as their terminal would make it."""
    um = user_umask()
    if um >= 0:
        os.chmod(path, mode & ~um)


def _mkdirs_as_user(path: Path) -> None:
    """``mkdir -p`` whose new directories get the user's umask (``_as_user``)."""
    missing = []
    while not path.is_dir():
        missing.append(path)
        path = path.parent
    for d in reversed(missing):
        try:
            os.mkdir(d)
        except FileExistsError:
            continue
        _as_user(d, 0o777)


def _render_text(path: Path, rel: str, template: str) -> str:
    """A declared template file as text; a missing or binary one is a clear, short error."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ToolchainError(f"template {template!r} declares {rel}, which is missing from "
                             f"{path.parent}; reinstall kitplay") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ToolchainError(f"template {template!r} file {rel} is not UTF-8 text (byte "
                             f"{e.start} of {len(data)}); templates hold text files only")\
            from None


def _public(t: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in t.items() if not k.startswith("_")}


_parsed: dict[str, tuple[tuple[int, int, int], dict[str, Any]]] = {}


def _read_app(app_dir: Path) -> dict[str, Any]:
    """An app's ``kitapp.toml``, parsed again only when its stat changes (a submission reads
    it on every ``build`` and ``launch`` call).  Callers treat the result as read-only."""
    path = os.path.join(app_dir, "kitapp.toml")
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        hit = _parsed.get(path)
        if hit is not None and hit[0] == key:
            return hit[1]
        data = tomllib.load(f)
    _check_app_file(path, data)
    if len(_parsed) > 256:
        _parsed.clear()
    _parsed[path] = (key, data)
    return data


def _check_app_file(path: str, data: dict[str, Any]) -> None:
    """The shape every reader of a ``kitapp.toml`` relies on (the builtin templates' files
    show it); a file that parses but has another shape is the file's fault, said with its
    key, never a daemon bug."""
    def bad(key: str, what: str, value: Any) -> ToolchainError:
        return ToolchainError(
            f"{path}: '{key}' must be {what}, not {_toml_type(value)}; fix the file",
            {"file": path, "key": key})

    def table(key: str, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise bad(key, "a table", value)
        return value

    def argv(key: str, value: Any) -> None:
        if not (isinstance(value, list) and value and all(isinstance(a, str) for a in value)):
            raise bad(key, "a non-empty array of strings", value)

    for key in ("name", "display_name", "version", "template"):
        value = table("app", data.get("app", {})).get(key)
        if value is not None and not isinstance(value, str):
            raise bad(f"app.{key}", "a string", value)
    steps = table("build", data.get("build", {})).get("steps", [])
    if not isinstance(steps, list):
        raise bad("build.steps", "an array of tables ([[build.steps]])", steps)
    for i, step in enumerate(steps):
        table(f"build.steps[{i}]", step)
        if not isinstance(step.get("name"), str):
            raise bad(f"build.steps[{i}].name", "a string", step.get("name"))
        argv(f"build.steps[{i}].argv", step.get("argv"))
    launch = table("launch", data.get("launch", {}))
    for key in ("argv", "headless_argv"):
        if key in launch:
            argv(f"launch.{key}", launch[key])
    if not isinstance(launch.get("needs_display", False), bool):
        raise bad("launch.needs_display", "true or false", launch["needs_display"])
    test = table("test", data.get("test", {}))
    if "argv" in test:
        argv("test.argv", test["argv"])


def _toml_type(value: Any) -> str:
    if value is None:
        return "missing"
    return {bool: "a boolean", int: "an integer", float: "a float", str: "a string",
            list: "an array", dict: "a table"}.get(type(value), type(value).__name__)


class BuiltinToolchain:
    kind = "builtin"

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def apps_dir(self) -> Path:
        return self.root / "source" / "apps"

    def markers(self) -> list[Path]:
        """What ``info()`` depends on besides the root's entries: nothing."""
        return []

    def info(self) -> dict[str, Any]:
        return {"kind": self.kind, "workspace": str(self.root), "kit_version": None}

    def list_templates(self) -> list[dict[str, Any]]:
        return [_public(t) for t in _catalogue().values()]

    def get_template(self, name: str) -> dict[str, Any]:
        t = _catalogue().get(name)
        if t is None:
            raise NotFound(f"no template named {name!r} in the builtin catalogue; "
                           f"available: {', '.join(_catalogue())}", {"template": name})
        return {**_public(t), "files": list(t["_files"])}

    def template_icon(self, name: str) -> dict[str, Any]:
        t = _catalogue()[self.get_template(name)["name"]]
        data = Path(t["_icon"]).read_bytes() if t["_icon"] else b""
        kind = sniff(data[:ICON_LIMIT], t["_icon"] or "") if t["_icon"] else None
        if kind is None:
            raise NotFound(f"builtin template {name!r} has no icon", {"template": name})
        return icon_result(name, data, kind)

    def license_info(self) -> dict[str, Any]:
        return {"required": False, "accepted": True, "url": None,
                "summary": "The builtin templates are part of kitplay and need no licence."}

    def create_replay(self, params: dict[str, Any]) -> str:
        self.get_template(params["template"])
        raise InvalidState(f"{self.root} is a builtin workspace: creating an app runs no tool "
                           "and has no replay file to show; dry_run is for kit-app-template "
                           "workspaces", {"toolchain": self.kind})

    def list_apps(self) -> list[dict[str, Any]]:
        apps = []
        if self.apps_dir.is_dir():
            for d in sorted(self.apps_dir.iterdir()):
                if not (d / "kitapp.toml").is_file():
                    continue
                try:
                    app = _read_app(d)["app"]
                except (OSError, tomllib.TOMLDecodeError, KeyError, ToolchainError):
                    app = {"name": d.name}
                apps.append({
                    "name": d.name, "display_name": app.get("display_name"),
                    "version": app.get("version"), "template": app.get("template"),
                    "type": "application", "path": str(d),
                    "built": any(d.rglob("__pycache__")),
                })
        return apps

    # -- plans ------------------------------------------------------------------------------

    def plan_create(self, params: dict[str, Any]) -> Plan:
        template = self.get_template(params["template"])
        name = check_app_name(params["name"])
        display_name = check_display_name(
            params.get("display_name") or template["variables"].get("display_name") or name)
        version = check_version(params.get("version") or template["variables"].get(
            "version", "0.1.0"))
        for key in ("layers", "extension_names"):
            if params.get(key):
                raise InvalidParams(f"the builtin toolchain has no application layers or setup "
                                    f"extensions; leave out '{key}'", {"param": key})
        target = inside(self.root, "source", "apps", name)
        if target.exists():
            raise InvalidState(f"app {name!r} already exists at {target}; choose another name "
                               "or delete that directory", {"path": str(target)})
        src = Path(_catalogue()[template["name"]]["_dir"]) / "files"
        declared: list[str] = _catalogue()[template["name"]]["_files"]
        values = {"{{name}}": name, "{{display_name}}": display_name, "{{version}}": version,
                  "{{module}}": name.replace(".", "_"), "{{template}}": template["name"]}
        created: list[str] = []
        staging = self.apps_dir / f".{name}.creating"

        def render(log: StepLog) -> None:
            if target.exists():
                raise InvalidState(f"app {name!r} appeared at {target} meanwhile; not "
                                   "overwriting it")
            shutil.rmtree(staging, ignore_errors=True)
            try:
                write_files(log)
            except BaseException:  # a failed create leaves nothing behind
                shutil.rmtree(staging, ignore_errors=True)
                raise

        def write_files(log: StepLog) -> None:
            for rel in declared:
                path = src / rel
                text = _render_text(path, rel, template["name"])
                out = staging / rel
                _mkdirs_as_user(out.parent)
                for k, v in values.items():
                    text = text.replace(k, v)
                out.write_text(text)
                out.chmod(path.stat().st_mode & 0o777)
                _as_user(out, path.stat().st_mode & 0o777)
                created.append(str(Path("source/apps") / name / rel))
                log.write(f"  wrote {created[-1]}\n")

        def publish(log: StepLog) -> None:
            try:
                os.rename(staging, target)  # atomic: the app appears whole or not at all
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            log.write(f"created {name} ({display_name} {version}) in {target}\n")

        def check(log: StepLog) -> None:
            _mkdirs_as_user(self.apps_dir)
            log.write(f"creating {name} from template {template['name']}\n")

        return Plan(
            kind="create", workspace=self.root, toolchain=self.kind,
            steps=[Step("check workspace", func=check), Step("render files", func=render),
                   Step("publish app", func=publish)],
            finish=lambda: {"app": name, "path": str(target), "files": created,
                            "template": template["name"]},
            serial_key=f"apps:{self.root}",
        )

    def _app_dir(self, name: str, param: str = "app") -> Path:
        check_app_name(name, param)
        d = inside(self.root, "source", "apps", name)
        if not (d / "kitapp.toml").is_file():
            known = ", ".join(a["name"] for a in self.list_apps()) or "none yet"
            raise NotFound(f"no app named {name!r} in {self.root} (apps: {known}); create it "
                           "with `kitplay templates create`", {"app": name})
        return d

    def _load(self, d: Path) -> dict[str, Any]:
        # Its commands run as the user; the root and above were checked by resolve_workspace.
        # ``d`` comes resolved from inside(): unless the file itself is a symlink, its path is
        # already real (one lstat instead of a realpath's one per component).
        toml = d / "kitapp.toml"
        try:
            link = stat.S_ISLNK(os.lstat(toml).st_mode)
        except OSError:
            link = True  # let check_trusted and the read say what is wrong
        check_trusted(toml, self.root, "app", below_workspace=True, resolved=not link)
        try:
            return _read_app(d)
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ToolchainError(f"{d / 'kitapp.toml'} cannot be read: {e}; fix the file") \
                from None

    def plan_build(self, params: dict[str, Any]) -> Plan:
        _one_config(params)
        if params.get("app"):
            dirs = [self._app_dir(params["app"])]
        else:
            dirs = [Path(a["path"]) for a in self.list_apps()]
            if not dirs:
                raise InvalidState(f"nothing to build in {self.root}: create an app first "
                                   "with `kitplay templates create`")
        steps: list[Step] = []
        for d in dirs:
            if params.get("clean"):
                def clean(log: StepLog, d: Path = d) -> None:
                    for cache in list(d.rglob("__pycache__")):
                        shutil.rmtree(cache, ignore_errors=True)
                    log.write(f"cleaned {d.name}\n")
                steps.append(Step(f"{d.name}: clean", func=clean))
            for s in self._load(d).get("build", {}).get("steps", []):
                steps.append(Step(f"{d.name}: {s['name']}", argv=_argv(s["argv"]), cwd=d))
        return Plan(kind="build", workspace=self.root, toolchain=self.kind, steps=steps,
                    serial_key=f"build:{self.root}",
                    finish=lambda: {"apps": [d.name for d in dirs]})

    def plan_launch(self, params: dict[str, Any]) -> Plan:
        d = self._app_dir(params["app"])
        if params.get("container"):
            raise InvalidState(f"{self.root} is a builtin workspace, whose apps run as local "
                               "processes, not containers; container is for kit-app-template "
                               "apps packaged with package_container", {"toolchain": self.kind})
        spec = self._load(d).get("launch", {})
        display = params.get("display", "native")
        key = "headless_argv" if display == "headless" and "headless_argv" in spec else "argv"
        if key not in spec:
            toml = d / "kitapp.toml"
            raise ToolchainError(f"{toml}: 'launch.argv' is missing: add a [launch] table with "
                                 "the app's command, e.g. argv = [\"{python}\", \"app.py\"]",
                                 {"file": str(toml), "key": "launch.argv"})
        argv = _argv(spec[key]) + list(params.get("args") or [])
        return Plan(kind="launch", workspace=self.root, toolchain=self.kind,
                    steps=[Step(f"{d.name}: run", argv=argv, cwd=d)], app=d.name,
                    display=display, needs_display=bool(spec.get("needs_display")))


    # -- test, package (and what the builtin catalogue has no counterpart for) ----------------

    def _apps_or_one(self, params: dict[str, Any], what: str) -> list[Path]:
        if params.get("app"):
            return [self._app_dir(params["app"])]
        dirs = [Path(a["path"]) for a in self.list_apps()]
        if not dirs:
            raise InvalidState(f"nothing to {what} in {self.root}: create an app first with "
                               "`kitplay templates create`")
        return dirs

    def plan_test(self, params: dict[str, Any]) -> Plan:
        """Each app's own tests: ``[test] argv`` of its kitapp.toml, else ``test_app.py``.

        ``test_app.py`` runs through unittest with a JUnit XML report (``toolchains.junit``)
        in ``_build/tests/<app>.junit.xml``; a ``[test] argv`` command gets that path in
        ``KITPLAY_JUNIT_XML`` and may write one there (``pytest --junitxml``)."""
        steps: list[Step] = []
        reports: list[Path] = []
        for d in self._apps_or_one(params, "test"):
            spec = self._load(d).get("test", {})
            report = self.root / "_build" / "tests" / f"{d.name}.junit.xml"
            if "argv" in spec:
                argv = _argv(spec["argv"])
            elif (d / "test_app.py").is_file():
                argv = [sys.executable, "-P", "-m", JUNIT_RUNNER, str(report), "test_app.py"]
            else:
                raise InvalidState(f"app {d.name!r} has no tests: add test_app.py or a [test] "
                                   "argv to its kitapp.toml", {"app": d.name})
            steps.append(Step(f"{d.name}: test", argv=argv, cwd=d,
                              env={"KITPLAY_JUNIT_XML": str(report)}))
            reports.append(report)
        names = [s.name.removesuffix(": test") for s in steps]
        return Plan(kind="test", workspace=self.root, toolchain=self.kind, steps=steps,
                    serial_key=f"build:{self.root}", finish=lambda: {"apps": names},
                    reports=reports)

    def plan_package(self, params: dict[str, Any]) -> Plan:
        """A zip of each app's directory in ``_build/packages/<app>-<version>.zip``."""
        dirs = self._apps_or_one(params, "package")
        _one_config(params)
        if params.get("thin"):
            raise InvalidParams("the builtin toolchain makes one kind of package; leave out "
                                "'thin'", {"param": "thin"})
        name = params.get("name")
        if name is not None and (len(dirs) > 1 or not re.fullmatch(
                r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name)):
            raise InvalidParams("name must be 1-100 letters, digits, dots, dashes or "
                                "underscores, and names one app's package (give app too)",
                                {"param": "name"})
        out_dir = self.root / "_build" / "packages"
        archives: list[str] = []

        def pack(log: StepLog, *, d: Path) -> None:
            app = self._load(d).get("app", {})
            base = name or d.name
            version = str(app.get("version") or "0.0.0")
            _mkdirs_as_user(out_dir)
            dest = out_dir / f"{base}-{version}.zip"
            tmp = dest.with_name(dest.name + ".tmp")
            try:
                with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
                    for f in sorted(d.rglob("*")):
                        if not f.is_file() or "__pycache__" in f.parts:
                            continue
                        rel = (Path(d.name) / f.relative_to(d)).as_posix()
                        if not os.path.realpath(f).startswith(os.path.realpath(d) + "/"):
                            # An archive is handed to others: never a file from outside
                            # the app (a cloned app's link to ~/.ssh/id_rsa).
                            log.write(f"left out {rel}: a symlink to {os.path.realpath(f)}, "
                                      "outside the app\n")
                            continue
                        z.write(f, rel)
                _as_user(tmp, 0o666)
                os.replace(tmp, dest)
            except BaseException:  # a full disk, a file that cannot be read: no partial zip
                tmp.unlink(missing_ok=True)
                raise
            archives.append(str(dest))
            log.write(f"packaged {d.name} into {dest}\n")

        steps = [Step(f"{d.name}: package", func=functools.partial(pack, d=d)) for d in dirs]
        return Plan(kind="package", workspace=self.root, toolchain=self.kind, steps=steps,
                    serial_key=f"build:{self.root}",
                    finish=lambda: {"archives": archives, "packages_dir": str(out_dir)})

    # A workspace of the builtin toolchain cannot do these (InvalidState, not Unsupported: the
    # same call succeeds on a kit-app-template workspace).

    def plan_package_container(self, params: dict[str, Any]) -> Plan:
        self._app_dir(params["app"])
        raise InvalidState(f"{self.root} is a builtin workspace, which builds no container "
                           "images; package_container is a kit-app-template tool (with docker). "
                           "Use `kitplay package` for an archive", {"toolchain": self.kind})

    def plan_modify(self, params: dict[str, Any]) -> Plan:
        self._app_dir(params["app"])
        raise InvalidState(f"{self.root} is a builtin workspace, whose apps take no application "
                           "layers; apps.modify is kit-app-template's `template modify`",
                           {"toolchain": self.kind})


def _one_config(params: dict[str, Any]) -> None:
    if params.get("config", "release") != "release":
        raise InvalidParams("the builtin toolchain builds and packages one configuration; leave "
                            "out 'config' (debug is for kit-app-template workspaces)",
                            {"param": "config"})


def _argv(template: list[str]) -> list[str]:
    return [sys.executable if a == "{python}" else a for a in template]
