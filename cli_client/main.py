"""``kitplay``: the command-line client of kitplayd.

Subcommands mirror the method registry: method ``a.b`` is ``kitplay a b``, ``build`` is
``kitplay build``; parameter ``display_name`` is ``--display-name``; a method's main id or
name may be positional.  Methods whose effect lives on their connection (``jobs.subscribe``)
are no commands: ``--follow`` streams a job instead.

Start-up: the common read-only commands (``FAST``: ``daemon status``, ``jobs list``, ...) are
answered without argparse, pathlib or the registry, so ``kitplay daemon status`` costs little
more than the interpreter's own start; everything else builds the parser.  This module imports
only the standard library and ``kitplay.daemon.protocol`` (no trio, Quart or Hypercorn), and
those lazily: ``tests/test_cli.py`` lists what the fast path may load.

Exit codes (``exit_codes()``; README, ``--help`` and docs/api.md show the same table): 0
success; 1 the job failed or was cancelled; 2 usage error; 9 ``jobs wait`` timed out; 130
interrupted (Ctrl-C); the others come from the error classes (``daemon/protocol/errors.py``).
With ``--json``, an error is one JSON object on stderr, ``{"error": {"code", "message",
"data"}}``, as the REST API answers it.

Following (``--follow``) and waiting (``jobs wait``) ride through a daemon restart: they say so
on stderr, reconnect for up to ``--reconnect-s`` seconds and resume at the byte offset reached.
Commands that need more than the standard library and the registry (``daemon start``,
``completion``) live in their own modules and are imported only when chosen.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing slows `kitplay` down
if TYPE_CHECKING:
    import argparse
    from pathlib import Path
    from typing import Any

    from kitplay.daemon.protocol.client import Client
    from kitplay.daemon.protocol.errors import KitplayError
    from kitplay.daemon.protocol.registry import Method, Param

__all__ = ["FAST", "LOCAL_COMMANDS", "build_parser", "exit_codes", "main"]

EXIT_OK, EXIT_JOB_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
# `jobs wait` ran out of time: the job is still running (not an error on any wire: the
# method answers timed_out, so the code lives here, not in daemon/protocol/errors.py).
EXIT_WAIT_TIMED_OUT = 9
# What the command itself ends with, beside the error classes' codes.
LOCAL_EXITS = {
    EXIT_OK: "success",
    EXIT_JOB_FAILED: "the job failed, was cancelled or interrupted",
    EXIT_USAGE: "usage error (including refused parameters)",
    EXIT_WAIT_TIMED_OUT: "`jobs wait` timed out: the job is still running",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C); a followed or awaited job keeps running",
}
# Commands of the client itself, not methods of the registry: (group, subcommand or None).
LOCAL_COMMANDS = frozenset({("open", None), ("completion", None), ("daemon", "start"),
                            ("daemon", "stop"), ("daemon", "restart"), ("daemon", "logs")})
GLOBAL_WITH_VALUE = ("--socket", "--state-dir", "--reconnect-s")
FOLLOWABLE = frozenset({"templates.create", "build", "launch", "test", "package",
                        "package_container", "apps.modify", "jobs.logs", "jobs.wait",
                        "jobs.get"})
JOB_FAILED = frozenset({"failed", "cancelled", "interrupted"})
# Common commands answered without the parser: (group, subcommand) -> (method, the parameter
# a positional word gives, or None).  Their only flags are --json, --quiet and -q; any other
# word sends the command through the parser (tests/test_cli.py checks both give one answer).
FAST: dict[tuple[str, str], tuple[str, str | None]] = {
    ("daemon", "status"): ("daemon.status", None),
    ("jobs", "list"): ("jobs.list", None),
    ("jobs", "get"): ("jobs.get", "job_id"),
    ("apps", "list"): ("apps.list", None),
    ("templates", "list"): ("templates.list", None),
    ("sessions", "list"): ("sessions.list", None),
}
_FAST_FLAGS = {"--json": "json", "--quiet": "quiet", "-q": "quiet"}
# What each group is, for the command list of `kitplay --help`.
GROUPS = {
    "daemon": "the daemon itself",
    "rpc": "the API's own description (OpenRPC)",
    "templates": "the workspace's template catalogue",
    "apps": "the apps created in the workspace",
    "jobs": "jobs and their logs",
    "sessions": "display sessions of launched apps",
    "files": "files of the workspace",
}
# `kitplay completion`'s helper: names asked of the daemon (``complete_names``).
NAME_KINDS = ("templates", "apps", "jobs", "active-jobs")
COMPLETE = "__complete"
COMPLETE_TIMEOUT_S = 2.0


def exit_codes() -> list[tuple[int, str]]:
    """Every exit code of ``kitplay`` and its meaning: the command's own outcomes and the
    error classes' codes (titles joined where several classes share one)."""
    from kitplay.daemon.protocol.errors import ERRORS

    words: dict[int, list[str]] = {code: [text] for code, text in LOCAL_EXITS.items()}
    for cls in ERRORS:
        if cls.exit_code not in LOCAL_EXITS:
            words.setdefault(cls.exit_code, []).append(cls.title)
    return [(code, "; ".join(texts)) for code, texts in sorted(words.items())]


# -- errors ------------------------------------------------------------------------------------


def error_json(code: int, message: str, data: Any = None) -> str:
    """An error as ``--json`` prints it on stderr: the REST API's error body."""
    import json

    return json.dumps({"error": {"code": code, "message": message, "data": data}})


def report(e: KitplayError, as_json: bool) -> int:
    """Say what went wrong (one line, or one JSON object with ``--json``); the exit code."""
    from kitplay.daemon.protocol.errors import DaemonUnreachable

    if as_json:
        sys.stderr.write(error_json(e.code, e.message, e.data) + "\n")
    elif isinstance(e, DaemonUnreachable):
        sys.stderr.write(f"kitplay: {e.message}\n")
    else:
        sys.stderr.write(f"kitplay: error {e.code}: {e.message}\n")
    return e.exit_code


# -- the fast path ----------------------------------------------------------------------------


def fast(args: list[str]) -> int | None:
    """Answer a ``FAST`` command without the parser; None when ``args`` is anything else."""
    if len(args) == 1 and args[0] in ("-V", "--version"):
        from kitplay.daemon.protocol.version import API_VERSION, __version__

        sys.stdout.write(f"kitplay {__version__} (API {API_VERSION})\n")
        return EXIT_OK
    if len(args) >= 2 and args[0] == COMPLETE:
        return complete_names(args[1:])
    entry = FAST.get((args[0], args[1])) if len(args) >= 2 else None
    if entry is None:
        return None
    method, positional = entry
    params: dict[str, Any] = {}
    mode = ""
    for a in args[2:]:
        flag = _FAST_FLAGS.get(a)
        if flag is not None and mode in ("", flag):
            mode = flag
        elif positional and positional not in params and a[:1] not in ("-", ""):
            params[positional] = a
        else:
            return None  # anything else (help, a flag, a second word): the parser decides
    if positional and positional not in params:
        return None  # the parser says what is missing
    from kitplay.daemon.protocol.errors import KitplayError

    from .fast import call

    try:
        result = call(method, params)
    except KitplayError as e:
        return report(e, mode == "json")
    show(method, result, mode)
    return EXIT_OK


def complete_names(args: list[str]) -> int:
    """``kitplay __complete KIND [--socket S] [--workspace W]``: the names a shell offers
    (templates, apps, jobs, active-jobs), one a line; nothing, and exit 0, when the daemon is
    down or slow (completion must never print errors into a command line)."""
    kind, opts = args[0], dict(zip(args[1::2], args[2::2]))
    if kind not in NAME_KINDS:
        return EXIT_USAGE
    from kitplay.daemon.protocol.errors import KitplayError

    from .fast import call

    ws = opts.get("--workspace")
    params = {"workspace": os.path.abspath(os.path.expanduser(ws))} if ws else {}
    sock, limit = opts.get("--socket") or None, COMPLETE_TIMEOUT_S
    try:
        if kind == "templates":
            names = [t["name"] for t in call("templates.list", params, sock, limit)["templates"]]
        elif kind == "apps":
            names = [a["name"] for a in call("apps.list", params, sock, limit)["apps"]]
        else:
            jobs = call("jobs.list", {"limit": 200}, sock, limit)["jobs"]
            names = [j["id"] for j in jobs
                     if kind == "jobs" or j["status"] in ("queued", "running")]
    except (KitplayError, OSError, ValueError, KeyError, TypeError):
        return EXIT_OK
    sys.stdout.write("".join(f"{n}\n" for n in names))
    return EXIT_OK


# -- the parser -------------------------------------------------------------------------------


def _parser_classes() -> tuple[type[argparse.ArgumentParser], type[argparse.HelpFormatter]]:
    """The parser (usage errors of the subcommand at fault; JSON errors with --json) and a
    help formatter that wraps each line of a text on its own: built on first use, argparse
    being the largest import of the command."""
    global _CLASSES
    if _CLASSES is not None:
        return _CLASSES
    import argparse
    import textwrap

    class Parser(argparse.ArgumentParser):
        json_errors = False  # set when --json is on the command line

        def error(self, message: str) -> Any:
            if Parser.json_errors:
                from kitplay.daemon.protocol.errors import InvalidParams

                usage = " ".join(self.format_usage().split())
                sys.stderr.write(error_json(InvalidParams.code, message, {"usage": usage})
                                 + "\n")
                sys.exit(EXIT_USAGE)
            super().error(message)

    class Formatter(argparse.HelpFormatter):
        def __init__(self, prog: str) -> None:
            super().__init__(prog, max_help_position=32)

        def _fill_text(self, text: str, width: int, indent: str) -> str:
            out = []
            for line in text.splitlines():
                lead = indent + line[:len(line) - len(line.lstrip())]
                out.append(textwrap.fill(line.strip(), width, initial_indent=lead,
                                         subsequent_indent=lead) if line.strip() else "")
            return "\n".join(out)

    _CLASSES = (Parser, Formatter)
    return _CLASSES


_CLASSES: tuple[type[argparse.ArgumentParser], type[argparse.HelpFormatter]] | None = None


def _flag(p: Param) -> str:
    return "--" + p.name.replace("_", "-")


def _help(p: Param) -> str:
    """A parameter's help: its doc, whether it is required, its default."""
    text = p.doc
    if p.type == "array":
        text += " Repeat the flag for several."
    if p.required:
        text += " Required."
    if p.default is not None and p.default is not False:
        text += f" Default: {p.default}."
    return text


def _add_param(sub: argparse.ArgumentParser, p: Param) -> None:
    dest = p.name
    if p.type == "boolean":
        sub.add_argument(_flag(p), dest=dest, action="store_true", default=None, help=_help(p))
        return
    kind: Any = {"integer": int, "number": float}.get(p.type, str)
    if p.type == "array":
        sub.add_argument(_flag(p), dest=dest, action="append", metavar=p.name.upper(),
                         help=_help(p))
        return
    if p.type == "object":
        sub.add_argument(_flag(p), dest=dest, action="append", metavar="KEY=VALUE",
                         help=p.doc + " KEY=VALUE; repeat the flag for several.")
        return
    sub.add_argument(_flag(p), dest=dest, type=kind, choices=p.enum, metavar=(
        None if p.enum else p.name.upper()), help=_help(p))
    if p.positional:
        sub.add_argument(f"_pos_{dest}", nargs="?", type=kind, metavar=p.name.upper(),
                         help=f"the same as {_flag(p)}")


def command_word(args: list[str]) -> str | None:
    """The first word of the command in ``args`` (skipping global options), if any."""
    skip = False
    for a in args:
        if skip:
            skip = False
        elif a in GLOBAL_WITH_VALUE:
            skip = True
        elif not a.startswith("-"):
            return a
    return None


def _reconnect_default() -> float:
    from kitplay.daemon.protocol.client import RECONNECT_S

    raw = os.environ.get("KITPLAY_RECONNECT_S")
    try:
        return float(raw) if raw else RECONNECT_S
    except ValueError:
        return RECONNECT_S


# The client's own subcommands of a group: (group, word, help).
_LOCAL_SUBS = (
    ("daemon", "start", "start kitplayd in the background (through systemd when its units are "
     "installed), logging to the state directory"),
    ("daemon", "stop", "stop kitplayd and wait until its process is gone (launched apps keep "
     "running; the next daemon re-adopts them)"),
    ("daemon", "restart", "stop kitplayd, then start it again with the same workspace and state "
     "directory"),
    ("daemon", "logs", "print kitplayd's own log (the state directory's kitplayd.log, or the "
     "journal when systemd runs it)"),
)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, or (``only``) just one command group: building all the
    subcommands costs more start-up time than a call to the daemon."""
    from kitplay.daemon.protocol.client import RECONNECT_S
    from kitplay.daemon.protocol.registry import METHODS

    Parser, Formatter = _parser_classes()
    codes = ", ".join(f"{code} {text}" for code, text in exit_codes())
    parser = Parser(
        prog="kitplay", formatter_class=Formatter,
        description="Talk to kitplayd, the per-user daemon that creates, builds, launches, "
                    "tests and packages Kit apps and supervises their jobs.",
        epilog=f"Exit codes: {codes}.\nWith --json, an error is one JSON object on stderr: "
               '{"error": {"code", "message", "data"}} (as the REST API answers).\n'
               "'kitplay COMMAND --help' shows a command's options.")
    parser.add_argument("-V", "--version", dest="_version", action="store_true",
                        help="print kitplay's version and exit")
    parser.add_argument("--socket", help="the daemon's socket (env KITPLAY_SOCKET)")
    parser.add_argument("--state-dir", help="kitplayd's state directory (env "
                        "KITPLAY_STATE_DIR); `daemon start` logs there")
    parser.add_argument("--reconnect-s", type=float, default=_reconnect_default(),
                        metavar="SECONDS", help="how long --follow and `jobs wait` try to "
                        "reconnect when the daemon goes away (env KITPLAY_RECONNECT_S; "
                        f"0: give up at once). Default: {RECONNECT_S:g}.")
    groups = parser.add_subparsers(dest="_cmd", metavar="COMMAND", title="commands")
    subgroups: dict[str, Any] = {}
    words: dict[str, list[str]] = {}
    for m in METHODS.values():
        if m.has_command:
            words.setdefault(m.cli_words[0], []).extend(m.cli_words[1:])
    for group, word, _ in _LOCAL_SUBS:
        words.setdefault(group, []).append(word)

    def group_parser(word: str) -> Any:
        if word not in subgroups:
            text = f"{GROUPS.get(word, word)}: {', '.join(words[word])}"
            g = groups.add_parser(word, help=text, description=text, formatter_class=Formatter)
            subgroups[word] = g.add_subparsers(dest="_sub", metavar="SUBCOMMAND",
                                               title="subcommands")
            subgroups[word].required = True
        return subgroups[word]

    for m in METHODS.values():
        cw = m.cli_words
        if not m.has_command or (only is not None and cw[0] != only):
            continue
        if len(cw) == 1:
            sub = groups.add_parser(cw[0], help=m.doc, description=m.doc,
                                    formatter_class=Formatter, epilog=_epilog(m))
        else:
            sub = group_parser(cw[0]).add_parser(cw[1], help=m.doc, description=m.doc,
                                                 formatter_class=Formatter, epilog=_epilog(m))
        sub.set_defaults(_method=m.name, _parser=sub)
        for p in m.params:
            _add_param(sub, p)
        if m.name == "files.write":
            sub.add_argument("--from", dest="_from", metavar="FILE", help="read the new "
                             "content from FILE ('-' or no --text: standard input)")
        _add_output_flags(sub, m)
        if m.name == "jobs.logs":
            sub.add_argument("--tail", type=int, metavar="N", help="only the last N lines "
                             "(with --follow, then follow from there)")
        if m.name == "test":
            sub.add_argument("--junit", metavar="FILE", help="copy the job's JUnit XML test "
                             "report to FILE once it ends (implies waiting for the job; "
                             "several apps' reports are merged into one)")
    for group, word, text in _LOCAL_SUBS:
        if only not in (None, group):
            continue
        sub = group_parser(group).add_parser(word, help=text, description=text,
                                             formatter_class=Formatter)
        sub.set_defaults(_method=None, _local=f"{group}.{word}", _parser=sub)
        if word in ("start", "restart"):
            sub.add_argument("--workspace", help="the daemon's default workspace (restart: "
                             "the running daemon's unless given)")
        if word == "logs":
            sub.add_argument("--tail", type=int, metavar="N", help="only the last N lines")
            sub.add_argument("--follow", "-f", action="store_true",
                             help="keep printing new lines until Ctrl-C")
    if only in (None, "open"):
        op = groups.add_parser("open", help="print (or open) a new one-time playground URL",
                               formatter_class=Formatter)
        op.add_argument("--browser", action="store_true",
                        help="open it in a web browser ($BROWSER, else the desktop's), "
                             "through a redirect file only you can read: no code on any "
                             "command line")
        op.set_defaults(_method=None, _local="open", _parser=op)
    if only in (None, "completion"):
        comp = groups.add_parser(
            "completion", formatter_class=Formatter,
            help="print a shell completion script (bash: source <(kitplay completion bash))",
            description="Print a completion script for bash, zsh or fish. It completes "
                        "commands and flags, and asks the running daemon for template names, "
                        "app names and job ids (nothing when it is not running).")
        comp.add_argument("shell", choices=("bash", "zsh", "fish"))
        comp.set_defaults(_method=None, _local="completion", _parser=comp)
    return parser


def _epilog(m: Method) -> str | None:
    if m.name == "launch":
        return ("Arguments after -- go to the app unchanged: kitplay launch my_company.hello "
                "-- --lines 3. With --display xpra, kitplay waits until the display session "
                "is up and prints it.")
    if m.name in FOLLOWABLE and m.name not in ("jobs.wait", "jobs.get", "jobs.logs"):
        return ("The job runs in the daemon: kitplay returns once it is queued, or with "
                "--follow streams its log and exits with its outcome (0 succeeded, 1 failed "
                "or cancelled).")
    return None


def _add_output_flags(sub: argparse.ArgumentParser, m: Method) -> None:
    out = sub.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print exactly the method's result "
                     "(errors: one JSON object on stderr)")
    out.add_argument("--quiet", "-q", action="store_true", help="print only ids, or nothing")
    if m.name in FOLLOWABLE:
        sub.add_argument("--follow", "-f", action="store_true",
                         help="stream the job's log live; exit with the job's outcome")
        sub.add_argument("--raw", action="store_true",
                         help="write the log as the job wrote it, control sequences and all "
                              "(on a terminal, only colours pass otherwise)")


def collect_params(m: Method, ns: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for p in m.params:
        value = getattr(ns, p.name, None)
        pos = getattr(ns, f"_pos_{p.name}", None)
        if pos is not None:
            if value is not None and value != pos:
                raise KitplayUsage(f"{p.name} given twice ({pos!r} and {value!r})")
            value = pos
        if value is not None and p.type == "object":
            value = _pairs(p, value)
        if value is not None:
            params[p.name] = value
    rest = getattr(ns, "_rest", None)
    if rest:
        if m.name != "launch":
            raise KitplayUsage("arguments after -- are only for `kitplay launch APP -- ARGS`")
        params["args"] = [*params.get("args", []), *rest]
    if m.name == "files.write" and "text" not in params:
        params["text"] = _read_local(getattr(ns, "_from", None))
    ws = params.get("workspace")
    if isinstance(ws, str):
        params["workspace"] = os.path.abspath(os.path.expanduser(ws))
    for p in m.params:
        if p.required and p.name not in params:
            raise KitplayUsage(f"kitplay {' '.join(m.cli_words)} needs {p.name.upper()} "
                               f"(positional or {_flag(p)})")
    if getattr(ns, "tail", None) is not None:
        if "offset" in params:
            raise KitplayUsage("--tail and --offset choose where to start: give one")
        if params.get("log") not in (None, "job"):
            raise KitplayUsage("--tail reads the job's own log (leave out --log)")
        if ns.tail < 0:
            raise KitplayUsage("--tail takes a number of lines, 0 or more")
    return params


class KitplayUsage(Exception):
    pass


def _read_local(path: str | None) -> str:
    """`files put`'s content: a local file, or standard input; UTF-8 text."""
    if path in (None, "-"):
        if sys.stdin.isatty():
            raise KitplayUsage("files put needs the content: --from FILE, --text TEXT, or "
                               "pipe it in (kitplay files put PATH < FILE)")
        data, where = sys.stdin.buffer.read(), "standard input"
    else:
        try:
            with open(path, "rb") as f:
                data, where = f.read(), path
        except OSError as e:
            raise KitplayUsage(f"cannot read {path}: {e.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise KitplayUsage(f"{where} is not UTF-8 text (byte {e.start}); files put writes "
                           "text files only") from None


def _pairs(p: Param, values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise KitplayUsage(f"{_flag(p)} takes KEY=VALUE, got {item!r}")
        out[key] = value
    return out


# -- output ------------------------------------------------------------------------------------


def _fmt_time(t: float | None) -> str:
    if t is None:
        return "-"
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def _fmt_bytes(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def cut(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, cut at a word where one is near, with "…"."""
    text = " ".join(str(text).split())
    if len(text) <= width:
        return text
    head = text[: width - 1]
    space = head.rfind(" ")
    if space >= width // 2:
        head = head[:space]
    return head.rstrip(" ,;:.") + "…"


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths)).rstrip()]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def job_app(job: dict[str, Any]) -> str:
    """The app a job is about: ``app``, or the new app's ``name`` for a create."""
    params = job.get("params") or {}
    return str(params.get("app") or params.get("name") or "")


def _job_line(job: dict[str, Any]) -> str:
    bits = [f"job {job['id']}", job["kind"], job["status"]]
    prog = job.get("progress")
    if prog and job["status"] == "running":
        bits.append(f"[{prog['step']}/{prog['steps']}] {prog['message']}")
    # A cancelled job's error says how it ended (SIGTERM, its exit code or signal, SIGKILL).
    if job.get("exit_code") is not None and job["status"] != "cancelled":
        bits.append(f"exit {job['exit_code']}")
    if job.get("error"):
        bits.append(f"- {job['error']['message']}")
    path = display_path(job)
    if path:
        bits.append(f"- display {path}")
    return "  ".join(bits)


def display_path(job: dict[str, Any]) -> str | None:
    """A running job's display session path on the bridge, once its Xpra answers (an ended
    job has none)."""
    display = (job.get("result") or {}).get("display")
    if job.get("status") != "running" or not isinstance(display, dict) or \
            display.get("ready") is False:
        return None
    path = display.get("path")
    return path if isinstance(path, str) else None


DISPLAY_HINT = "shown in the playground beside the job's log (`kitplay open`)"


def _fields(d: dict[str, Any], indent: str = "") -> list[str]:
    """A readable form of a JSON object: ``key: value`` lines, nested objects indented."""
    lines = []
    for k, v in d.items():
        label = k.replace("_", " ")
        if isinstance(v, dict):
            lines.append(f"{indent}{label}:" + ("" if v else " none"))
            lines += _fields(v, indent + "  ")
        elif isinstance(v, list) and any(isinstance(x, dict) for x in v):
            lines.append(f"{indent}{label}:")
            for x in v:
                if isinstance(x, dict):
                    name = x.get("name", "")
                    rest = ", ".join(f"{a.replace('_', ' ')} {b}" for a, b in x.items()
                                     if a != "name" and b not in (None, ""))
                    lines.append(f"{indent}  - {name}" + (f" ({rest})" if rest else ""))
                else:
                    lines.append(f"{indent}  - {x}")
        elif isinstance(v, list):
            lines.append(f"{indent}{label}: " + (", ".join(map(str, v)) or "none"))
        else:
            lines.append(f"{indent}{label}: {'-' if v is None else v}")
    return lines


def warnings(method: str, result: Any) -> list[str]:
    """Problems a result reports beside its data (a broken catalogue entry, a cut list)."""
    out: list[str] = []
    if isinstance(result, dict):
        tc = result.get("toolchain")
        if isinstance(tc, dict):
            out += [f"warning: {e}" for e in tc.get("errors") or []]
            if tc.get("error"):
                out.append(f"warning: {tc['error']}")
        lic = result.get("license")
        if method == "templates.list" and isinstance(lic, dict) and lic.get("required") \
                and not lic.get("accepted"):
            out.append("the workspace's licence is not accepted yet: `kitplay templates create "
                       "... --accept-license` accepts it (see `kitplay templates list --json`)")
        total = result.get("total")
        if method == "jobs.list" and isinstance(total, int) and total > len(result["jobs"]):
            out.append(f"showing {len(result['jobs'])} of {total} (--limit)")
    return out


def render(method: str, result: Any) -> str:
    if method == "jobs.list":
        rows = [[j["id"], j["kind"], j["status"], _fmt_time(j["created_at"]), job_app(j)]
                for j in result["jobs"]]
        return _table(rows, ["ID", "KIND", "STATUS", "CREATED", "APP"]) if rows else "no jobs"
    if method == "jobs.prune":
        n, listed = result["count"], result["removed"]
        if not n:
            return "no ended job matches: nothing " + (
                "would be removed" if result["dry_run"] else "removed")
        head = (f"{'would remove' if result['dry_run'] else 'removed'} {n} ended "
                f"job{'s' if n != 1 else ''} and {_fmt_bytes(result['log_bytes'])} of logs:")
        rows = [[j["id"], j["kind"], j["status"], _fmt_time(j.get("finished_at")),
                 j.get("app") or ""] for j in listed]
        more = f"\n... and {n - len(listed)} more" if n > len(listed) else ""
        return head + "\n" + _table(rows, ["ID", "KIND", "STATUS", "ENDED", "APP"]) + more
    if method == "templates.list":
        rows = [[t["name"], t["type"], t["display_name"], cut(t["description"], 60)]
                for t in result["templates"]]
        return f"toolchain: {result['toolchain']['kind']}\n" + (_table(
            rows, ["NAME", "TYPE", "DISPLAY NAME", "DESCRIPTION"]) if rows else "no templates")
    if method == "templates.get":
        return "\n".join(_fields(result["template"]))
    if method == "apps.list":
        rows = [[a["name"], a["type"], a.get("display_name") or "", a.get("version") or "",
                 a.get("parent") or "", "yes" if a.get("built") else "no"]
                for a in result["apps"]]
        return _table(rows, ["NAME", "TYPE", "DISPLAY NAME", "VERSION", "OF", "BUILT"]) \
            if rows else "no apps yet"
    if method == "sessions.list":
        rows = [[s["job_id"], s["app"], s["x_display"], s["path"]] for s in result["sessions"]]
        return _table(rows, ["JOB", "APP", "X DISPLAY", "PATH ON THE BRIDGE"]) \
            if rows else "no display sessions"
    if method == "daemon.status":
        lines = [f"{k}: {v}" for k, v in result.items() if not isinstance(v, dict)]
        lines.append("toolchain: " + ", ".join(f"{k}={v}" for k, v in result["toolchain"].items()
                                               if k != "errors"))
        lines.append("jobs: " + (", ".join(f"{k}={v}" for k, v in result["jobs"].items())
                                 or "none"))
        state = result.get("state") or {}
        if state.get("ok") is False:
            lines.append(f"state: NOT WRITABLE: {state.get('error')}")
        for name, d in (result.get("displays") or {}).items():
            missing = ", ".join(m.get("package") or m["what"] for m in d.get("missing") or [])
            lines.append(f"display {name}: " + (
                "checking" if d.get("available") is None else "available" if d["available"]
                else f"missing {missing}"))
        return "\n".join(lines)
    if method == "jobs.logs":
        return str(result["data"]).rstrip("\n")
    if method == "files.list":
        entries = result["entries"]
        rows = [[e["kind"] + ("*" if e["build_output"] else ""), str(e["size"]),
                 _fmt_time(e["mtime"]), _shown(e["path"])] for e in entries]
        lines = [_table(rows, ["KIND", "SIZE", "MODIFIED", "PATH"]) if rows else "no files"]
        if any(e["build_output"] for e in entries):
            lines.append("(* build output)")
        if result["truncated"]:
            lines.append(f"(cut at {len(rows)} entries: list a directory by its path)")
        if result.get("skipped"):
            lines.append(f"({result['skipped']} names that are not UTF-8 left out)")
        return "\n".join(lines)
    if method == "files.write":
        return f"wrote {_shown(result['path'])} ({result['size']} bytes, etag {result['etag']})"
    if method == "files.delete":
        return f"deleted {_shown(result['path'])}"
    if method in ("apps.delete", "apps.clean"):
        gone = result["removed"] + [f"{e['file']}: {e['what']}" for e in result.get("edited", [])]
        return "\n".join(f"removed {x}" for x in gone) or "nothing to remove"
    if method == "templates.create" and isinstance(result, dict) and "replay" in result:
        return str(result["replay"]).rstrip("\n")
    if method == "templates.icon":
        return f"{result['name']}: {result['content_type']}, {result['size']} bytes (--json " \
               "has them as data_base64)"
    if isinstance(result, dict) and "job" in result:
        line = _job_line(result["job"])
        return line + ("  (timed out waiting)" if result.get("timed_out") else "")
    import json

    return json.dumps(result, indent=2)


def _shown(path: str) -> str:
    """A path as one printable line: control characters escaped, as ``ls`` shows them."""
    return path if path.isprintable() else repr(path)[1:-1]


def write_file_out(result: dict[str, Any]) -> None:
    """`files cat`: the file itself on standard output, nothing added."""
    if "data_base64" in result:
        import base64

        data = base64.b64decode(result["data_base64"])
    else:
        data = result["text"].encode("utf-8")  # the file's bytes, whatever the locale says
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def quiet(method: str, result: Any) -> str | None:
    if isinstance(result, dict):
        if "job" in result:
            return str(result["job"]["id"])
        for key in ("jobs", "removed"):
            if isinstance(result.get(key), list):
                return "\n".join(j["id"] for j in result[key]) or None
    return None


def show(method: str, result: Any, mode: str, raw: bool = False) -> None:
    """Print a result: as JSON (``json``), ids only (``quiet``), or readable text with the
    warnings it carries on stderr (a log's control sequences neutralized on a terminal unless
    ``raw``)."""
    try:
        if mode == "json":
            import json

            sys.stdout.write(json.dumps(result) + "\n")
        elif mode == "quiet":
            q = quiet(method, result)
            if q:
                sys.stdout.write(q + "\n")
        elif method == "jobs.logs":
            show_log(result, raw)
        else:
            sys.stdout.write(render(method, result) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:  # `kitplay jobs list | head`
        _quiet_pipe()
        return
    if not mode:
        for w in warnings(method, result):
            sys.stderr.write(f"kitplay: {w}\n")


def show_log(result: dict[str, Any], raw: bool) -> None:
    """A ``jobs.logs`` result on standard output: the log's bytes exactly (piped, or with
    ``raw``), else shown on the terminal and not obeyed (terminal.py)."""
    from kitplay.daemon.protocol.passthrough import chunk_bytes

    data = chunk_bytes(result)
    if raw or not _isatty(sys.stdout):
        write_log(sys.stdout, data)
    else:
        text = data.decode("utf-8", "replace").rstrip("\n")
        sys.stdout.write(for_terminal(sys.stdout, text) + "\n")


def _quiet_pipe() -> None:
    """stdout's reader left: nothing more to say (and no error at exit when Python flushes)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except OSError:
        pass


# -- follow ------------------------------------------------------------------------------------

BAR = 20


def progress_text(prog: dict[str, Any], tty: bool) -> str:
    step, steps = int(prog.get("step") or 0), int(prog.get("steps") or 0)
    if not tty or steps <= 0:
        return f"[{step}/{steps}] {prog.get('message', '')}"
    done = BAR * min(step, steps) // steps
    return f"[{'#' * done}{'-' * (BAR - done)}] {step}/{steps} {prog.get('message', '')}"


def write_log(out: Any, data: bytes) -> None:
    """A job's log bytes, exactly, to a text stream's binary buffer (when it has one)."""
    out.flush()
    raw = getattr(out, "buffer", None)
    if raw is not None:
        raw.write(data)
        raw.flush()
    else:
        out.write(data.decode("utf-8", "replace"))
        out.flush()


def for_terminal(stream: Any, text: str) -> str:
    """``text`` as it may be written to ``stream``: neutralized on a terminal (terminal.py)."""
    if not _isatty(stream):
        return text
    from .terminal import neutralize

    return neutralize(text)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def has_display(job: dict[str, Any]) -> bool:
    """Whether a launch job's display session is up (``display_path``)."""
    return display_path(job) is not None


def follow(client: Client, job_id: str, offset: int, log_out: Any, reconnect_s: float,
           until_display: bool = False, raw: bool = False) -> dict[str, Any]:
    """Stream a job's log; show progress (a bar on a terminal, plain lines when piped) while
    it runs; return the final job (or, ``until_display``, the first record with a display
    session).  Piped, a progress line is printed when the job's state says so, never after
    its final state: the daemon sends a job's states in order with its log (a state is never
    older than the log before it), so every progress line comes before the log's last line.
    On a terminal, and unless ``raw``, the log's control sequences other than colours are
    neutralized."""
    from kitplay.daemon.protocol.passthrough import chunk_bytes

    tty = sys.stderr.isatty()
    shown = None  # the progress line on screen (tty) or last printed
    term = None
    if log_out is not None and not raw and _isatty(log_out):
        from .terminal import TerminalText

        term = TerminalText()

    def clear() -> None:
        if tty and shown:
            sys.stderr.write("\r\x1b[K")

    def notice(text: str) -> None:
        clear()
        sys.stderr.write(f"kitplay: {for_terminal(sys.stderr, text)}\n")
        if tty and shown:
            sys.stderr.write(shown)
        sys.stderr.flush()

    final: dict[str, Any] = {}
    display_seen = None
    for note in client.follow(job_id, offset, reconnect_s=reconnect_s, notice=notice):
        params = note["params"]
        if note["method"] == "jobs.output":
            if until_display:
                continue
            clear()
            data = chunk_bytes(params)  # the log's bytes, exactly
            if term is not None:  # a terminal: shown, not obeyed (terminal.py)
                log_out.write(term.feed(data.decode("utf-8", "replace")))
                log_out.flush()
            else:
                write_log(log_out, data)
            if tty and shown:
                sys.stderr.write(shown)
                sys.stderr.flush()
        elif note["method"] == "jobs.state":
            job = params["job"]
            path = display_path(job)
            if path and path != display_seen:  # a restart brings a new session
                display_seen = path
                if until_display:
                    return dict(job)
                notice(f"display session: {path} ({DISPLAY_HINT})")
            prog = job.get("progress")
            if prog and not params.get("final") and job["status"] == "running":
                text = for_terminal(sys.stderr, progress_text(prog, tty))
                if text != shown:
                    if tty:
                        sys.stderr.write("\r\x1b[K" + text)
                    else:
                        sys.stderr.write(f"kitplay: progress {text}\n")
                    sys.stderr.flush()
                    shown = text
            if params.get("final"):
                clear()
                if term is not None:
                    log_out.write(term.flush())
                    log_out.flush()
                shown = None
                final = job
    return final


def _display_text(job: dict[str, Any]) -> str:
    return f"{display_path(job) or ''} ({DISPLAY_HINT})"


def tail_offset(client: Client, job_id: str, lines: int) -> int:
    """The byte offset where the last ``lines`` lines of a job's log begin (lines end with
    ``\n``, as ``tail -n`` counts them; a last line without one counts too)."""
    from kitplay.daemon.protocol.passthrough import chunk_bytes

    size = int(client.call("jobs.get", {"job_id": job_id})["job"].get("log_size") or 0)
    window = 64 * 1024
    while True:
        start = max(0, size - window)
        got = client.call("jobs.logs", {"job_id": job_id, "offset": start, "encoding": "base64",
                                        "limit": max(1, size - start)})
        pieces = chunk_bytes(got).split(b"\n")  # the log's own bytes, whatever they are
        parts = [p + b"\n" for p in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])
        # The first line of a window that does not start the log may be cut: not counted.
        whole = parts if start == 0 else parts[1:]
        if len(whole) >= lines or start == 0:
            keep = b"".join(whole[max(0, len(whole) - lines):]) if lines else b""
            return max(start, int(got["next_offset"]) - len(keep))
        window *= 4


def wait_end(client: Client, job_id: str, reconnect_s: float) -> dict[str, Any]:
    """The job's record once it has ended (``jobs.wait`` as often as it takes)."""
    while True:
        res = client.wait(job_id, 3600, reconnect_s=reconnect_s)
        if not res.get("timed_out"):
            return dict(res["job"])


def copy_junit(job: dict[str, Any], dest: str) -> str | None:
    """Copy a test job's JUnit XML report to ``dest`` (several apps' reports merged into one
    ``<testsuites>``); None when done, else why not."""
    reports = [str(r) for r in (job.get("result") or {}).get("junit") or []]
    if not reports:
        return (f"job {job['id']} lists no JUnit XML report (its toolchain wrote none; see "
                "docs/ci.md)")
    import shutil

    try:
        if len(reports) == 1:
            shutil.copyfile(reports[0], dest)
            return None
        import xml.etree.ElementTree as ET

        merged = ET.Element("testsuites")
        totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
        elapsed = 0.0
        for path in reports:
            root = ET.parse(path).getroot()
            for suite in root.iter("testsuite"):
                merged.append(suite)
                for k in totals:
                    totals[k] += int(suite.get(k) or 0)
                elapsed += float(suite.get("time") or 0)
        merged.attrib.update({k: str(v) for k, v in totals.items()}, time=f"{elapsed:.3f}")
        ET.indent(merged)
        ET.ElementTree(merged).write(dest, encoding="utf-8", xml_declaration=True)
    except (OSError, ValueError, SyntaxError) as e:
        return f"cannot copy the JUnit XML report to {dest}: {e}"
    return None


# -- the commands -----------------------------------------------------------------------------


def run(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    rest: list[str] = []
    if "--" in args:
        cut_at = args.index("--")
        args, rest = args[:cut_at], args[cut_at + 1:]
    answered = fast(args) if not rest else None
    if answered is not None:
        return answered
    from kitplay.daemon.protocol.registry import METHODS

    word = command_word(args)
    local = {w for w, _ in LOCAL_COMMANDS}
    known = word in local or any(m.cli_words[0] == word for m in METHODS.values()
                                 if m.has_command)
    parser = build_parser(word if known else None)
    as_json = "--json" in args
    type(parser).json_errors = as_json  # type: ignore[attr-defined]
    ns, extra = parser.parse_known_args(args)
    where = getattr(ns, "_parser", parser)
    if extra:
        where.error(f"unrecognized arguments: {' '.join(extra)}")
    if ns._version:
        from kitplay.daemon.protocol.version import API_VERSION, __version__

        print(f"kitplay {__version__} (API {API_VERSION})")
        return EXIT_OK
    if ns._cmd is None:
        parser.error("a COMMAND is required")
    ns._rest = rest
    if ns._method is None:
        if rest:
            where.error("arguments after -- are only for `kitplay launch APP -- ARGS`")
        return run_local(ns)
    m = METHODS[ns._method]
    try:
        params = collect_params(m, ns)
    except KitplayUsage as e:
        where.error(str(e))
    if getattr(ns, "follow", False) and params.get("log") == "display":
        where.error("--follow follows a job's own log; read Xpra's display log without it")
    return call_method(m, params, ns)


def call_method(m: Method, params: dict[str, Any], ns: argparse.Namespace) -> int:
    from kitplay.daemon.protocol.client import Client
    from kitplay.daemon.protocol.errors import KitplayError

    following = bool(getattr(ns, "follow", False))
    raw = bool(getattr(ns, "raw", False))
    junit = getattr(ns, "junit", None)
    tail = getattr(ns, "tail", None)
    mode = "json" if ns.json else "quiet" if ns.quiet else ""
    if m.name == "jobs.logs" and mode != "json":
        params.setdefault("encoding", "auto")  # exact bytes for the terminal or a pipe
    job_id = ""
    try:
        with Client.connect(ns.socket, timeout=None) as client:
            if m.name == "jobs.logs" and tail is not None:
                params["offset"] = tail_offset(client, params["job_id"], tail)
            if m.name == "jobs.wait":
                job_id = params["job_id"]
                result = client.wait(job_id, params.get("timeout_s", 30),
                                     reconnect_s=ns.reconnect_s)
            else:
                result = client.call(m.name, params)
            job = result.get("job") if isinstance(result, dict) else None
            if job and not job_id:
                job_id = str(job["id"])
            if following and not job and "job_id" not in params:
                following = False  # nothing started (templates create --dry-run)
            waits_display = (m.name == "launch" and params.get("display") == "xpra"
                             and not following and job is not None and not has_display(job))
            if waits_display and job:
                # The session exists once the display is up: wait for it (or the job's end),
                # and print the record that names it, in text as in JSON.
                job = follow(client, job_id, 0, None, ns.reconnect_s, until_display=True) or job
                result = {**result, "job": job}
            if m.name == "files.read" and not mode:
                write_file_out(result)
            elif not following or mode != "json":
                if not (following and m.name == "jobs.logs" and not mode):
                    show(m.name, result, mode, raw)
            if waits_display and job:
                if has_display(job) and not mode:
                    print(f"display session: {_display_text(job)}")
                elif not has_display(job):  # it ended first: the line above says how
                    return EXIT_JOB_FAILED
            if following or junit:
                job_id = str(params.get("job_id") or job_id)
                offset = params.get("offset", 0) if m.name == "jobs.logs" else 0
                if following:
                    log_out = sys.stderr if mode == "json" else sys.stdout
                    job = follow(client, job_id, offset, log_out, ns.reconnect_s, raw=raw)
                else:  # --junit without --follow: wait for the end quietly
                    job = wait_end(client, job_id, ns.reconnect_s)
                if following and mode == "json":
                    import json

                    sys.stdout.write(json.dumps({"job": job}) + "\n")
                elif following and not mode:
                    print(for_terminal(sys.stderr, _job_line(job)), file=sys.stderr)
                if junit:
                    why = copy_junit(job, junit)
                    if why is not None:
                        print(f"kitplay: {why}", file=sys.stderr)
                        if job.get("status") not in JOB_FAILED:
                            return EXIT_JOB_FAILED
                    elif not mode:
                        print(f"kitplay: JUnit XML report written to {junit}", file=sys.stderr)
            if m.name == "jobs.wait" or following or junit:
                if job and job.get("status") in JOB_FAILED:
                    return EXIT_JOB_FAILED
                if m.name == "jobs.wait" and result.get("timed_out"):
                    return EXIT_WAIT_TIMED_OUT
            return EXIT_OK
    except KeyboardInterrupt:
        if job_id and (following or m.name == "jobs.wait" or junit):
            print(f"\nkitplay: stopped {'following' if following else 'waiting'}; job "
                  f"{job_id} keeps running (`kitplay jobs cancel {job_id}` stops it)",
                  file=sys.stderr)
        else:
            print("\nkitplay: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KitplayError as e:
        return report(e, mode == "json")
    except BrokenPipeError:
        _quiet_pipe()
        return EXIT_OK


def run_local(ns: argparse.Namespace) -> int:
    """Commands of the client itself; each imports what it needs only when chosen."""
    if ns._local == "open":
        return open_url(ns)
    if ns._local == "completion":
        from .completion import script

        sys.stdout.write(script(ns.shell, build_parser()))
        return EXIT_OK
    from . import daemonctl

    return {"daemon.start": daemonctl.start, "daemon.stop": daemonctl.stop,
            "daemon.restart": daemonctl.restart,
            "daemon.logs": daemonctl.logs}[ns._local](ns)


def _listen_addresses(info: dict[str, Any]) -> list[tuple[str, int]]:
    """The addresses the bridge that wrote ``info`` bound, as (host, port)."""
    out = []
    for text in info.get("listen") or []:
        host, _, port = str(text).rpartition(":")
        out.append((host.strip("[]"), int(port)))
    if not out:  # a bridge.json from before "listen": the address of its URL
        hostport = str(info.get("url", "")).split("//", 1)[-1].split("/", 1)[0]
        host, _, port = hostport.rpartition(":")
        out.append((host.strip("[]"), int(port or info.get("port") or 0)))
    return out


def open_url(ns: argparse.Namespace) -> int:
    """Mint a one-time page URL through the running bridge (the master token stays here);
    print it, or (``--browser``) open it through a redirect file only this user can read."""
    import json
    import urllib.error
    import urllib.request
    from pathlib import Path

    from kitplay.daemon.protocol.paths import (
        bridge_info_path,
        check_private_file,
        default_socket_path,
        tcp_listener_uids,
    )

    sock = ns.socket or default_socket_path()
    path = bridge_info_path(Path(sock))
    start = "start it with `kitplay-bridge --with-daemon` (or `kitplay-bridge` beside a " \
            "running kitplayd)"
    try:
        check_private_file(path)  # another user's bridge.json would send us to their port
        info = json.loads(path.read_text())
        listen = _listen_addresses(info)
    except PermissionError as e:
        print(f"kitplay: refusing {path}: {e}", file=sys.stderr)
        return 3
    except (OSError, ValueError, TypeError):
        print(f"kitplay: no bridge is running ({path} not found); {start}", file=sys.stderr)
        return 3
    # The master token goes only to a bridge of this user's: a bridge that was killed left
    # bridge.json behind, and another user may listen on its port now. Exactly the addresses
    # it bound count (another user's listener on 127.0.0.2 or ::1 with the same port is no
    # concern of ours, unless the bridge bound that address).
    for host, port in listen:
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        owners = tcp_listener_uids(port, host)
        if not owners:
            print(f"kitplay: no bridge is running (nothing listens on {where}; {path} is "
                  f"left from one that stopped); {start}", file=sys.stderr)
            return 3
        others = sorted(owners - {os.getuid()})
        if others:
            print(f"kitplay: refusing to send the bridge token to {where}: it is held by uid "
                  f"{others[0]}, not by you (uid {os.getuid()}); the bridge that wrote {path} "
                  "has stopped. Start the bridge again (on another port: --bind)",
                  file=sys.stderr)
            return 3
    req = urllib.request.Request(
        f"{info['url'].rstrip('/')}/api/v1/login-codes", data=b"{}", method="POST",
        headers={"Authorization": f"Bearer {info['token']}",
                 "Content-Type": "application/json"})
    try:
        # No proxy: the master token goes to the bridge only, whatever http_proxy says.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(req, timeout=30) as resp:
            minted = json.loads(resp.read())
            url, ttl = minted["url"], minted.get("expires_in_s")
    except (OSError, ValueError, KeyError) as e:
        print(f"kitplay: the bridge at {info['url']} did not give a login URL ({e}); is it "
              "still running? (`kitplay-bridge --with-daemon` starts one)", file=sys.stderr)
        return 3
    if not ns.browser:
        print(url)  # for this terminal; never a process's argument
        return 0
    page = write_redirect(path.parent, url, ttl)
    import webbrowser

    # The browser gets the file's name on its command line (which every user can read in
    # /proc), never the code: the file is this user's alone, in a directory of this user's.
    if not webbrowser.open(page.as_uri()):
        print(f"kitplay: no web browser found: open {page} in yours (it works once, "
              f"within {int(ttl or 120)} s)", file=sys.stderr)
        return 3
    print(f"kitplay: opened the playground in your browser (through {page})", file=sys.stderr)
    return 0


REDIRECT = """<!doctype html>
<html><head><meta charset="utf-8"><meta name="referrer" content="no-referrer">
<meta http-equiv="refresh" content="0;url={attr}">
<title>kitplay playground</title></head>
<body><p>Opening the <a href="{attr}">kitplay playground</a>&hellip;</p>
<script>location.replace({js});</script></body></html>
"""


def write_redirect(directory: Path, url: str, ttl: float | None) -> Path:
    """A page that sends the browser on to ``url``, readable by this user alone (0600, made
    exclusively), in ``directory`` (the runtime directory, 0700); older ones, whose codes have
    expired, are removed."""
    import html
    import json
    import secrets
    import time

    for old in directory.glob("open-*.html"):
        try:
            if old.lstat().st_mtime < time.time() - max(ttl or 120, 120):
                old.unlink()
        except OSError:
            pass
    page = directory / f"open-{secrets.token_hex(8)}.html"
    fd = os.open(page, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(REDIRECT.format(attr=html.escape(url, quote=True),
                                js=json.dumps(url).replace("<", "\\u003c")))
    return page


def main(argv: list[str] | None = None) -> None:
    try:
        code = run(argv)
    except KeyboardInterrupt:  # Ctrl-C outside a call (parsing, local commands)
        print("\nkitplay: interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    sys.exit(code)


if __name__ == "__main__":
    main()
