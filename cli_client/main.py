"""``kitplay``: the command-line client of kitplayd.

Subcommands mirror the method registry: method ``a.b`` is ``kitplay a b``, ``build`` is
``kitplay build``; parameter ``display_name`` is ``--display-name``; a method's main id or
name may be positional.  This module imports only the standard library and
``daemon.protocol`` (no trio, Quart or Hypercorn), so the command starts fast.

Exit codes: 0 success; 1 the job failed or was cancelled; 2 usage error; 3 daemon not
reachable; others come from the error classes (``daemon/protocol/errors.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from daemon.protocol.client import Client
from daemon.protocol.errors import DaemonUnreachable, KitplayError
from daemon.protocol.paths import bridge_info_path, check_private_file, default_socket_path
from daemon.protocol.registry import METHODS, Method, Param

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing slows `kitplay` down
if TYPE_CHECKING:
    from typing import Any

__all__ = ["build_parser", "main"]

EXIT_OK, EXIT_JOB_FAILED, EXIT_USAGE = 0, 1, 2
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
        elif a in ("--socket", "--state-dir"):
            skip = True
        elif not a.startswith("-"):
            return a
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, or (``only``) just one command group: building all sixteen
    subcommands costs more start-up time than a call to the daemon."""
    parser = argparse.ArgumentParser(
        prog="kitplay", description="Talk to kitplayd: templates, build, launch, jobs.",
        epilog="Exit codes: 0 ok, 1 job failed or cancelled, 2 usage, 3 daemon unreachable, "
               "4 not found, 5 invalid state, 6 licence, 7 toolchain, 8 unsupported.")
    parser.add_argument("--socket", type=Path, help="daemon socket (env KITPLAY_SOCKET)")
    parser.add_argument("--state-dir", type=Path, help="accepted on every command like "
                        "kitplayd's (env KITPLAY_STATE_DIR); the client itself needs only "
                        "the socket")
    groups = parser.add_subparsers(dest="_cmd", metavar="COMMAND")
    groups.required = True
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
        _add_output_flags(sub, m)
    op = groups.add_parser("open", help="print (or open) a new one-time playground URL")
    op.add_argument("--browser", action="store_true", help="open it in a web browser")
    op.set_defaults(_method=None)
    return parser


def _add_output_flags(sub: argparse.ArgumentParser, m: Method) -> None:
    out = sub.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print exactly the method's result")
    out.add_argument("--quiet", "-q", action="store_true", help="print only ids, or nothing")
    if m.name in FOLLOWABLE:
        sub.add_argument("--follow", "-f", action="store_true",
                         help="stream the job's log live; exit with the job's outcome")


def collect_params(m: Method, ns: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for p in m.params:
        value = getattr(ns, p.name, None)
        pos = getattr(ns, f"_pos_{p.name}", None)
        if pos is not None:
            if value is not None and value != pos:
                raise KitplayUsage(f"{p.name} given twice ({pos!r} and {value!r})")
            value = pos
        if value is not None:
            params[p.name] = value
    rest = getattr(ns, "_rest", None)
    if rest:
        if m.name != "launch":
            raise KitplayUsage("arguments after -- are only for `kitplay launch APP -- ARGS`")
        params["args"] = [*params.get("args", []), *rest]
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


# -- output ------------------------------------------------------------------------------------


def _fmt_time(t: float | None) -> str:
    if t is None:
        return "-"
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


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
    res = job.get("result") or {}
    if res.get("url"):
        bits.append(f"- {res['url']}")
    return "  ".join(bits)


def render(method: str, result: Any) -> str:
    if method == "jobs.list":
        rows = [[j["id"], j["kind"], j["status"], _fmt_time(j["created_at"]),
                 j["params"].get("app") or j["params"].get("name") or ""] for j in result["jobs"]]
        return _table(rows, ["ID", "KIND", "STATUS", "CREATED", "APP"]) if rows else "no jobs"
    if method == "templates.list":
        rows = [[t["name"], t["type"], t["display_name"], t["description"][:60]]
                for t in result["templates"]]
        return f"toolchain: {result['toolchain']['kind']}\n" + _table(
            rows, ["NAME", "TYPE", "DISPLAY NAME", "DESCRIPTION"])
    if method == "apps.list":
        rows = [[a["name"], a["type"], a.get("display_name") or "", a.get("version") or "",
                 a.get("parent") or "", "yes" if a.get("built") else "no"]
                for a in result["apps"]]
        return _table(rows, ["NAME", "TYPE", "DISPLAY NAME", "VERSION", "OF", "BUILT"]) \
            if rows else "no apps yet"
    if method == "sessions.list":
        rows = [[s["job_id"], s["app"], s["display"], s["url"]] for s in result["sessions"]]
        return _table(rows, ["JOB", "APP", "DISPLAY", "URL"]) if rows else "no display sessions"
    if method == "daemon.status":
        lines = [f"{k}: {v}" for k, v in result.items() if not isinstance(v, dict)]
        lines.append("toolchain: " + ", ".join(f"{k}={v}" for k, v in result["toolchain"].items()))
        lines.append("jobs: " + (", ".join(f"{k}={v}" for k, v in result["jobs"].items())
                                 or "none"))
        state = result.get("state") or {}
        if state.get("ok") is False:
            lines.append(f"state: NOT WRITABLE: {state.get('error')}")
        return "\n".join(lines)
    if method == "jobs.logs":
        return str(result["data"]).rstrip("\n")
    if isinstance(result, dict) and "job" in result:
        line = _job_line(result["job"])
        return line + ("  (timed out waiting)" if result.get("timed_out") else "")
    return json.dumps(result, indent=2)


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


def follow(client: Client, job_id: str, offset: int, log_out: Any) -> dict[str, Any]:
    """Stream a job's log; show progress (a live line on a terminal); return the final job."""
    tty = sys.stderr.isatty()
    last_progress = None
    final: dict[str, Any] = {}
    for note in client.follow(job_id, offset):
        params = note["params"]
        if note["method"] == "jobs.output":
            if tty and last_progress:
                sys.stderr.write("\r\x1b[K")
            log_out.write(params["data"])
            log_out.flush()
            if tty and last_progress:
                sys.stderr.write(last_progress)
                sys.stderr.flush()
        elif note["method"] == "jobs.state":
            job = params["job"]
            prog = job.get("progress")
            if prog and not params.get("final"):
                text = f"[{prog['step']}/{prog['steps']}] {prog['message']}"
                if text != last_progress:
                    if tty:
                        sys.stderr.write("\r\x1b[K" + text)
                    else:
                        sys.stderr.write(f"kitplay: progress {text}\n")
                    sys.stderr.flush()
                    last_progress = text
            if params.get("final"):
                if tty and last_progress:
                    sys.stderr.write("\r\x1b[K")
                final = job
    return final


def open_url(ns: argparse.Namespace) -> int:
    """Mint a one-time page URL through the running bridge (the master token stays here)."""
    import urllib.error
    import urllib.request

    sock = ns.socket or default_socket_path()
    path = bridge_info_path(Path(sock))
    try:
        check_private_file(path)  # another user's bridge.json would send us to their port
        info = json.loads(path.read_text())
    except PermissionError as e:
        print(f"kitplay: refusing {path}: {e}", file=sys.stderr)
        return 3
    except (OSError, ValueError):
        print(f"kitplay: no bridge is running ({path} not found); start it with "
              "`kitplay-bridge --with-daemon` (or `kitplay-bridge` beside a running kitplayd)",
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
            url = json.loads(resp.read())["url"]
    except (OSError, ValueError, KeyError) as e:
        print(f"kitplay: the bridge at {info['url']} did not give a login URL ({e}); is it "
              "still running? (`kitplay-bridge --with-daemon` starts one)", file=sys.stderr)
        return 3
    print(url)
    if ns.browser:
        import webbrowser

        webbrowser.open(url)
    return 0


def run(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    rest: list[str] = []
    if "--" in args:
        cut = args.index("--")
        args, rest = args[:cut], args[cut + 1:]
    word = command_word(args)
    known = word == "open" or any(m.cli_words[0] == word for m in METHODS.values())
    parser = build_parser(word if known else None)
    ns = parser.parse_args(args)
    ns._rest = rest
    if ns._method is None:
        return open_url(ns)
    m = METHODS[ns._method]
    try:
        params = collect_params(m, ns)
    except KitplayUsage as e:
        parser.error(str(e))
    try:
        with Client.connect(ns.socket, timeout=None) as client:
            result = client.call(m.name, params)
            out = sys.stdout
            if ns.json:
                out.write(json.dumps(result) + "\n")
            elif ns.quiet:
                q = quiet(m.name, result)
                if q:
                    out.write(q + "\n")
            elif not getattr(ns, "follow", False) or m.name != "jobs.logs":
                out.write(render(m.name, result) + "\n")
            out.flush()
            job = result.get("job") if isinstance(result, dict) else None
            if getattr(ns, "follow", False):
                job_id = str(params.get("job_id") or (job or {}).get("id"))
                offset = params.get("offset", 0) if m.name == "jobs.logs" else 0
                log_out = sys.stderr if ns.json else sys.stdout
                try:
                    job = follow(client, job_id, offset, log_out)
                except KeyboardInterrupt:
                    print(f"\nkitplay: stopped following; the job keeps running "
                          f"(`kitplay jobs cancel {job_id}` stops it)", file=sys.stderr)
                    return 130
                if not ns.json and not ns.quiet:
                    print(_job_line(job), file=sys.stderr)
            if m.name in ("jobs.wait",) or getattr(ns, "follow", False):
                if job and job.get("status") in JOB_FAILED:
                    return EXIT_JOB_FAILED
                if m.name == "jobs.wait" and result.get("timed_out"):
                    return EXIT_JOB_FAILED
            return EXIT_OK
    except DaemonUnreachable as e:
        print(f"kitplay: {e.message}", file=sys.stderr)
        return e.exit_code
    except KitplayError as e:
        print(f"kitplay: error {e.code}: {e.message}", file=sys.stderr)
        return e.exit_code
    except BrokenPipeError:
        return EXIT_OK


def main(argv: list[str] | None = None) -> None:
    sys.exit(run(argv))


if __name__ == "__main__":
    main()
