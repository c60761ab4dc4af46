"""The kitplay command, run as a real process against a real daemon."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from kitplay.daemon.protocol.errors import InvalidState
from kitplay.daemon.protocol.registry import METHODS

from tests.helpers import ROOT, Daemon, create_and_build, installed_command, wait_for, write_app


def kitplay(d: Daemon, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KITPLAY_SOCKET": str(d.socket),
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-m", "kitplay.cli_client", *args], env=env,
                          capture_output=True, text=True, timeout=120)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_import_path_has_no_trio_quart_hypercorn() -> None:
    code = ("import sys, kitplay.cli_client.main; "
            "print(sorted({m.split('.')[0] for m in sys.modules} "
            "& {'trio', 'quart', 'hypercorn', 'quart_trio', 'jsonrpcserver', 'psutil'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout
    assert out.strip() == "[]"


# What `kitplay daemon status` may import beyond the interpreter's own start: the fast path
# (cli_client/fast.py), with no json, re, argparse, pathlib, typing or registry.
FAST_PATH_MODULES = {
    "kitplay", "kitplay.cli_client", "kitplay.cli_client.main", "kitplay.cli_client.fast",
    "kitplay.daemon", "kitplay.daemon.protocol", "kitplay.daemon.protocol.version",
    "kitplay.daemon.protocol.errors", "kitplay.daemon.protocol.paths",
    "__future__", "_json", "_socket", "struct", "_struct",
}
SCRIPT = ROOT / "cli_client" / "bin" / "kitplay"


def _imported_after_site(argv: list[str], env: dict[str, str]) -> set[str]:
    proc = subprocess.run([sys.executable, "-X", "importtime", *argv], capture_output=True,
                          text=True, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("import time:")]
    after_site = next(i for i, ln in enumerate(lines) if ln.rstrip().endswith("| site"))
    return {ln.split("|")[2].strip() for ln in lines[after_site + 1:]}


def test_daemon_status_imports_only_what_it_needs(daemon: Daemon) -> None:
    """What the `kitplay` script imports for `kitplay daemon status`, after site, as ``python
    -X importtime`` lists it: exactly the fast path's modules.  ``re`` (which ``json`` and pip's
    entry-point wrappers import, with enum, functools and collections), argparse with gettext,
    pathlib with urllib.parse and ipaddress, typing and the registry each cost more than the
    rest of the command; ``socket`` and ``selectors`` come with the stdlib socket wrapper the
    client avoids."""
    env = {**os.environ, "KITPLAY_SOCKET": str(daemon.socket)}
    imported = _imported_after_site([str(SCRIPT), "daemon", "status"], env)
    assert imported <= FAST_PATH_MODULES, sorted(imported - FAST_PATH_MODULES)
    assert {"kitplay.cli_client.main", "kitplay.cli_client.fast"} <= imported
    heavy = {"re", "json", "enum", "argparse", "pathlib", "urllib.parse", "typing", "inspect",
             "dataclasses", "kitplay.daemon.protocol.registry", "kitplay.daemon.protocol.client",
             "socket", "selectors", "trio", "quart", "hypercorn", "jsonrpcserver", "psutil",
             "asyncio", "logging", "subprocess"}
    assert not imported & heavy
    # The installed command is that script (pip writes its interpreter over the first line).
    installed = installed_command("kitplay")
    assert installed and Path(installed).read_text().split("\n", 1)[1] == \
        SCRIPT.read_text().split("\n", 1)[1]


def test_the_fast_paths_json_agrees_with_the_json_module() -> None:
    import json

    from kitplay.cli_client.fast import dumps, loads

    value = {"a": [1, -2.5, 1e300, "x\u00e9\"\\\n\ud800", True, False, None, {}], "é": {"b": []}}
    assert json.loads(dumps(value)) == json.loads(json.dumps(value))
    text = json.dumps(value, ensure_ascii=False)
    assert loads(text) == json.loads(text)
    assert loads(" [1] \n") == [1]
    for bad in ("[1", "{}x", "NaN", ""):
        try:
            loads(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} was taken for JSON")


def test_every_method_has_a_subcommand() -> None:
    from kitplay.cli_client.main import build_parser

    parser = build_parser()
    for name, m in METHODS.items():
        if not m.has_command:
            continue
        ns = parser.parse_args([*m.cli_words, *(
            ["x" * 3] if any(p.positional and p.required for p in m.params) else [])])
        assert ns._method == name


def _strip(result: Any) -> Any:
    """Drop fields that change between two calls of the same method."""
    volatile = {"uptime_s", "log_size"}
    if isinstance(result, dict):
        return {k: _strip(v) for k, v in result.items() if k not in volatile}
    if isinstance(result, list):
        return [_strip(v) for v in result]
    return result


def test_json_output_equals_raw_socket_result_for_every_method(daemon: Daemon) -> None:
    name = create_and_build(daemon)
    done = daemon.call("launch", {"app": name, "args": ["--lines", "2"]})["job"]
    daemon.wait_job(done["id"])
    jid = done["id"]
    with daemon.client() as c:
        sub = c.call("jobs.subscribe", {"job_id": jid})
    calls: dict[str, tuple[list[str], dict[str, Any]]] = {
        "daemon.status": ([], {}),
        "rpc.discover": ([], {}),
        "templates.list": ([], {}),
        "templates.get": (["console_app"], {"name": "console_app"}),
        "templates.icon": (["service_app"], {"name": "service_app"}),
        "apps.list": ([], {}),
        "jobs.list": (["--kind", "launch", "--limit", "5"], {"kind": "launch", "limit": 5}),
        "jobs.get": ([jid], {"job_id": jid}),
        "jobs.wait": ([jid, "--timeout-s", "1"], {"job_id": jid, "timeout_s": 1}),
        "jobs.logs": ([jid, "--offset", "3", "--limit", "40"],
                      {"job_id": jid, "offset": 3, "limit": 40}),
        "sessions.list": ([], {}),
        "files.list": (["--app", name], {"app": name}),
        "files.read": ([f"source/apps/{name}/app.py"], {"path": f"source/apps/{name}/app.py"}),
    }
    for method, (args, params) in calls.items():
        proc = kitplay(daemon, *METHODS[method].cli_words, *args, "--json", check=True)
        raw = daemon.call(method, params)
        assert _strip(json.loads(proc.stdout)) == _strip(raw), method
    # Methods that start or stop something: compare shapes of two fresh results.
    proc = kitplay(daemon, "launch", name, "--json", "--", "--lines", "1", check=True)
    via_cli = json.loads(proc.stdout)["job"]
    raw = daemon.call("launch", {"app": name, "args": ["--lines", "1"]})["job"]
    assert set(via_cli) == set(raw) and via_cli["params"] == raw["params"]
    for j in (via_cli, raw):
        daemon.wait_job(j["id"])
    for words, params in ((["test", name], {"app": name}), (["package", name], {"app": name})):
        proc = kitplay(daemon, *words, "--json", check=True)
        via_cli = json.loads(proc.stdout)["job"]
        raw = daemon.call(words[0], params)["job"]
        assert set(via_cli) == set(raw) and via_cli["params"] == raw["params"]
        assert daemon.wait_job(via_cli["id"])["result"] == daemon.wait_job(raw["id"])["result"]
    for words in (["apps", "modify", name, "--layers", "x"], ["package_container", name]):
        assert kitplay(daemon, *words).returncode == InvalidState.exit_code
    proc = kitplay(daemon, "jobs", "prune", "--keep", "1000", "--json", check=True)
    assert json.loads(proc.stdout) == daemon.call("jobs.prune", {"keep": 1000})
    # Subscriptions live on their connection: no command (--follow streams instead).
    assert kitplay(daemon, "jobs", "subscribe", jid).returncode == 2
    assert "subscription" in sub
    # Files and apps change the workspace: the CLI's result against a socket call's, on
    # different files (tests/test_files_cli.py has the human forms).
    app_dir = f"source/apps/{name}"
    for words, method, params in (
            (["files", "put", f"{app_dir}/a.txt", "--text", "a"], "files.write",
             {"path": f"{app_dir}/b.txt", "text": "a"}),
            (["files", "rm", f"{app_dir}/a.txt"], "files.delete", {"path": f"{app_dir}/b.txt"}),
            (["apps", "clean", name], "apps.clean", {"app": name})):
        via_cli = json.loads(kitplay(daemon, *words, "--json", check=True).stdout)
        assert set(via_cli) == set(daemon.call(method, params)), method
    proc = kitplay(daemon, "apps", "delete", name, "--confirm", name, "--json", check=True)
    assert json.loads(proc.stdout)["removed"] == [f"source/apps/{name}"]
    # Every method was exercised here or above.
    covered = set(calls) | {"launch", "jobs.subscribe", "templates.create", "build",
                            "jobs.cancel", "jobs.unsubscribe", "test", "package", "apps.modify",
                            "package_container", "files.write", "files.delete", "apps.clean",
                            "apps.delete", "jobs.prune"}
    assert covered == set(METHODS)


def test_create_build_launch_follow_and_exit_codes(daemon: Daemon) -> None:
    p = kitplay(daemon, "templates", "create", "console_app", "my_company.cli",
                "--display-name", "CLI App", "--follow")
    assert p.returncode == 0, p.stderr
    assert "created my_company.cli (CLI App 0.1.0)" in p.stdout
    # (Progress lines, piped and on a terminal: test_cli_commands, with a build held at a step.)
    p = kitplay(daemon, "build", "--follow")
    assert p.returncode == 0 and "Ran " in p.stdout and "job succeeded" in p.stdout
    p = kitplay(daemon, "launch", "my_company.cli", "--follow", "--", "--lines", "2",
                "--exit-code", "3")
    assert p.returncode == 1
    assert "line 2" in p.stdout and "exited with code 3" in p.stderr
    p = kitplay(daemon, "launch", "my_company.cli", "-q", "--", "--forever")
    job_id = p.stdout.strip()
    assert p.returncode == 0 and job_id
    wait_for(lambda: "tick 1" in daemon.job_log(job_id), what="app running")
    p = kitplay(daemon, "jobs", "cancel", job_id, "--grace-s", "5", "--json")
    assert json.loads(p.stdout)["job"]["status"] == "cancelled"
    p = kitplay(daemon, "jobs", "logs", job_id, "--follow")
    assert p.returncode == 1 and "Hello from CLI App" in p.stdout


def test_error_exit_codes_and_messages(daemon: Daemon) -> None:
    p = kitplay(daemon, "jobs", "get", "no-such-job")
    assert p.returncode == 4 and "kitplay jobs list" in p.stderr
    p = kitplay(daemon, "templates", "create", "console_app", "Bad.Name")
    assert p.returncode == 2 and "lowercase" in p.stderr
    p = kitplay(daemon, "launch")
    assert p.returncode == 2 and "needs APP" in p.stderr
    p = kitplay(daemon, "jobs", "list", "--limit", "zero")
    assert p.returncode == 2
    write_app(daemon.workspace, "t.done")
    job = daemon.call("launch", {"app": "t.done"})["job"]
    daemon.wait_job(job["id"])
    p = kitplay(daemon, "jobs", "cancel", job["id"])
    assert p.returncode == 5 and "already ended" in p.stderr
    p = kitplay(daemon, "build", "--workspace", "relative/missing")
    assert p.returncode == 4 and "does not exist" in p.stderr


def test_unreachable_daemon_exit_3(tmp_path: Any) -> None:
    env = {**os.environ, "KITPLAY_SOCKET": str(tmp_path / "none.sock"),
           "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-m", "kitplay.cli_client", "daemon", "status"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 3 and "kitplayd" in p.stderr and "start it" in p.stderr


def test_quiet_prints_only_ids(daemon: Daemon) -> None:
    write_app(daemon.workspace, "t.q")
    p = kitplay(daemon, "launch", "t.q", "-q", check=True)
    job_id = p.stdout.strip()
    assert daemon.call("jobs.get", [job_id])["job"]["id"] == job_id
    daemon.wait_job(job_id)
    assert kitplay(daemon, "jobs", "list", "-q", check=True).stdout.split() == [job_id]
    assert kitplay(daemon, "daemon", "status", "-q", check=True).stdout == ""
