"""Running a job's steps: each process step under a ``daemon.shim`` monitor.

The monitor runs in its own session, writes the step's output straight into the job's log and
its exit status into ``logs/<id>.exit``, so output never passes through the daemon and a
launched app outlives it.  ``StepRunner`` knows processes, logs and display sessions; what it
learns about a job it reports through ``JobRecords``, the manager's narrow record interface.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psutil
import trio

from . import failpoints
from .childenv import child_environment
from .config import Config
from .logs import tail_lines
from .procs import DEVNULL, NICE_ENV, SHIM_MODULE, signal_tree
from .protocol.errors import KitplayError, ToolchainError
from .protocol.process import NOFILE_ENV, user_nofile, user_umask
from .toolchains.base import Plan, Step

__all__ = ["INTERRUPTED", "STOP_BOUND_S", "Active", "JobRecords", "LogWriter", "StepInterrupted",
           "StepRunner", "read_exit"]

log = logging.getLogger("kitplayd.runner")


class JobRecords(Protocol):
    """What the runner may do with job records: read one, change fields of one."""

    def get_record(self, job_id: str) -> dict[str, Any]: ...

    def set_fields(self, job_id: str, **fields: Any) -> None: ...


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
    cancel_grace: float = 0.0
    killed: bool = False  # the cancel's grace ran out: SIGKILL ended the step
    cancel_scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    done: trio.Event = field(default_factory=trio.Event)
    # ``finished_at`` of the last exit status read (the previous step's or run's): its file
    # may still be there when the daemon dies before starting the next one.
    exit_seen: float | None = None
    log_error: str | None = None  # the job's output could not all be written to its log


# How long the monitor gets to end once its tree was SIGKILLed, and once it was itself.
KILL_WAIT_S = 1.0
# What stopping a step takes at most beyond its grace period (and display clean-up).
STOP_BOUND_S = 2 * KILL_WAIT_S + 1.0

INTERRUPTED = "the process ended while kitplayd was not watching and left no exit status"


class StepInterrupted(Exception):
    """An adopted step's process is gone and left no exit status: the job is interrupted."""

    def __init__(self, step: str) -> None:
        super().__init__(step)
        self.step = step


class LogWriter:
    """Appends the daemon's own lines (step headers, in-daemon steps) to a job's log."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, text: str) -> None:
        try:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            except FileNotFoundError:  # someone removed logs/: make it again
                self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
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


class StepRunner:
    """Runs the steps of one job at a time per call; shared by every job of the daemon."""

    def __init__(self, cfg: Config, records: JobRecords, displays: Any = None) -> None:
        self.cfg = cfg
        self.records = records
        self.displays = displays

    def log_path(self, job_id: str) -> Path:
        return self.cfg.logs_dir / f"{job_id}.log"

    def exit_path(self, job_id: str) -> Path:
        return self.cfg.logs_dir / f"{job_id}.exit"

    def get_record(self, job_id: str) -> dict[str, Any]:
        return self.records.get_record(job_id)

    def _set(self, job_id: str, **fields: Any) -> None:
        self.records.set_fields(job_id, **fields)

    async def run_steps(self, act: Active, plan: Plan, logw: LogWriter, first: int,
                        adopted: dict[str, Any] | None, resumed: bool = False,
                        ) -> dict[str, Any]:
        """Run the steps from ``first``: the first of them ``adopted`` (a live or ended process
        of a previous daemon), or ``resumed`` (a previous daemon died before starting it)."""
        if plan.kind == "launch":
            return await self._run_launch(act, plan, logw, adopted, resumed)
        if first == 0 and adopted is None:
            for report in plan.reports:  # never list a report of an earlier run
                report.unlink(missing_ok=True)
        outcome = await self._run_steps(act, plan, logw, first, adopted, resumed)
        if plan.kind == "test":  # the reports, passed or failed: CI reads them either way
            found = [str(r) for r in plan.reports if r.is_file()]
            outcome["result"] = {**(outcome.get("result") or {}), "junit": found}
        return outcome

    async def _run_steps(self, act: Active, plan: Plan, logw: LogWriter, first: int,
                         adopted: dict[str, Any] | None, resumed: bool) -> dict[str, Any]:
        job_id = act.job_id
        n = len(plan.steps)
        if resumed:
            logw.write(f"[kitplay] kitplayd restarted between steps; resuming at step "
                       f"{first + 1}/{n}\n")
        for i in range(first, n):
            step = plan.steps[i]
            if act.cancel_requested:
                return {"status": "cancelled"}
            progress = {"step": i + 1, "steps": n, "message": step.name}
            if adopted is None:
                self._next_run(act, progress=progress, step_index=i)
                logw.write(f"[kitplay] step {i + 1}/{n}: {step.name}\n")
            else:
                self._set(job_id, progress=progress, step_index=i)
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
            if i > 0:
                failpoints.hit("step.spawn")
            status = await self._run_process(act, step, adopted)
            failpoints.hit("step.ended")
            adopted = None
            act.exit_seen = status.get("finished_at")
            code = status.get("exit_code")
            if act.cancel_requested:
                return {"status": "cancelled", "exit_code": code, "_how": ended_how(act, status)}
            if code != 0:
                return {"status": "failed", "exit_code": code,
                        "error": self._step_error(job_id, plan, step, status)}
        result = await trio.to_thread.run_sync(plan.finish) if plan.finish else {}
        return {"status": "succeeded", "exit_code": 0, "result": result,
                "progress": {"step": n, "steps": n, "message": "done"}}

    def _next_run(self, act: Active, **fields: Any) -> None:
        """Record that no process of the next step (or run) is started yet, in one write with
        the exit status already read; then remove that status's file.  A daemon that dies
        anywhere from here to the spawn leaves a record that says so (``pid`` None), and its
        successor starts that step instead of taking the old status for it (recovery.py)."""
        extra = {**(self.get_record(act.job_id).get("extra") or {}),
                 "exit_seen": act.exit_seen}
        self._set(act.job_id, pid=None, pid_start=None, extra=extra, **fields)
        self.exit_path(act.job_id).unlink(missing_ok=True)

    def _step_error(self, job_id: str, plan: Plan, step: Step,
                    status: dict[str, Any]) -> dict[str, Any]:
        tail = tail_lines(self.log_path(job_id), 15)
        if status.get("timed_out"):
            what = f"timed out after {step.timeout_s:g} s"
        elif status.get("signal"):
            what = f"was killed by signal {status['signal']}"
        elif status.get("display_error"):
            what = f"ended: its display could not start: {status['display_error']}"
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

    async def _run_launch(self, act: Active, plan: Plan, logw: LogWriter,
                          adopted: dict[str, Any] | None, resumed: bool) -> dict[str, Any]:
        """Run the app until it ends, restarting it by its policy.  ``restarts`` counts the
        restarts that started: it advances with the spawn, never in the backoff before it, so
        a daemon that dies in a backoff uses up no restart (``resumed``: its successor starts
        the pending one)."""
        job_id = act.job_id
        rec = self.get_record(job_id)
        params = rec["params"]
        policy = params.get("restart", "never")
        max_restarts = params.get("max_restarts", 3)
        restarts = rec.get("restarts") or 0
        backoff = self.cfg.restart_backoff_initial_s
        step = plan.steps[0]
        again = resumed  # the next run is a restart
        if resumed:
            logw.write(f"[kitplay] kitplayd restarted during the restart backoff of {plan.app}; "
                       "restarting it now\n")
        while True:
            counted: dict[str, Any] = {}
            if adopted is None:
                if again:
                    counted = {"restarts": restarts + 1}
                logw.write(f"[kitplay] launching {plan.app} ({plan.display}): "
                           f"{' '.join(step.argv or [])}\n")
            started = time.monotonic()
            status = await self._run_process(act, step, adopted, counted)
            restarts = counted.get("restarts", restarts)
            adopted = None
            act.exit_seen = status.get("finished_at")
            code = status.get("exit_code")
            if act.cancel_requested:
                return {"status": "cancelled", "exit_code": code, "_how": ended_how(act, status)}
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
            logw.write(f"[kitplay] {plan.app} exited with code {code}; restart {restarts + 1}/"
                       f"{max_restarts} in {backoff:.2f} s\n")
            self._next_run(act)
            await trio.sleep(backoff)
            backoff = min(backoff * 2, self.cfg.restart_backoff_max_s)
            again = True

    async def _run_process(self, act: Active, step: Step, adopted: dict[str, Any] | None,
                           counted: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run (or keep waiting for an adopted) step under a shim; return its exit status.

        ``counted``: fields recorded with the new process's pid (a restart's number)."""
        job_id = act.job_id
        exit_path = self.exit_path(job_id)
        if adopted is None:
            assert step.argv is not None
            exit_path.unlink(missing_ok=True)
            argv, env, ready = list(step.argv), dict(step.env), None
            xpra = act.plan is not None and act.plan.display == "xpra" and self.displays
            try:
                if xpra:
                    argv, env, ready = await self.displays.wrap(job_id, act.plan, argv, env)
                proc = await self._spawn(job_id, step, argv, env)
            except BaseException as e:
                # No process holds the session: release its display, port and directory
                # now, not at the next daemon start.
                if xpra:
                    with trio.CancelScope(shield=True):
                        await self.displays.cleanup(job_id)
                if isinstance(e, OSError):  # E2BIG, ENOSPC, EAGAIN: the job's failure, no bug
                    raise ToolchainError(f"step '{step.name}' could not be started: {e}",
                                         {"step": step.name}) from None
                raise
            act.proc, act.shim_pid = proc, proc.pid
            act.exited = trio.Event()
            try:
                start = psutil.Process(proc.pid).create_time()
            except psutil.Error:
                start = None
            try:
                self._set(job_id, pid=proc.pid, pid_start=start, **(counted or {}))
                if xpra:  # its display, at once: a page loads the client while Xpra starts
                    self._set(job_id, result={**(self.get_record(job_id).get("result") or {}),
                                              **self.displays.starting(job_id)})
                timeout = step.timeout_s or math.inf
                with trio.move_on_after(timeout) as scope:
                    async with trio.open_nursery() as nursery:
                        if ready is not None:
                            nursery.start_soon(self._await_ready, job_id, ready, proc.pid)
                        await proc.wait()
                        nursery.cancel_scope.cancel()
            except BaseException:  # trio.Cancelled, alone or in a group
                # A cancel that came while the process was being started found no pid to
                # signal and cancelled this scope instead: the process exists now, so stop
                # its tree here (shielded, this scope being cancelled).  A daemon shutdown
                # requests no cancel: a launch keeps running for the next daemon to adopt.
                if act.cancel_requested and not act.exited.is_set():
                    with trio.CancelScope(shield=True) as stopping:
                        stopping.deadline = (trio.current_time() + act.cancel_grace
                                             + STOP_BOUND_S)
                        await self._stop(act, proc, act.cancel_grace)
                raise
            if scope.cancelled_caught:
                await self._stop(act, proc, self.cfg.cancel_grace_s)
                return {"exit_code": proc.returncode, "timed_out": True}
            act.exited.set()
            status = self.read_exit(job_id)
            if status is not None and status.get("log_error"):
                act.log_error = _log_error(self.cfg.logs_dir, str(status["log_error"]))
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
        resume = None  # a display that was still starting when the last daemon stopped
        if act.plan is not None and act.plan.display == "xpra" and self.displays is not None:
            resume = self.displays.resume(act.job_id)
        async with trio.open_nursery() as stopping:
            if act.cancel_requested and fd is not None:  # a cancel the last daemon began
                stopping.start_soon(self.terminate, act, act.cancel_grace)
            if fd is not None:
                try:
                    async with trio.open_nursery() as nursery:
                        if resume is not None:
                            nursery.start_soon(self._await_ready, act.job_id, resume, pid)
                        await trio.lowlevel.wait_readable(fd)
                        nursery.cancel_scope.cancel()
                finally:
                    os.close(fd)
            act.exited.set()
        status = await self._display_ended(act, self.read_exit(job_id) or {"interrupted": True})
        if status.get("interrupted"):
            raise StepInterrupted(step.name)
        return status

    async def _stop(self, act: Active, proc: trio.Process, grace: float) -> None:
        """Terminate a step this runner spawned, reaping it (``terminate`` waits on
        ``act.exited``)."""
        async def reap() -> None:
            await proc.wait()
            act.exited.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(reap)
            await self.terminate(act, grace)

    async def _display_ended(self, act: Active, status: dict[str, Any]) -> dict[str, Any]:
        """An Xpra step ended: take the app's own exit status (or why the display never
        started), remove the session and its path from the job's result."""
        if self.displays is None or act.plan is None or act.plan.display != "xpra":
            return status
        cause = self.displays.failure(act.job_id)
        status = self.displays.app_status(act.job_id, status)
        if cause and status.get("exit_code") != 0:
            status = {**status, "display_error": cause}
        await self.displays.cleanup(act.job_id)
        result = self.get_record(act.job_id).get("result")
        if isinstance(result, dict) and "display" in result:
            self._set(act.job_id, result={k: v for k, v in result.items() if k != "display"})
        return status

    async def _await_ready(self, job_id: str, ready: Any, pid: int) -> None:
        result = await ready(pid)
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
        # The user's environment without kitplay's secrets (childenv.py), then the step's own.
        env = child_environment(env_extra)
        env.setdefault("PYTHONUNBUFFERED", "1")
        # -P: the job's cwd (a workspace) is not put on the monitor's import path.
        cmd = [sys.executable, "-P", "-m", SHIM_MODULE, str(self.log_path(job_id)),
               str(self.exit_path(job_id)), str(self.cfg.log_cap_bytes),
               str(step.cwd or ""), stdin_path, "2", "--", *argv]
        shim_env = dict(env)
        if user_nofile() > 0:
            shim_env[NOFILE_ENV] = str(user_nofile())
        if self.cfg.job_nice > 0:
            shim_env[NICE_ENV] = str(self.cfg.job_nice)
        return await trio.lowlevel.open_process(
            cmd, env=shim_env, start_new_session=True, stdin=DEVNULL,
            stdout=DEVNULL, stderr=DEVNULL, umask=user_umask())

    def read_exit(self, job_id: str) -> dict[str, Any] | None:
        return read_exit(self.exit_path(job_id))

    async def terminate(self, act: Active, grace: float) -> None:
        """Stop the step's whole tree; return within ``grace`` + ``STOP_BOUND_S``.

        SIGTERM (with SIGCONT: a stopped process must run to act on it) to the process group
        and every descendant; after ``grace``, SIGKILL to every descendant, again for a moment
        (a tree that keeps forking), while the monitor, continued, records the exit status;
        then SIGKILL to the monitor too, should it still not end (stopped again, or stuck).
        """
        pid = act.shim_pid
        if pid is None:
            return
        if self.displays is None or not self.displays.terminate(act.job_id, pid):
            signal_tree(pid, signal.SIGTERM)
        else:
            signal_tree(pid, signal.SIGCONT)
        with trio.move_on_after(grace):
            await act.exited.wait()
        with trio.move_on_after(KILL_WAIT_S):
            while not act.exited.is_set():
                act.killed = True
                signal_tree(pid, signal.SIGKILL)
                signal_tree(pid, signal.SIGCONT)
                with trio.move_on_after(0.2):
                    await act.exited.wait()
        if not act.exited.is_set():
            log.warning("job %s: its monitor (pid %s) did not end %.1f s after its tree was "
                        "killed; killing it", act.job_id, pid, KILL_WAIT_S)
            signal_tree(pid, signal.SIGKILL, root=True)
            with trio.move_on_after(KILL_WAIT_S):
                await act.exited.wait()
            if not act.exited.is_set():
                log.error("job %s: pid %s survives SIGKILL (uninterruptible sleep?)",
                          act.job_id, pid)
        if self.displays is not None:
            await self.displays.cleanup(act.job_id)


def ended_how(act: Active, status: dict[str, Any]) -> str:
    """How a cancelled step ended, in words for the job's error: after SIGTERM it exited
    (with which code), was ended by a signal, or needed SIGKILL when the grace period ran out."""
    if act.killed:
        return f"SIGTERM sent; still running after {act.cancel_grace:g} s, so killed (SIGKILL)"
    sig = status.get("signal")
    if sig:
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return f"SIGTERM sent; it ended by {name}"
    code = status.get("exit_code")
    return "SIGTERM sent" + (f"; it exited with code {code}" if code is not None else "")


def read_exit(path: Path) -> dict[str, Any] | None:
    """The exit status a job monitor wrote, or None when there is none (yet)."""
    try:
        with open(path) as f:
            data: dict[str, Any] = json.load(f)
        return data
    except (OSError, ValueError):
        return None


def _log_error(logs_dir: Path, error: str) -> str:
    why = f"its log is incomplete: writing it failed ({error})"
    try:
        if shutil.disk_usage(logs_dir).free < 64 * 1024:
            why += f"; the disk holding {logs_dir} is full: free space there"
    except OSError:
        pass
    return why


def _no_status(logs_dir: Path) -> str:
    why = "its job monitor recorded no exit status"
    try:
        if shutil.disk_usage(logs_dir).free < 64 * 1024:
            why += (f": the disk holding {logs_dir} is full (the log is incomplete too); free "
                    "space there and run the job again")
    except OSError:
        pass
    return why
