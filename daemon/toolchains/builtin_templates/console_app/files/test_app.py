"""Self test for app.py. Run as a script: python test_app.py (exit status 0 = pass)."""

import contextlib
import io
import re
import sys
import unittest
from pathlib import Path

APP_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(APP_DIR))

import app  # noqa: E402


class MetadataTest(unittest.TestCase):
    def test_metadata_is_rendered(self):
        meta = app.load_metadata()
        for key in ("name", "display_name", "version"):
            self.assertTrue(meta[key], key)
            self.assertIsNone(re.search(r"\{\{\w+\}\}", meta[key]), f"unrendered placeholder in {key}")

    def test_greeting(self):
        meta = {"name": "x.y", "display_name": "My App", "version": "1.2.3"}
        self.assertEqual(app.greeting(meta), "Hello from My App 1.2.3")


class ParseArgsTest(unittest.TestCase):
    def test_defaults(self):
        args = app.parse_args([])
        self.assertEqual(args.lines, 0)
        self.assertEqual(args.sleep, 0.0)
        self.assertFalse(args.forever)
        self.assertEqual(args.exit_code, 0)
        self.assertEqual(args.extra, [])

    def test_options_and_extra_args(self):
        args = app.parse_args(["a", "--lines", "3", "b", "--sleep", "0.5",
                               "--exit-code", "4", "--headless", "--forever"])
        self.assertEqual(args.lines, 3)
        self.assertEqual(args.sleep, 0.5)
        self.assertTrue(args.forever)
        self.assertEqual(args.exit_code, 4)
        self.assertTrue(args.headless)
        self.assertEqual(args.extra, ["a", "b"])

    def test_rejects_negative_lines(self):
        with contextlib.redirect_stderr(io.StringIO()), self.assertRaises(SystemExit):
            app.parse_args(["--lines", "-1"])

    def test_numbered_lines(self):
        self.assertEqual(app.numbered_lines(3), ["line 1", "line 2", "line 3"])
        self.assertEqual(app.numbered_lines(0), [])


class MainTest(unittest.TestCase):
    def test_main_output_and_exit_code(self):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = app.main(["--lines", "2", "--exit-code", "3", "hello world"])
        lines = out.getvalue().splitlines()
        meta = app.load_metadata()
        self.assertEqual(code, 3)
        self.assertEqual(lines[0], app.greeting(meta))
        self.assertEqual(lines[1], "args: --lines 2 --exit-code 3 'hello world'")
        self.assertEqual(lines[2:], ["line 1", "line 2"])


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=2).result
    sys.exit(0 if result.wasSuccessful() else 1)
