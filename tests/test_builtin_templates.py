"""Builtin templates are data: only a template's declared files are rendered.

An installed package holds more than the template's files (pip byte-compiles the
templates' ``app.py`` into ``__pycache__/``); these tests run the real toolchain over a copy
of the shipped templates with such leftovers added.  tests/test_wheel.py proves the same
with a real wheel installed in a fresh venv.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from kitplay.daemon.protocol.errors import ToolchainError, describe_bug
from kitplay.daemon.toolchains import builtin

DECLARED = ["README.md", "app.py", "kitapp.toml", "test_app.py"]


class ListLog:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, text: str) -> None:
        self.lines.append(text)


@pytest.fixture
def templates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of the shipped templates that the toolchain reads instead of the package's."""
    copy = tmp_path / "templates"
    shutil.copytree(builtin.TEMPLATES_DIR, copy,
                    ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(builtin, "TEMPLATES_DIR", copy)
    builtin._catalogue.cache_clear()
    try:
        yield copy
    finally:
        builtin._catalogue.cache_clear()


def create(ws: Path, template: str, name: str) -> tuple[dict[str, object], ListLog]:
    plan = builtin.BuiltinToolchain(ws).plan_create({"template": template, "name": name})
    log = ListLog()
    for step in plan.steps:
        assert step.func is not None
        step.func(log)
    assert plan.finish is not None
    return plan.finish(), log


def test_every_shipped_template_declares_its_files() -> None:
    builtin._catalogue.cache_clear()
    for t in builtin.BuiltinToolchain(Path("/")).list_templates():
        got = builtin.BuiltinToolchain(Path("/")).get_template(t["name"])
        assert got["files"] == DECLARED
        assert all((builtin.TEMPLATES_DIR / t["name"] / "files" / f).is_file() for f in DECLARED)


def test_bytecode_and_undeclared_files_are_not_rendered(templates: Path, tmp_path: Path) -> None:
    files = templates / "console_app" / "files"
    (files / "__pycache__").mkdir()
    (files / "__pycache__" / "app.cpython-311.pyc").write_bytes(bytes(range(256)) * 80)
    (files / "app.pyc").write_bytes(b"\xa7\x0d\x0d\x0a" + bytes(2000))
    (files / "notes.txt").write_text("not part of the template\n")
    ws = tmp_path / "ws"
    ws.mkdir()

    result, _log = create(ws, "console_app", "my_company.data")

    app = ws / "source" / "apps" / "my_company.data"
    assert sorted(p.name for p in app.iterdir()) == DECLARED
    assert result["files"] == [f"source/apps/my_company.data/{f}" for f in DECLARED]
    assert 'name = "my_company.data"' in (app / "kitapp.toml").read_text()


def test_a_binary_declared_file_is_a_short_clear_error(templates: Path, tmp_path: Path) -> None:
    (templates / "gui_app" / "files" / "app.py").write_bytes(b"\xa7\x0d\x0d\x0a" + bytes(20000))
    ws = tmp_path / "ws"
    ws.mkdir()
    with pytest.raises(ToolchainError) as err:
        create(ws, "gui_app", "my_company.binary")
    msg = err.value.message
    assert "app.py is not UTF-8 text" in msg
    assert len(msg) < 200 and "\\x" not in msg
    assert not (ws / "source" / "apps" / "my_company.binary").exists()


def test_a_template_without_a_files_list_is_refused(templates: Path) -> None:
    meta = templates / "service_app" / "template.toml"
    meta.write_text("\n".join(line for line in meta.read_text().splitlines()
                              if not line.startswith("files =")))
    with pytest.raises(ToolchainError, match="declares no files"):
        builtin.BuiltinToolchain(Path("/")).list_templates()


def test_unexpected_errors_are_described_briefly() -> None:
    try:
        (b"\xa7" * 20000).decode("utf-8")
    except UnicodeDecodeError as e:
        text = describe_bug(e)
    assert text.startswith("UnicodeDecodeError: ")
    assert len(text) < 260 and "\\xa7" not in text
