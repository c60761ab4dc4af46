"""Swaps made in the middle of a files operation: a directory turned into a symlink while the
walk is inside it, a file turned into a symlink or a pipe between its check and its use.

The daemon cannot be paused at those points, so these tests run the files code in-process on
real files and swap things at exactly those points (by wrapping the function called there);
the same code serves the daemon.  Whatever is swapped in, nothing outside the workspace is
read or written (``tests/outside.py`` watches it with inotify), and no call blocks.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kitplay.daemon import app_files, confine, workspace_files
from kitplay.daemon.app_files import AppFiles, BuiltinPolicy
from kitplay.daemon.protocol.errors import InvalidParams, InvalidState, KitplayError
from kitplay.daemon.toolchains.builtin import BuiltinToolchain
from kitplay.daemon.workspace_files import WorkspaceFiles

from tests.helpers import write_app
from tests.outside import Outside

APP = "my_company.race_app"


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Path, Outside]]:
    ws = Path(os.path.realpath(tmp_path)) / "ws"
    write_app(ws, APP, files={"app.py": "print('hello')\n"})
    outside = Outside(Path(os.path.realpath(tmp_path)))
    try:
        yield ws, outside
        outside.unchanged()
    finally:
        outside.close()


def once(monkeypatch: pytest.MonkeyPatch, module: Any, name: str,
         when: Callable[..., bool], swap: Callable[[], None]) -> list[bool]:
    """Wrap ``module.name``: the first call for which ``when(*args)`` holds runs the real
    function, then ``swap()``."""
    real = getattr(module, name)
    done: list[bool] = []

    def wrapper(*args: Any, **kw: Any) -> Any:
        out = real(*args, **kw)
        if not done and when(*args):
            done.append(True)
            swap()
        return out

    monkeypatch.setattr(module, name, wrapper)
    return done


def in_time(fn: Callable[[], Any], seconds: float = 10) -> Any:
    """Run ``fn`` in a thread; fail if it has not returned in ``seconds`` (it blocked)."""
    box: list[Any] = []

    def run() -> None:
        try:
            box.append(("ok", fn()))
        except BaseException as e:  # handed back to the test
            box.append(("err", e))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "the call blocked"
    kind, value = box[0]
    if kind == "err":
        raise value
    return value


def test_a_directory_swapped_for_a_symlink_mid_walk_does_not_lead_out(
        setup: tuple[Path, Outside], monkeypatch: pytest.MonkeyPatch) -> None:
    ws, outside = setup
    app = ws / "source" / "apps" / APP

    def swap() -> None:  # the walk holds the app directory open: move it, put a link there
        app.rename(app.with_name(APP + ".moved"))
        app.symlink_to(outside.dir)

    done = once(monkeypatch, confine, "check_below",
                lambda st, path, *a: str(path).endswith(APP), swap)
    files = WorkspaceFiles(ws, BuiltinPolicy())
    files.write(f"source/apps/{APP}/secret.txt", "written through the old directory")
    assert done
    # The write went into the directory the walk had opened, wherever it is now.
    assert (app.with_name(APP + ".moved") / "secret.txt").read_text() == \
        "written through the old directory"
    assert app.is_symlink()
    # A walk that starts now meets the link and refuses it.
    with pytest.raises(InvalidParams) as e:
        files.write(f"source/apps/{APP}/secret.txt", "x")
    assert e.value.data["reason"] == "symlink"


def test_a_file_swapped_for_a_symlink_before_the_rename_is_replaced_not_followed(
        setup: tuple[Path, Outside], monkeypatch: pytest.MonkeyPatch) -> None:
    ws, outside = setup
    target = ws / "source" / "apps" / APP / "app.py"

    def swap() -> None:
        target.unlink()
        target.symlink_to(outside.secret)

    done = once(monkeypatch, workspace_files, "_check_match", lambda *a: True, swap)
    WorkspaceFiles(ws, BuiltinPolicy()).write(f"source/apps/{APP}/app.py", "new\n")
    assert done
    assert not target.is_symlink() and target.read_text() == "new\n"


@pytest.mark.parametrize("swap_in", ["fifo", "symlink"])
def test_a_file_swapped_after_its_check_is_refused_and_never_blocks(
        setup: tuple[Path, Outside], monkeypatch: pytest.MonkeyPatch, swap_in: str) -> None:
    ws, outside = setup
    target = ws / "source" / "apps" / APP / "app.py"

    def swap() -> None:
        target.unlink()
        if swap_in == "fifo":
            os.mkfifo(target)  # an open for reading would wait for a writer forever
        else:
            target.symlink_to(outside.secret)

    done = once(monkeypatch, workspace_files, "lstat_at", lambda fd, name: name == "app.py",
                swap)
    files = WorkspaceFiles(ws, BuiltinPolicy())
    with pytest.raises(KitplayError) as e:
        in_time(lambda: files.read(f"source/apps/{APP}/app.py"))
    assert done
    assert e.value.data["reason"] == ("fifo" if swap_in == "fifo" else "symlink")


def test_an_app_directory_swapped_for_a_symlink_before_removal_is_not_followed(
        setup: tuple[Path, Outside], monkeypatch: pytest.MonkeyPatch) -> None:
    ws, outside = setup
    app = ws / "source" / "apps" / APP

    def swap() -> None:
        app.rename(app.with_name(APP + ".moved"))
        app.symlink_to(outside.dir)

    def in_remove(fd: int, name: str) -> bool:  # the removal's own lstat, not the layout's
        return name == APP and sys._getframe(2).f_code.co_name == "_remove"

    done = once(monkeypatch, app_files, "lstat_at", in_remove, swap)
    af = AppFiles(BuiltinToolchain(ws))
    with pytest.raises(InvalidState) as e:
        af.delete(APP, APP, [])
    assert done
    assert "removed before it" in e.value.message
    assert app.is_symlink()  # left as it was found; outside/ untouched (the fixture checks)
