"""Golden round trips: kitplay writes the replay files kit-app-template 110.1.2 itself ships.

``tests/fixtures/kat_replay_examples/`` holds every real example replay file (the CI's
``tools/ci/automated_templating/*.toml.j2`` filled in as ``tools/ci/build.py`` fills them, and
``.vscode/replay_files/*``; sources in its README).  For each, kitplay is given the same answers
and the TOML it writes must equal the example as data.  The stand-in checkout must hold the real
catalogue, accept every real example, and refuse the answer shapes no example shows.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
from kitplay.daemon.toolchains.kit import EULA_FILE, KitToolchain
from kitplay.daemon.toolchains.kit_catalogue import (
    Catalogue,
    load_catalogue,
    replay_tables,
    replay_toml,
)

from tests.helpers import FIXTURES

STANDIN = FIXTURES / "kit_app_template"
EXAMPLES_DIR = FIXTURES / "kat_replay_examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.toml"))


def answers_of(cat: Catalogue, tid: str, table: dict[str, Any]) -> dict[str, Any]:
    """The answers an example gives, in the form kitplay's replay writer takes."""
    if cat.type_of(tid) == "application":
        return {"application_name": table["application_name"],
                "application_display_name": table.get("application_display_name"),
                "version": table["version"], "layers": list(table.get("applications", {})),
                "extensions": table.get("extensions", {})}
    return {k: table.get(k) for k in ("extension_name", "extension_display_name", "version")}


def test_every_example_is_here() -> None:
    # 9 CI templates (tools/ci/automated_templating/) + 4 VS Code replay files.
    assert len([p for p in EXAMPLES if p.name.startswith("ci_")]) == 9
    assert len([p for p in EXAMPLES if p.name.startswith("vscode_")]) == 4


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_kitplay_writes_the_real_example(example: Path) -> None:
    expected = tomllib.loads(example.read_text())
    [(tid, table)] = expected.items()
    cat = load_catalogue(STANDIN)
    written = replay_toml(replay_tables(cat, tid, answers_of(cat, tid, table)))
    assert tomllib.loads(written) == expected


def test_the_stand_in_catalogue_is_the_real_one() -> None:
    real = json.loads((EXAMPLES_DIR / "catalogue-110.1.2.json").read_text())
    cat = load_catalogue(STANDIN)
    keys = ("class", "name", "type", "variables", "extensions", "applications")
    assert {tid: {k: e[k] for k in keys if k in e} for tid, e in cat.entries.items()} == real


def _checkout(tmp_path: Path) -> Path:
    ws = tmp_path / "kat"
    shutil.copytree(STANDIN, ws)
    (ws / EULA_FILE).write_text("accepted by the test\n")
    return ws


def _replay(ws: Path, text: str) -> subprocess.CompletedProcess[str]:
    f = ws / "play.toml"
    f.write_text(text)
    return subprocess.run([str(ws / "repo.sh"), "template", "replay", str(f)], cwd=ws,
                          input="", capture_output=True, text=True, timeout=60)


def test_the_stand_in_accepts_every_real_example(tmp_path: Path) -> None:
    ws = _checkout(tmp_path)
    for example in EXAMPLES:
        done = _replay(ws, example.read_text())
        assert done.returncode == 0, (example.name, done.stderr)
    meta = json.loads((ws / "source/rendered_template_metadata.json").read_text())
    assert set(meta) == {"_comment", "Application", "Extension"}
    viewer = meta["Application"]["omni_usd_viewer"]["nv_internal.my_usd_viewer"]["omni_usd_viewer"]
    assert viewer["add_layers"] == "Yes" and viewer["applications"] == {
        "omni_default_streaming": {}}
    assert set(viewer["extensions"]) == {"omni_usd_viewer_messaging", "omni_usd_viewer_setup"}
    assert "nv_internal.basic_python_binding" in meta["Extension"]["basic_python_binding"]
    apps = ws / "source/apps"
    assert (apps / "nv_internal.my_usd_composer_nvcf.kit").is_file()
    layer = tomllib.loads((apps / "nv_internal.my_usd_composer_streaming.kit").read_text())
    assert layer["template"] == {"type": "ApplicationLayerTemplate"}
    assert next(iter(layer["dependencies"])) == "nv_internal.my_usd_composer"


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
STREAMING = '"[omni_default_streaming]: Omniverse Kit App Streaming (Default)"'


@pytest.mark.parametrize("text, error", [
    (VIEWER.format(top=f"add_layers = true\nselected_layers = [{STREAMING}]\n",
                   more="[omni_usd_viewer.applications.omni_default_streaming]\n"),
     "add_layers must be the answer \"Yes\""),
    (VIEWER.format(top=f'add_layers = "Yes"\nselected_layers = [{STREAMING}]\n', more=""),
     "[omni_usd_viewer.applications] is required"),
    (VIEWER.format(top=f'add_layers = "Yes"\nselected_layers = [{STREAMING}]\n',
                   more="[omni_usd_viewer.applications.nvcf_streaming]\n"),
     "must hold exactly the selected layers"),
    (VIEWER.format(top="", more="[omni_usd_viewer.applications.omni_default_streaming]\n"),
     "'applications' given without add_layers"),
    (VIEWER.format(top="", more="[omni_usd_viewer.setup_extension]\nversion = \"0.1.0\"\n"),
     "unknown key(s) setup_extension"),
    (VIEWER.replace("[omni_usd_viewer.extensions.omni_usd_viewer_setup]\nversion = \"0.1.0\"\n",
                    "").format(top="", more=""),
     "[omni_usd_viewer.extensions.omni_usd_viewer_setup] table is required"),
    ('[basic_python_binding]\nversion = "0.1.0"\n', "'extension_name' is missing"),
    ('[nvcf_streaming]\nversion = "0.1.0"\n', "cannot be replayed on its own"),
])
def test_the_stand_in_refuses_shapes_no_example_shows(tmp_path: Path, text: str,
                                                       error: str) -> None:
    ws = _checkout(tmp_path)
    done = _replay(ws, text)
    assert done.returncode == 1 and error in done.stderr, done.stderr
    assert not (ws / "source/apps").exists() or not any((ws / "source/apps").iterdir())
    assert not (ws / "source/rendered_template_metadata.json").exists()


@pytest.mark.parametrize("tid", sorted(t for t, e in load_catalogue(STANDIN).entries.items()
                                       if e["class"] != "ApplicationLayerTemplate"
                                       and e["class"] != "SetupExtensionTemplate"))
def test_kitplay_answers_every_question(tmp_path: Path, tid: str) -> None:
    """Every creatable template: kitplay's file gives every key a real file ever gives."""
    ws = _checkout(tmp_path)
    tc = KitToolchain(ws)
    layers = tc.catalogue.layers_for(tid)
    plan = tc.plan_create({"template": tid, "name": "my_company.answered", "layers": layers})
    prepare = plan.steps[0].func
    assert prepare is not None

    class Log:
        def write(self, text: str) -> None:
            pass

    prepare(Log())
    written = tomllib.loads((ws / "_kitplay/replay-my_company.answered.toml").read_text())
    table = written[tid]
    if tc.catalogue.type_of(tid) == "application":
        assert {"application_name", "application_display_name", "version"} <= set(table)
        exts = table.get("extensions", {})
        assert list(exts) == tc.catalogue.extensions_for(tid)
        for values in exts.values():
            assert set(values) == {"extension_name", "extension_display_name", "version"}
        if layers:
            assert table["add_layers"] == "Yes" and list(table["applications"]) == layers
    else:
        assert set(table) == {"extension_name", "extension_display_name", "version"}
    step = plan.steps[1]
    assert step.argv is not None
    done = subprocess.run(step.argv, cwd=step.cwd, input=step.stdin, capture_output=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
