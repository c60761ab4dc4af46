"""docs/ci.md: its recipe runs exactly as written, and the example CI files run its commands.

The blocks after ``<!-- ci: NAME -->`` markers are run unchanged, each in ``bash -e -o
pipefail`` as GitHub Actions runs a step, in a fresh directory, with the variables of the
``env`` block and this checkout's ``kitplay`` first on PATH (the ``install`` block, a pipx
install of a wheel, is what test_wheel checks; it is not run here).  The daemon it starts is
its own: headless, no systemd, no display.  What it must leave: every job succeeded, a JUnit
XML report, the archive, each job's log and the daemon's.  A failing test fails the test step
with exit code 1, and the collect step still gathers the logs and the report.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

from tests.helpers import ROOT, kill_session_leftovers, short_tmpdir

DOC = (ROOT / "docs" / "ci.md").read_text()
STEPS = ("install", "env", "start", "pipeline", "collect", "stop")


def block(name: str) -> str:
    m = re.search(rf"<!-- ci: {name} -->\n```sh\n(.*?)```", DOC, re.DOTALL)
    assert m, f"no ci block {name!r} in docs/ci.md"
    return m.group(1)


def commands(name: str) -> list[str]:
    """The block's lines that are commands (not comments, not blank)."""
    return [ln.strip() for ln in block(name).splitlines()
            if ln.strip() and not ln.strip().startswith("#")]


def job_env(cwd: Path) -> dict[str, str]:
    bindir = cwd / ".bin"
    bindir.mkdir()
    for name in ("kitplay", "kitplayd"):  # this checkout's commands, as a pipx install's
        exe = bindir / name
        module = "kitplay.cli_client" if name == "kitplay" else "kitplay.daemon"
        exe.write_text(f"#!/bin/sh\nexec {sys.executable} -m {module} \"$@\"\n")
        exe.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KITPLAY_", "XDG_"))}
    env.update(PATH=f"{bindir}{os.pathsep}{env['PATH']}", PYTHONPATH=str(ROOT),
               HOME=str(cwd / "home"))
    for line in commands("env"):
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value
    return env


def run_step(name: str, cwd: Path, env: dict[str, str],
             text: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-e", "-o", "pipefail", "-c", text or block(name)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=600)


def test_the_recipe_runs_as_written() -> None:
    work = short_tmpdir("kpci")  # the socket path (relative, made absolute) must stay short
    env = job_env(work)
    try:
        for step in ("start", "pipeline", "collect"):
            r = run_step(step, work, env)
            assert r.returncode == 0, f"{step}:\n{r.stdout}\n{r.stderr}"
        art = work / "artifacts"
        records = {n: json.loads((art / f"{n}.json").read_text())["job"]
                   for n in ("create", "build", "test", "package")}
        assert {j["status"] for j in records.values()} == {"succeeded"}
        suite = ET.parse(art / "junit.xml").getroot().find("testsuite")
        assert suite is not None and suite.get("name") == "my_company.ci_app"
        assert int(suite.get("tests") or 0) > 0 and suite.get("failures") == "0"
        assert records["test"]["result"]["junit"]
        assert (art / "my_company.ci_app-0.1.0.zip").is_file()
        logs = {p.name for p in (art / "logs").iterdir()}
        assert {f"{j['id']}.log" for j in records.values()} | {"kitplayd.log"} <= logs
        # The daemon was the job's own: its socket under the job's directory, not systemd's.
        status = subprocess.run(["kitplay", "daemon", "status", "--json"], cwd=work, env=env,
                                capture_output=True, text=True, check=True)
        st = json.loads(status.stdout)
        assert st["socket"] == str(work / ".kitplay" / "run" / "kitplayd.sock")
        assert st["workspace"] == str(work / ".kitplay" / "workspace")
        pid = st["pid"]

        # A failing test fails the test step (exit 1); collect still gathers what there is.
        app = work / ".kitplay" / "workspace" / "source" / "apps" / "my_company.ci_app"
        with open(app / "test_app.py", "a") as f:
            f.write("\n\nclass Broken(unittest.TestCase):\n    def test_no(self):\n"
                    "        self.fail('broken on purpose')\n")
        test_line = next(ln for ln in commands("pipeline") if ln.startswith("kitplay test "))
        r = run_step("pipeline", work, env, text=test_line)
        assert r.returncode == 1, r.stderr
        assert "broken on purpose" in r.stderr  # the log, streamed to the CI log
        assert json.loads((art / "test.json").read_text())["job"]["status"] == "failed"
        failures = ET.parse(art / "junit.xml").getroot().find("testsuite")
        assert failures is not None and failures.get("failures") == "1"
        (art / "logs").rename(work / "old-logs")
        assert run_step("collect", work, env).returncode == 0
        assert len(list((art / "logs").iterdir())) == len(logs) + 1

        r = run_step("stop", work, env)
        assert r.returncode == 0 and "stopped" in r.stderr
        assert not Path(f"/proc/{pid}").exists()
    finally:
        subprocess.run(["kitplay", "daemon", "stop"], cwd=work, env=env, capture_output=True,
                       timeout=60)
        kill_session_leftovers(work / ".kitplay" / "state")
        shutil.rmtree(work, ignore_errors=True)


def _run_lines(doc: object) -> list[str]:
    """Every command line of a CI file: its `run:` / `script` entries, split into lines."""
    out: list[str] = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key in ("run", "script", "before_script", "after_script"):
                for entry in value if isinstance(value, list) else [value]:
                    out += [ln.strip() for ln in str(entry).splitlines() if ln.strip()]
            else:
                out += _run_lines(value)
    elif isinstance(doc, list):
        for item in doc:
            out += _run_lines(item)
    return out


def test_the_example_ci_files_run_the_recipes_commands() -> None:
    env = dict(line.removeprefix("export ").split("=", 1) for line in commands("env"))
    for name in ("github-actions.yml", "gitlab-ci.yml"):
        doc = yaml.safe_load((ROOT / "docs" / "ci" / name).read_text())
        lines = _run_lines(doc)
        # The recipe's commands, in order, none left out.
        recipe = [ln for step in ("install", "start", "pipeline", "collect", "stop")
                  for ln in commands(step)]
        at = 0
        for ln in recipe:
            assert ln in lines[at:], f"{name}: {ln!r} missing (or out of order)"
            at = lines.index(ln, at) + 1
        # The job's variables, as the env block sets them.
        text = json.dumps(doc)
        for key, value in env.items():
            assert f'"{key}": "{value}"' in text, (name, key)
    gh = yaml.safe_load((ROOT / "docs" / "ci" / "github-actions.yml").read_text())
    steps = gh["jobs"]["build"]["steps"]
    always = [s["name"] for s in steps if s.get("if") == "always()" and "name" in s]
    assert "Collect archives and logs" in always and "Stop kitplayd" in always
    gl = yaml.safe_load((ROOT / "docs" / "ci" / "gitlab-ci.yml").read_text())["kitplay"]
    assert gl["artifacts"]["when"] == "always"
    assert gl["artifacts"]["reports"]["junit"] == "artifacts/junit.xml"
