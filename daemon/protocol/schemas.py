"""JSON Schemas of the records the methods return (JSON Schema 2020-12, as OpenAPI 3.1 uses).

These are data, not code: ``rpc.discover`` and the bridge's OpenAPI document embed them, and
the tests validate real responses against them.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing slows `kitplay` down
if TYPE_CHECKING:
    from typing import Any


__all__ = ["JOB_KINDS", "JOB_STATUSES", "DISPLAYS", "LOG_ENCODINGS", "TERMINAL_STATUSES",
           "COMPONENTS"]

JOB_KINDS = ("create", "build", "launch", "test", "package", "package_container", "modify")
JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "interrupted")
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled", "interrupted"})
DISPLAYS = ("native", "xpra", "headless")
# How log chunks travel (daemon.protocol.passthrough.encode_chunk): text (lossy for bytes that
# are not UTF-8), auto (text when valid UTF-8, else base64: exact), base64 (always: exact).
LOG_ENCODINGS = ("text", "auto", "base64")

_nullable_number = {"type": ["number", "null"]}

PROGRESS: dict[str, Any] = {
    "type": ["object", "null"],
    "description": "Where a job with known steps is: step n of steps.",
    "properties": {
        "step": {"type": "integer", "minimum": 0},
        "steps": {"type": "integer", "minimum": 0},
        "message": {"type": "string"},
    },
    "required": ["step", "steps", "message"],
}

JOB: dict[str, Any] = {
    "type": "object",
    "description": "A job record: one create, build, launch, test, package, "
                   "package_container or modify, and its outcome.",
    "properties": {
        "id": {"type": "string", "description": (
            "Sorts in creation order: a sequence in base 36 that starts from the clock in "
            "milliseconds and never goes back, even when the wall clock does.")},
        "kind": {"type": "string", "enum": list(JOB_KINDS)},
        "status": {"type": "string", "enum": list(JOB_STATUSES)},
        "params": {"type": "object"},
        "workspace": {"type": "string"},
        "toolchain": {"type": "string"},
        "created_at": {"type": "number"},
        "started_at": _nullable_number,
        "finished_at": _nullable_number,
        "exit_code": {"type": ["integer", "null"]},
        "result": {"type": ["object", "null"]},
        "error": {
            "type": ["object", "null"],
            "properties": {"message": {"type": "string"}, "step": {"type": ["string", "null"]}},
            "required": ["message"],
        },
        "progress": PROGRESS,
        "pid": {"type": ["integer", "null"]},
        "restarts": {"type": "integer", "minimum": 0},
        "log_size": {"type": "integer", "minimum": 0},
        "duration_s": {"type": ["number", "null"], "minimum": 0, "description": (
            "How long the job ran, measured on the monotonic clock when the daemon saw it "
            "start (a wall-clock step changes started_at and finished_at, not this); null "
            "until it ends.")},
    },
    "required": [
        "id", "kind", "status", "params", "created_at", "started_at",
        "finished_at", "exit_code", "result", "error",
    ],
}

TEMPLATE: dict[str, Any] = {
    "type": "object",
    "description": "A template of the workspace's toolchain.",
    "properties": {
        "name": {"type": "string"},
        "display_name": {"type": "string"},
        "type": {"type": "string"},
        "description": {"type": "string"},
        "toolchain": {"type": "string"},
        "variables": {"type": "object"},
        "creatable": {"type": "boolean",
                      "description": "Whether templates.create takes it on its own (layers and "
                                     "setup extensions come with an application)."},
        "kind": {"type": "string", "description": "What it makes: application, extension, "
                                                  "layer, setup_extension."},
        "layers": {"type": "array", "description": "The application layers it takes.",
                   "items": {"type": "object",
                             "properties": {"id": {"type": "string"},
                                            "name": {"type": "string"},
                                            "description": {"type": "string"}},
                             "required": ["id", "name", "description"]}},
        "docs": {"type": "string", "description": "Its README (Markdown), or \"\"."},
        "icon": {"type": ["string", "null"],
                 "description": "The bridge path of its icon (templates.icon), or null."},
    },
    "required": ["name", "display_name", "type", "description", "creatable", "kind", "layers",
                 "docs", "icon"],
}

APP: dict[str, Any] = {
    "type": "object",
    "description": "An app (or extension) already created in the workspace.",
    "properties": {
        "name": {"type": "string"},
        "display_name": {"type": ["string", "null"]},
        "version": {"type": ["string", "null"]},
        "template": {"type": ["string", "null"]},
        "type": {"type": "string"},
        "path": {"type": "string"},
        "built": {"type": "boolean"},
        "parent": {"type": ["string", "null"],
                   "description": "The app a layer or setup extension belongs to."},
        "exists": {"type": "boolean"},
    },
    "required": ["name", "type", "path"],
}

SESSION: dict[str, Any] = {
    "type": "object",
    "description": "A live Xpra display session of a launch job. The bridge serves it under "
                   "`path` (its HTML5 client and WebSocket); a running launch job's "
                   "`result.display` holds the same `session` and `path`.",
    "properties": {
        "job_id": {"type": "string"},
        "app": {"type": "string"},
        "session": {"type": "string", "description": "Random, new for each Xpra start."},
        "path": {"type": "string", "description": "/display/<session>/ on the bridge."},
        "x_display": {"type": "string", "description": "The X display, like :3."},
        "since": {"type": "number"},
    },
    "required": ["job_id", "app", "session", "path", "x_display", "since"],
}

FILE_ENTRY: dict[str, Any] = {
    "type": "object",
    "description": "One entry of files.list: a file, directory, symlink (never followed) or "
                   "other (a pipe, socket or device, never opened).",
    "properties": {
        "path": {"type": "string", "description": "Relative to the workspace, /-separated."},
        "kind": {"type": "string", "enum": ["file", "dir", "symlink", "other"]},
        "size": {"type": "integer"},
        "mtime": {"type": "number"},
        "etag": {"type": ["string", "null"], "description": "Files only: what files.read "
                 "returns and files.write's if_match expects."},
        "build_output": {"type": "boolean",
                         "description": "Made by a build (apps.clean removes the app's)."},
    },
    "required": ["path", "kind", "size", "mtime", "etag", "build_output"],
}

FILE_EDIT: dict[str, Any] = {
    "type": "object",
    "description": "A line or record apps.delete takes out of a file the app shares with "
                   "others (kit-app-template: premake5.lua, repo.toml, the template metadata).",
    "properties": {"file": {"type": "string"}, "what": {"type": "string"}},
    "required": ["file", "what"],
}

COMPONENTS: dict[str, dict[str, Any]] = {
    "Job": JOB,
    "Template": TEMPLATE,
    "App": APP,
    "Session": SESSION,
    "FileEntry": FILE_ENTRY,
    "FileEdit": FILE_EDIT,
}
