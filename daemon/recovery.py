"""Recovery after a daemon start: what becomes of the jobs a previous daemon left unfinished.

``decide`` looks at each ``queued`` or ``running`` record, at the exit status files and at the
processes of this machine, and returns one decision per job; it changes nothing.  The job
manager applies the decisions, from what is known:

- queued jobs, and running ones that never started a process, go back in the queue;
- a job between two steps (or two runs of a restarting launch) resumes at the next one: the
  runner records "no process of this step yet" (``pid`` None, with the ``finished_at`` of the
  exit status it had read, ``exit_seen``) before it removes that status and spawns, so a record
  with no pid, no live monitor and no newer exit status is a step that never started;
- live steps are re-adopted (pid plus process start time, so a reused pid is never taken for
  the job's monitor), and ended ones are recorded from their exit status;
- a cancel the previous daemon had begun (it is recorded before any signal goes out) is
  finished: a job that still runs is stopped, one that ended or never started is cancelled;
- a step whose process is gone and left no exit status makes its job ``interrupted``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .procs import find_shim, same_process
from .protocol.errors import KitplayError
from .runner import read_exit
from .toolchains.base import Plan

__all__ = ["Adopt", "Cancelled", "Fail", "Interrupt", "Requeue", "Resume", "decide"]


@dataclass(frozen=True)
class Requeue:
    """A job that was acknowledged but never started a process: queue it again.

    ``was_running`` when its record already said running (the daemon died between marking it
    so and spawning its first process)."""

    job_id: str
    plan: Plan
    was_running: bool = False


@dataclass(frozen=True)
class Fail:
    """A queued job that can no longer be planned (its workspace changed or went away)."""

    job_id: str
    message: str


@dataclass(frozen=True)
class Interrupt:
    """A running job whose process is gone and left no exit status, or that cannot resume."""

    job_id: str
    why: str


@dataclass(frozen=True)
class Resume:
    """A running job whose next step (or next run of a launch) had not started: start it."""

    job_id: str
    plan: Plan
    step_index: int
    exit_seen: float | None


@dataclass(frozen=True)
class Cancelled:
    """A job being cancelled whose process is gone (or never started): record it cancelled."""

    job_id: str
    reason: str
    why: str


@dataclass(frozen=True)
class Adopt:
    """A running job to follow again from ``step_index``: alive at ``pid``, or ended with a
    recorded exit status (``pid`` is -1 then).  ``found`` is set when the pid was learned
    from the process table rather than the record."""

    job_id: str
    plan: Plan
    step_index: int
    pid: int
    found: tuple[int, float] | None = None
    cancel: dict[str, Any] | None = None  # the cancel the previous daemon began, if any


Decision = Requeue | Fail | Interrupt | Adopt | Resume | Cancelled


def decide(records: Iterable[dict[str, Any]],
           planner: Callable[[str, dict[str, Any]], Plan],
           logs_dir: Path, displays: Any = None) -> list[Decision]:
    out: list[Decision] = []
    for rec in records:
        job_id = rec["id"]
        plan: Plan | None
        try:
            plan = planner(rec["kind"], {**rec["params"], "_recover": True})
            plan_error = ""
        except KitplayError as e:
            plan, plan_error = None, e.message
        if rec["status"] == "queued":
            out.append(Requeue(job_id, plan) if plan is not None
                       else Fail(job_id, f"cannot resume after restart: {plan_error}"))
            continue
        pid, start = rec.get("pid"), rec.get("pid_start")
        live_pid = pid if pid is not None and same_process(pid, start) else -1
        found = None
        if live_pid < 0:
            # Spawned just before the crash, its pid never recorded: its argv names the log.
            found = find_shim(logs_dir / f"{job_id}.log")
            live_pid = found[0] if found is not None else -1
        status = read_exit(logs_dir / f"{job_id}.exit")
        if status is None and displays is not None:
            status = displays.app_status(job_id, {}) or None
        extra = rec.get("extra") or {}
        if (status is not None and extra.get("exit_seen") is not None
                and status.get("finished_at") == extra["exit_seen"]):
            status = None  # the previous step's (or run's) status, read already
        cancel = extra.get("cancel") if isinstance(extra.get("cancel"), dict) else None
        if plan is not None and live_pid < 0 and status is None and pid is None:
            # No process of this step or run was ever recorded, found or ended: the daemon
            # died before spawning it, so nothing was lost.
            if cancel is not None:
                out.append(Cancelled(job_id, cancel.get("reason") or "cancelled on request",
                                     "before its next step started"))
            elif (rec.get("step_index") or rec.get("restarts")
                  or extra.get("exit_seen") is not None):
                out.append(Resume(job_id, plan, rec.get("step_index") or 0,
                                  extra.get("exit_seen")))
            else:
                out.append(Requeue(job_id, plan, was_running=True))
            continue
        if plan is None or (live_pid < 0 and status is None):
            if cancel is not None:
                out.append(Cancelled(job_id, cancel.get("reason") or "cancelled on request",
                                     "after its process ended"))
            else:
                out.append(Interrupt(job_id, "its process is gone and left no exit status"
                                     if plan is not None else
                                     f"it cannot be resumed: {plan_error}"))
            continue
        out.append(Adopt(job_id, plan, rec.get("step_index") or 0, live_pid, found, cancel))
    return out
