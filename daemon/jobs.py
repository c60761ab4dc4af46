"""Jobs: records, the queue and its scheduler, cancellation, waiting, log retention.

Every job is a record in the store (the truth) plus, while it runs, an ``Active`` entry here.
How a job's steps run is ``daemon.runner``'s concern; what becomes of unfinished jobs after a
restart is ``daemon.recovery``'s; following a log is ``daemon.following``'s.
"""

from __future__ import annotations

import logging
import os
import secrets
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from . import failpoints, recovery
from .config import Config
from .displays import display_log_path
from .following import read_log_slice
from .logs import log_size
from .protocol.errors import (
    InvalidParams,
    InvalidState,
    KitplayError,
    NotFound,
    Unsupported,
    describe_bug,
)
from .protocol.framing import Encoded, encode
from .protocol.schemas import TERMINAL_STATUSES
from .runner import INTERRUPTED, STOP_BOUND_S, Active, LogWriter, StepInterrupted, StepRunner
from .store import Problem, Store
from .store import problem as store_problem
from .toolchains.base import Plan

__all__ = ["JobManager", "new_job_id", "seed_job_ids"]

log = logging.getLogger("kitplayd.jobs")

_HIDDEN = ("pid_start", "step_index", "extra")


def _boot_id() -> str:
    """This boot's id: the monotonic clock's readings compare only within one boot."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


BOOT_ID = _boot_id()
_ENDED_CACHE = 1024
STORE_WATCH_S = 0.5  # how soon a state that takes writes again is noticed
PRUNE_LISTED = 1000  # jobs.prune lists at most this many of the jobs it removes


def _remove_files(paths: list[tuple[Path, Path, Path]], dry_run: bool) -> list[int]:
    """The size of each job's log; unless ``dry_run``, remove the job's files."""
    sizes = []
    for files in paths:
        sizes.append(log_size(str(files[0])))
        if not dry_run:
            for f in files:
                try:
                    f.unlink(missing_ok=True)
                except OSError as e:  # the record is gone; a file left over is only space
                    log.warning("cannot remove %s: %s", f, e)
    return sizes


_last_ms = 0  # the last id's sequence number


def new_job_id() -> str:
    """Sortable, short, safe as a file name: a sequence number in base 36, plus randomness.

    The sequence starts from the wall clock in milliseconds and never goes back: each id
    takes the clock or the last id's number plus one, whichever is larger.  So ids sort in
    creation order even after the wall clock steps back (they run ahead of it until it
    catches up), and still tell roughly when a job was made.
    """
    global _last_ms
    _last_ms = max(int(time.time() * 1000), _last_ms + 1)
    return f"{_b36(_last_ms)}-{secrets.token_hex(3)}"


def seed_job_ids(newest: str | None) -> None:
    """Continue the sequence after ``newest``, the id of the newest job on record."""
    global _last_ms
    try:
        _last_ms = max(_last_ms, int((newest or "0").split("-", 1)[0], 36))
    except ValueError:
        pass


def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = digits[r] + out
    return out or "0"


class _Batch:
    """New job records committed together, and the event their submitters wait on."""

    __slots__ = ("done", "error", "keys", "plans", "records")

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.plans: list[Plan] = []
        self.keys: dict[str, str] = {}  # job id -> idempotency key
        self.done = trio.Event()
        self.error: KitplayError | None = None

    def add(self, rec: dict[str, Any], plan: Plan, key: str | None) -> None:
        self.records.append(rec)
        self.plans.append(plan)
        if key is not None:
            self.keys[rec["id"]] = key


class JobManager:
    def __init__(self, cfg: Config, store: Store, planner: Callable[[str, dict[str, Any]], Plan],
                 displays: Any = None) -> None:
        self.cfg = cfg
        self.store = store
        self.planner = planner  # (kind, params) -> Plan; raises KitplayError
        self.displays = displays  # display sessions (xpra), or None where xpra is absent
        self.runner = StepRunner(cfg, self, displays)
        seed_job_ids(store.newest_id())
        self.active: dict[str, Active] = {}
        self.queue: list[str] = []
        self.plans: dict[str, Plan] = {}
        self._events: dict[str, trio.Event] = {}
        self._versions: dict[str, int] = {}
        self._wake = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._finished_since_retention = 0
        self.stopping = False
        self._logs_dir = str(cfg.logs_dir)
        self._ended: dict[str, dict[str, Any]] = {}  # public records of ended jobs
        self._ended_json: dict[str, bytes] = {}  # jobs.get's result for some, encoded
        # Changes the store could not take (disk full, I/O error): kept here, in order, shown
        # by jobs.get/list, and written as soon as the store takes writes again.
        self._unsaved: dict[str, dict[str, Any]] = {}
        self.store_problem: Problem | None = None
        self._retention_due = False
        self._pending: _Batch | None = None  # submissions waiting for their group commit
        self._pending_keys: dict[str, tuple[_Batch, dict[str, Any]]] = {}
        self._queued_launches = 0  # launches in ``queue`` (they skip the concurrency limit)

    # -- records ----------------------------------------------------------------------------

    def log_path(self, job_id: str) -> Path:
        return self.cfg.logs_dir / f"{job_id}.log"

    def exit_path(self, job_id: str) -> Path:
        return self.cfg.logs_dir / f"{job_id}.exit"

    def public(self, rec: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in rec.items() if k not in _HIDDEN}
        # A plain string path: this runs on every jobs.get, and pathlib costs more than stat.
        out["log_size"] = log_size(os.path.join(self._logs_dir, rec["id"] + ".log"))
        extra = rec.get("extra") or {}
        out["duration_s"] = extra.get("duration_s")
        if extra.get("log_removed"):
            out["log_removed"] = True
        return out

    def get_record(self, job_id: str) -> dict[str, Any]:
        rec = self.store.get(job_id)
        if rec is not None and job_id in self._unsaved:
            rec = {**rec, **self._unsaved[job_id]}
        if rec is None:
            raise NotFound(f"no job with id {job_id!r}; `kitplay jobs list` shows the jobs",
                           {"job_id": job_id})
        return rec

    def get(self, job_id: str) -> dict[str, Any]:
        """The public record.  Ended jobs never change (but for log retention), so the last
        ``_ENDED_CACHE`` of them are answered from memory: ``jobs.get`` is the hot call."""
        cached = self._ended.get(job_id)
        if cached is not None:
            return cached
        return self._remember(self.public(self.get_record(job_id)))

    def get_result(self, job_id: str) -> dict[str, Any] | Encoded:
        """``jobs.get``'s result; for an ended job, with its JSON kept (encoded once)."""
        rec = self.get(job_id)
        if job_id not in self._ended:
            return {"job": rec}
        body = self._ended_json.get(job_id)
        if body is None:
            body = self._ended_json[job_id] = encode({"job": rec})
        return Encoded({"job": rec}, body)

    def _remember(self, rec: dict[str, Any]) -> dict[str, Any]:
        """Keep an ended job's public record for ``get`` and ``list_jobs``."""
        if rec["status"] in TERMINAL_STATUSES:
            self._ended[rec["id"]] = rec
            if len(self._ended) > _ENDED_CACHE:
                self._forget(next(iter(self._ended)))
        return rec

    def _forget(self, job_id: str) -> None:
        """Drop what the cache of ended jobs keeps of ``job_id`` (it changed, or aged out)."""
        self._ended.pop(job_id, None)
        self._ended_json.pop(job_id, None)

    def list_jobs(self, status: str | None, kind: str | None, limit: int,
                  app: str | None = None, offset: int = 0) -> list[dict[str, Any]]:
        """Newest first.  Ended jobs come from the cache ``get`` keeps (no JSON decoding, no
        stat of their logs); only the others are read whole from the store, with the changes
        it could not take yet."""
        rows = self.store.list_ids(status, kind, limit, app, offset)
        ended = self._ended
        missing = [job_id for job_id, _ in rows if job_id not in ended]
        fetched = self.store.get_many(missing) if missing else {}
        out = []
        for job_id, _ in rows:
            rec = ended.get(job_id)
            if rec is None:
                raw = fetched[job_id]
                if job_id in self._unsaved:
                    raw = {**raw, **self._unsaved[job_id]}
                rec = self._remember(self.public(raw))
            out.append(rec)
        return out

    def set_fields(self, job_id: str, **fields: Any) -> None:
        """Record a change; when the store refuses it, keep it until the store takes it.
        While changes are kept, new ones queue behind them: the oldest are written first."""
        if fields.get("status") in TERMINAL_STATUSES:
            fields = self._without_display(job_id, fields)
        if self._unsaved:
            self._unsaved.setdefault(job_id, {}).update(fields)
            self._flush()
        else:
            try:
                self.store.update(job_id, **fields)
            except (sqlite3.Error, OSError) as e:
                self._keep_unsaved(job_id, fields, e)
        self._forget(job_id)
        self._bump(job_id)

    def _without_display(self, job_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        """An ended job carries no display: its session is gone (``url`` is what earlier
        versions kept there: a session's loopback address with its password)."""
        result = fields["result"] if "result" in fields else \
            self.get_record(job_id).get("result")
        if isinstance(result, dict) and ("display" in result or "url" in result):
            fields = {**fields, "result": {k: v for k, v in result.items()
                                           if k not in ("display", "url")}}
        return fields

    def _keep_unsaved(self, job_id: str, fields: dict[str, Any], e: Exception) -> None:
        self._unsaved.setdefault(job_id, {}).update(fields)
        self._store_failed(e)

    def _store_failed(self, e: BaseException) -> None:
        was = self.store_problem
        self.store_problem = store_problem(e, self.store.path)
        if was is None or was.cause != self.store_problem.cause:
            log.error("cannot write job records: %s; job changes are kept in memory and "
                      "written once it takes writes again", self.store_problem.message)

    def _flush(self) -> bool:
        """Write what was kept, oldest first; True when everything is written."""
        for job_id in list(self._unsaved):
            try:
                self.store.update(job_id, **self._unsaved[job_id])
            except (sqlite3.Error, OSError) as e:
                self._store_failed(e)
                return False
            del self._unsaved[job_id]
        if self.store_problem is not None:
            log.info("job records are written again to %s", self.cfg.db_path)
        self.store_problem = None
        return True

    async def _watch_store(self) -> None:
        """Notice, within ``STORE_WATCH_S``, a state that takes writes again (and write what
        was kept), and a database removed under the daemon (and write it again)."""
        while True:
            await trio.sleep(STORE_WATCH_S)
            self.check_store()

    def check_store(self) -> None:
        store = self.store
        if store.moved():
            try:
                store.restore()
            except (sqlite3.Error, OSError) as e:
                self._store_failed(e)
                if self.store_problem is not None and self.store_problem.cause != "missing":
                    self.store_problem = Problem("missing", (
                        f"the database {store.path} was removed under kitplayd and cannot be "
                        f"written again ({e}); job changes are kept in memory"))
                return
            log.warning("the database %s was removed under kitplayd; written again from "
                        "what kitplayd had open", store.path)
        if self.store_problem is None and not self._unsaved and not store.exclusive:
            return
        if store.exclusive or (self.store_problem is not None
                               and self.store_problem.cause in ("read-only", "missing")):
            try:
                store.reopen()  # a connection opened read-only (or exclusive) stays so
            except (sqlite3.Error, OSError) as e:
                self._store_failed(e)
                return
        problem = store.probe()
        if problem is not None:
            self.store_problem = problem
            return
        if self._flush() and self._retention_due:
            self._after_finish(force=True)

    def store_state(self) -> dict[str, Any]:
        """For daemon.status: whether the state dir takes writes, and why not."""
        p = self.store_problem
        return {"ok": p is None, "cause": None if p is None else p.cause,
                "error": None if p is None else (
                    f"{p.message}; job changes are kept in memory and written once it takes "
                    "writes again"), "unsaved_jobs": len(self._unsaved)}

    def _bump(self, job_id: str) -> None:
        self._versions[job_id] = self._versions.get(job_id, 0) + 1
        ev = self._events.pop(job_id, None)
        if ev is not None:
            ev.set()

    def _event(self, job_id: str) -> trio.Event:
        ev = self._events.get(job_id)
        if ev is None:
            ev = self._events[job_id] = trio.Event()
        return ev

    def version(self, job_id: str) -> int:
        return self._versions.get(job_id, 0)

    # -- submission -------------------------------------------------------------------------

    async def submit(self, plan: Plan, params: dict[str, Any],
                     key: str | None = None) -> dict[str, Any]:
        """Record a new job and queue it; return its public record once it is on disk.

        Group commit: the first submission of a scheduler tick yields once, so that every
        submission made in that tick (other connections, other calls in flight) joins its
        batch, then commits the batch in one transaction; all of them are acknowledged after
        that commit.  A job is queued only once its record is committed, by the committer, so a
        submitter cancelled while it waits (its client left) still leaves a well-kept job.

        ``key`` (idempotency): committed with the job; a submission with a key already known
        (committed within a day, or in this batch) gets that job instead of a new one.
        """
        if key is not None:
            first = self.keyed(key, plan.kind, params)
            if first is not None:
                return first
            waiting = self._pending_keys.get(key)
            if waiting is not None:  # the same key twice in one batch: one job
                joined, rec = waiting
                self._same_request(key, rec, plan.kind, params)
                await joined.done.wait()
                if joined.error is not None:
                    raise joined.error
                return self.public(rec)
        rec = self._new_record(plan, params)
        batch = self._pending
        if batch is None:
            batch = self._pending = _Batch()
            batch.add(rec, plan, key)
            if key is not None:
                self._pending_keys[key] = (batch, rec)
            # Shielded: the leader commits for the others even if its own call is cancelled.
            await trio.lowlevel.cancel_shielded_checkpoint()
            self._commit(batch)
        else:
            batch.add(rec, plan, key)
            if key is not None:
                self._pending_keys[key] = (batch, rec)
            await batch.done.wait()
        if batch.error is not None:
            raise batch.error
        return self.public(rec)

    def keyed(self, key: str, kind: str, params: dict[str, Any]) -> dict[str, Any] | None:
        """The public record of the job ``key`` named within a day, or None; a key used for
        another request is refused (the caller meant something else)."""
        job_id = self.store.find_key(key)
        if job_id is None:
            return None
        self._same_request(key, self.get_record(job_id), kind, params)
        return self.get(job_id)

    @staticmethod
    def _same_request(key: str, rec: dict[str, Any], kind: str, params: dict[str, Any]) -> None:
        def comparable(p: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in p.items() if k != "workspace"}

        if rec["kind"] != kind or comparable(rec["params"]) != comparable(params):
            raise InvalidParams(
                f"idempotency key {key!r} already named job {rec['id']} ({rec['kind']}, "
                "with other parameters) within the last day; use a new key for a new job",
                {"param": "idempotency_key", "job_id": rec["id"]})

    def _commit(self, batch: _Batch) -> None:
        self._pending = None
        for key in batch.keys.values():
            self._pending_keys.pop(key, None)
        try:
            self.store.insert_many(batch.records, batch.keys)
        except (sqlite3.Error, OSError) as e:
            log.error("could not record %d new job(s): %s", len(batch.records), e)
            self._store_failed(e)
            p = self.store_problem
            assert p is not None
            batch.error = InvalidState(
                f"cannot record the job: {p.message}; then submit it again",
                {"state_dir": str(self.cfg.state_dir), "cause": p.cause})
        else:
            failpoints.hit("submit.committed")
            for rec, plan in zip(batch.records, batch.plans):
                self.plans[rec["id"]] = plan
                self.queue.append(rec["id"])
                if plan.kind == "launch":
                    self._queued_launches += 1
            self._wake.set()
        batch.done.set()

    def _new_record(self, plan: Plan, params: dict[str, Any]) -> dict[str, Any]:
        if self.stopping:
            raise InvalidState("the daemon is shutting down; submit the job again once it "
                               "has restarted")
        if plan.kind == "launch":
            self._check_display(plan)
        if self.store_problem is not None and not self._flush():
            p = self.store_problem
            raise InvalidState(f"cannot accept a new job: {p.message}; then submit it again",
                               {"state_dir": str(self.cfg.state_dir), "cause": p.cause})
        job_id = new_job_id()
        rec = {
            "id": job_id, "kind": plan.kind, "status": "queued", "params": params,
            "workspace": str(plan.workspace), "toolchain": plan.toolchain,
            "created_at": time.time(), "started_at": None, "finished_at": None,
            "exit_code": None, "result": None, "error": None, "progress": None, "pid": None,
            "restarts": 0,
        }
        return rec

    def _check_display(self, plan: Plan) -> None:
        if plan.display == "xpra":
            if self.displays is None:
                raise Unsupported("display 'xpra' is not available in this kitplayd; use "
                                  "display 'headless' or 'native'")
            self.displays.check_available()
        elif plan.display == "native" and plan.needs_display and not (
                os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise Unsupported(
                f"app {plan.app!r} needs a display and the daemon has none (no DISPLAY or "
                "WAYLAND_DISPLAY); launch it with display 'xpra' to see it in a browser, or "
                "'headless' to run it without windows", {"display": "native"})

    # -- the scheduler ----------------------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        self.cfg.logs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self.store_problem = self.store.probe()  # said from the start, not at a submit
            if self.store_problem is not None:
                log.error("the state cannot take writes: %s", self.store_problem.message)
            self._recover()
            nursery.start_soon(self._watch_store)
            task_status.started()
            while True:
                await self._wake.wait()
                self._wake = trio.Event()
                self._schedule()

    def _schedule(self) -> None:
        assert self._nursery is not None
        if self.stopping or not self.queue:
            return
        running_batch = sum(1 for a in self.active.values()
                            if a.plan is not None and a.plan.kind != "launch")
        if running_batch >= self.cfg.max_concurrent_jobs and not self._queued_launches:
            return  # nothing can start: don't walk a long queue on every wake
        busy = {a.plan.serial_key for a in self.active.values()
                if a.plan is not None and a.plan.serial_key}
        started: list[str] = []
        for job_id in self.queue:
            plan = self.plans[job_id]
            if plan.kind != "launch":
                if running_batch >= self.cfg.max_concurrent_jobs:
                    continue
                if plan.serial_key and plan.serial_key in busy:
                    continue
                running_batch += 1
                if plan.serial_key:
                    busy.add(plan.serial_key)
            started.append(job_id)
            act = self.active[job_id] = Active(job_id, plan)
            self._nursery.start_soon(self._run, act, 0, None)
        if started:
            gone = set(started)
            self.queue = [j for j in self.queue if j not in gone]
            self._queued_launches = sum(1 for j in self.queue if self.plans[j].kind == "launch")

    # -- running ----------------------------------------------------------------------------

    async def _run(self, act: Active, first_step: int, adopted: dict[str, Any] | None,
                   resumed: bool = False) -> None:
        job_id, plan = act.job_id, act.plan
        assert plan is not None
        outcome: dict[str, Any] | None = None
        try:
            with act.cancel_scope:
                if adopted is None and not resumed:
                    # The monotonic clock is the system's (since boot): a later daemon on the
                    # same boot measures the job's duration from it, whatever the wall clock does.
                    self.set_fields(job_id, status="running", started_at=time.time(),
                                    extra=self.extra_with(job_id, mono=time.monotonic(),
                                                          boot=BOOT_ID))
                outcome = await self.runner.run_steps(act, plan, LogWriter(self.log_path(job_id)),
                                                      first_step, adopted, resumed)
            if outcome is None and act.cancel_requested:  # cancelled between steps
                outcome = {"status": "cancelled"}
        except StepInterrupted as e:
            outcome = {"status": "interrupted", "error": {"message": INTERRUPTED, "step": e.step}}
        except KitplayError as e:
            step = e.data.get("step") if isinstance(e.data, dict) else None
            outcome = {"status": "failed", "error": {"message": e.message, "step": step}}
        except Exception as e:  # a bug: record it, keep serving
            log.exception("job %s failed inside the daemon", job_id)
            outcome = {"status": "failed",
                       "error": {"message": f"kitplayd internal error: {describe_bug(e)}",
                                 "step": None}}
        finally:
            if outcome is None:
                # Cancelled from outside: the daemon is stopping.  Launches keep running
                # and are re-adopted by the next daemon; nothing is recorded as ended.
                act.done.set()
                self.active.pop(job_id, None)
            else:
                self._finish(act, outcome)

    def _finish(self, act: Active, outcome: dict[str, Any]) -> None:
        job_id = act.job_id
        how = outcome.pop("_how", None)  # how a cancelled step ended (runner.ended_how)
        if act.cancel_requested and outcome.get("status") != "succeeded":
            reason = act.cancel_reason or "cancelled on request"
            outcome = {**outcome, "status": "cancelled", "error": {
                "message": f"{reason}: {how}" if how else reason,
                "step": (outcome.get("error") or {}).get("step")}}
        status = outcome.pop("status", "failed")
        if status != "succeeded" and outcome.get("error") is None:
            outcome["error"] = {"message": f"job ended {status}", "step": None}
        if act.log_error:  # the job's own outcome stands; the record says what is missing
            if status == "succeeded":
                outcome["result"] = {**(outcome.get("result") or {}), "log_error": act.log_error}
            else:
                outcome["error"] = {**outcome["error"],
                                    "message": f"{outcome['error']['message']}; {act.log_error}"}
        LogWriter(self.log_path(job_id)).write(
            f"[kitplay] job {status}"
            + (f": {outcome['error']['message']}" if status != "succeeded" else "") + "\n")
        self._end(job_id, status, **outcome)
        # A step's stdin file (runner._spawn) is read by then; retention removes logs only.
        try:
            (self.cfg.logs_dir / f"{job_id}.stdin").unlink(missing_ok=True)
        except OSError as e:  # never in the way of recording the end
            log.warning("cannot remove the stdin file of job %s: %s", job_id, e)
        self._events.pop(job_id, None)
        act.done.set()
        self.active.pop(job_id, None)
        self.plans.pop(job_id, None)
        self._after_finish()
        self._wake.set()


    def _end(self, job_id: str, status: str, **fields: Any) -> None:
        """Record a job's end, with its duration measured on the monotonic clock when the
        daemon saw it start on this boot (a wall-clock step cannot make it negative)."""
        now = time.time()
        rec = self.get_record(job_id)
        extra = dict(rec.get("extra") or {})
        extra.pop("exit_seen", None)
        if extra.get("boot") == BOOT_ID and isinstance(extra.get("mono"), float):
            extra["duration_s"] = round(max(0.0, time.monotonic() - extra["mono"]), 6)
        elif rec.get("started_at") is not None:
            extra["duration_s"] = round(max(0.0, now - rec["started_at"]), 6)
        self.set_fields(job_id, status=status, finished_at=now, pid=None, extra=extra, **fields)
        if job_id not in self._unsaved:  # recorded: the monitor's exit status is read for good
            for suffix in (".exit", ".exit.tmp"):
                try:
                    (self.cfg.logs_dir / f"{job_id}{suffix}").unlink(missing_ok=True)
                except OSError:
                    pass

    def extra_with(self, job_id: str, **values: Any) -> dict[str, Any]:
        """The job's ``extra`` record with ``values`` set (to pass to ``set_fields``)."""
        return {**(self.get_record(job_id).get("extra") or {}), **values}

    # -- cancellation -----------------------------------------------------------------------

    async def cancel(self, job_id: str, grace_s: float | None, reason: str = "") -> dict[str, Any]:
        rec = self.get_record(job_id)
        if rec["status"] in TERMINAL_STATUSES:
            raise InvalidState(f"job {job_id} already ended ({rec['status']}); nothing to "
                               "cancel", {"job_id": job_id, "status": rec["status"]})
        grace = self.cfg.cancel_grace_s if grace_s is None else grace_s
        if job_id in self.queue:
            self.queue.remove(job_id)
            plan = self.plans.pop(job_id, None)
            if plan is not None and plan.kind == "launch":
                self._queued_launches -= 1
            LogWriter(self.log_path(job_id)).write("[kitplay] job cancelled before it started\n")
            self.set_fields(job_id, status="cancelled", finished_at=time.time(),
                      error={"message": reason or "cancelled before it started", "step": None})
            self._wake.set()
            return self.get(job_id)
        act = self.active.get(job_id)
        if act is None:
            raise InvalidState(f"job {job_id} is {rec['status']} but no process is known; "
                               "restart kitplayd to recover it", {"job_id": job_id})
        # Recorded before any signal goes out: a daemon that dies in the grace period leaves
        # a job its successor records as cancelled (finishing the cancel if it still runs).
        # No log line here: while a step runs, its shim is the log's only writer.
        self.set_fields(job_id, extra=self.extra_with(job_id, cancel={
            "reason": reason, "grace": grace, "deadline": time.time() + grace}))
        act.cancel_requested = True
        act.cancel_grace = grace
        act.cancel_reason = reason
        if act.shim_pid is None or act.exited.is_set():
            act.cancel_scope.cancel()  # between steps or in a restart backoff
        else:
            await self.runner.terminate(act, grace)
        await act.done.wait()
        if self.displays is not None:  # cancelled while a session was being set up
            await self.displays.cleanup(job_id)
        return self.get(job_id)


    # -- pruning ----------------------------------------------------------------------------

    async def prune(self, older_than_s: float | None, keep: int | None,
                    dry_run: bool) -> dict[str, Any]:
        """Remove ended jobs and their logs (``jobs.prune``); say what was removed."""
        if older_than_s is None and keep is None:
            raise InvalidParams(
                "say which ended jobs to remove: older_than_s (--older-than-s, seconds since "
                "they ended) and/or keep (--keep, how many of the newest to keep); nothing was "
                "removed", {"param": "older_than_s"})
        before = None if older_than_s is None else time.time() - older_than_s
        ids = [i for i in self.store.ended_ids(before, keep)
               if i not in self.active and i not in self.plans and i not in self._unsaved]
        records = self.store.get_many(ids[:PRUNE_LISTED])
        paths = [(self.log_path(i), self.exit_path(i), self.cfg.logs_dir / f"{i}.stdin")
                 for i in ids]
        if not dry_run:
            try:
                self.store.delete(ids)
            except (sqlite3.Error, OSError) as e:
                log.error("could not remove %d ended job(s): %s", len(ids), e)
                self._store_failed(e)
                p = self.store_problem
                assert p is not None
                raise InvalidState(f"cannot remove the jobs' records: {p.message}; nothing "
                                   "was removed", {"state_dir": str(self.cfg.state_dir),
                                                   "cause": p.cause}) from None
            for job_id in ids:
                self._forget(job_id)
                self._versions.pop(job_id, None)
                self._events.pop(job_id, None)
        sizes = await trio.to_thread.run_sync(_remove_files, paths, dry_run)
        removed = []
        for job_id, size in zip(ids[:PRUNE_LISTED], sizes):
            rec = records.get(job_id) or {}
            params = rec.get("params") or {}
            removed.append({"id": job_id, "kind": rec.get("kind"), "status": rec.get("status"),
                            "app": params.get("app") or params.get("name"),
                            "finished_at": rec.get("finished_at"), "log_bytes": size})
        if ids and not dry_run:
            log.info("pruned %d ended job(s) and their logs", len(ids))
        return {"removed": removed, "count": len(ids), "log_bytes": sum(sizes),
                "dry_run": dry_run}

    # -- waiting and following --------------------------------------------------------------

    async def wait(self, job_id: str, timeout_s: float) -> dict[str, Any]:
        with trio.move_on_after(timeout_s):
            while True:
                rec = self.get_record(job_id)
                if rec["status"] in TERMINAL_STATUSES:
                    return {"job": self.public(rec), "timed_out": False}
                await self._event(job_id).wait()
        return {"job": self.get(job_id), "timed_out": True}

    async def read_log(self, job_id: str, offset: int, limit: int,
                       which: str = "job", encoding: str = "text") -> dict[str, Any]:
        rec = self.get_record(job_id)  # the store is used from the trio thread only
        if (rec.get("extra") or {}).get("log_removed"):
            raise NotFound(f"the log of job {job_id} was removed by the retention limit "
                           f"(log_retention_jobs = {self.cfg.log_retention_jobs})",
                           {"job_id": job_id})
        path = self.log_path(job_id)
        if which == "display":
            if rec["kind"] != "launch" or (rec.get("params") or {}).get("display") != "xpra":
                raise InvalidParams(f"job {job_id} has no display log: only a launch with "
                                    "display 'xpra' has one", {"param": "log"})
            path = display_log_path(self.cfg.logs_dir, job_id)
        terminal = rec["status"] in TERMINAL_STATUSES
        return await trio.to_thread.run_sync(
            read_log_slice, path, offset, limit, terminal, encoding)

    def changed(self, job_id: str) -> trio.Event | None:
        """An event set at the job's next change, or None when it can no longer change."""
        if job_id in self.active or job_id in self.plans:
            return self._event(job_id)
        return None

    # -- recovery ---------------------------------------------------------------------------

    def _recover(self) -> None:
        """After a start: requeue queued jobs, re-adopt live steps, end lost ones."""
        assert self._nursery is not None
        records = self.store.by_status("running", "queued")
        for d in recovery.decide(records, self.planner, self.cfg.logs_dir, self.displays):
            if isinstance(d, recovery.Requeue):
                if d.was_running:
                    LogWriter(self.log_path(d.job_id)).write(
                        "[kitplay] kitplayd restarted before this job's process started; "
                        "it is queued again\n")
                    self.set_fields(d.job_id, status="queued", started_at=None)
                self.plans[d.job_id] = d.plan
                self.queue.append(d.job_id)
                if d.plan.kind == "launch":
                    self._queued_launches += 1
            elif isinstance(d, recovery.Fail):
                self.set_fields(d.job_id, status="failed", finished_at=time.time(),
                                error={"message": d.message, "step": None})
            elif isinstance(d, recovery.Interrupt):
                LogWriter(self.log_path(d.job_id)).write(
                    f"[kitplay] job interrupted: kitplayd restarted and {d.why}\n")
                self._end(d.job_id, "interrupted",
                          error={"message": f"interrupted: {d.why}", "step": None})
            elif isinstance(d, recovery.Cancelled):
                LogWriter(self.log_path(d.job_id)).write(
                    f"[kitplay] job cancelled: {d.reason} (kitplayd restarted {d.why})\n")
                self._end(d.job_id, "cancelled", error={"message": d.reason, "step": None})
            elif isinstance(d, recovery.Resume):
                act = self.active[d.job_id] = Active(d.job_id, d.plan, exit_seen=d.exit_seen)
                self.plans[d.job_id] = d.plan
                log.info("resuming job %s at step %d", d.job_id, d.step_index + 1)
                self._nursery.start_soon(self._run, act, d.step_index, None, True)
            else:
                if d.found is not None:
                    self.set_fields(d.job_id, pid=d.found[0], pid_start=d.found[1])
                act = self.active[d.job_id] = Active(d.job_id, d.plan)
                if d.cancel is not None:  # the last daemon was cancelling it
                    act.cancel_requested = True
                    act.cancel_reason = d.cancel.get("reason") or ""
                    grace = float(d.cancel.get("grace") or 0.0)  # what is left of it
                    act.cancel_grace = min(grace, max(
                        0.0, float(d.cancel.get("deadline") or 0.0) - time.time()))
                self.plans[d.job_id] = d.plan
                log.info("re-adopting job %s (pid %s)", d.job_id, d.pid)
                self._nursery.start_soon(self._run, act, d.step_index, {"pid": d.pid})
        if self.displays is not None:
            self._nursery.start_soon(self.displays.reconcile, set(self.active))
        self._after_finish(force=True)
        self._wake.set()

    def _after_finish(self, force: bool = False) -> None:
        """Apply the log retention limit every so often (never silently: records say so)."""
        self._finished_since_retention += 1
        if not force and self._finished_since_retention < 20:
            return
        self._finished_since_retention = 0
        try:
            old, mark = self.store.finished_beyond(self.cfg.log_retention_jobs)
            for job_id in old:
                self.log_path(job_id).unlink(missing_ok=True)
                self.exit_path(job_id).unlink(missing_ok=True)
                display_log_path(self.cfg.logs_dir, job_id).unlink(missing_ok=True)
                rec = self.store.get(job_id)
                extra = (rec or {}).get("extra") or {}
                self.store.update(job_id, extra={**extra, "log_removed": True})
                self._forget(job_id)
            self.store.set_retention_mark(mark)
            self.store.forget_keys()
        except (sqlite3.Error, OSError) as e:  # retention waits for the next round
            self._retention_due = True
            log.warning("log retention skipped: %s", e)
        else:
            self._retention_due = False

    # -- shutdown ---------------------------------------------------------------------------

    async def shutdown(self) -> None:
        """Stop builds gracefully; leave launched apps running for the next daemon.

        Ends within ``shutdown_grace_s`` + ``STOP_BOUND_S``, whatever the processes do (a
        stopped tree is continued, then killed)."""
        self.stopping = True
        with trio.move_on_after(self.cfg.shutdown_grace_s + STOP_BOUND_S):
            async with trio.open_nursery() as nursery:
                for act in list(self.active.values()):
                    if act.plan is not None and act.plan.kind != "launch":
                        nursery.start_soon(self._cancel_quietly, act.job_id)

    async def _cancel_quietly(self, job_id: str) -> None:
        try:
            await self.cancel(job_id, self.cfg.shutdown_grace_s, "cancelled: kitplayd stopped")
        except KitplayError:
            pass


