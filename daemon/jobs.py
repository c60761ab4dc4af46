"""Jobs: the queue, the runner, cancellation, waiting, following, and recovery after a crash.

Every job is a record in the store (the truth) plus, while it runs, an ``Active`` entry
here.  Each process step runs under a ``daemon.shim`` monitor in its own session, so a job's
output reaches its log without passing through the daemon, and a launched app outlives the
daemon.  A restarted daemon re-adopts running steps by pid plus process start time.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import trio

from .config import Config
from .following import follow_job, read_log_slice
from .logs import log_size, tail_lines
from .procs import DEVNULL, alive, find_shim, package_root, same_process, signal_tree
from .protocol.errors import InvalidState, KitplayError, NotFound, Unsupported
from .protocol.schemas import TERMINAL_STATUSES
from .store import Store
from .toolchains.base import Plan, Step

__all__ = ["JobManager", "new_job_id"]

log = logging.getLogger("kitplayd.jobs")

_HIDDEN = ("pid_start", "step_index", "extra")
_ENDED_CACHE = 1024


def new_job_id() -> str:
    """Sortable, short, safe as a file name: milliseconds in base 36 plus randomness."""
    return f"{_b36(int(time.time() * 1000))}-{secrets.token_hex(3)}"


def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = digits[r] + out
    return out or "0"


@dataclass
class Active:
    """A job the daemon is running (or has re-adopted) right now."""

    job_id: str
    plan: Plan | None = None
    shim_pid: int | None = None
    proc: trio.Process | None = None
    exited: trio.Event = field(default_factory=trio.Event)
    cancel_requested: bool = False
    cancel_reason: str = ""
    cancel_scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    done: trio.Event = field(default_factory=trio.Event)


_INTERRUPTED = "the process ended while kitplayd was not watching and left no exit status"


class _StepInterrupted(Exception):
    """An adopted step's process is gone and left no exit status: the job is interrupted."""

    def __init__(self, step: str) -> None:
        super().__init__(step)
        self.step = step


class _LogWriter:
    """Appends the daemon's own lines (step headers, in-daemon steps) to a job's log."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, text: str) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    text = "\n" + text  # the job's last line was cut (killed mid-line)
                os.write(fd, text.encode("utf-8", "replace"))
            finally:
                os.close(fd)
        except OSError as e:  # disk full, logs dir gone: the job record still tells the story
            log.warning("cannot write to %s: %s", self.path, e)


class JobManager:
    def __init__(self, cfg: Config, store: Store, planner: Callable[[str, dict[str, Any]], Plan],
                 displays: Any = None) -> None:
        self.cfg = cfg
        self.store = store
        self.planner = planner  # (kind, params) -> Plan; raises KitplayError
        self.displays = displays  # display sessions (xpra); None until that module exists
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
        if extra.get("log_removed"):
            out["log_removed"] = True
        return out

    def get_record(self, job_id: str) -> dict[str, Any]:
        rec = self.store.get(job_id)
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
        rec = self.public(self.get_record(job_id))
        if rec["status"] in TERMINAL_STATUSES:
            self._ended[job_id] = rec
            if len(self._ended) > _ENDED_CACHE:
                del self._ended[next(iter(self._ended))]
        return rec

    def list_jobs(self, status: str | None, kind: str | None, limit: int) -> list[dict[str, Any]]:
        return [self.public(r) for r in self.store.list_jobs(status, kind, limit)]

    def _set(self, job_id: str, **fields: Any) -> None:
        self.store.update(job_id, **fields)
        self._ended.pop(job_id, None)
        self._bump(job_id)

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

    def submit(self, plan: Plan, params: dict[str, Any]) -> dict[str, Any]:
        if self.stopping:
            raise InvalidState("the daemon is shutting down; submit the job again once it "
                               "has restarted")
        if plan.kind == "launch":
            self._check_display(plan)
        job_id = new_job_id()
        rec = {
            "id": job_id, "kind": plan.kind, "status": "queued", "params": params,
            "workspace": str(plan.workspace), "toolchain": plan.toolchain,
            "created_at": time.time(), "started_at": None, "finished_at": None,
            "exit_code": None, "result": None, "error": None, "progress": None, "pid": None,
            "restarts": 0,
        }
        self.store.insert(rec)
        self.plans[job_id] = plan
        self.queue.append(job_id)
        self._wake.set()
        return self.public(rec)

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
            self._recover()
            task_status.started()
            while True:
                await self._wake.wait()
                self._wake = trio.Event()
                self._schedule()

    def _schedule(self) -> None:
        assert self._nursery is not None
        if self.stopping:
            return
        running_batch = sum(1 for a in self.active.values()
                            if a.plan is not None and a.plan.kind != "launch")
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

    # -- running ----------------------------------------------------------------------------

    async def _run(self, act: Active, first_step: int, adopted: dict[str, Any] | None) -> None:
        job_id, plan = act.job_id, act.plan
        assert plan is not None
        outcome: dict[str, Any] | None = None
        try:
            with act.cancel_scope:
                if adopted is None:
                    self._set(job_id, status="running", started_at=time.time())
                outcome = await self._run_steps(act, plan, _LogWriter(self.log_path(job_id)),
                                                first_step, adopted)
            if outcome is None and act.cancel_requested:  # cancelled between steps
                outcome = {"status": "cancelled"}
        except _StepInterrupted as e:
            outcome = {"status": "interrupted", "error": {"message": _INTERRUPTED, "step": e.step}}
        except KitplayError as e:
            outcome = {"status": "failed", "error": {"message": e.message, "step": None}}
        except Exception as e:  # a bug: record it, keep serving
            log.exception("job %s failed inside the daemon", job_id)
            outcome = {"status": "failed",
                       "error": {"message": f"kitplayd internal error: {e!r}", "step": None}}
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
        if act.cancel_requested and outcome.get("status") != "succeeded":
            outcome = {**outcome, "status": "cancelled", "error": {
                "message": act.cancel_reason or "cancelled on request",
                "step": (outcome.get("error") or {}).get("step")}}
        status = outcome.pop("status", "failed")
        if status != "succeeded" and outcome.get("error") is None:
            outcome["error"] = {"message": f"job ended {status}", "step": None}
        _LogWriter(self.log_path(job_id)).write(
            f"[kitplay] job {status}"
            + (f": {outcome['error']['message']}" if status != "succeeded" else "") + "\n")
        self._set(job_id, status=status, finished_at=time.time(), pid=None, **outcome)
        self._events.pop(job_id, None)
        act.done.set()
        self.active.pop(job_id, None)
        self.plans.pop(job_id, None)
        self._after_finish()
        self._wake.set()

    async def _run_steps(self, act: Active, plan: Plan, logw: _LogWriter, first: int,
                         adopted: dict[str, Any] | None) -> dict[str, Any]:
        job_id = act.job_id
        n = len(plan.steps)
        if plan.kind == "launch":
            return await self._run_launch(act, plan, logw, adopted)
        for i in range(first, n):
            step = plan.steps[i]
            if act.cancel_requested:
                return {"status": "cancelled"}
            progress = {"step": i + 1, "steps": n, "message": step.name}
            if adopted is None:
                # The previous step's status is consumed: a restart must never read it as
                # this step's (that would skip this step).
                self.exit_path(job_id).unlink(missing_ok=True)
            self._set(job_id, progress=progress, step_index=i)
            if adopted is None:
                logw.write(f"[kitplay] step {i + 1}/{n}: {step.name}\n")
            if step.func is not None:
                try:
                    await trio.to_thread.run_sync(step.func, logw)
                except KitplayError as e:
                    logw.write(f"[kitplay] {e.message}\n")
                    return {"status": "failed", "error": {"message": e.message,
                                                          "step": step.name}}
                except OSError as e:
                    msg = f"step '{step.name}' failed: {e}"
                    logw.write(f"[kitplay] {msg}\n")
                    return {"status": "failed", "error": {"message": msg, "step": step.name}}
                continue
            status = await self._run_process(act, step, adopted)
            adopted = None
            code = status.get("exit_code")
            if act.cancel_requested:
                return {"status": "cancelled", "exit_code": code}
            if code != 0:
                return {"status": "failed", "exit_code": code,
                        "error": self._step_error(job_id, plan, step, status)}
        result = await trio.to_thread.run_sync(plan.finish) if plan.finish else {}
        return {"status": "succeeded", "exit_code": 0, "result": result,
                "progress": {"step": n, "steps": n, "message": "done"}}

    def _step_error(self, job_id: str, plan: Plan, step: Step,
                    status: dict[str, Any]) -> dict[str, Any]:
        tail = tail_lines(self.log_path(job_id), 15)
        if status.get("timed_out"):
            what = f"timed out after {step.timeout_s:g} s"
        elif status.get("signal"):
            what = f"was killed by signal {status['signal']}"
        elif status.get("error"):
            what = f"could not start: {status['error']}"
        elif status.get("monitor_error"):
            what = f"ended, but {status['monitor_error']}"
        else:
            what = f"exited with code {status.get('exit_code')}"
        msg = f"step '{step.name}' {what}"
        if plan.describe_failure is not None:
            msg = plan.describe_failure(step.name, msg, self.log_path(job_id))
        return {"message": msg, "step": step.name, "tail": tail or None}

    async def _run_launch(self, act: Active, plan: Plan, logw: _LogWriter,
                          adopted: dict[str, Any] | None) -> dict[str, Any]:
        job_id = act.job_id
        rec = self.get_record(job_id)
        params = rec["params"]
        policy = params.get("restart", "never")
        max_restarts = params.get("max_restarts", 3)
        restarts = rec.get("restarts") or 0
        backoff = self.cfg.restart_backoff_initial_s
        step = plan.steps[0]
        while True:
            if adopted is None:
                logw.write(f"[kitplay] launching {plan.app} ({plan.display}): "
                           f"{' '.join(step.argv or [])}\n")
            started = time.monotonic()
            status = await self._run_process(act, step, adopted)
            adopted = None
            code = status.get("exit_code")
            if act.cancel_requested:
                return {"status": "cancelled", "exit_code": code}
            if code == 0:
                return {"status": "succeeded", "exit_code": 0,
                        "result": {**(self.get_record(job_id).get("result") or {}),
                                   "restarts": restarts}}
            if policy != "on-failure" or restarts >= max_restarts:
                err = self._step_error(job_id, plan, step, status)
                if policy == "on-failure":
                    err["message"] += f" (after {restarts} restarts, the limit)"
                return {"status": "failed", "exit_code": code, "error": err}
            if time.monotonic() - started >= self.cfg.restart_stable_s:
                backoff = self.cfg.restart_backoff_initial_s
            restarts += 1
            logw.write(f"[kitplay] {plan.app} exited with code {code}; restart {restarts}/"
                       f"{max_restarts} in {backoff:.2f} s\n")
            self._set(job_id, restarts=restarts)
            await trio.sleep(backoff)
            backoff = min(backoff * 2, self.cfg.restart_backoff_max_s)

    async def _run_process(self, act: Active, step: Step,
                           adopted: dict[str, Any] | None) -> dict[str, Any]:
        """Run (or keep waiting for an adopted) step under a shim; return its exit status."""
        job_id = act.job_id
        exit_path = self.exit_path(job_id)
        if adopted is None:
            assert step.argv is not None
            exit_path.unlink(missing_ok=True)
            argv, env, ready = list(step.argv), dict(step.env), None
            if act.plan is not None and act.plan.display == "xpra" and self.displays:
                argv, env, ready = await self.displays.wrap(job_id, act.plan, argv, env)
            proc = await self._spawn(job_id, step, argv, env)
            act.proc, act.shim_pid = proc, proc.pid
            act.exited = trio.Event()
            try:
                start = psutil.Process(proc.pid).create_time()
            except psutil.Error:
                start = None
            self._set(job_id, pid=proc.pid, pid_start=start)
            timeout = step.timeout_s or math.inf
            with trio.move_on_after(timeout) as scope:
                async with trio.open_nursery() as nursery:
                    if ready is not None:
                        nursery.start_soon(self._await_ready, job_id, ready, proc)
                    await proc.wait()
                    nursery.cancel_scope.cancel()
            if scope.cancelled_caught:
                async def reap() -> None:  # _terminate waits on act.exited: set it on exit
                    await proc.wait()
                    act.exited.set()

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(reap)
                    await self._terminate(act, self.cfg.cancel_grace_s)
                return {"exit_code": proc.returncode, "timed_out": True}
            act.exited.set()
            status = self._read_exit(job_id)
            if status is None:
                code = proc.returncode
                status = {"exit_code": code if code is not None and code >= 0 else 128 - (
                    code or 0), "monitor_error": _no_status(self.cfg.logs_dir)}
            return await self._display_ended(act, status)
        # Re-adopted after a daemon restart: not our child, so wait on a pidfd.
        pid = adopted["pid"]
        act.shim_pid = pid
        act.exited = trio.Event()
        fd = None
        if pid > 0:
            try:
                fd = os.pidfd_open(pid)
            except (ProcessLookupError, OSError):
                fd = None
        if fd is not None:
            try:
                await trio.lowlevel.wait_readable(fd)
            finally:
                os.close(fd)
        act.exited.set()
        status = await self._display_ended(act, self._read_exit(job_id) or {"interrupted": True})
        if status.get("interrupted"):
            raise _StepInterrupted(step.name)
        return status

    async def _display_ended(self, act: Active, status: dict[str, Any]) -> dict[str, Any]:
        """An Xpra step ended: take the app's own exit status, remove the session."""
        if self.displays is None or act.plan is None or act.plan.display != "xpra":
            return status
        status = self.displays.app_status(act.job_id, status)
        await self.displays.cleanup(act.job_id)
        return status

    async def _await_ready(self, job_id: str, ready: Any, proc: trio.Process) -> None:
        result = await ready()
        if result:
            rec = self.get_record(job_id)
            self._set(job_id, result={**(rec.get("result") or {}), **result})

    async def _spawn(self, job_id: str, step: Step, argv: list[str],
                     env_extra: dict[str, str]) -> trio.Process:
        # Someone may have removed logs/ under a running daemon: recreate it, or the job's
        # monitor could not open its log and the job would fail for no reason it can tell.
        self.cfg.logs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        stdin_path = ""
        if step.stdin is not None:
            p = self.cfg.logs_dir / f"{job_id}.stdin"
            p.write_bytes(step.stdin)
            stdin_path = str(p)
        env = {**os.environ, **env_extra}
        env.setdefault("PYTHONUNBUFFERED", "1")
        cmd = [sys.executable, "-m", "daemon.shim", str(self.log_path(job_id)),
               str(self.exit_path(job_id)), str(self.cfg.log_cap_bytes),
               str(step.cwd or ""), stdin_path, "2", "--", *argv]
        shim_env = {**env, "PYTHONPATH": package_root() + os.pathsep + env.get("PYTHONPATH", "")}
        return await trio.lowlevel.open_process(
            cmd, env=shim_env, start_new_session=True, stdin=DEVNULL,
            stdout=DEVNULL, stderr=DEVNULL)

    def _read_exit(self, job_id: str) -> dict[str, Any] | None:
        import json

        try:
            with open(self.exit_path(job_id)) as f:
                data: dict[str, Any] = json.load(f)
            return data
        except (OSError, ValueError):
            return None

    # -- cancellation -----------------------------------------------------------------------

    async def cancel(self, job_id: str, grace_s: float | None, reason: str = "") -> dict[str, Any]:
        rec = self.get_record(job_id)
        if rec["status"] in TERMINAL_STATUSES:
            raise InvalidState(f"job {job_id} already ended ({rec['status']}); nothing to "
                               "cancel", {"job_id": job_id, "status": rec["status"]})
        grace = self.cfg.cancel_grace_s if grace_s is None else grace_s
        if job_id in self.queue:
            self.queue.remove(job_id)
            self.plans.pop(job_id, None)
            _LogWriter(self.log_path(job_id)).write("[kitplay] job cancelled before it started\n")
            self._set(job_id, status="cancelled", finished_at=time.time(),
                      error={"message": reason or "cancelled before it started", "step": None})
            self._wake.set()
            return self.get(job_id)
        act = self.active.get(job_id)
        if act is None:
            raise InvalidState(f"job {job_id} is {rec['status']} but no process is known; "
                               "restart kitplayd to recover it", {"job_id": job_id})
        # No log line here: while a step runs, its shim is the log's only writer.
        act.cancel_requested = True
        act.cancel_reason = reason
        if act.shim_pid is None or act.exited.is_set():
            act.cancel_scope.cancel()  # between steps or in a restart backoff
        else:
            await self._terminate(act, grace)
        await act.done.wait()
        if self.displays is not None:  # cancelled while a session was being set up
            await self.displays.cleanup(job_id)
        return self.get(job_id)

    async def _terminate(self, act: Active, grace: float) -> None:
        """SIGTERM the step's process group and every descendant; SIGKILL after ``grace``."""
        pid = act.shim_pid
        if pid is None:
            return
        if self.displays is None or not self.displays.terminate(act.job_id, pid):
            signal_tree(pid, signal.SIGTERM)
        with trio.move_on_after(grace):
            await act.exited.wait()
        while not act.exited.is_set():
            signal_tree(pid, signal.SIGKILL)
            with trio.move_on_after(0.5):
                await act.exited.wait()
            if not act.exited.is_set() and not alive(pid):
                break
        if self.displays is not None:
            await self.displays.cleanup(act.job_id)

    # -- waiting and following --------------------------------------------------------------

    async def wait(self, job_id: str, timeout_s: float) -> dict[str, Any]:
        with trio.move_on_after(timeout_s):
            while True:
                rec = self.get_record(job_id)
                if rec["status"] in TERMINAL_STATUSES:
                    return {"job": self.public(rec), "timed_out": False}
                await self._event(job_id).wait()
        return {"job": self.get(job_id), "timed_out": True}

    async def read_log(self, job_id: str, offset: int, limit: int) -> dict[str, Any]:
        rec = self.get_record(job_id)  # the store is used from the trio thread only
        if (rec.get("extra") or {}).get("log_removed"):
            raise NotFound(f"the log of job {job_id} was removed by the retention limit "
                           f"(log_retention_jobs = {self.cfg.log_retention_jobs})",
                           {"job_id": job_id})
        terminal = rec["status"] in TERMINAL_STATUSES
        return await trio.to_thread.run_sync(
            read_log_slice, self.log_path(job_id), offset, limit, terminal)

    def follow(self, job_id: str, offset: int) -> AsyncIterator[tuple[str, Any]]:
        return follow_job(self, job_id, offset)

    def changed(self, job_id: str) -> trio.Event | None:
        """An event set at the job's next change, or None when it can no longer change."""
        if job_id in self.active or job_id in self.plans:
            return self._event(job_id)
        return None

    # -- recovery ---------------------------------------------------------------------------

    def _recover(self) -> None:
        """After a start: re-adopt live steps, finish dead ones, requeue queued jobs."""
        assert self._nursery is not None
        for rec in self.store.by_status("running", "queued"):
            job_id = rec["id"]
            try:
                plan = self.planner(rec["kind"], {**rec["params"], "_recover": True})
            except KitplayError as e:
                plan = None
                plan_error = e.message
            if rec["status"] == "queued":
                if plan is None:
                    self._set(job_id, status="failed", finished_at=time.time(),
                              error={"message": f"cannot resume after restart: {plan_error}",
                                     "step": None})
                    continue
                self.plans[job_id] = plan
                self.queue.append(job_id)
                continue
            pid, start = rec.get("pid"), rec.get("pid_start")
            alive = pid is not None and same_process(pid, start)
            if not alive and (found := find_shim(self.log_path(job_id))) is not None:
                pid, start = found  # spawned just before the crash, its pid never recorded
                alive = True
                self._set(job_id, pid=pid, pid_start=start)
            status = self._read_exit(job_id)
            if status is None and self.displays is not None:
                status = self.displays.app_status(job_id, {}) or None
            if plan is None or (not alive and status is None):
                why = ("its process is gone and left no exit status" if plan is not None
                       else f"it cannot be resumed: {plan_error}")
                _LogWriter(self.log_path(job_id)).write(
                    f"[kitplay] job interrupted: kitplayd restarted and {why}\n")
                self._set(job_id, status="interrupted", finished_at=time.time(), pid=None,
                          error={"message": f"interrupted: {why}", "step": None})
                continue
            act = self.active[job_id] = Active(job_id, plan)
            self.plans[job_id] = plan
            log.info("re-adopting job %s (pid %s, alive=%s)", job_id, pid, alive)
            self._nursery.start_soon(self._run, act, rec.get("step_index") or 0,
                                     {"pid": pid if alive else -1})
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
        for job_id in self.store.finished_beyond(self.cfg.log_retention_jobs):
            self.log_path(job_id).unlink(missing_ok=True)
            self.exit_path(job_id).unlink(missing_ok=True)
            rec = self.store.get(job_id)
            extra = (rec or {}).get("extra") or {}
            self.store.update(job_id, extra={**extra, "log_removed": True})
            self._ended.pop(job_id, None)

    # -- shutdown ---------------------------------------------------------------------------

    async def shutdown(self) -> None:
        """Stop builds gracefully; leave launched apps running for the next daemon."""
        self.stopping = True
        async with trio.open_nursery() as nursery:
            for act in list(self.active.values()):
                if act.plan is not None and act.plan.kind != "launch":
                    nursery.start_soon(self._cancel_quietly, act.job_id)

    async def _cancel_quietly(self, job_id: str) -> None:
        try:
            await self.cancel(job_id, self.cfg.shutdown_grace_s, "cancelled: kitplayd stopped")
        except KitplayError:
            pass


def _no_status(logs_dir: Path) -> str:
    why = "its job monitor recorded no exit status"
    try:
        if shutil.disk_usage(logs_dir).free < 64 * 1024:
            why += (f": the disk holding {logs_dir} is full (the log is incomplete too); free "
                    "space there and run the job again")
    except OSError:
        pass
    return why
