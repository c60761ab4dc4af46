"""Run an app's ``test_app.py`` through unittest and write a JUnit XML report beside its output.

``python -P -m kitplay.daemon.toolchains.junit REPORT.xml test_app.py``: what the builtin
toolchain's ``test`` job runs for an app with a ``test_app.py``.  The script is loaded as a
module (its directory first on ``sys.path``, as ``python test_app.py`` would put it), its
``unittest.TestCase`` classes are run by unittest's text runner with the same verbose output
the script's own ``unittest.main(verbosity=2)`` prints, and the outcome of each test is
written to ``REPORT.xml`` in the JUnit XML format GitHub Actions, GitLab CI and Jenkins read:
``<testsuites>`` holding one ``<testsuite>`` of ``<testcase>`` elements, each with a
``<failure>``, ``<error>`` or ``<skipped>`` child when it did not pass.  Exit status: 0 when
every test passed, 1 otherwise, 2 when the script could not be loaded.

Standard library only; it runs in the job's process, not in the daemon.
"""

from __future__ import annotations

import importlib.util
import os
import re
import socket
import sys
import time
import traceback
import unittest
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

__all__ = ["JUnitResult", "main", "write_report"]

# Characters XML 1.0 cannot hold (C0 controls but tab, newline and return; lone surrogates;
# U+FFFE and U+FFFF): a test's message may print anything.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _text(value: str) -> str:
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", value)


class JUnitResult(unittest.TextTestResult):
    """unittest's text result that also keeps each test's outcome and time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cases: list[dict[str, Any]] = []
        self._started: dict[str, float] = {}

    def startTest(self, test: unittest.TestCase) -> None:
        self._started[test.id()] = time.perf_counter()
        super().startTest(test)

    def _case(self, test: Any, outcome: str, detail: str = "", message: str = "",
              kind: str = "") -> None:
        tid = test.id()
        start = self._started.get(tid)
        classname, _, name = tid.rpartition(".")
        self.cases.append({"classname": classname or tid, "name": name or tid,
                           "time": time.perf_counter() - start if start else 0.0,
                           "outcome": outcome, "detail": detail, "message": message,
                           "type": kind})

    def _failed(self, test: Any, err: Any, outcome: str) -> None:
        exc_type, exc, _tb = err
        detail = "".join(traceback.format_exception(*err))
        self._case(test, outcome, detail,
                   str(exc).split("\n", 1)[0][:500], getattr(exc_type, "__name__", ""))

    def addSuccess(self, test: unittest.TestCase) -> None:
        super().addSuccess(test)
        self._case(test, "passed")

    def addFailure(self, test: unittest.TestCase, err: Any) -> None:
        super().addFailure(test, err)
        self._failed(test, err, "failure")

    def addError(self, test: unittest.TestCase, err: Any) -> None:
        super().addError(test, err)
        self._failed(test, err, "error")

    def addSkip(self, test: unittest.TestCase, reason: str) -> None:
        super().addSkip(test, reason)
        self._case(test, "skipped", message=reason)

    def addExpectedFailure(self, test: unittest.TestCase, err: Any) -> None:
        super().addExpectedFailure(test, err)
        self._case(test, "passed", message="expected failure")

    def addUnexpectedSuccess(self, test: unittest.TestCase) -> None:
        super().addUnexpectedSuccess(test)
        self._case(test, "failure", message="unexpected success (the test is marked "
                   "expectedFailure)", kind="UnexpectedSuccess")

    def addSubTest(self, test: unittest.TestCase, subtest: Any, err: Any) -> None:
        super().addSubTest(test, subtest, err)
        if err is not None:
            outcome = "failure" if issubclass(err[0], test.failureException) else "error"
            self._failed(subtest, err, outcome)


def write_report(path: Path, suite_name: str, cases: list[dict[str, Any]],
                 elapsed: float) -> None:
    """The JUnit XML report of ``cases``, written atomically (a temp file, then a rename)."""
    counts = {k: sum(1 for c in cases if c["outcome"] == k)
              for k in ("failure", "error", "skipped")}
    attrs = {"name": suite_name, "tests": str(len(cases)), "failures": str(counts["failure"]),
             "errors": str(counts["error"]), "skipped": str(counts["skipped"]),
             "time": f"{elapsed:.3f}"}
    root = ET.Element("testsuites", attrs)
    suite = ET.SubElement(root, "testsuite", {
        **attrs, "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "hostname": _text(socket.gethostname())})
    for c in cases:
        case = ET.SubElement(suite, "testcase", {
            "classname": _text(c["classname"]), "name": _text(c["name"]),
            "time": f"{c['time']:.3f}"})
        if c["outcome"] in ("failure", "error"):
            child = ET.SubElement(case, c["outcome"], {"message": _text(c["message"]),
                                                       "type": _text(c["type"])})
            child.text = _text(c["detail"])
        elif c["outcome"] == "skipped":
            ET.SubElement(case, "skipped", {"message": _text(c["message"])})
    ET.indent(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        ET.ElementTree(root).write(tmp, encoding="utf-8", xml_declaration=True)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        sys.stderr.write("usage: python -m kitplay.daemon.toolchains.junit REPORT.xml "
                         "test_app.py [ARGS...]\n")
        return 2
    report, script = Path(argv[0]).absolute(), Path(argv[1]).absolute()
    sys.argv = [str(script), *argv[2:]]
    sys.path.insert(0, str(script.parent))
    started = time.perf_counter()
    try:
        spec = importlib.util.spec_from_file_location("test_app", script)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {script}")
        module = importlib.util.module_from_spec(spec)
        sys.modules["test_app"] = module
        spec.loader.exec_module(module)
    except BaseException as e:  # the script itself is broken: say so in the report too
        if isinstance(e, KeyboardInterrupt):
            raise
        detail = traceback.format_exc()
        sys.stderr.write(detail)
        write_report(report, script.parent.name, [{
            "classname": script.stem, "name": "load", "time": time.perf_counter() - started,
            "outcome": "error", "detail": detail, "message": str(e)[:500],
            "type": type(e).__name__}], time.perf_counter() - started)
        return 2
    suite = unittest.defaultTestLoader.loadTestsFromModule(module)
    runner = unittest.TextTestRunner(verbosity=2, resultclass=JUnitResult)
    result = runner.run(suite)
    assert isinstance(result, JUnitResult)
    write_report(report, script.parent.name, result.cases, time.perf_counter() - started)
    sys.stderr.write(f"JUnit XML report: {report}\n")
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
