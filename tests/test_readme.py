"""The README's first commands, .ci/run and constraints.txt agree with each other and the code.

- the README opens with exactly two commands (install + start, install + test), and the test
  command is exactly what .ci/run runs;
- .ci/run makes skips fail, installs with constraints.txt, runs ruff and mypy, has a limit;
- constraints.txt pins every dependency pyproject.toml names (runtime and [test]);
- the README states the default workspace and the state directory the code uses.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from kitplay.daemon.config import Config
from kitplay.daemon.protocol.paths import default_state_dir

from tests.helpers import ROOT

README = (ROOT / "README.md").read_text()
CI = (ROOT / ".ci" / "run").read_text()


def first_block() -> str:
    block = re.search(r"```sh\n(.*?)```", README, re.S)
    assert block and README.index(block.group(0)) < README.index("\n## "), "no commands on top"
    return block.group(1)


def first_commands() -> list[str]:
    return [line.split("  #")[0].strip() for line in first_block().strip().splitlines()
            if line.strip() and not line.startswith("#")]


def test_the_readme_opens_with_two_commands_and_ci_runs_the_second() -> None:
    install, test = first_commands()
    assert "kitplay-bridge --with-daemon" in install
    # The run and the test are visibly separate: each under its own comment, a blank line
    # between; the run's comment says it does not return, the test's that it stands alone.
    run_part, test_part = first_block().strip().split("\n\n")
    assert run_part.startswith("# Run") and "keeps running" in run_part
    assert test_part.startswith("# Test, on its own") and "does not return" in test_part
    test_command = test.split(" && ")[-1]
    ci_line = CI.split("# The README's test command, exactly:\n", 1)[1].splitlines()[0]
    assert ci_line == test_command
    assert "-c constraints.txt" in test  # the same tested versions as CI


def test_ci_installs_pinned_runs_linters_fails_skips_and_has_a_limit() -> None:
    assert "export KITPLAY_REQUIRE_ALL=1" in CI
    assert "-c constraints.txt" in CI
    assert re.search(r"^\.venv/bin/ruff check \.$", CI, re.M)
    assert re.search(r"^\.ci/mypy$", CI, re.M)
    assert "-p kitplay" in (ROOT / ".ci" / "mypy").read_text()
    assert re.search(r"exec timeout .*/\.ci/run\"", CI)
    for package in ("python3-venv", "python3-pip", "python3-tk", "xpra", "python3-pil",
                    "chromium"):
        assert re.search(rf"\s{re.escape(package)}\s", CI), package


def test_one_bench_duration() -> None:
    """The README and docs/bench.md give the same time for a full `python -m bench`."""
    bench = (ROOT / "docs" / "bench.md").read_text()
    in_bench = re.search(r"python -m bench +# full run, about (\w+ minutes?)", bench)
    in_readme = re.search(r"python -m bench` \(about (\w+ minutes?)", README)
    assert in_bench and in_readme
    assert in_readme.group(1) == in_bench.group(1)


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_constraints_pin_every_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]}
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"not an exact pin: {line}"
            pins[_name(name)] = version
    assert wanted <= set(pins), wanted - set(pins)


def test_the_readme_states_the_default_workspace_and_state(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("XDG_DATA_HOME", "XDG_STATE_HOME", "KITPLAY_STATE_DIR"):
        monkeypatch.delenv(var, raising=False)
    home = Path.home()
    assert f"~/{Config().workspace.relative_to(home)}" in README
    assert f"~/{default_state_dir().relative_to(home)}/" in README
    assert "pipx install" in README
