"""JUnit XML reports of ``test`` jobs, and ``kitplay test --junit FILE``.

The builtin toolchain runs each app's ``test_app.py`` through unittest with a JUnit XML
report (``daemon/toolchains/junit.py``); the job's result lists the reports (``junit``),
passed or failed; ``kitplay test --junit FILE`` waits for the job and copies the report out
(several apps' reports merged into one ``<testsuites>``).  Checked with the real templates'
tests and with hostile ones: failures, errors, skips, a subtest, control characters and a
script that does not even load.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.helpers import ROOT, Daemon, write_app

BAD_TESTS = '''
import unittest


class Bad(unittest.TestCase):
    def test_ok(self):
        pass

    def test_fails(self):
        self.assertEqual(1, 2, "one is not two \\x01\\x1b[31m")

    def test_errors(self):
        raise RuntimeError("boom <&>")

    @unittest.skip("not today")
    def test_skipped(self):
        pass

    def test_sub(self):
        for i in range(3):
            with self.subTest(i=i):
                self.assertLess(i, 2)


if __name__ == "__main__":
    unittest.main()
'''


def kitplay(d: Daemon, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KITPLAY_SOCKET": str(d.socket), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "kitplay.cli_client", *args], env=env,
                          capture_output=True, text=True, timeout=300, cwd=cwd)


def _create(d: Daemon, name: str) -> Path:
    job = d.call("templates.create", {"template": "console_app", "name": name})["job"]
    assert d.wait_job(job["id"])["status"] == "succeeded"
    return d.workspace / "source" / "apps" / name


def test_a_passing_app_writes_its_report_and_kitplay_copies_it(daemon: Daemon,
                                                               tmp_path: Path) -> None:
    _create(daemon, "my_company.junit")
    out = tmp_path / "report.xml"
    r = kitplay(daemon, "test", "my_company.junit", "--junit", str(out), "--follow")
    assert r.returncode == 0, r.stderr
    assert "Ran 7 tests" in r.stdout + r.stderr and "JUnit XML report written" in r.stderr
    root = ET.parse(out).getroot()
    assert root.tag == "testsuites" and root.get("tests") == "7"
    suite = root.find("testsuite")
    assert suite is not None and suite.get("name") == "my_company.junit"
    assert suite.get("failures") == suite.get("errors") == suite.get("skipped") == "0"
    names = {c.get("name") for c in suite.iter("testcase")}
    assert "test_greeting" in names and len(names) == 7
    job = daemon.call("jobs.list", {"kind": "test", "limit": 1})["jobs"][0]
    report = daemon.workspace / "_build" / "tests" / "my_company.junit.junit.xml"
    assert job["result"]["junit"] == [str(report)]
    assert report.read_bytes() == out.read_bytes()


def test_failures_errors_skips_and_control_characters(daemon: Daemon, tmp_path: Path) -> None:
    app = _create(daemon, "my_company.bad")
    (app / "test_app.py").write_text(BAD_TESTS)
    out = tmp_path / "bad.xml"
    r = kitplay(daemon, "test", "my_company.bad", "--junit", str(out), "--json")
    assert r.returncode == 1, r.stderr  # the job failed; the report is still there
    job = daemon.call("jobs.list", {"kind": "test", "limit": 1})["jobs"][0]
    assert job["status"] == "failed" and len(job["result"]["junit"]) == 1
    suite = ET.parse(out).getroot().find("testsuite")  # parses: the XML is well formed
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"),
            suite.get("skipped")) == ("5", "2", "1", "1")  # test_sub: its failing subtest
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    failure = cases["test_fails"].find("failure")
    assert failure is not None and "one is not two \\x01\\x1b[31m" in (failure.text or "")
    error = cases["test_errors"].find("error")
    assert error is not None and error.get("type") == "RuntimeError"
    assert error.get("message") == "boom <&>"
    skipped = cases["test_skipped"].find("skipped")
    assert skipped is not None and skipped.get("message") == "not today"
    assert any("i=2" in (n or "") for n in cases)  # the failing subtest has its own case

    # A script that does not load: one error case, the job fails, the report says why.
    (app / "test_app.py").write_text("import no_such_module_here\n")
    r = kitplay(daemon, "test", "my_company.bad", "--junit", str(out))
    assert r.returncode == 1
    case = ET.parse(out).getroot().find("testsuite/testcase")
    assert case is not None and case.get("name") == "load"
    err = case.find("error")
    assert err is not None and err.get("type") == "ModuleNotFoundError"


def test_several_apps_merge_and_a_custom_runner_may_write_one(daemon: Daemon,
                                                             tmp_path: Path) -> None:
    _create(daemon, "my_company.one")
    _create(daemon, "my_company.two")
    out = tmp_path / "all.xml"
    r = kitplay(daemon, "test", "--junit", str(out))
    assert r.returncode == 0, r.stderr
    root = ET.parse(out).getroot()
    assert root.get("tests") == "14"
    assert sorted(s.get("name") or "" for s in root.iter("testsuite")) == [
        "my_company.one", "my_company.two"]

    # An app with its own [test] argv gets the report's path in KITPLAY_JUNIT_XML.
    writes = ("import os, pathlib; p = pathlib.Path(os.environ['KITPLAY_JUNIT_XML']); "
              "p.parent.mkdir(parents=True, exist_ok=True); p.write_text("
              "'<testsuites tests=\"1\"><testsuite name=\"own\" tests=\"1\"><testcase "
              "name=\"t\"/></testsuite></testsuites>')")
    d = write_app(daemon.workspace, "t.own")
    argv = json.dumps(["{python}", "-c", writes])  # a TOML array of basic strings, too
    with open(d / "kitapp.toml", "a") as f:
        f.write(f"\n[test]\nargv = {argv}\n")
    r = kitplay(daemon, "test", "t.own", "--junit", str(out))
    assert r.returncode == 0, r.stderr
    assert ET.parse(out).getroot().find("testsuite").get("name") == "own"  # type: ignore[union-attr]
    # One that writes none: the job passes, kitplay says there is no report (exit 1).
    silent = write_app(daemon.workspace, "t.silent")
    with open(silent / "kitapp.toml", "a") as f:
        f.write('\n[test]\nargv = ["{python}", "-c", "pass"]\n')
    r = kitplay(daemon, "test", "t.silent", "--junit", str(tmp_path / "none.xml"))
    assert r.returncode == 1 and "lists no JUnit XML report" in r.stderr
    assert not (tmp_path / "none.xml").exists()
    job = daemon.call("jobs.list", {"kind": "test", "limit": 1})["jobs"][0]
    assert job["status"] == "succeeded" and job["result"]["junit"] == []
