"""One handler per method of the registry.  ``Dispatcher`` refuses to start on any drift.

A handler takes the connection context and the params already checked against the
registry, and returns the method's result (the same JSON over the socket, CLI and REST).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import trio

from . import API_VERSION, __version__
from .config import Config
from .jobs import JobManager
from .protocol.errors import InvalidParams, NotFound
from .protocol.registry import METHODS, openrpc_document
from .rpc import Handler
from .toolchains import KINDS, Plan, detect
from .toolchains.base import Toolchain, resolve_workspace

__all__ = ["Handlers"]


class Handlers:
    def __init__(self, cfg: Config, jobs: JobManager, socket_path: Path) -> None:
        self.cfg = cfg
        self.jobs = jobs
        self.socket_path = socket_path
        self.started = time.monotonic()

    def table(self) -> dict[str, Handler]:
        return {name: getattr(self, name.replace(".", "_")) for name in METHODS}

    def toolchain(self, params: dict[str, Any]) -> Toolchain:
        return detect(resolve_workspace(params.get("workspace"), self.cfg.workspace))

    def plan(self, kind: str, params: dict[str, Any]) -> Plan:
        """Also used to rebuild plans of queued and running jobs after a restart."""
        tc = self.toolchain(params)
        # "_recover" tells a toolchain it is re-planning a job after a restart.
        clean = {k: v for k, v in params.items() if not k.startswith("_") or k == "_recover"}
        if kind == "create":
            plan = tc.plan_create(clean)
        elif kind == "build":
            plan = tc.plan_build(clean)
        elif kind == "launch":
            return tc.plan_launch(clean)
        else:
            raise InvalidParams(f"unknown job kind {kind!r}")
        for step in plan.steps:  # config.toml timeouts for process steps that set none
            if step.argv is not None and step.timeout_s is None:
                step.timeout_s = (self.cfg.create_timeout_s if kind == "create"
                                  else self.cfg.step_timeout_s)
        return plan

    async def _submit(self, kind: str, params: dict[str, Any]) -> dict[str, Any]:
        plan = await trio.to_thread.run_sync(self.plan, kind, params)
        stored = {**params, "workspace": str(plan.workspace)}
        return {"job": self.jobs.submit(plan, stored)}

    # -- daemon -----------------------------------------------------------------------------

    async def daemon_status(self, ctx: Any, p: dict[str, Any]) -> dict[str, Any]:
        try:
            tc = self.toolchain({}).info()
        except NotFound as e:
            tc = {"kind": None, "workspace": str(self.cfg.workspace), "error": e.message}
        return {
            "version": __version__, "api_version": API_VERSION, "pid": os.getpid(),
            "uptime_s": round(time.monotonic() - self.started, 3),
            "socket": str(self.socket_path), "state_dir": str(self.cfg.state_dir),
            "workspace": str(self.cfg.workspace), "toolchain": tc, "toolchains": list(KINDS),
            "jobs": self.jobs.store.counts(),
            "displays": (self.jobs.displays.backends() if self.jobs.displays is not None
                         else {}),
            "limits": {"max_concurrent_jobs": self.cfg.max_concurrent_jobs,
                       "max_line_bytes": self.cfg.max_line_bytes,
                       "log_cap_bytes": self.cfg.log_cap_bytes,
                       "log_retention_jobs": self.cfg.log_retention_jobs},
        }

    async def rpc_discover(self, ctx: Any, p: dict[str, Any]) -> dict[str, Any]:
        return openrpc_document(__version__, API_VERSION)

    # -- templates and apps -----------------------------------------------------------------

    async def templates_list(self, ctx: Any, p: dict[str, Any]) -> dict[str, Any]:
        tc = await trio.to_thread.run_sync(self.toolchain, p)
        return {"templates": await trio.to_thread.run_sync(tc.list_templates),
                "toolchain": tc.info()}

    async def templates_get(self, ctx: Any, p: dict[str, Any]) -> dict[str, Any]:
        tc = await trio.to_thread.run_sync(self.toolchain, p)
        return {"template": await trio.to_thread.run_sync(tc.get_template, p["name"])}

    async def templates_create(self, ctx: Any, p: dict[str, Any]) -> dict[str, Any]:
        return await self._submit("create", p)

    async def apps_list(self, ctx: Any, p: dict[str, Any]) -> dict[str, Any]:
        tc = await trio.to_thread.run_sync(self.toolchain, p)
        return {"apps": await trio.to_thread.run_sync(tc.list_apps), "toolchain": tc.info()}

    async def build(self, ctx: Any, p: dict[str, Any]) -> dict[str, Any]:
        return await self._submit("build", p)

    async def launch(self, ctx: Any, p: dict[str, Any]) -> dict[str, Any]:
        if p.get("display") == "xpra" and self.jobs.displays is not None:
            await self.jobs.displays.ensure_checked()  # refused at once if Xpra lacks a part
        return await self._submit("launch", p)

    # -- jobs -------------------------------------------------------------------------------

    async def jobs_list(self, ctx: Any, p: dict[str, Any]) -> dict[str, Any]:
        return {"jobs": self.jobs.list_jobs(p.get("status"), p.get("kind"), p.get("limit", 100))}

    async def jobs_get(self, ctx: Any, p: dict[str, Any]) -> dict[str, Any]:
        return {"job": self.jobs.get(p["job_id"])}

    async def jobs_cancel(self, ctx: Any, p: dict[str, Any]) -> dict[str, Any]:
        return {"job": await self.jobs.cancel(p["job_id"], p.get("grace_s"))}

    async def jobs_wait(self, ctx: Any, p: dict[str, Any]) -> dict[str, Any]:
        return await self.jobs.wait(p["job_id"], p.get("timeout_s", 30))

    async def jobs_logs(self, ctx: Any, p: dict[str, Any]) -> dict[str, Any]:
        return await self.jobs.read_log(p["job_id"], p.get("offset", 0), p.get("limit", 1 << 20))

    async def jobs_subscribe(self, ctx: Any, p: dict[str, Any]) -> dict[str, Any]:
        return {"subscription": await ctx.subscribe(self.jobs, p["job_id"], p.get("offset", 0))}

    async def jobs_unsubscribe(self, ctx: Any, p: dict[str, Any]) -> dict[str, Any]:
        return {"unsubscribed": ctx.unsubscribe(p["subscription"])}

    async def sessions_list(self, ctx: Any, p: dict[str, Any]) -> dict[str, Any]:
        displays = self.jobs.displays
        return {"sessions": displays.list() if displays is not None else []}
