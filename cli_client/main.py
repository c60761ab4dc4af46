"""``kitplay``: the command-line client of kitplayd.

Subcommands mirror the method registry: method ``a.b`` is ``kitplay a b``, ``build`` is
``kitplay build``; parameter ``display_name`` is ``--display-name``; a method's main id or
name may be positional.  This module imports only the standard library and
``daemon.protocol`` (no trio, Quart or Hypercorn), so the command starts fast.

Exit codes: 0 success; 1 the job failed or was cancelled; 2 usage error; 3 daemon not
reachable; 130 interrupted (Ctrl-C); others come from the error classes
(``daemon/protocol/errors.py``), and 9 when ``jobs wait`` timed out.

Following (``--follow``) and waiting (``jobs wait``) ride through a daemon restart: they say so
on stderr, reconnect for up to ``--reconnect-s`` seconds and resume at the byte offset reached.
Commands that need more than the standard library and the registry (``daemon start``,
``completion``) live in their own modules and are imported only when chosen.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from kitplay.daemon.protocol.client import RECONNECT_S, Client
from kitplay.daemon.protocol.errors import DaemonUnreachable, KitplayError
from kitplay.daemon.protocol.passthrough import chunk_bytes
from kitplay.daemon.protocol.paths import (
    bridge_info_path,
    check_private_file,
    default_socket_path,
    tcp_listener_uids,
)
from kitplay.daemon.protocol.registry import METHODS, Method, Param

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing slows `kitplay` down
if TYPE_CHECKING:
    from typing import Any

__all__ = ["LOCAL_COMMANDS", "build_parser", "main"]

EXIT_OK, EXIT_JOB_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
# `jobs wait` ran out of time: the job is still running (not an error on any wire: the
# method answers timed_out, so the code lives here, not in daemon/protocol/errors.py).
EXIT_WAIT_TIMED_OUT = 9
# Commands of the client itself, not methods of the registry: (group, subcommand or None).
LOCAL_COMMANDS = frozenset({("open", None), ("completion", None), ("daemon", "start"),
                            ("daemon", "stop")})
GLOBAL_WITH_VALUE = ("--socket", "--state-dir", "--reconnect-s")
FOLLOWABLE = frozenset({"templates.create", "build", "launch", "test", "package",
                        "package_container", "apps.modify", "jobs.logs", "jobs.wait",
                        "jobs.get"})
JOB_FAILED = frozenset({"failed", "cancelled", "interrupted"})


def _flag(p: Param) -> str:
    return "--" + p.name.replace("_", "-")


def _add_param(sub: argparse.ArgumentParser, p: Param) -> None:
    dest = p.name
    if p.type == "boolean":
        sub.add_argument(_flag(p), dest=dest, action="store_true", default=None, help=p.doc)
        return
    kind: Any = {"integer": int, "number": float}.get(p.type, str)
    if p.type == "array":
        sub.add_argument(_flag(p), dest=dest, action="append", metavar=p.name.upper(),
                         help=p.doc + " (repeat the flag for several)")
        return
    if p.type == "object":
        sub.add_argument(_flag(p), dest=dest, action="append", metavar="KEY=VALUE",
                         help=p.doc + " (KEY=VALUE; repeat the flag for several)")
        return
    sub.add_argument(_flag(p), dest=dest, type=kind, choices=p.enum, metavar=(
        None if p.enum else p.name.upper()), help=p.doc + (" (required)" if p.required else ""))
    if p.positional:
        sub.add_argument(f"_pos_{dest}", nargs="?", type=kind, metavar=p.name.upper(),
                         help=f"same as {_flag(p)}")


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
    raw = os.environ.get("KITPLAY_RECONNECT_S")
    try:
        return float(raw) if raw else RECONNECT_S
    except ValueError:
        return RECONNECT_S


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, or (``only``) just one command group: building all sixteen
    subcommands costs more start-up time than a call to the daemon."""
    from kitplay.daemon.protocol.errors import ERRORS

    codes = sorted({(c.exit_code, c.title) for c in ERRORS if 2 < c.exit_code < 70})
    parser = argparse.ArgumentParser(
        prog="kitplay", description="Talk to kitplayd: templates, build, launch, jobs.",
        epilog="Exit codes: 0 ok, 1 job failed or cancelled, 2 usage, "
               + ", ".join(f"{code} {title}" for code, title in codes)
               + f", {EXIT_WAIT_TIMED_OUT} `jobs wait` timed out, 130 interrupted (Ctrl-C).")
    parser.add_argument("--version", dest="_version", action="store_true",
                        help="print kitplay's version and exit")
    parser.add_argument("--socket", type=Path, help="daemon socket (env KITPLAY_SOCKET)")
    parser.add_argument("--state-dir", type=Path, help="kitplayd's state directory (env "
                        "KITPLAY_STATE_DIR); `daemon start` logs there")
    parser.add_argument("--reconnect-s", type=float, default=_reconnect_default(),
                        metavar="SECONDS", help="how long --follow and `jobs wait` try to "
                        "reconnect when the daemon goes away (env KITPLAY_RECONNECT_S; "
                        f"default {RECONNECT_S:g}; 0: give up at once)")
    groups = parser.add_subparsers(dest="_cmd", metavar="COMMAND")
    subgroups: dict[str, argparse._SubParsersAction[argparse.ArgumentParser]] = {}
    for m in METHODS.values():
        words = m.cli_words
        if only is not None and words[0] != only:
            continue
        if len(words) == 1:
            sub = groups.add_parser(words[0], help=m.doc, description=m.doc)
        else:
            if words[0] not in subgroups:
                g = groups.add_parser(words[0], help=f"{words[0]} commands")
                subgroups[words[0]] = g.add_subparsers(dest="_sub", metavar="SUBCOMMAND")
                subgroups[words[0]].required = True
            sub = subgroups[words[0]].add_parser(words[1], help=m.doc, description=m.doc)
        sub.set_defaults(_method=m.name)
        for p in m.params:
            _add_param(sub, p)
        if m.name == "files.write":
            sub.add_argument("--from", dest="_from", metavar="FILE", help="read the new "
                             "content from FILE ('-' or no --text: standard input)")
        _add_output_flags(sub, m)
    if only in (None, "daemon"):
        start = subgroups["daemon"].add_parser(
            "start", help="start kitplayd in the background (systemd when its units are "
            "installed), logging to the state directory")
        start.add_argument("--workspace", help="the daemon's default workspace")
        start.set_defaults(_method=None, _local="daemon.start")
        stop = subgroups["daemon"].add_parser(
            "stop", help="stop kitplayd (launched apps keep running and are re-adopted)")
        stop.set_defaults(_method=None, _local="daemon.stop")
    if only in (None, "open"):
        op = groups.add_parser("open", help="print (or open) a new one-time playground URL")
        op.add_argument("--browser", action="store_true",
                        help="open it in a web browser ($BROWSER, else the desktop's), "
                             "through a redirect file only you can read: no code on any "
                             "command line")
        op.set_defaults(_method=None, _local="open")
    if only in (None, "completion"):
        comp = groups.add_parser("completion", help="print a shell completion script "
                                 "(bash: `source <(kitplay completion bash)`)")
        comp.add_argument("shell", choices=("bash", "zsh", "fish"))
        comp.set_defaults(_method=None, _local="completion")
    return parser


def _add_output_flags(sub: argparse.ArgumentParser, m: Method) -> None:
    out = sub.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print exactly the method's result")
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
            data, where = Path(path).read_bytes(), path
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


def _job_line(job: dict[str, Any]) -> str:
    bits = [f"job {job['id']}", job["kind"], job["status"]]
    prog = job.get("progress")
    if prog and job["status"] == "running":
        bits.append(f"[{prog['step']}/{prog['steps']}] {prog['message']}")
    if job.get("exit_code") is not None:
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
        rows = [[j["id"], j["kind"], j["status"], _fmt_time(j["created_at"]),
                 j["params"].get("app") or j["params"].get("name") or ""] for j in result["jobs"]]
        return _table(rows, ["ID", "KIND", "STATUS", "CREATED", "APP"]) if rows else "no jobs"
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
        if isinstance(result.get("jobs"), list):
            return "\n".join(j["id"] for j in result["jobs"]) or None
        if "subscription" in result:
            return str(result["subscription"])
    return None


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


def follow(client: Client, job_id: str, offset: int, log_out: Any, reconnect_s: float,
           until_display: bool = False, raw: bool = False) -> dict[str, Any]:
    """Stream a job's log; show progress (a bar on a terminal, plain lines when piped); return
    the final job (or, ``until_display``, the first record with a display session).  On a
    terminal, and unless ``raw``, the log's control sequences other than colours are
    neutralized."""
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
                if not tty and shown is None and prog:
                    # Ended before we saw it run: piped output still says how far it got.
                    sys.stderr.write(f"kitplay: progress {progress_text(prog, False)}\n")
                shown = None
                final = job
    return final


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
    import urllib.error
    import urllib.request

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


def run(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    rest: list[str] = []
    if "--" in args:
        cut_at = args.index("--")
        args, rest = args[:cut_at], args[cut_at + 1:]
    word = command_word(args)
    local = {w for w, _ in LOCAL_COMMANDS}
    known = word in local or any(m.cli_words[0] == word for m in METHODS.values())
    parser = build_parser(word if known else None)
    ns = parser.parse_args(args)
    if ns._version:
        from kitplay.daemon.protocol.version import API_VERSION, __version__

        print(f"kitplay {__version__} (API {API_VERSION})")
        return EXIT_OK
    if ns._cmd is None:
        parser.error("a COMMAND is required")
    ns._rest = rest
    if ns._method is None:
        return run_local(ns)
    m = METHODS[ns._method]
    try:
        params = collect_params(m, ns)
    except KitplayUsage as e:
        parser.error(str(e))
    following = bool(getattr(ns, "follow", False))
    if following and params.get("log") == "display":
        parser.error("--follow follows a job's own log; read Xpra's display log without it")
    raw = bool(getattr(ns, "raw", False))
    if m.name == "jobs.logs" and not ns.json:
        params.setdefault("encoding", "auto")  # exact bytes for the terminal or a pipe
    job_id = ""
    try:
        with Client.connect(ns.socket, timeout=None) as client:
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
            out = sys.stdout
            if ns.json:
                if not following:  # with --follow, the final record comes at the end
                    out.write(json.dumps(result) + "\n")
            elif ns.quiet:
                q = quiet(m.name, result)
                if q:
                    out.write(q + "\n")
            elif m.name == "files.read":
                write_file_out(result)
            elif m.name == "jobs.logs":
                if not following:  # (--follow writes the log below)
                    data = chunk_bytes(result)
                    if raw or not _isatty(out):  # the log's bytes, exactly
                        write_log(out, data)
                    else:  # a terminal: shown, not obeyed (terminal.py)
                        text = data.decode("utf-8", "replace").rstrip("\n")
                        out.write(for_terminal(out, text) + "\n")
            else:
                out.write(render(m.name, result) + "\n")
            out.flush()
            if not ns.json and not ns.quiet:
                for w in warnings(m.name, result):
                    print(f"kitplay: {w}", file=sys.stderr)
            if (m.name == "launch" and params.get("display") == "xpra" and not following
                    and not ns.json and not ns.quiet and job
                    and not display_path(job)):
                # The session exists once the display is up: wait for it (or the job's end).
                job = follow(client, job_id, 0, None, ns.reconnect_s, until_display=True) or job
                path = display_path(job)
                if path:
                    print(f"display session: {path} ({DISPLAY_HINT})")
                elif job.get("status") in JOB_FAILED:
                    print(_job_line(job), file=sys.stderr)
                    return EXIT_JOB_FAILED
            if following:
                job_id = str(params.get("job_id") or job_id)
                offset = params.get("offset", 0) if m.name == "jobs.logs" else 0
                log_out = sys.stderr if ns.json else sys.stdout
                job = follow(client, job_id, offset, log_out, ns.reconnect_s, raw=raw)
                if ns.json:
                    out.write(json.dumps({"job": job}) + "\n")
                elif not ns.quiet:
                    print(for_terminal(sys.stderr, _job_line(job)), file=sys.stderr)
            if m.name == "jobs.wait" or following:
                if job and job.get("status") in JOB_FAILED:
                    return EXIT_JOB_FAILED
                if m.name == "jobs.wait" and result.get("timed_out"):
                    return EXIT_WAIT_TIMED_OUT
            return EXIT_OK
    except KeyboardInterrupt:
        if job_id and (following or m.name == "jobs.wait"):
            print(f"\nkitplay: stopped {'following' if following else 'waiting'}; job "
                  f"{job_id} keeps running (`kitplay jobs cancel {job_id}` stops it)",
                  file=sys.stderr)
        else:
            print("\nkitplay: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except DaemonUnreachable as e:
        print(f"kitplay: {e.message}", file=sys.stderr)
        return e.exit_code
    except KitplayError as e:
        print(f"kitplay: error {e.code}: {e.message}", file=sys.stderr)
        return e.exit_code
    except BrokenPipeError:
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

    if ns._local == "daemon.start":
        return daemonctl.start(ns)
    return daemonctl.stop(ns)


def main(argv: list[str] | None = None) -> None:
    try:
        code = run(argv)
    except KeyboardInterrupt:  # Ctrl-C outside a call (parsing, local commands)
        print("\nkitplay: interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    sys.exit(code)


if __name__ == "__main__":
    main()
