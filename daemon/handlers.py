"""One handler per method of the registry.  ``Dispatcher`` refuses to start on any drift.

A handler takes the connection context and the params already checked against the
registry, and returns the method's result (the same JSON over the socket, CLI and REST).
A plain ``def`` handler never waits and is answered inline by the connection loop; one that
may wait (a thread, an event, a commit) is ``async def`` and gets a task of its own.
"""

from __future__ import annotations

import os
import time
import urllib.parse
from pathlib import Path
from typing import Any

import trio

from . import API_VERSION, __version__
from .app_files import AppFiles, live_jobs, writers
from .config import Config
from .jobs import JobManager
from .protocol.errors import InvalidParams, NotFound
from .protocol.framing import Encoded
from .protocol.registry import METHODS, openrpc_document
from .rpc import Handler
from .toolchains import KINDS, Plan, detect
from .toolchains.base import Toolchain, resolve_workspace
from .toolchains.watch import WatchedToolchain

__all__ = ["Handlers"]

_PLANNED_INLINE = frozenset({"build", "launch"})


class Handlers:
    def __init__(self, cfg: Config, jobs: JobManager, socket_path: Path) -> None:
        self.cfg = cfg
        self.jobs = jobs
        self.socket_path = socket_path
        self.started = time.monotonic()
        # The default workspace's toolchain for daemon.status, detected again only when
        # its marker files change.
        self._socket_str, self._state_str = str(socket_path), str(cfg.state_dir)
        self.default_toolchain = WatchedToolchain(cfg.workspace, lambda: self.toolchain({}))

    def table(self) -> dict[str, Handler]:
        return {name: getattr(self, name.replace(".", "_")) for name in METHODS}

    def toolchain(self, params: dict[str, Any]) -> Toolchain:
        return detect(resolve_workspace(params.get("workspace"), self.cfg.workspace))

    def plan(self, kind: str, params: dict[str, Any]) -> Plan:
        """Also used to rebuild plans of queued and running jobs after a restart."""
        tc = self.toolchain(params)
        # "_recover" tells a toolchain it is re-planning a job after a restart.
        clean = {k: v for k, v in params.items() if not k.startswith("_") or k == "_recover"}
        planner = {"create": tc.plan_create, "build": tc.plan_build, "launch": tc.plan_launch,
                   "test": tc.plan_test, "package": tc.plan_package,
                   "package_container": tc.plan_package_container,
                   "modify": tc.plan_modify}.get(kind)
        if planner is None:
            raise InvalidParams(f"unknown job kind {kind!r}")
        plan = planner(clean)
        if kind == "launch":
            if clean.get("dev_bundle") and plan.toolchain == "builtin" and "_recover" not in clean:
                raise InvalidParams(
                    "dev_bundle (--dev-bundle) enables omni.kit.developer.bundle of Kit apps; "
                    f"{plan.app} is a builtin app and would ignore it", {"param": "dev_bundle"})
            return plan
        for step in plan.steps:  # config.toml timeouts for process steps that set none
            if step.argv is not None and step.timeout_s is None:
                step.timeout_s = (self.cfg.create_timeout_s if kind == "create"
                                  else self.cfg.step_timeout_s)
        return plan

    async def _submit(self, kind: str, params: dict[str, Any]) -> dict[str, Any]:
        key = params.pop("idempotency_key", None)
        refuse_ignored(kind, params)
        if key is not None:  # a retry: answered before planning, which may fail by now
            first = self.jobs.keyed(key, kind, params)
            if first is not None:
                return {"job": first}
        if kind in _PLANNED_INLINE and not params.get("container"):
            # A build or launch plan needs a few stats and the app's declaration (cached by
            # its stat): on the trio thread, as jobs.get's stat of a log is.  A thread hop
            # would cost more than the planning (bench: submissions/s).
            plan = self.plan(kind, params)
        else:  # reads catalogues, templates or tool output: a worker thread
            plan = await trio.to_thread.run_sync(self.plan, kind, params)
        stored = {**params, "workspace": str(plan.workspace)}
        return {"job": await self.jobs.submit(plan, stored, key)}

    # -- daemon -----------------------------------------------------------------------------

    def daemon_status(self, ctx: Any, p: dict[str, Any]) -> dict[str, Any]:
        # Neither a count nor a detection per call: the store keeps its counts as jobs
        # change, and the default workspace's toolchain is detected again only when its
        # markers change.  A workspace named in the call is detected now.
        if p.get("workspace") is None:
            workspace, tc = self.cfg.workspace, self.default_toolchain.info()
        else:
            workspace = resolve_workspace(p["workspace"], self.cfg.workspace)
            try:
                tc = detect(workspace).info()
            except NotFound as e:
                tc = {"kind": None, "workspace": str(workspace), "error": e.message}
        return {
            "version": __version__, "api_version": API_VERSION, "pid": os.getpid(),
            "uptime_s": round(time.monotonic() - self.started, 3),
            "socket": self._socket_str, "state_dir": self._state_str,
            "workspace": str(workspace), "toolchain": tc, "toolchains": list(KINDS),
            "jobs": self.jobs.store.counts(),
            "state": self.jobs.store_state(),
            "displays": (self.jobs.displays.backends() if self.jobs.displays is not None
                         else {}),
            "limits": {"max_concurrent_jobs": self.cfg.max_concurrent_jobs,
                       "max_line_bytes": self.cfg.max_line_bytes,
                       "log_cap_bytes": self.cfg.log_cap_bytes,
                       "log_retention_jobs": self.cfg.log_retention_jobs},
        }

    def rpc_discover(self, ctx: Any, p: dict[str, Any]) -> dict[str, Any]:
        return openrpc_document(__version__, API_VERSION)

    # -- templates and apps -----------------------------------------------------------------

    async def templates_list(self, ctx: Any, p: dict[str, Any]) -> dict[str, Any]:
        tc = await trio.to_thread.run_sync(self.toolchain, p)
        templates = await trio.to_thread.run_sync(tc.list_templates)
        return {"templates": [_icon_for(t, p) for t in templates], "toolchain": tc.info(),
                "license": tc.license_info()}

    async def templates_get(self, ctx: Any, p: dict[str, Any]) -> dict[str, Any]:
        tc = await trio.to_thread.run_sync(self.toolchain, p)
        template = await trio.to_thread.run_sync(tc.get_template, p["name"])
        return {"template": _icon_for(template, p)}

    async def templates_icon(self, ctx: Any, p: dict[str, Any]) -> dict[str, Any]:
        tc = await trio.to_thread.run_sync(self.toolchain, p)
        return await trio.to_thread.run_sync(tc.template_icon, p["name"])

    async def templates_create(self, ctx: Any, p: dict[str, Any]) -> dict[str, Any]:
        if p.get("dry_run"):
            if p.get("accept_license"):
                raise InvalidParams("dry_run writes nothing, so it cannot accept the licence; "
                                    "leave out accept_license (a dry run needs no licence)",
                                    {"param": "accept_license"})
            refuse_ignored("create", p)
            tc = await trio.to_thread.run_sync(self.toolchain, p)
            return {"replay": await trio.to_thread.run_sync(tc.create_replay, p)}
        return await self._submit("create", p)

    async def apps_list(self, ctx: Any, p: dict[str, Any]) -> dict[str, Any]:
        tc = await trio.to_thread.run_sync(self.toolchain, p)
        return {"apps": await trio.to_thread.run_sync(tc.list_apps), "toolchain": tc.info()}

    async def apps_modify(self, ctx: Any, p: dict[str, Any]) -> dict[str, Any]:
        return await self._submit("modify", p)

    async def apps_delete(self, ctx: Any, p: dict[str, Any]) -> dict[str, Any]:
        jobs = live_jobs(self.jobs)
        return await self._in_thread(lambda: self._app_files(p).delete(
            p["app"], p.get("confirm"), jobs))

    async def apps_clean(self, ctx: Any, p: dict[str, Any]) -> dict[str, Any]:
        jobs = live_jobs(self.jobs)
        return await self._in_thread(lambda: self._app_files(p).clean(p["app"], jobs))

    # -- files (daemon/workspace_files.py) --------------------------------------------------

    def _app_files(self, p: dict[str, Any]) -> AppFiles:
        return AppFiles(self.toolchain(p))

    async def _in_thread(self, fn: Any) -> Any:
        return await trio.to_thread.run_sync(fn)

    async def files_list(self, ctx: Any, p: dict[str, Any]) -> dict[str, Any]:
        if p.get("app") is not None and p.get("path") is not None:
            raise InvalidParams("give app or path, not both", {"param": "path"})
        return await self._in_thread(lambda: self._app_files(p).listing(p["app"]) if "app" in p
                                     else self._app_files(p).files.listing(p.get("path")))

    async def files_read(self, ctx: Any, p: dict[str, Any]) -> dict[str, Any]:
        return await self._in_thread(lambda: self._app_files(p).files.read(
            p["path"], bool(p.get("binary"))))

    async def files_write(self, ctx: Any, p: dict[str, Any]) -> dict[str, Any]:
        jobs = live_jobs(self.jobs)
        return await self._in_thread(lambda: self._write(p, jobs))

    def _write(self, p: dict[str, Any], jobs: Any) -> dict[str, Any]:
        af = self._app_files(p)
        return af.files.write(p["path"], p["text"], p.get("if_match"), writers(jobs, af.root),
                              create=bool(p.get("create")))

    async def files_delete(self, ctx: Any, p: dict[str, Any]) -> dict[str, Any]:
        jobs = live_jobs(self.jobs)
        return await self._in_thread(lambda: self._delete(p, jobs))

    def _delete(self, p: dict[str, Any], jobs: Any) -> dict[str, Any]:
        af = self._app_files(p)
        return af.files.delete(p["path"], p.get("if_match"), writers(jobs, af.root))

    async def build(self, ctx: Any, p: dict[str, Any]) -> dict[str, Any]:
        return await self._submit("build", p)

    async def launch(self, ctx: Any, p: dict[str, Any]) -> dict[str, Any]:
        if p.get("display") == "xpra" and self.jobs.displays is not None:
            await self.jobs.displays.ensure_checked()  # refused at once if Xpra lacks a part
        return await self._submit("launch", p)

    async def test(self, ctx: Any, p: dict[str, Any]) -> dict[str, Any]:
        return await self._submit("test", p)

    async def package(self, ctx: Any, p: dict[str, Any]) -> dict[str, Any]:
        return await self._submit("package", p)

    async def package_container(self, ctx: Any, p: dict[str, Any]) -> dict[str, Any]:
        return await self._submit("package_container", p)

    # -- jobs -------------------------------------------------------------------------------

    def jobs_list(self, ctx: Any, p: dict[str, Any]) -> dict[str, Any]:
        limit, status, kind, app = p.get("limit", 100), p.get("status"), p.get("kind"), p.get("app")
        jobs = self.jobs.list_jobs(status, kind, limit, app, p.get("offset", 0))
        if len(jobs) < limit:
            return {"jobs": jobs}
        # Only a list that may be cut says how many match: the common case costs no count.
        store = self.jobs.store
        total = (store.count(status, kind) if app is None
                 else store.count_matching(status, kind, app))
        return {"jobs": jobs, "total": total}

    def jobs_get(self, ctx: Any, p: dict[str, Any]) -> dict[str, Any] | Encoded:
        return self.jobs.get_result(p["job_id"])

    async def jobs_cancel(self, ctx: Any, p: dict[str, Any]) -> dict[str, Any]:
        return {"job": await self.jobs.cancel(p["job_id"], p.get("grace_s"))}

    async def jobs_wait(self, ctx: Any, p: dict[str, Any]) -> dict[str, Any]:
        return await self.jobs.wait(p["job_id"], p.get("timeout_s", 30))

    async def jobs_logs(self, ctx: Any, p: dict[str, Any]) -> dict[str, Any]:
        return await self.jobs.read_log(p["job_id"], p.get("offset", 0), p.get("limit", 1 << 20),
                                        p.get("log", "job"), p.get("encoding", "text"))

    async def jobs_prune(self, ctx: Any, p: dict[str, Any]) -> dict[str, Any]:
        return await self.jobs.prune(p.get("older_than_s"), p.get("keep"),
                                     bool(p.get("dry_run")))

    async def jobs_subscribe(self, ctx: Any, p: dict[str, Any]) -> dict[str, Any]:
        return {"subscription": await ctx.subscribe(self.jobs, p["job_id"], p.get("offset", 0),
                                                    p.get("encoding", "text"))}

    def jobs_unsubscribe(self, ctx: Any, p: dict[str, Any]) -> dict[str, Any]:
        return {"unsubscribed": ctx.unsubscribe(p["subscription"])}

    def sessions_list(self, ctx: Any, p: dict[str, Any]) -> dict[str, Any]:
        displays = self.jobs.displays
        return {"sessions": displays.list() if displays is not None else []}


def _icon_for(template: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
    """A template's icon path names the workspace the call named (the icon route takes it in
    its query, as every GET route does)."""
    if template.get("icon") and p.get("workspace") is not None:
        query = urllib.parse.urlencode({"workspace": p["workspace"]})
        return {**template, "icon": f"{template['icon']}?{query}"}
    return template


def refuse_ignored(kind: str, params: dict[str, Any]) -> None:
    """Inputs that would be silently ignored are refused: the caller meant something."""
    if kind == "launch" and "max_restarts" in params and params.get("restart") != "on-failure":
        raise InvalidParams("max_restarts (--max-restarts) applies only with restart "
                            "'on-failure' (--restart on-failure)", {"param": "max_restarts"})
    if kind == "create" and params.get("dry_run") and "idempotency_key" in params:
        raise InvalidParams("dry_run starts no job, so idempotency_key would name nothing; "
                            "leave it out", {"param": "idempotency_key"})
    if kind == "create" and "display_name" in params and not params["display_name"].strip():
        raise InvalidParams("display_name (--display-name) is empty; leave it out to use "
                            "the template's", {"param": "display_name"})
