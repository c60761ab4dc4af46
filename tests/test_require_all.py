"""KITPLAY_REQUIRE_ALL=1 (set by .ci/run) turns every skip into a failure and fails a run that
leaves files of ours in /tmp; unset, skips skip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT

SAMPLE = '''
import pytest

def test_runs():
    pass

@pytest.mark.skipif(True, reason="tool X is missing")
def test_marked():
    pass

def test_skips_inside():
    pytest.skip("no Y here")

@pytest.mark.xfail(reason="known", strict=True)
def test_expected_failure():
    assert False
'''


def run_sample(tmp_path: Path, require_all: str | None,
               sample: str = SAMPLE) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_sample.py").write_text(sample)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("KITPLAY_REQUIRE_ALL", None)
    if require_all is not None:
        env["KITPLAY_REQUIRE_ALL"] = require_all
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.require_all", "-p", "no:cacheprovider",
         "-q", "-rA", "-s", "test_sample.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_skips_fail_when_required(tmp_path: Path) -> None:
    r = run_sample(tmp_path, "1")
    assert r.returncode == 1, r.stdout
    assert "skipped, and KITPLAY_REQUIRE_ALL is set: Skipped: tool X is missing" in r.stdout
    assert "skipped, and KITPLAY_REQUIRE_ALL is set: Skipped: no Y here" in r.stdout
    assert "1 passed" in r.stdout and "1 xfailed" in r.stdout and "skipped" not in \
        r.stdout.splitlines()[-1]


def test_skips_skip_otherwise(tmp_path: Path) -> None:
    for value in (None, "0"):
        r = run_sample(tmp_path, value)
        assert r.returncode == 0, r.stdout
        assert "1 passed, 2 skipped, 1 xfailed" in r.stdout


LEAKY = """
import tempfile

def test_leaves_a_directory():
    print("LEFT", tempfile.mkdtemp(prefix="kp-leak-", dir="/tmp"))
"""


def test_a_run_that_leaves_files_in_tmp_fails(tmp_path: Path) -> None:
    r = run_sample(tmp_path, "1", LEAKY)
    left = [line.split()[-1] for line in r.stdout.splitlines() if line.startswith("LEFT ")]
    for path in left:
        os.rmdir(path)
    assert len(left) == 1
    assert r.returncode == 1, r.stdout
    assert f"the tests left 1 entries in temporary directories: {left[0]}" in r.stdout
