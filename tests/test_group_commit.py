"""Submissions are committed in groups, and acknowledged still means on disk.

- in-process (a real ``Store`` and ``JobManager``): submissions made in one scheduler tick share
  one transaction; a failed commit fails every submission of its batch with a clear error and
  queues none of them; a submitter cancelled while it waits still leaves its job queued;
- real daemon: jobs acknowledged to several clients at once are all in the database after a
  SIGKILL sent right after the last acknowledgement, and the restarted daemon knows them.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
import trio
from kitplay.daemon.config import load_config
from kitplay.daemon.handlers import Handlers
from kitplay.daemon.jobs import JobManager
from kitplay.daemon.protocol.errors import InvalidState
from kitplay.daemon.store import Store

from tests.helpers import Daemon, write_app

APP = "t.blocker"


def _manager(tmp_path: Path) -> tuple[Handlers, JobManager, Store]:
    cfg = load_config(None)
    cfg.state_dir = tmp_path / "state"
    cfg.workspace = tmp_path / "ws"
    cfg.max_concurrent_jobs = 0  # nothing starts: every job stays queued
    cfg.logs_dir.mkdir(parents=True)
    cfg.workspace.mkdir()
    write_app(cfg.workspace, APP, build=[["sleep", "3600"]])
    store = Store(cfg.db_path)
    handlers = Handlers(cfg, None, tmp_path / "s")  # type: ignore[arg-type]
    jobs = JobManager(cfg, store, handlers.plan, None)
    handlers.jobs = jobs
    return handlers, jobs, store


async def test_one_tick_of_submissions_is_one_commit(tmp_path: Path) -> None:
    handlers, jobs, store = _manager(tmp_path)
    batches: list[int] = []
    real = store.insert_many

    def spy(records: list[dict[str, Any]], keys: dict[str, str] | None = None) -> None:
        batches.append(len(records))
        real(records, keys)

    store.insert_many = spy  # type: ignore[method-assign]
    acked: list[str] = []

    async def submit() -> None:
        acked.append((await handlers.build(None, {"app": APP}))["job"]["id"])

    async with trio.open_nursery() as nursery:
        await nursery.start(jobs.run)
        with trio.fail_after(10):
            async with trio.open_nursery() as submitters:
                for _ in range(20):
                    submitters.start_soon(submit)
        await submit()  # alone: a batch of one
        nursery.cancel_scope.cancel()
    assert sum(batches) == 21 and batches[-1] == 1
    assert len(batches) < 21, batches  # grouped
    assert store.counts() == {"queued": 21}
    assert sorted(jobs.queue) == sorted(acked)
    store.close()


async def test_a_failed_commit_fails_its_whole_batch_and_queues_nothing(tmp_path: Path) -> None:
    handlers, jobs, store = _manager(tmp_path)
    real = store.insert_many

    def full(records: list[dict[str, Any]], keys: dict[str, str] | None = None) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    store.insert_many = full  # type: ignore[method-assign]
    errors: list[InvalidState] = []

    async def submit() -> None:
        try:
            await handlers.build(None, {"app": APP})
        except InvalidState as e:
            errors.append(e)

    async with trio.open_nursery() as nursery:
        await nursery.start(jobs.run)
        async with trio.open_nursery() as inner:
            for _ in range(5):
                inner.start_soon(submit)
        assert len(errors) == 5
        assert "disk is full" in errors[0].message and "submit it again" in errors[0].message
        assert jobs.queue == [] and store.count_rows() == {}
        store.insert_many = real  # type: ignore[method-assign]
        job = (await handlers.build(None, {"app": APP}))["job"]  # the daemon goes on
        assert jobs.queue == [job["id"]]
        nursery.cancel_scope.cancel()
    store.close()


async def test_a_cancelled_submitter_still_leaves_its_job_queued(tmp_path: Path) -> None:
    handlers, jobs, store = _manager(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(jobs.run)
        with trio.CancelScope() as scope:
            scope.cancel()  # cancelled before it even waits: the commit still happens
            await handlers.build(None, {"app": APP})
        assert len(jobs.queue) == 1
        assert store.count_rows() == {"queued": 1}

        async def cancelled_submit() -> None:
            with trio.CancelScope() as scope:
                scope.cancel()
                await handlers.build(None, {"app": APP})

        async with trio.open_nursery() as inner:  # one leads the batch, the other waits in it
            inner.start_soon(cancelled_submit)
            inner.start_soon(cancelled_submit)
        assert len(jobs.queue) == 3
        assert store.count_rows() == {"queued": 3}
        nursery.cancel_scope.cancel()
    store.close()


@pytest.mark.parametrize("clients", [1, 4])
def test_acknowledged_jobs_survive_sigkill_right_after_the_ack(clients: int) -> None:
    d = Daemon(config="max_concurrent_jobs = 1\n")
    try:
        write_app(d.workspace, APP, build=[["sleep", "3600"]])
        d.start()
        acked: list[str] = []
        lock = threading.Lock()
        frame = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "build",
                            "params": {"app": APP}}).encode() + b"\n"

        def client() -> None:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(30)
                s.connect(str(d.socket))
                buf = b""
                for _ in range(150):
                    s.sendall(frame)
                    while b"\n" not in buf:
                        buf += s.recv(65536)
                    line, buf = buf.split(b"\n", 1)
                    with lock:
                        acked.append(json.loads(line)["result"]["job"]["id"])

        threads = [threading.Thread(target=client) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        d.kill9()  # right after the last acknowledgement
        db = sqlite3.connect(d.state / "kitplay.db")
        try:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            stored = {r[0] for r in db.execute("SELECT id FROM jobs")}
        finally:
            db.close()
        assert len(acked) == 150 * clients
        assert set(acked) <= stored
        d.start()
        status = d.call("daemon.status")["jobs"]
        assert sum(status.values()) == len(stored)
    finally:
        d.cleanup()
