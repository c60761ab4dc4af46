"""Golden round trips: kitplay writes what the replay files kit-app-template 110.1.2 itself
ships hold, and makes what the tool's real records and its CI's playback file make.

``tests/kat_facts.py`` states, with their sources, the data of every example replay file of
the tool (the CI's ``tools/ci/automated_templating/*.toml.j2`` filled in as
``tools/ci/build.py`` fills them, ``.vscode/replay_files/*``, and ``tools/ci/PLAYBACK.template``
filled as ``tools/ci/container_builder.py`` fills it) and entries of committed
``rendered_template_metadata.json`` records.  For the CI's and VS Code's files, kitplay is given
the same answers and the TOML it writes must equal the example as data.  For the playback file
and the records (one-part names such as ``usd_composer``, ``dsx``, ``schneider``; the version
``110.1.2.4242``), kitplay's create must make the same apps, layers and extensions.  The
stand-in checkout must hold the real catalogue, accept every real shape, and refuse what no
real file shows.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
from kitplay.daemon.toolchains.kit import EULA_FILE, REPLAY_STDIN, KitToolchain
from kitplay.daemon.toolchains.kit_catalogue import (
    Catalogue,
    load_catalogue,
    replay_tables,
    replay_toml,
)

from tests.helpers import FIXTURES
from tests.kat_facts import (
    CATALOGUE,
    CI,
    PLAYBACKS,
    RECORDS,
    REPLAYS,
    STREAMING,
    VSCODE,
    Record,
    Replay,
    replay_text,
)

STANDIN = FIXTURES / "kit_app_template"
EXAMPLES = list(REPLAYS.values())
CI_SHAPES = [*CI, *VSCODE]
YES = REPLAY_STDIN  # what `yes |` gives the tool, as kitplay gives it


def answers_of(cat: Catalogue, tid: str, table: dict[str, Any]) -> dict[str, Any]:
    """The answers an example gives, in the form kitplay's replay writer takes."""
    if cat.type_of(tid) == "application":
        return {"application_name": table["application_name"],
                "application_display_name": table.get("application_display_name"),
                "version": table["version"], "layers": list(table.get("applications", {})),
                "extensions": table.get("extensions", {})}
    return {k: table.get(k) for k in ("extension_name", "extension_display_name", "version")}


def test_every_example_is_here() -> None:
    # 9 CI templates (tools/ci/automated_templating/) + 4 VS Code replay files + PLAYBACK
    # filled for container_builder.py's three apps; three committed metadata records.
    assert len(CI) == 9 and len(VSCODE) == 4
    assert [p.stem for p in PLAYBACKS] == ["ci_playback_usd_composer", "ci_playback_usd_explorer",
                                           "ci_playback_usd_viewer"]
    assert len(RECORDS) == 3
    # What the stand-in is given is the example's data, whatever the layout.
    for example in EXAMPLES:
        assert tomllib.loads(replay_text(example.data)) == example.data, example.stem


@pytest.mark.parametrize("example", CI_SHAPES, ids=lambda p: p.stem)
def test_kitplay_writes_the_real_example(example: Replay) -> None:
    cat = load_catalogue(STANDIN)
    tid, table = example.tid, example.table
    written = replay_toml(replay_tables(cat, tid, answers_of(cat, tid, table)))
    assert tomllib.loads(written) == example.data


def test_the_stand_in_catalogue_is_the_real_one() -> None:
    cat = load_catalogue(STANDIN)
    keys = ("class", "name", "type", "variables", "extensions", "applications")
    assert {tid: {k: e[k] for k in keys if k in e} for tid, e in cat.entries.items()} == \
        CATALOGUE


def _checkout(tmp_path: Path, name: str = "kat") -> Path:
    ws = tmp_path / name
    shutil.copytree(STANDIN, ws)
    (ws / EULA_FILE).write_text("accepted by the test\n")
    return ws


def _replay(ws: Path, text: str, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    f = ws / "play.toml"
    f.write_text(text)
    return subprocess.run([str(ws / "repo.sh"), "template", "replay", str(f)], cwd=ws,
                          input=stdin.decode(), capture_output=True, text=True, timeout=60)


def _metadata(ws: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ws / "source/rendered_template_metadata.json").read_text())
    return data


def _made(ws: Path) -> dict[str, list[str]]:
    return {d: sorted(p.name for p in (ws / "source" / d).iterdir())
            for d in ("apps", "extensions") if (ws / "source" / d).is_dir()}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_the_stand_in_accepts_every_real_example(tmp_path: Path, example: Replay) -> None:
    ws = _checkout(tmp_path)
    done = _replay(ws, replay_text(example.data), YES)
    assert done.returncode == 0, done.stderr
    tid, table = example.tid, example.table
    meta = _metadata(ws)
    section = "Application" if "application_name" in table else "Extension"
    name = table.get("application_name") or table["extension_name"]
    assert meta[section][tid][name][tid]["version"] == table["version"]


def test_what_the_stand_in_makes_of_the_ci_examples(tmp_path: Path) -> None:
    ws = _checkout(tmp_path)
    for stem in ("ci_usd_viewer", "ci_usd_composer", "ci_basic_pybind11_extension"):
        done = _replay(ws, replay_text(REPLAYS[stem].data), YES)
        assert done.returncode == 0, (stem, done.stderr)
    meta = _metadata(ws)
    viewer = meta["Application"]["omni_usd_viewer"]["nv_internal.my_usd_viewer"]["omni_usd_viewer"]
    assert viewer["add_layers"] == "Yes" and viewer["applications"] == {
        "omni_default_streaming": {}}
    # Setup extensions the file names only by their version keep the catalogue's names.
    assert viewer["extensions"] == {
        "omni_usd_viewer_messaging": {
            "extension_name": "my_company.my_usd_viewer_messaging_extension",
            "extension_display_name": "My USD Viewer Messaging Extension",
            "version": "110.1.2"},
        "omni_usd_viewer_setup": {
            "extension_name": "my_company.my_usd_viewer_setup_extension",
            "extension_display_name": "My USD Viewer Setup Extension", "version": "110.1.2"}}
    assert "nv_internal.basic_python_binding" in meta["Extension"]["basic_python_binding"]
    apps = ws / "source/apps"
    assert (apps / "nv_internal.my_usd_composer_nvcf.kit").is_file()
    layer = tomllib.loads((apps / "nv_internal.my_usd_composer_streaming.kit").read_text())
    assert layer["template"] == {"type": "ApplicationLayerTemplate"}
    assert next(iter(layer["dependencies"])) == "nv_internal.my_usd_composer"
    # usd_viewer.setup's extension.toml depends on {{ extra_extension_name }}, the messaging one.
    setup = tomllib.loads((ws / "source/extensions/my_company.my_usd_viewer_setup_extension"
                           "/config/extension.toml").read_text())
    assert "my_company.my_usd_viewer_messaging_extension" in setup["dependencies"]
    # Binary template files (data/icon.png) are copied as they are.
    icon = ws / "source/extensions/my_company.my_usd_viewer_setup_extension/data/icon.png"
    assert icon.read_bytes() == (STANDIN / "templates/extensions/usd_viewer.setup/template/data"
                                 "/icon.png").read_bytes()


def _kitplay_create(ws: Path, params: dict[str, Any]) -> subprocess.CompletedProcess[bytes]:
    """Run a create's plan as the daemon would: its write step, then the tool."""
    plan = KitToolchain(ws).plan_create(params)
    prepare = plan.steps[0].func
    assert prepare is not None

    class Log:
        def write(self, text: str) -> None:
            pass

    prepare(Log())
    step = plan.steps[1]
    assert step.argv is not None and step.stdin == YES
    return subprocess.run(step.argv, cwd=step.cwd, input=step.stdin, capture_output=True,
                          timeout=60)


@pytest.mark.parametrize("playback", PLAYBACKS, ids=lambda p: p.stem)
def test_kitplay_makes_what_the_ci_playback_makes(tmp_path: Path, playback: Replay) -> None:
    """tools/ci/PLAYBACK.template as container_builder.py fills it: a one-part app name, a
    four-part version, the NVCF layer keyed by its type. kitplay, given the same answers,
    makes the same files and the same record of the app."""
    tid, table = playback.tid, playback.table
    assert table["templates"] == {"nvcf": {}}  # [<app>.templates.<layer type>]
    theirs = _checkout(tmp_path, "ci")
    done = _replay(theirs, replay_text(playback.data), YES)
    assert done.returncode == 0, done.stderr
    ours = _checkout(tmp_path, "kitplay")
    ran = _kitplay_create(ours, {
        "template": tid, "name": table["application_name"],
        "display_name": table["application_display_name"], "version": table["version"],
        "layers": ["nvcf_streaming"],
        "extension_names": {k: v["extension_name"] for k, v in table["extensions"].items()}})
    assert ran.returncode == 0, ran.stderr
    app = table["application_name"]
    assert _made(ours) == _made(theirs)
    assert f"{app}_nvcf.kit" in _made(ours)["apps"]  # container_builder packages this one
    rec_theirs = _metadata(theirs)["Application"][tid][app][tid]
    rec_ours = _metadata(ours)["Application"][tid][app][tid]
    for key in ("application_name", "application_display_name", "version", "applications"):
        assert rec_ours[key] == rec_theirs[key], key
    assert rec_ours["version"] == "110.1.2.4242"
    assert {k: v["extension_name"] for k, v in rec_ours["extensions"].items()} == \
        {k: v["extension_name"] for k, v in rec_theirs["extensions"].items()}


def _params_of(section: str, tid: str, answers: dict[str, Any]) -> dict[str, Any]:
    """kitplay's templates.create parameters for one answers record of the real metadata."""
    if section == "Extension":
        return {"template": tid, "name": answers["extension_name"],
                "display_name": answers["extension_display_name"],
                "version": answers["version"]}
    return {"template": tid, "name": answers["application_name"],
            "display_name": answers["application_display_name"],
            "version": answers["version"], "layers": list(answers.get("applications", {})),
            "extension_names": {k: v["extension_name"]
                                for k, v in answers.get("extensions", {}).items()}}


def _records(record: Record) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(section, template id, name, answers) of a record, read back from its JSON text."""
    data = json.loads(record.text())
    return [(section, tid, name, wrapped[tid])
            for section in ("Application", "Extension")
            for tid, by_name in data.get(section, {}).items()
            for name, wrapped in by_name.items()]


@pytest.mark.parametrize("record", RECORDS, ids=lambda p: p.stem)
def test_kitplay_recreates_the_real_records(tmp_path: Path, record: Record) -> None:
    """Every app and extension a real record holds, created again through kitplay: the tool
    records the same names, versions, layers and setup extension names."""
    ws = _checkout(tmp_path)
    records = _records(record)
    for section, tid, name, answers in records:
        ran = _kitplay_create(ws, _params_of(section, tid, answers))
        assert ran.returncode == 0, (name, ran.stderr)
    meta = _metadata(ws)
    for section, tid, name, answers in records:
        ours = meta[section][tid][name][tid]
        keys = ("application_name", "application_display_name", "version") \
            if section == "Application" else ("extension_name", "extension_display_name",
                                              "version")
        assert {k: ours[k] for k in keys} == {k: answers[k] for k in keys}, name
        assert ours.get("applications", {}) == answers.get("applications", {}), name
        assert {k: v["extension_name"] for k, v in ours.get("extensions", {}).items()} == \
            {k: v["extension_name"] for k, v in answers.get("extensions", {}).items()}, name


@pytest.mark.parametrize("record", RECORDS, ids=lambda p: p.stem)
def test_kitplay_reads_the_real_records(tmp_path: Path, record: Record) -> None:
    ws = _checkout(tmp_path)
    (ws / "source" / "rendered_template_metadata.json").write_text(record.text())
    listed = {a["name"]: a for a in KitToolchain(ws).list_apps()}
    for _section, tid, name, answers in _records(record):
        assert listed[name]["template"] == tid
        assert listed[name]["version"] == answers["version"]
        for ext in answers.get("extensions", {}).values():
            assert listed[ext["extension_name"]]["parent"] == name
        for layer in answers.get("applications", {}):
            kit_type = load_catalogue(ws).entries[layer]["type"]
            assert listed[f"{name}_{kit_type}"]["parent"] == name


VIEWER = """[omni_usd_viewer]
application_name = "a.viewer"
version = "0.1.0"
{top}
[omni_usd_viewer.extensions.omni_usd_viewer_messaging]
version = "0.1.0"

[omni_usd_viewer.extensions.omni_usd_viewer_setup]
version = "0.1.0"
{more}
"""
STREAMING_TOML = f'"{STREAMING}"'


@pytest.mark.parametrize("text, error", [
    (VIEWER.format(top=f"add_layers = true\nselected_layers = [{STREAMING_TOML}]\n",
                   more="[omni_usd_viewer.applications.omni_default_streaming]\n"),
     "add_layers must be the answer \"Yes\" or \"No\""),
    (VIEWER.format(top=f'add_layers = "Yes"\nselected_layers = [{STREAMING_TOML}]\n',
                   more="[omni_usd_viewer.applications.nvcf_streaming]\n"),
     "names no selected layer"),
    (VIEWER.format(top=f'add_layers = "Yes"\nselected_layers = [{STREAMING_TOML}]\n',
                   more="[omni_usd_viewer.templates.streaming]\nx = 1\n"),
     "must be an empty table"),
    (VIEWER.format(top=f"selected_layers = [{STREAMING_TOML}]\n", more=""),
     "'selected_layers' given without add_layers"),
    (VIEWER.format(top='add_layers = "Yes"\nselected_layers = ["[x]: X"]\n', more=""),
     "unknown layer '[x]: X'"),
    (VIEWER.format(top="", more="[omni_usd_viewer.extensions.nope]\nversion = \"0.1.0\"\n"),
     "links no extension nope"),
    (VIEWER.replace('"a.viewer"', '"A.Viewer"').format(top="", more=""),
     "must be name-spaced, lowercase, alphanumeric"),
    ('[basic_python_binding]\nversion = "0.1.0"\n', "'extension_name' is missing"),
    ('[nvcf_streaming]\nversion = "0.1.0"\n', "cannot be replayed on its own"),
])
def test_the_stand_in_refuses_shapes_no_example_shows(tmp_path: Path, text: str,
                                                       error: str) -> None:
    ws = _checkout(tmp_path)
    done = _replay(ws, text, YES)
    assert done.returncode == 1 and error in done.stderr, done.stderr
    assert not (ws / "source/apps").exists() or not any((ws / "source/apps").iterdir())
    assert not (ws / "source/rendered_template_metadata.json").exists()


@pytest.mark.parametrize("top, more, layers", [
    ('add_layers = "No"\n', "", {}),  # the wizard's answer (README.md)
    ("selected_layers = []\n", "", {}),  # RockwellAutomation's committed record
    (f'add_layers = "Yes"\nselected_layers = [{STREAMING_TOML}]\n',
     "[omni_usd_viewer.templates.streaming]\n", {"omni_default_streaming": {}}),  # PLAYBACK
    (f'add_layers = "Yes"\nselected_layers = [{STREAMING_TOML}]\n',
     "[omni_usd_viewer.applications.omni_default_streaming]\n",
     {"omni_default_streaming": {}}),  # the CI's files
])
def test_the_stand_in_accepts_the_shapes_real_files_hold(tmp_path: Path, top: str, more: str,
                                                         layers: dict[str, Any]) -> None:
    ws = _checkout(tmp_path)
    text = VIEWER.format(top=top + 'library_name = "_x_lib"\n', more=more)
    done = _replay(ws, text, YES)
    assert done.returncode == 0, done.stderr
    rec = _metadata(ws)["Application"]["omni_usd_viewer"]["a.viewer"]["omni_usd_viewer"]
    assert rec.get("applications", {}) == layers
    assert rec["library_name"] == "_x_lib"  # a key the stand-in does not know, recorded
    kits = sorted(p.name for p in (ws / "source/apps").iterdir())
    assert kits == ["a.viewer.kit", *(["a.viewer_streaming.kit"] if layers else [])]


def test_the_stand_in_refuses_an_existing_target_and_asks_nothing(tmp_path: Path) -> None:
    ws = _checkout(tmp_path)
    text = VIEWER.format(top="", more="")
    assert _replay(ws, text, YES).returncode == 0
    before = (ws / "source/rendered_template_metadata.json").read_bytes()
    (ws / "source/apps/a.viewer.kit").write_text("# mine\n")
    done = _replay(ws, text, YES)  # `yes` on stdin: nothing is asked, so nothing is said yes to
    assert done.returncode == 1 and "already exists; nothing was written" in done.stderr
    assert "?" not in done.stdout
    assert (ws / "source/apps/a.viewer.kit").read_text() == "# mine\n"
    assert (ws / "source/rendered_template_metadata.json").read_bytes() == before


@pytest.mark.parametrize("tid", sorted(t for t, e in load_catalogue(STANDIN).entries.items()
                                       if e["class"] != "ApplicationLayerTemplate"
                                       and e["class"] != "SetupExtensionTemplate"))
def test_kitplay_answers_every_question(tmp_path: Path, tid: str) -> None:
    """Every creatable template: kitplay's file gives every key a real file ever gives."""
    ws = _checkout(tmp_path)
    tc = KitToolchain(ws)
    layers = tc.catalogue.layers_for(tid)
    ran = _kitplay_create(ws, {"template": tid, "name": "answered", "layers": layers})
    assert ran.returncode == 0, ran.stderr
    written = tomllib.loads((ws / "_kitplay/replay-answered.toml").read_text())
    table = written[tid]
    if tc.catalogue.type_of(tid) == "application":
        assert {"application_name", "application_display_name", "version"} <= set(table)
        exts = table.get("extensions", {})
        assert list(exts) == tc.catalogue.extensions_for(tid)
        for ext_id, values in exts.items():
            assert set(values) == {"extension_name", "extension_display_name", "version"}
            # The catalogue's default name, as the wizard offers it.
            assert values["extension_name"] == \
                tc.catalogue.entries[ext_id]["variables"]["extension_name"]
        if layers:
            assert table["add_layers"] == "Yes" and list(table["applications"]) == layers
    else:
        assert set(table) == {"extension_name", "extension_display_name", "version"}
