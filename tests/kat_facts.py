"""What NVIDIA's kit-app-template says, written down by kitplay for its kit tests.

No file of the tool is copied here or under tests/fixtures/: these are the facts the tests need
(template ids, names, versions, the keys and table shapes of replay files, the answers its
records hold), each with a comment naming the repository, commit and path it was read from, so
a reader can check it there.  ``KAT`` below is NVIDIA-Omniverse/kit-app-template at commit
1b93a81 ("KAT 110.1.2").

- ``CATALOGUE``: the 110.1.2 template catalogue, as kitplay's catalogue reader returns it.
- ``REPLAYS``: the answers of the tool's own replay (playback) files: the CI's
  ``tools/ci/automated_templating/*.toml.j2`` filled as ``tools/ci/build.py`` fills them, VS
  Code's ``.vscode/replay_files/*``, and ``tools/ci/PLAYBACK.template`` filled as
  ``tools/ci/container_builder.py`` fills it.  Each is the data ``tomllib`` reads from the file;
  ``replay_text`` writes it as TOML for the stand-in (our layout, not the files').
- ``RECORDS``: ``source/rendered_template_metadata.json`` records the tool wrote and
  repositories committed, trimmed to the entries whose shapes the tests need;
  ``json.dumps`` writes one for a workspace.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

KAT = "NVIDIA-Omniverse/kit-app-template 1b93a81"
KIT_VERSION = "110.1.2"  # KAT tools/VERSION.md (tools/ci/build.py reads it as VERSION)
CI_COMPANY = "nv_internal"  # KAT tools/ci/build.py: company = "nv_internal"
CI_JOB_ID = "4242"  # ours: container_builder.py appends $CI_JOB_ID to the version
DEFAULT_VERSION = "0.1.0"  # KAT templates/*_templates.toml: every variables.version

# -- the catalogue --------------------------------------------------------------------------
# KAT templates/templates.toml names two collections: templates/core_templates.toml and
# templates/sample_templates.toml.  Keys kept: class, name, type, variables and the links
# (extensions = [{template}], applications = [{link_all}]), as kitplay reads them.


def _application(name: str, app: str, display: str, *, setup: tuple[str, ...] = (),
                 layers: bool = False) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "class": "ApplicationTemplate", "name": name,
        "variables": {"application_name": app, "application_display_name": display,
                      "version": DEFAULT_VERSION}}
    if setup:
        entry["extensions"] = [{"template": t} for t in setup]
    if layers:  # every application that takes layers links all of them
        entry["applications"] = [{"link_all": True}]
    return entry


def _layer(name: str, kind: str) -> dict[str, Any]:
    return {"class": "ApplicationLayerTemplate", "name": name, "type": kind,
            "variables": {"version": DEFAULT_VERSION}}


def _extension(cls: str, name: str, ext: str, display: str,
               kind: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "class": cls, "name": name,
        "variables": {"extension_name": ext, "extension_display_name": display,
                      "version": DEFAULT_VERSION}}
    if kind:
        entry["type"] = kind
    return entry


CATALOGUE: dict[str, dict[str, Any]] = {
    # KAT templates/core_templates.toml
    "kit_base_editor": _application("Kit Base Editor", "my_company.my_editor", "My Editor",
                                    layers=True),
    "kit_service": _application("Kit Service", "my_company.my_service", "My Service",
                                setup=("kit_service_setup",)),
    "omni_default_streaming": _layer("Omniverse Kit App Streaming (Default)", "streaming"),
    "nvcf_streaming": _layer("NVCF Streaming", "nvcf"),
    "basic_python_extension": _extension("ExtensionTemplate", "Basic Python Extension",
                                         "my_company.my_python_extension",
                                         "My Python Extension"),
    "basic_python_ui_extension": _extension("ExtensionTemplate", "Python UI Extension",
                                            "my_company.my_python_ui_extension",
                                            "My Python UI Extension"),
    "basic_cpp_extension": _extension("ExtensionTemplate", "Basic C++ Extension",
                                      "my_company.my_cpp_extension", "My C++ Extension"),
    "basic_python_binding": _extension("BindingExtensionTemplate",
                                       "Basic C++ w/ Python Binding Extension",
                                       "my_company.my_python_binding", "My Pybind11 Extension"),
    "kit_service_setup": _extension("SetupExtensionTemplate", "Service Setup",
                                    "my_company.my_service_setup_extension",
                                    "My Service Setup Extension", "setup"),
    # KAT templates/sample_templates.toml (omni_usd_viewer links messaging, then setup)
    "omni_usd_composer": _application("USD Composer", "my_company.my_usd_composer",
                                      "My USD Composer", setup=("omni_usd_composer_setup",),
                                      layers=True),
    "omni_usd_explorer": _application("USD Explorer", "my_company.my_usd_explorer",
                                      "My USD Explorer", setup=("omni_usd_explorer_setup",),
                                      layers=True),
    "omni_usd_viewer": _application("USD Viewer", "my_company.my_usd_viewer", "My USD Viewer",
                                    setup=("omni_usd_viewer_messaging", "omni_usd_viewer_setup"),
                                    layers=True),
    "omni_usd_composer_setup": _extension("SetupExtensionTemplate", "Omni USD Composer Setup",
                                          "my_company.my_usd_composer_setup_extension",
                                          "My USD Composer Setup Extension", "setup"),
    "omni_usd_explorer_setup": _extension("SetupExtensionTemplate", "Omni USD Explorer Setup",
                                          "my_company.my_usd_explorer_setup_extension",
                                          "My USD Explorer Setup Extension", "setup"),
    "omni_usd_viewer_setup": _extension("SetupExtensionTemplate", "Omni USD Viewer Setup",
                                        "my_company.my_usd_viewer_setup_extension",
                                        "My USD Viewer Setup Extension", "setup"),
    "omni_usd_viewer_messaging": _extension("SetupExtensionTemplate",
                                            "Omni USD Viewer Messaging",
                                            "my_company.my_usd_viewer_messaging_extension",
                                            "My USD Viewer Messaging Extension", "extra"),
}


def label(tid: str) -> str:
    """A layer as ``selected_layers`` names it: ``[<id>]: <name>`` (every KAT replay file)."""
    return f"[{tid}]: {CATALOGUE[tid]['name']}"


STREAMING = label("omni_default_streaming")
NVCF = label("nvcf_streaming")

# -- replay files -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Replay:
    """One replay file of the tool: where it is, and the data ``tomllib`` reads from it."""

    stem: str  # test id
    source: str
    data: dict[str, Any]

    @property
    def tid(self) -> str:
        [tid] = self.data
        return tid

    @property
    def table(self) -> dict[str, Any]:
        table: dict[str, Any] = self.data[self.tid]
        return table


def _v(version: str, **names: str) -> dict[str, Any]:
    """A setup extension's answers: the version, and the names when the file gives them."""
    return {**names, "version": version}


def _ci(j2: str, tid: str, name: str, top: dict[str, Any] | None = None,
        **tables: dict[str, Any]) -> Replay:
    """KAT tools/ci/automated_templating/<j2>.toml.j2 with $APPLICATION_NAME and $VERSION
    filled (tools/ci/build.py: string.Template; APPLICATION_NAME is f"{company}.<name>")."""
    key = "application_name" if CATALOGUE[tid]["class"] == "ApplicationTemplate" \
        else "extension_name"
    data = {key: f"{CI_COMPANY}.{name}", "version": KIT_VERSION, **(top or {}), **tables}
    return Replay(f"ci_{j2}", f"{KAT} tools/ci/automated_templating/{j2}.toml.j2",
                  {tid: data})


def _ci_layers(*layers: str) -> dict[str, Any]:
    # The CI's layered files: add_layers is the answer "Yes" (a string), selected_layers the
    # labels, and then one empty [<app>.applications.<layer id>] table per layer.
    return {"add_layers": "Yes", "selected_layers": [label(x) for x in layers]}


def _vscode(file: str, tid: str, app: str, display: str,
            **extensions: dict[str, Any]) -> Replay:
    """KAT .vscode/replay_files/<file> (.vscode/template_builder.py replays it): the catalogue's
    default names, version 0.1.0, no layers; each setup extension with all three answers."""
    data: dict[str, Any] = {"application_name": app, "application_display_name": display,
                            "version": DEFAULT_VERSION}
    if extensions:
        data["extensions"] = extensions
    return Replay(f"vscode_{file}", f"{KAT} .vscode/replay_files/{file}", {tid: data})


def _vscode_ext(tid: str) -> dict[str, Any]:
    v = CATALOGUE[tid]["variables"]
    return _v(DEFAULT_VERSION, extension_name=v["extension_name"],
              extension_display_name=v["extension_display_name"])


# tools/ci/container_builder.py: DISPLAY_NAME_MAP, the apps its container CI builds.
CONTAINER_APPS = {"usd_composer": "USD Composer", "usd_explorer": "USD Explorer",
                  "usd_viewer": "USD Viewer"}


def _playback(name: str) -> Replay:
    """KAT tools/ci/PLAYBACK.template as tools/ci/container_builder.py
    (_generate_playback_file) fills it: {template_name} is the one-part name, {version} is
    tools/VERSION.md + "." + $CI_JOB_ID, {ovc_streaming_option} is "[nvcf_streaming]: NVCF
    Streaming" and {ovc_streaming_option_name} "nvcf", which keys the layer table
    [omni_<name>.templates.nvcf].  Only the omni_<name>_setup extension is answered (for
    usd_viewer too, whose template also links the messaging extension)."""
    display, version = CONTAINER_APPS[name], f"{KIT_VERSION}.{CI_JOB_ID}"
    data = {
        "application_name": name, "application_display_name": display, "version": version,
        "add_layers": "Yes", "selected_layers": [NVCF],
        "extensions": {f"omni_{name}_setup": _v(
            version, extension_name=f"{name}_setup_extension",
            extension_display_name=f"{display} Setup Extension")},
        "templates": {"nvcf": {}}}
    return Replay(f"ci_playback_{name}", f"{KAT} tools/ci/PLAYBACK.template",
                  {f"omni_{name}": data})


CI = [
    # basic_cpp_extension.toml.j2 names the extension itself (the catalogue's defaults).
    Replay("ci_basic_cpp_extension", f"{KAT} tools/ci/automated_templating/"
           "basic_cpp_extension.toml.j2",
           {"basic_cpp_extension": {"extension_name": "my_company.my_cpp_extension",
                                    "extension_display_name": "My C++ Extension",
                                    "version": KIT_VERSION}}),
    _ci("basic_pybind11_extension", "basic_python_binding", "basic_python_binding"),
    _ci("basic_python_extension", "basic_python_extension", "basic_python_extension"),
    _ci("basic_python_ui_extension", "basic_python_ui_extension", "basic_python_ui_extension"),
    _ci("kit_base_editor", "kit_base_editor", "kit_base_editor",
        _ci_layers("omni_default_streaming"),
        applications={"omni_default_streaming": {}}),
    # kit_service.toml.j2: no layer keys at all; the setup extension by its version only.
    _ci("kit_service", "kit_service", "kit_service",
        extensions={"kit_service_setup": _v(KIT_VERSION)}),
    _ci("usd_composer", "omni_usd_composer", "my_usd_composer",
        _ci_layers("omni_default_streaming", "nvcf_streaming"),
        extensions={"omni_usd_composer_setup": _v(KIT_VERSION)},
        applications={"omni_default_streaming": {}, "nvcf_streaming": {}}),
    _ci("usd_explorer", "omni_usd_explorer", "my_usd_explorer",
        _ci_layers("omni_default_streaming", "nvcf_streaming"),
        extensions={"omni_usd_explorer_setup": _v(KIT_VERSION)},
        applications={"omni_default_streaming": {}, "nvcf_streaming": {}}),
    _ci("usd_viewer", "omni_usd_viewer", "my_usd_viewer", _ci_layers("omni_default_streaming"),
        extensions={"omni_usd_viewer_messaging": _v(KIT_VERSION),
                    "omni_usd_viewer_setup": _v(KIT_VERSION)},
        applications={"omni_default_streaming": {}}),
]
VSCODE = [
    _vscode("base_editor", "kit_base_editor", "my_company.my_editor", "My Editor"),
    _vscode("usd_composer", "omni_usd_composer", "my_company.my_usd_composer",
            "My USD Composer", omni_usd_composer_setup=_vscode_ext("omni_usd_composer_setup")),
    _vscode("usd_explorer", "omni_usd_explorer", "my_company.my_usd_explorer",
            "My USD Explorer", omni_usd_explorer_setup=_vscode_ext("omni_usd_explorer_setup")),
    _vscode("usd_viewer", "omni_usd_viewer", "my_company.my_usd_viewer", "My USD Viewer",
            omni_usd_viewer_messaging=_vscode_ext("omni_usd_viewer_messaging"),
            omni_usd_viewer_setup=_vscode_ext("omni_usd_viewer_setup")),
]
PLAYBACKS = [_playback(name) for name in CONTAINER_APPS]
REPLAYS = {r.stem: r for r in [*CI, *VSCODE, *PLAYBACKS]}


def _toml_value(v: Any) -> str:
    if isinstance(v, str):
        return json.dumps(v)  # the names and versions here need no TOML-only escapes
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(type(v).__name__)


def replay_text(data: dict[str, Any]) -> str:
    """``data`` as a TOML file: a table's scalars under its ``[a.b.c]`` header, then its
    sub-tables; a table holding only sub-tables gets no header of its own, an empty one does
    (``[omni_usd_composer.templates.nvcf]`` is an empty table)."""
    out: list[str] = []

    def table(path: list[str], values: dict[str, Any]) -> None:
        scalars = {k: v for k, v in values.items() if not isinstance(v, dict)}
        if path and (scalars or not values):
            out.append(f"\n[{'.'.join(path)}]")
        out.extend(f"{k} = {_toml_value(v)}" for k, v in scalars.items())
        for k, v in values.items():
            if isinstance(v, dict):
                table([*path, k], v)

    table([], data)
    return "\n".join(out).lstrip("\n") + "\n"


# -- committed records --------------------------------------------------------------------------
# source/rendered_template_metadata.json as the tool writes it: {"_comment": ...,
# "Application": {<template>: {<app>: {<template>: {answers}}}}, "Extension": {...}}.


@dataclass(frozen=True)
class Record:
    stem: str  # test id
    source: str
    entries: list[tuple[str, str, dict[str, Any]]]  # (section, template id, answers)

    def data(self) -> dict[str, Any]:
        out: dict[str, Any] = {"_comment": "AUTO-GENERATED FILE - DO NOT EDIT MANUALLY"}
        for section, tid, answers in self.entries:
            name = answers["application_name" if section == "Application" else "extension_name"]
            out.setdefault(section, {}).setdefault(tid, {})[name] = {tid: answers}
        return out

    def text(self) -> str:
        return json.dumps(self.data())


def _ext(name: str, display: str, version: str = DEFAULT_VERSION,
         **more: str) -> dict[str, Any]:
    return {"extension_name": name, "extension_display_name": display, "version": version,
            **more}


def _app(name: str, display: str, *, layers: list[str] | None = None,
         **extensions: dict[str, Any]) -> dict[str, Any]:
    rec: dict[str, Any] = {"application_name": name, "application_display_name": display,
                           "version": DEFAULT_VERSION}
    if extensions:
        rec["extensions"] = extensions
    if layers is not None:  # the wizard's layer answers, as the records hold them
        rec["selected_layers"] = [label(x) for x in layers]
        if layers:
            rec["applications"] = {x: {} for x in layers}
            rec["add_layers"] = "Yes"
    return rec


RECORDS = [
    # NVIDIA-Omniverse/kit-app-template at f7b0dac (a branch of NVIDIA's repository),
    # source/rendered_template_metadata.json; two of its four apps and one of its extensions.
    Record("NVIDIA-Omniverse_kit-app-template_f7b0dac",
           "NVIDIA-Omniverse/kit-app-template f7b0dac source/rendered_template_metadata.json", [
               # A one-part application name; its setup extension renamed.
               ("Application", "omni_usd_composer", _app(
                   "schneider", "schneider_composer", layers=["omni_default_streaming"],
                   omni_usd_composer_setup=_ext("schneider_extention_app",
                                                "Schneider_composer"))),
               # The setup extension renamed, the messaging one keeping the catalogue's name.
               ("Application", "omni_usd_viewer", _app(
                   "my_company.my_usd_viewer09_15", "My USD Viewer09_15",
                   layers=["omni_default_streaming"],
                   omni_usd_viewer_messaging=_ext("my_company.my_usd_viewer_messaging_extension",
                                                  "My USD Viewer Messaging Extension"),
                   omni_usd_viewer_setup=_ext("my_company.my_usd_viewer_setup_extension09_15",
                                              "My USD Viewer Setup Extension09_15"))),
               ("Extension", "basic_python_extension", _ext(
                   "my_company.my_python_extension17_09", "My Python Extension17_09")),
           ]),
    # kreeuwijk/omniverse-dsx-blueprint-for-ai-factories at 363271e,
    # source/rendered_template_metadata.json: one-part names, the NVCF layer alone.
    Record("kreeuwijk_omniverse-dsx-blueprint-for-ai-factories_363271e",
           "kreeuwijk/omniverse-dsx-blueprint-for-ai-factories 363271e "
           "source/rendered_template_metadata.json", [
               ("Application", "omni_usd_viewer", _app(
                   "dsx", "DSX", layers=["nvcf_streaming"],
                   omni_usd_viewer_messaging=_ext("dsx.messaging_extension",
                                                  "DSX Messaging Extension"),
                   omni_usd_viewer_setup=_ext("dsx.setup_extension", "DSX Setup Extension"))),
               ("Extension", "basic_python_extension", _ext("manager", "Manager Extension")),
           ]),
    # RockwellAutomation/ra-emulate3d-kit-app-template at 0a94408,
    # source/rendered_template_metadata.json: no layers recorded as selected_layers = [] alone
    # (no add_layers, no applications); the binding extension's further answers (two of its
    # five kept) beside the three every extension has.
    Record("RockwellAutomation_ra-emulate3d-kit-app-template_0a94408",
           "RockwellAutomation/ra-emulate3d-kit-app-template 0a94408 "
           "source/rendered_template_metadata.json", [
               ("Application", "kit_base_editor", _app(
                   "rockwellautomation.emulate3d.omniverse", "Emulate3D Kit App", layers=[])),
               ("Extension", "basic_python_binding", _ext(
                   "rok.emulate3d.python", "ROK Python", library_name="_rok_emulate3d_python_lib",
                   interface_name="IRokEmulate3dPythonInterface")),
               ("Extension", "basic_cpp_extension", _ext("rok.emulate3d.extension",
                                                         "My C++ Extension")),
           ]),
]
