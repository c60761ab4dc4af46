"""``daemon.status`` without a count or a detection per call, and still never stale.

- the store's kept counts always equal a real count of the table, through inserts, status
  changes and other updates, and after reopening;
- the toolchain is detected once while nothing changes, and again as soon as a marker
  changes: a workspace that becomes a kit-app-template checkout, a licence accepted, a version
  file edited, the checkout taken away again;
- over the socket, the counts follow jobs as they run and end.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from kitplay.daemon.store import Store
from kitplay.daemon.toolchains import detect
from kitplay.daemon.toolchains.base import resolve_workspace
from kitplay.daemon.toolchains.watch import WatchedToolchain

from tests.helpers import Daemon, wait_for, write_app

STANDIN = Path(__file__).resolve().parent / "fixtures" / "kit_app_template"


def test_kept_counts_match_the_table(tmp_path: Path) -> None:
    store = Store(tmp_path / "k.db")
    now = time.time()
    for i in range(30):
        store.insert({"id": f"j{i}", "kind": ("build", "launch")[i % 2], "status": "queued",
                      "params": {}, "workspace": "/w", "toolchain": "builtin",
                      "created_at": now})
    assert store.counts() == store.count_rows() == {"queued": 30}
    for i in range(20):
        store.update(f"j{i}", status="running", started_at=now)
    for i in range(10):
        store.update(f"j{i}", status=("succeeded", "failed")[i % 2], finished_at=now)
    store.update("j0", progress={"step": 1})  # no status: no change in counts
    store.update("j1", status="failed")  # the same status again
    store.update("nope", status="failed")  # no such job
    assert store.counts() == store.count_rows() == {
        "queued": 10, "running": 10, "succeeded": 5, "failed": 5}
    for status in (None, "queued", "running", "succeeded", "failed", "cancelled"):
        for kind in (None, "build", "launch", "create"):
            assert store.count(status, kind) == store.count_matching(status, kind)
    store.close()
    again = Store(tmp_path / "k.db")
    assert again.counts() == again.count_rows()
    again.close()


def test_toolchain_detected_again_only_when_a_marker_changes(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    watch = WatchedToolchain(ws, lambda: detect(resolve_workspace(None, ws)))
    assert watch.info()["kind"] == "builtin"
    for _ in range(5):
        watch.info()
    assert watch.detections == 1

    shutil.rmtree(ws)
    shutil.copytree(STANDIN, ws)
    info = watch.info()
    assert info["kind"] == "kit-app-template" and info["license_accepted"] is False
    assert watch.detections == 2
    watch.info()
    assert watch.detections == 2

    (ws / ".omniverse_eula_accepted.txt").write_text("")
    assert watch.info()["license_accepted"] is True

    version = ws / "tools" / "VERSION.md"
    version.write_text("999.0.0\n")
    root_version = ws / "VERSION.md"
    root_version.unlink()
    assert watch.info()["kit_version"] == "999.0.0"

    config = ws / "templates" / "templates.toml"
    config.write_text(config.read_text() + "\n[broken\n")
    assert watch.info()["errors"], "a catalogue edit is seen"

    (ws / "repo.sh").unlink()
    assert watch.info()["kind"] == "builtin"
    shutil.rmtree(ws)
    gone = watch.info()
    assert gone["kind"] is None and "does not exist" in gone["error"]


def test_status_counts_follow_jobs(tmp_path: Path) -> None:
    d = Daemon()
    try:
        write_app(d.workspace, "t.gate", build=[[
            "{python}", "-c",
            "import os,time\nwhile not os.path.exists('go'): time.sleep(0.02)"]])
        d.start()
        assert d.call("daemon.status")["jobs"] == {}
        first = d.call("build", {"app": "t.gate"})["job"]["id"]
        d.call("build", {"app": "t.gate"})
        wait_for(lambda: d.call("daemon.status")["jobs"] == {"running": 1, "queued": 1},
                 what="one running, one queued")
        (d.workspace / "source/apps/t.gate/go").write_text("")
        d.wait_job(first)
        wait_for(lambda: d.call("daemon.status")["jobs"] == {"succeeded": 2},
                 what="both ended")
        assert d.call("daemon.status")["toolchain"]["kind"] == "builtin"
        shutil.copytree(STANDIN, d.workspace, dirs_exist_ok=True)
        assert d.call("daemon.status")["toolchain"]["kind"] == "kit-app-template"
    finally:
        d.cleanup()


def test_retention_reads_only_above_its_mark(tmp_path: Path) -> None:
    store = Store(tmp_path / "k.db")
    now = time.time()
    store.insert({"id": "long", "kind": "launch", "status": "running", "params": {},
                  "workspace": "/w", "toolchain": "builtin", "created_at": now})
    for i in range(30):
        store.insert({"id": f"j{i:02d}", "kind": "build", "status": "succeeded", "params": {},
                      "workspace": "/w", "toolchain": "builtin", "created_at": now,
                      "finished_at": now})

    def retire(keep: int) -> list[str]:
        ids, mark = store.finished_beyond(keep)
        for job_id in ids:
            store.update(job_id, extra={"log_removed": True})
        store.set_retention_mark(mark)
        return ids

    assert retire(10) == [f"j{i:02d}" for i in range(20)]
    assert store.retention_mark() == 0  # held below the job still running
    assert retire(10) == []
    store.update("long", status="succeeded", finished_at=now)  # ends, older than the rest
    assert retire(10) == ["long"]
    assert store.retention_mark() == 21  # the seq of j19: all at or below it are retired
    assert retire(10) == []
    for i in range(30, 35):  # five more end: five more age out, read from above the mark
        store.insert({"id": f"j{i:02d}", "kind": "build", "status": "failed", "params": {},
                      "workspace": "/w", "toolchain": "builtin", "created_at": now,
                      "finished_at": now})
    assert retire(10) == [f"j{i:02d}" for i in range(20, 25)]
    store.close()


def test_real_path_is_realpath(tmp_path: Path) -> None:
    """The kernel's answer (O_PATH + /proc/self/fd) equals os.path.realpath's, and paths that
    do not resolve fall back to it."""
    import os

    from kitplay.daemon.trust import real_path

    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "f").write_text("")
    (tmp_path / "link").symlink_to(tmp_path / "a")
    (tmp_path / "a" / "up").symlink_to("..")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    os.mkfifo(tmp_path / "fifo")  # opened with O_PATH: never blocks
    cases = ["link/b/f", "link/b/../b/f", "a/up/a/b", "link/up/link", "dangling", "missing/x",
             "link/missing", "a/b/f/", "fifo", ".", "loop", "a//b", "a/./b/"]
    for rel in cases:
        p = str(tmp_path / rel)
        assert real_path(p) == os.path.realpath(p), rel
    assert real_path(tmp_path / "link") == str(tmp_path / "a")
