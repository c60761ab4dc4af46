"""A new tab joins the sign-in of an open tab of the same origin; nothing else can.

The page keeps its session in its own tab's sessionStorage (no cookie). A tab opened without
a login code asks the open tabs over a BroadcastChannel: its request carries a random id and
an ephemeral ECDH public key, and a signed-in tab answers that id with the session sealed
(AES-GCM) under the key both derive. Here, in Debian's chromium:

- a second tab of the same origin joins, with no login code and no cookie, and keeps its
  session when the first tab closes;
- a page of another origin (another loopback port, as any local user can serve) can neither
  ask nor hear: the signed-in tab never sees its request, and hears nothing back;
- what crosses the channel never holds the session in clear, and a request with a bad key
  gets no answer.
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
from tests.helpers import wait_for

pytestmark = [pytest.mark.browser, needs_chromium]

SESSION = "sessionStorage.getItem('kitplay.session')"

# Another origin's page: it asks for the sign-in as the playground does (same channel name,
# a well-formed request with a real public key) and reports whatever it hears back.
ASK_JS = """
const heard = [];
const channel = new BroadcastChannel("kitplay.signin");
channel.onmessage = (e) => heard.push(e.data);
(async () => {
  const pair = await crypto.subtle.generateKey({name: "ECDH", namedCurve: "P-256"}, false,
                                               ["deriveKey"]);
  const key = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  channel.postMessage({type: "join", id: "from-elsewhere", key});
  window.report = () => fetch("/report", {method: "POST", body: JSON.stringify(
    heard.map((m) => ({type: m.type, id: m.id})))});
  await fetch("/asked", {method: "POST", body: "{}"});
})();
"""


class Elsewhere:
    """A loopback server on another port whose page asks for the sign-in."""

    def __init__(self) -> None:
        self.asked = threading.Event()
        self.heard: list[dict[str, Any]] | None = None
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                body = ("<!doctype html><title>elsewhere</title><script>" + ASK_JS +
                        "</script>").encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length", "0"))
                data = json.loads(self.rfile.read(n))
                if self.path == "/asked":
                    outer.asked.set()
                else:
                    outer.heard = data
                self.send_response(204)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Elsewhere:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def signed_in_tab(context: Any, url: str) -> Any:
    from playwright.sync_api import expect

    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    tab.goto(url)
    expect(tab.locator("#daemon")).to_contain_text("kitplayd")
    return tab


def listen(tab: Any) -> None:
    """Record every message of the sign-in channel this tab sees (its own objects' aside)."""
    tab.evaluate("""() => { window.heard = [];
        new BroadcastChannel("kitplay.signin").onmessage = (e) => window.heard.push(e.data); }""")


def test_a_new_tab_joins_the_open_tabs_sign_in(browser: Any, bridge: Bridge) -> None:
    from playwright.sync_api import expect

    context = browser.new_context()
    first = signed_in_tab(context, bridge.login_url)
    session = first.evaluate(SESSION)
    listen(first)

    second = signed_in_tab(context, f"{bridge.page_url}/")  # no #code: it joins the first tab
    assert "code=" not in second.url
    assert second.evaluate(SESSION) == session
    assert context.cookies() == [] and second.evaluate("document.cookie") == ""
    expect(second.locator("#banner")).to_be_hidden()

    # What went over the channel: one request, one answer, and never the session in clear.
    heard = first.evaluate("""() => window.heard.map((m) => ({type: m.type, id: m.id,
        blob: JSON.stringify(Object.values(m).map((v) => v instanceof Uint8Array
            ? new TextDecoder().decode(v) : v))}))""")
    assert [m["type"] for m in heard] == ["join", "offer"], heard
    assert heard[0]["id"] == heard[1]["id"]
    assert not any(session in m["blob"] for m in heard)

    # Its session is its own tab's now: the first tab closing changes nothing, nor a reload.
    first.close()
    second.reload()
    expect(second.locator("#daemon")).to_contain_text("kitplayd")
    assert second.evaluate(SESSION) == session

    # A request with a bad key is not answered (and breaks nothing).
    second.evaluate("""() => new BroadcastChannel("kitplay.signin").postMessage(
        {type: "join", id: "bad", key: new Uint8Array([1, 2, 3])})""")
    third = signed_in_tab(context, f"{bridge.page_url}/")
    assert third.evaluate(SESSION) == session

    # Another browser profile has no open tab to join: signed out, saying how to sign in.
    alone = browser.new_context().new_page()
    alone.goto(f"{bridge.page_url}/")
    expect(alone.locator("#daemon")).to_contain_text("not signed in")
    expect(alone.locator("#banner")).to_contain_text("kitplay open")
    assert alone.evaluate(SESSION) is None


def test_another_origin_can_neither_ask_nor_hear(browser: Any, bridge: Bridge) -> None:
    from playwright.sync_api import expect

    context = browser.new_context()
    user = signed_in_tab(context, bridge.login_url)
    session = user.evaluate(SESSION)
    listen(user)

    with Elsewhere() as elsewhere:
        other = context.new_page()
        other.goto(elsewhere.url)
        assert elsewhere.asked.wait(30), "the other origin's page never asked"
        # A tab of our origin joins after it: the user's tab hears that request only.
        joined = signed_in_tab(context, f"{bridge.page_url}/")
        assert joined.evaluate(SESSION) == session
        heard = user.evaluate("window.heard.map((m) => m.id)")
        assert "from-elsewhere" not in heard and len(heard) == 2, heard
        other.evaluate("window.report()")
        wait_for(lambda: elsewhere.heard is not None, 30, "the other origin's report")
        assert elsewhere.heard == [], elsewhere.heard  # it heard no answer, nor our traffic

    # The same port under a loopback literal is another origin too: the bridge serves the
    # page on its own origin only, and there our own page finds no tab to join.
    there = context.new_page()
    resp = there.goto(f"http://127.0.0.1:{bridge.port}/")
    if resp is not None and resp.status == 200:
        expect(there.locator("#daemon")).to_contain_text("not signed in")
        assert there.evaluate(SESSION) is None
    else:  # the page's own origin only: the other address is refused outright
        assert resp is not None and resp.status in (403, 421), resp.status
