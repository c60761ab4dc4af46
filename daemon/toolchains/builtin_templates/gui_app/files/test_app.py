"""Self test for app.py (no display needed). Run as a script: python test_app.py."""

import contextlib
import io
import re
import signal
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
        self.assertIsNone(args.exit_after)
        self.assertFalse(args.headless)
        self.assertEqual(args.exit_code, 0)

    def test_options(self):
        args = app.parse_args(["--exit-after", "1.5", "--headless", "--exit-code", "2"])
        self.assertEqual(args.exit_after, 1.5)
        self.assertTrue(args.headless)
        self.assertEqual(args.exit_code, 2)

    def test_rejects_negative_exit_after(self):
        with contextlib.redirect_stderr(io.StringIO()), self.assertRaises(SystemExit):
            app.parse_args(["--exit-after", "-1"])


class HeadlessTest(unittest.TestCase):
    def test_headless_exit_after_uses_exit_code_without_tkinter(self):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = app.main(["--headless", "--exit-after", "0.1", "--exit-code", "3"])
        self.assertEqual(code, 3)
        lines = out.getvalue().splitlines()
        self.assertEqual(lines[0], app.greeting(app.load_metadata()))
        self.assertIn("running headless", lines)
        self.assertIsNone(sys.modules.get("tkinter"), "headless mode must not import tkinter")

    def test_signal_stops_headless_loop(self):
        stopper = app.Stopper()
        stopper(signal.SIGTERM, None)  # as if SIGTERM had arrived
        args = app.parse_args(["--headless"])
        with contextlib.redirect_stdout(io.StringIO()):
            app.run_headless(args, app.load_metadata(), stopper)  # returns at once
        self.assertEqual(stopper.signal_name, "SIGTERM")


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=2).result
    sys.exit(0 if result.wasSuccessful() else 1)
