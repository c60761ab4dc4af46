"""The one registry of methods.

Each method is declared here once, with its parameters, result and doc.  The daemon's
dispatch table, ``rpc.discover``, the bridge's REST routes and OpenAPI document, and the
``kitplay`` subcommands are all derived from ``METHODS``; ``tests/test_drift.py`` fails when
any of them drift apart.

Pure Python, standard library only: the CLI imports it.
"""

from __future__ import annotations

import re

from .errors import InvalidParams, NotFound
from .schemas import DISPLAYS, JOB_KINDS, JOB_STATUSES, LOG_ENCODINGS

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing slows `kitplay` down
if TYPE_CHECKING:
    from typing import Any

__all__ = ["JOB_ID_RE", "METHODS", "Method", "Param", "get_method", "named_params",
           "validate_params"]

JOB_ID_RE = re.compile(r"^[0-9a-z][0-9a-z-]{0,39}$")
APP_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")

_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


# Control characters (C0, DEL, C1) and lone UTF-16 surrogates (JSON's "\ud800" decodes to one):
# no parameter needs them, and they break what the daemon writes (TOML that cannot be read
# again, file names, logs) or cannot be encoded at all.
_BAD_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# A file's name or content (``Param(any_text=True)``) may hold control characters (tabs,
# newlines, a name made with one); a NUL or a lone surrogate still cannot be a file's.
_BAD_IN_ANY_TEXT = re.compile("[\x00\ud800-\udfff]")


def _check_text(name: str, value: str, any_text: bool = False) -> None:
    bad = (_BAD_IN_ANY_TEXT if any_text else _BAD_CHARS).search(value)
    if bad is not None:
        ch = bad.group()
        what = ("a lone surrogate" if "\ud800" <= ch <= "\udfff" else
                "a NUL byte, a control character" if ch == "\x00" else "a control character")
        raise InvalidParams(
            f"parameter '{name}' contains {what} (U+{ord(ch):04X}) at position {bad.start()}; "
            "use printable text", {"param": name, "position": bad.start()})


class Param:
    """One named parameter of a method.

    A plain class, not a dataclass: ``dataclasses`` imports ``inspect``, which would cost
    the ``kitplay`` command more start-up time than the rest of this module.
    """

    __slots__ = ("_match", "any_text", "default", "doc", "enum", "items", "maximum", "minimum",
                 "name", "pattern", "positional", "required", "type")

    def __init__(self, name: str, type: str, doc: str, *, required: bool = False,
                 default: Any = None, enum: tuple[str, ...] | None = None,
                 minimum: float | None = None, maximum: float | None = None,
                 pattern: str | None = None, items: str | None = None,
                 positional: bool = False, any_text: bool = False) -> None:
        self.name = name
        self.type = type  # a JSON Schema type name
        self.doc = doc
        self.required = required
        self.default = default
        self.enum = enum
        self.minimum = minimum
        self.maximum = maximum
        self.pattern = pattern
        self._match: Any = None  # the compiled pattern's fullmatch, on first use (the CLI
        # imports this module: compiling every pattern here would slow its start)
        self.items = items  # element type of an array
        self.positional = positional  # may be given positionally on the CLI
        self.any_text = any_text  # control characters allowed (a file's name or content)

    def __repr__(self) -> str:
        return f"Param({self.name!r}, {self.type!r})"

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "description": self.doc}
        if self.enum is not None:
            out["enum"] = list(self.enum)
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        if self.pattern is not None:
            out["pattern"] = self.pattern
        if self.items is not None:
            out["items"] = {"type": self.items}
        if self.default is not None:
            out["default"] = self.default
        return out

    def check(self, value: Any) -> Any:
        """Return ``value`` if it fits this parameter, else raise InvalidParams."""
        ok = isinstance(value, _PY_TYPES[self.type])
        if ok and self.type in ("integer", "number") and isinstance(value, bool):
            ok = False
        if not ok:
            raise InvalidParams(
                f"parameter '{self.name}' must be {_article(self.type)}, "
                f"got {_json_type(value)}",
                {"param": self.name, "expected": self.type},
            )
        if self.type == "string":
            _check_text(self.name, value, self.any_text)
        if self.enum is not None and value not in self.enum:
            raise InvalidParams(
                f"parameter '{self.name}' must be one of {', '.join(self.enum)}; got {value!r}",
                {"param": self.name, "expected": list(self.enum)},
            )
        if self.minimum is not None and value < self.minimum:
            raise InvalidParams(
                f"parameter '{self.name}' must be at least {self.minimum:g}; got {value}",
                {"param": self.name},
            )
        if self.maximum is not None and value > self.maximum:
            raise InvalidParams(
                f"parameter '{self.name}' must be at most {self.maximum:g}; got {value}",
                {"param": self.name},
            )
        if self.pattern is not None and not (self._match or self._compile())(value):
            raise InvalidParams(
                f"parameter '{self.name}' has an invalid format: {value[:80]!r}",
                {"param": self.name, "pattern": self.pattern},
            )
        if self.items is not None:
            for item in value:
                if not isinstance(item, _PY_TYPES[self.items]) or isinstance(item, bool):
                    raise InvalidParams(
                        f"parameter '{self.name}' must be an array of {self.items}s; "
                        f"an element is {_json_type(item)}",
                        {"param": self.name, "expected": f"array of {self.items}"},
                    )
                if isinstance(item, str):
                    _check_text(self.name, item)
        return value


    def _compile(self) -> Any:
        assert self.pattern is not None
        self._match = re.compile(self.pattern).fullmatch
        return self._match


class Method:
    """One JSON-RPC method, and how every surface shows it."""

    __slots__ = ("_by_name", "_cli", "doc", "http", "http_media", "http_note", "mutates",
                 "name", "params", "result")

    def __init__(self, name: str, doc: str, params: tuple[Param, ...], result: dict[str, Any],
                 http: tuple[str, str] | None, *, http_note: str = "",
                 mutates: bool = False, cli: tuple[str, ...] | None = None,
                 http_media: str | None = None) -> None:
        self.name = name
        self.doc = doc
        self.params = params
        self.result = result
        # REST: (HTTP method, path under /api), or None when the method is connection-scoped.
        self.http = http
        self.http_note = http_note
        self.mutates = mutates
        # The CLI's words where they differ from the name's (files ls); () for no command.
        self._cli = cli
        # REST answers the result's bytes (``data_base64``, of its ``content_type``) instead of
        # its JSON; the value is the media range the OpenAPI document gives (``image/*``).
        self.http_media = http_media
        self._by_name = {p.name: p for p in params}

    def __repr__(self) -> str:
        return f"Method({self.name!r})"

    def param(self, name: str) -> Param | None:
        return self._by_name.get(name)

    @property
    def cli_words(self) -> tuple[str, ...]:
        return self._cli or tuple(self.name.split("."))

    @property
    def has_command(self) -> bool:
        """Whether ``kitplay`` has a subcommand for it: not for a method whose effect lives on
        its connection (``cli=()``: subscriptions), since a command's connection ends with the
        command; ``--follow`` streams a job instead."""
        return self._cli != ()


def _article(t: str) -> str:
    return {"integer": "an integer", "array": "an array", "object": "an object"}.get(t, f"a {t}")


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int):
        return "an integer"
    if isinstance(v, float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    return "an object"


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required or list(props)}


_JOB_RESULT = _obj({"job": _ref("Job")})
_WORKSPACE = Param("workspace", "string",
                   "Workspace directory; defaults to the daemon's --workspace.")
_JOB_ID = Param("job_id", "string", "The job's id.", required=True,
                pattern=JOB_ID_RE.pattern, positional=True)
_PATH = Param("path", "string", "A file's path relative to the workspace, \"/\"-separated.",
              required=True, positional=True, any_text=True)
_IF_MATCH = Param("if_match", "string", "The etag the file had when read: refuse the change "
                  "if it has changed since (stale: InvalidState with data.etag).")
_STRINGS = {"type": "array", "items": {"type": "string"}}
_ACCEPT = Param("accept_license", "boolean",
                "Accept the Omniverse licence for this kit-app-template workspace (creates "
                ".omniverse_eula_accepted.txt); creating from a template needs it.",
                default=False)
_CONFIG = Param("config", "string", "Build configuration (kit-app-template: `-r` or `-d` for "
                "build, `-c` for package).", enum=("release", "debug"), default="release")
_TEMPLATE_NAME = r"^[A-Za-z0-9_.-]{1,100}$"

# Every method that creates a job takes it: a client that lost the answer (the daemon died
# between the commit and the reply) retries with the same key and learns the first job's id.
_IDEMPOTENCY = Param("idempotency_key", "string",
                     "A key of the caller's choosing (printable ASCII, no spaces): a retry "
                     "with the same key within a day returns the first job instead of "
                     "creating another.", pattern=r"^[!-~]{1,128}$")

# Logs carry any bytes; offsets always count the log file's bytes.
_ENCODING = Param("encoding", "string",
                  "How log data is sent: text (bytes that are not UTF-8 become U+FFFD), auto "
                  "(text when the chunk is valid UTF-8, else base64, saying which in "
                  "'encoding': the exact bytes) or base64 (always).", enum=LOG_ENCODINGS,
                  default="text")

METHODS: dict[str, Method] = {m.name: m for m in (
    Method(
        "daemon.status", "Version, pid, uptime, paths, job counts, toolchains and display "
        "backends of the daemon.",
        (Param("workspace", "string",
               "Report this workspace's toolchain; defaults to the daemon's --workspace."),),
        _obj({
            "version": {"type": "string"}, "api_version": {"type": "string"},
            "pid": {"type": "integer"}, "uptime_s": {"type": "number"},
            "socket": {"type": "string"}, "state_dir": {"type": "string"},
            "workspace": {"type": "string"}, "toolchain": {"type": "object"},
            "toolchains": {"type": "array", "items": {"type": "string"}},
            "jobs": {"type": "object", "additionalProperties": {"type": "integer"}},
            "limits": {"type": "object"},
            "state": {"type": "object", "description": (
                "Whether the state directory takes writes: ok, cause (why not: full, "
                "read-only, missing, error), error (the same in words, saying what to do), "
                "unsaved_jobs (job changes kept in memory until they can be written)."),
                "properties": {"ok": {"type": "boolean"}, "error": {"type": ["string", "null"]},
                               "cause": {"enum": [None, "full", "read-only", "missing",
                                                  "error"]},
                               "unsaved_jobs": {"type": "integer"}}},
            "displays": {"type": "object", "description": (
                "Each display backend (native, headless, xpra): available, or missing what "
                "(each with its Debian package)."),
                "additionalProperties": {"type": "object"}},
        }), ("GET", "/daemon/status")),
    Method(
        "rpc.discover", "The OpenRPC document of every method, generated from the registry.",
        (), {"type": "object", "required": ["openrpc", "info", "methods"],
             "properties": {"openrpc": {"type": "string"}, "info": {"type": "object"},
                            "methods": {"type": "array", "items": {
                                "type": "object", "description": "An OpenRPC Method Object.",
                                "required": ["name", "params", "result"],
                                "properties": {"name": {"type": "string"}}}}}},
        ("GET", "/rpc/discover")),
    Method(
        "templates.list", "The template catalogue of the workspace's toolchain, and whether "
        "its licence must be (and is) accepted.",
        (_WORKSPACE,),
        _obj({"templates": {"type": "array", "items": _ref("Template")},
              "toolchain": {"type": "object"},
              "license": {"type": "object", "description": (
                  "The workspace's licence: required (kit-app-template: to create from a "
                  "template), accepted, what accepting means (summary) and where to read it."),
                  "properties": {"required": {"type": "boolean"},
                                 "accepted": {"type": "boolean"},
                                 "summary": {"type": "string"},
                                 "url": {"type": ["string", "null"]}},
                  "required": ["required", "accepted", "summary", "url"]}}),
        ("GET", "/templates/list")),
    Method(
        "templates.get", "One template, with its variables, layers, setup extensions and docs.",
        (Param("name", "string", "Template name (id).", required=True, positional=True,
               pattern=_TEMPLATE_NAME), _WORKSPACE),
        _obj({"template": _ref("Template")}), ("GET", "/templates/get/{name}")),
    Method(
        "templates.icon", "A template's icon: the image's bytes and type (REST answers the "
        "image itself).",
        (Param("name", "string", "Template name (id).", required=True, positional=True,
               pattern=_TEMPLATE_NAME), _WORKSPACE),
        _obj({"name": {"type": "string"},
              "content_type": {"type": "string", "enum": [
                  "image/png", "image/jpeg", "image/gif", "image/webp", "image/x-icon",
                  "image/svg+xml"]},
              "size": {"type": "integer"}, "data_base64": {"type": "string"}}),
        ("GET", "/templates/icon/{name}"), http_media="image/*",
        http_note="Over HTTP the body is the image (its Content-Type, with a sandboxing "
                  "Content-Security-Policy and nosniff)."),
    Method(
        "templates.create", "Start a job that creates an app (or extension) from a template; "
        "with dry_run, return the replay file it would run instead.",
        (Param("template", "string", "Template name (id).", required=True, positional=True),
         Param("name", "string", "New app or extension name (builtin: my_company.my_app; "
               "kit-app-template: lowercase, digits and _ in dot-separated parts, my_app too).",
               required=True, positional=True),
         Param("display_name", "string", "Human-readable name."),
         Param("version", "string", "Version of the new app, such as 0.1.0 (kit-app-template: "
               "any format, such as 110.1.2.4242)."),
         Param("layers", "array", "Application layers to add (kit-app-template).", items="string"),
         Param("extension_names", "object", "Names of the setup extensions the template adds, "
               "by their template id (kit-app-template; default: the catalogue's names)."),
         Param("dry_run", "boolean", "Start no job: return the replay file (TOML) the create "
               "would run, as `replay` (kit-app-template).", default=False),
         _WORKSPACE, _ACCEPT, _IDEMPOTENCY),
        {"type": "object", "description": "`job`, or with dry_run `replay`.",
         "properties": {"job": _ref("Job"), "replay": {"type": "string"}},
         "anyOf": [{"required": ["job"]}, {"required": ["replay"]}]},
        ("POST", "/templates/create"), mutates=True),
    Method(
        "apps.list", "Apps and extensions already created in the workspace.",
        (_WORKSPACE,), _obj({"apps": {"type": "array", "items": _ref("App")},
                             "toolchain": {"type": "object"}}),
        ("GET", "/apps/list")),
    Method(
        "apps.modify",
        "Start a job that adds application layers to an existing app (kit-app-template's "
        "`template modify`).",
        (Param("app", "string", "The app to add layers to.", required=True, positional=True),
         Param("layers", "array", "Application layers to add.", required=True, items="string"),
         _WORKSPACE, _ACCEPT, _IDEMPOTENCY),
        _JOB_RESULT, ("POST", "/apps/modify"), mutates=True),
    Method(
        "apps.delete",
        "Remove an app: its files, its build outputs and the records that name it. Without "
        "confirm naming the app it changes nothing and the error's data.removes lists what "
        "would go; refused while a job of the app runs.",
        (Param("app", "string", "The app to remove.", required=True, positional=True),
         Param("confirm", "string", "The app's name again, to confirm the removal."),
         _WORKSPACE),
        _obj({"app": {"type": "string"}, "removed": _STRINGS,
              "edited": {"type": "array", "items": _ref("FileEdit")}}, ["app", "removed"]),
        ("POST", "/apps/delete"), mutates=True),
    Method(
        "apps.clean", "Remove an app's build outputs; refused while a job of the app runs.",
        (Param("app", "string", "The app whose build outputs go.", required=True,
               positional=True), _WORKSPACE),
        _obj({"app": {"type": "string"}, "removed": _STRINGS}),
        ("POST", "/apps/clean"), mutates=True),
    Method(
        "files.list",
        "The files of an app (its sources and, marked, its build outputs) or of a directory "
        "of the workspace; paths are relative to the workspace.",
        (Param("path", "string", "A directory relative to the workspace (default: the "
               "workspace itself).", positional=True, any_text=True),
         Param("app", "string", "List this app's files instead of a directory."),
         _WORKSPACE),
        _obj({"root": {"type": "string"},
              "entries": {"type": "array", "items": _ref("FileEntry")},
              "truncated": {"type": "boolean"}}),
        ("GET", "/files/list"), cli=("files", "ls")),
    Method(
        "files.read",
        "A file's text and etag; a binary or oversized file is refused, or returned as "
        "base64 (capped) with binary.",
        (_PATH, Param("binary", "boolean", "Return the bytes as data_base64, text or not.",
                      default=False), _WORKSPACE),
        {"type": "object", "required": ["path", "etag", "size", "mtime"], "properties": {
            "path": {"type": "string"}, "text": {"type": "string"},
            "data_base64": {"type": "string"}, "etag": {"type": "string"},
            "size": {"type": "integer"}, "mtime": {"type": "number"}}},
        ("GET", "/files/read"), cli=("files", "cat")),
    Method(
        "files.write",
        "Replace (or create) a file with text, atomically; if_match makes it fail when the "
        "file changed since it was read, create when it exists at all.",
        (_PATH, Param("text", "string", "The file's new content (UTF-8 text).", required=True,
                      any_text=True),
         _IF_MATCH,
         Param("create", "boolean", "Only create the file: refuse (InvalidState, reason "
               "exists) when something is at the path already, even if it appears meanwhile.",
               default=False),
         _WORKSPACE),
        _obj({"path": {"type": "string"}, "etag": {"type": "string"},
              "size": {"type": "integer"}, "mtime": {"type": "number"}}),
        ("POST", "/files/write"), mutates=True, cli=("files", "put")),
    Method(
        "files.delete", "Remove a file (or an empty directory) of the workspace.",
        (_PATH, _IF_MATCH, _WORKSPACE),
        _obj({"path": {"type": "string"}, "deleted": {"type": "boolean"}}),
        ("POST", "/files/delete"), mutates=True, cli=("files", "rm")),
    Method(
        "build", "Start a job that builds the workspace (or one app of it).",
        (_WORKSPACE, Param("app", "string", "Build only this app.", positional=True),
         Param("clean", "boolean", "A clean build (kit-app-template: `build -x`, a rebuild "
               "from scratch).", default=False),
         _CONFIG, _ACCEPT, _IDEMPOTENCY),
        _JOB_RESULT, ("POST", "/build"), mutates=True),
    Method(
        "launch", "Start a job that runs an app until it exits or is stopped.",
        (Param("app", "string", "The app to run.", required=True, positional=True),
         _WORKSPACE,
         Param("display", "string", "Where the app's windows go.", enum=DISPLAYS,
               default="native"),
         Param("args", "array", "Extra arguments for the app.", items="string"),
         Param("dev_bundle", "boolean", "Enable omni.kit.developer.bundle (Kit apps).",
               default=False),
         Param("restart", "string", "Restart policy.", enum=("never", "on-failure"),
               default="never"),
         Param("max_restarts", "integer", "Restarts allowed by the on-failure policy.",
               minimum=0, maximum=1000, default=3),
         Param("container", "boolean", "Run the app's container image with docker, as "
               "`repo.sh launch --container` does (kit-app-template).", default=False),
         _ACCEPT, _IDEMPOTENCY),
        _JOB_RESULT, ("POST", "/launch"), mutates=True),
    Method(
        "test",
        "Start a job that runs the workspace's tests (kit-app-template: `repo.sh test`; "
        "builtin: each app's own tests); the job's log is the test output.",
        (_WORKSPACE, Param("app", "string", "Test only this app (builtin).", positional=True),
         _ACCEPT, _IDEMPOTENCY),
        _JOB_RESULT, ("POST", "/test"), mutates=True),
    Method(
        "package",
        "Start a job that packages the workspace (kit-app-template: `repo.sh package`) or "
        "its apps (builtin); the job's result lists the archives it made.",
        (_WORKSPACE, Param("app", "string", "Package only this app (builtin).", positional=True),
         Param("name", "string", "Package name (`repo.sh package -n`)."),
         Param("thin", "boolean", "A thin package (`repo.sh package --thin`).", default=False),
         _CONFIG, _ACCEPT, _IDEMPOTENCY),
        _JOB_RESULT, ("POST", "/package"), mutates=True),
    Method(
        "package_container",
        "Start a job that builds a container image of an app with docker "
        "(kit-app-template's `repo.sh package_container`).",
        (Param("app", "string", "The app whose .kit file is the container's entry point.",
               required=True, positional=True),
         _WORKSPACE,
         Param("image_tag", "string", "Image name and tag (`--image-tag`), such as my_app:1.0."),
         Param("from_package", "string", "Build from this package archive in the workspace "
               "(`--from-package`), such as _build/packages/kit-sdk-fat@0.1.0...zip."),
         Param("generate", "boolean", "Only write the container's files, build no image "
               "(`--generate`; needs no docker).", default=False),
         _ACCEPT, _IDEMPOTENCY),
        _JOB_RESULT, ("POST", "/package_container"), mutates=True),
    Method(
        "jobs.list", "Job records, newest first, filterable by status, kind and app; paged by "
        "limit and offset.",
        (Param("status", "string", "Only jobs with this status.", enum=JOB_STATUSES),
         Param("kind", "string", "Only jobs of this kind.", enum=JOB_KINDS),
         Param("limit", "integer", "At most this many jobs.", minimum=1, maximum=10000,
               default=100),
         Param("app", "string", "Only jobs of this app (its create job included).",
               pattern=APP_NAME_RE.pattern),
         Param("offset", "integer", "Skip this many of the newest matching jobs (paging).",
               minimum=0, maximum=10**9, default=0)),
        _obj({"jobs": {"type": "array", "items": _ref("Job")},
              "total": {"type": "integer",
                        "description": "How many jobs match the filters; present when "
                                       "the list is as long as the limit."}}, ["jobs"]),
        ("GET", "/jobs")),
    Method("jobs.get", "One job record.", (_JOB_ID,), _JOB_RESULT, ("GET", "/jobs/{job_id}")),
    Method(
        "jobs.cancel",
        "Stop a job: SIGTERM to its process tree, a grace period, then SIGKILL.",
        (_JOB_ID, Param("grace_s", "number", "Seconds between SIGTERM and SIGKILL.",
                        minimum=0, maximum=3600)),
        _JOB_RESULT, ("DELETE", "/jobs/{job_id}"), mutates=True),
    Method(
        "jobs.wait", "Wait until a job ends or the timeout passes; returns the record.",
        (_JOB_ID, Param("timeout_s", "number", "Give up after this many seconds.",
                        minimum=0, maximum=86400, default=30)),
        _obj({"job": _ref("Job"), "timed_out": {"type": "boolean"}}),
        ("GET", "/jobs/{job_id}/wait")),
    Method(
        "jobs.logs", "Read a job's log from a byte offset.",
        (_JOB_ID, Param("offset", "integer", "Byte offset to read from.", minimum=0, default=0),
         Param("limit", "integer", "At most this many bytes.", minimum=1,
               maximum=16 * 1024 * 1024, default=1024 * 1024),
         Param("log", "string", "Which log: the job's own (its output), or 'display': the "
               "Xpra server's log of a launch with display 'xpra' (Xpra and its X server; "
               "the app's output is in the job's log).", enum=("job", "display"),
               default="job"), _ENCODING),
        _obj({"data": {"type": "string"}, "offset": {"type": "integer"},
              "next_offset": {"type": "integer"}, "eof": {"type": "boolean"},
              "encoding": {"enum": ["utf-8", "base64"], "description": (
                  "How data holds the bytes (encoding auto or base64 only).")}},
             ["data", "offset", "next_offset", "eof"]),
        ("GET", "/jobs/{job_id}/logs")),
    Method(
        "jobs.prune",
        "Remove ended jobs (succeeded, failed, cancelled, interrupted) with their logs: those "
        "that ended more than older_than_s seconds ago, or all but the newest keep of them "
        "(both given: only jobs matching both). Running and queued jobs are never touched. "
        "The result lists what was removed (with dry_run, what would be).",
        (Param("older_than_s", "number", "Remove jobs that ended more than this many seconds "
               "ago (86400: a day).", minimum=0),
         Param("keep", "integer", "Keep the newest this many ended jobs; remove the older "
               "ones.", minimum=0, maximum=10_000_000),
         Param("dry_run", "boolean", "Only list what would be removed.", default=False)),
        _obj({"removed": {"type": "array", "description": "The jobs removed (the first "
                          "1000; count has them all), newest first.", "items": {
                              "type": "object", "required": ["id", "kind", "status"],
                              "properties": {"id": {"type": "string"},
                                             "kind": {"type": "string"},
                                             "status": {"type": "string"},
                                             "app": {"type": ["string", "null"]},
                                             "finished_at": {"type": ["number", "null"]},
                                             "log_bytes": {"type": "integer"}}}},
              "count": {"type": "integer", "description": "How many jobs were removed."},
              "log_bytes": {"type": "integer", "description": "Bytes of logs removed."},
              "dry_run": {"type": "boolean"}}),
        ("DELETE", "/jobs"), mutates=True),
    Method(
        "jobs.subscribe",
        "Push jobs.output and jobs.state notifications for a job, from a byte offset, "
        "until it ends.",
        (_JOB_ID, Param("offset", "integer", "Byte offset to resume from.", minimum=0,
                        default=0), _ENCODING),
        _obj({"subscription": {"type": "string"}}), ("WS", "/stream/{job_id}"),
        http_note="Over HTTP, a WebSocket streams the same output and state.", cli=()),
    Method(
        "jobs.unsubscribe", "Stop a subscription of this connection.",
        (Param("subscription", "string", "The id jobs.subscribe returned.", required=True,
               positional=True),),
        _obj({"unsubscribed": {"type": "boolean"}}), None,
        http_note="Connection-scoped: over HTTP, close the WebSocket.", cli=()),
    Method(
        "sessions.list", "Live Xpra display sessions of launch jobs (the bridge serves each "
        "under its path).", (),
        _obj({"sessions": {"type": "array", "items": _ref("Session")}}), ("GET", "/sessions")),
)}


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise NotFound(f"unknown method {name!r}") from None


def named_params(method: Method, params: list[Any]) -> dict[str, Any]:
    """By-position params, named in the registry's order (so their types are checked alike)."""
    if len(params) > len(method.params):
        names = [p.name for p in method.params]
        takes = (f"takes at most {len(names)} by position, in this order: {', '.join(names)}"
                 if names else "takes no parameters")
        raise InvalidParams(
            f"{method.name} {takes}; got {len(params)}",
            {"params": names, "got": len(params)})
    return {p.name: v for p, v in zip(method.params, params)}


def validate_params(method: Method, params: Any) -> dict[str, Any]:
    """Check params (object or array) against the registry; return them as a dict.

    Raises InvalidParams naming the parameter at fault.
    """
    if params is None:
        params = {}
    if isinstance(params, list):
        params = named_params(method, params)
    elif not isinstance(params, dict):
        raise InvalidParams("params must be an object or an array")
    out: dict[str, Any] = {}
    for key, value in params.items():
        spec = method._by_name.get(key)
        if spec is None:
            known = ", ".join(p.name for p in method.params) or "none"
            raise InvalidParams(
                f"{method.name} has no parameter {key!r} (parameters: {known})",
                {"param": key})
        if value is None and not spec.required:
            continue
        out[key] = spec.check(value)
    for spec in method.params:
        if spec.required and spec.name not in out:
            raise InvalidParams(
                f"{method.name} needs parameter '{spec.name}' ({spec.doc})",
                {"param": spec.name})
    return out


def openrpc_document(version: str, api_version: str) -> dict[str, Any]:
    """The OpenRPC document ``rpc.discover`` returns."""
    from .errors import ERRORS
    from .schemas import COMPONENTS
    from .wire import FRAMINGS

    return {
        "openrpc": "1.3.2",
        "info": {"title": "kitplayd", "version": version, "x-api-version": api_version},
        "methods": [
            {
                "name": m.name,
                "description": m.doc,
                "paramStructure": "either",
                "params": [
                    {"name": p.name, "required": p.required, "schema": p.schema(),
                     "description": p.doc}
                    for p in m.params
                ],
                "result": {"name": "result", "schema": m.result},
                **({"x-http": {"method": m.http[0], "path": "/api" + m.http[1]}}
                   if m.http else {"x-http": None}),
            }
            for m in METHODS.values()
        ],
        "components": {
            "schemas": COMPONENTS,
            "errors": {
                cls.__name__: {"code": cls.code, "message": cls.title}
                for cls in ERRORS
            },
        },
        "x-errors-count": len(ERRORS),
        # How to frame messages on the socket: both framings are served on the one socket,
        # and a connection's first bytes choose its framing for as long as it lasts.
        "x-framings": [f.describe() for f in FRAMINGS.values()],
    }

