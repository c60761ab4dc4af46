"""Self test for app.py: starts the server on a free port in a thread and
checks both routes. Run as a script: python test_app.py (exit status 0 = pass)."""

import contextlib
import io
import json
import re
import sys
import threading
import unittest
import urllib.error
import urllib.request
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

    def test_parse_args(self):
        self.assertEqual(app.parse_args([]).port, 0)
        self.assertEqual(app.parse_args(["--port", "8080", "--headless"]).port, 8080)
        with contextlib.redirect_stderr(io.StringIO()), self.assertRaises(SystemExit):
            app.parse_args(["--port", "70000"])


class ServerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.meta = app.load_metadata()
        cls.server = app.make_server(0, cls.meta)
        cls.base = f"http://{app.HOST}:{cls.server.server_address[1]}"
        cls.thread = threading.Thread(target=cls.server.serve_forever, daemon=True)
        cls.thread.start()

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()
        cls.server.server_close()
        cls.thread.join(timeout=5)

    def get(self, path):
        log = io.StringIO()  # request log lines go to stdout; keep test output clean
        with contextlib.redirect_stdout(log), urllib.request.urlopen(self.base + path, timeout=5) as resp:
            return resp.status, resp.headers.get("Content-Type"), resp.read().decode("utf-8")

    def test_root_returns_app_info(self):
        status, ctype, body = self.get("/")
        self.assertEqual(status, 200)
        self.assertEqual(ctype, "application/json")
        self.assertEqual(json.loads(body), {
            "app": self.meta["name"],
            "display_name": self.meta["display_name"],
            "version": self.meta["version"],
        })

    def test_health(self):
        status, _, body = self.get("/health")
        self.assertEqual(status, 200)
        self.assertEqual(body.strip(), "ok")

    def test_unknown_path_is_404(self):
        with self.assertRaises(urllib.error.HTTPError) as ctx:
            self.get("/nope")
        self.assertEqual(ctx.exception.code, 404)


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=2).result
    sys.exit(0 if result.wasSuccessful() else 1)
