"""``kitplay open --browser`` hands the browser a file only the user can read, never the code.

Any local user can read every process's command line (``/proc/*/cmdline``; no ``hidepid`` on
most desktops), and a cold browser keeps the URL it was started with in its arguments for its
whole life. So the browser gets the name of a 0600 redirect page in the user's 0700 runtime
directory (Jupyter's way), and the login code stays in that file.

A real second user polls every ``/proc/*/cmdline`` and ``/proc/*/environ`` while ``$BROWSER``
(a script that records what it got, then signs in as a browser would: it reads the file,
follows the redirect, loads the page and trades the code) opens the page. The other user sees
the browser's command line, and never a code.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from tests.bridge_helpers import Bridge, bridge_fixture, make_bridge_fixture  # noqa: F401
from tests.helpers import ROOT, Daemon, pid_alive, wait_for
from tests.local_user import Attacker, attacker_fixture  # noqa: F401

# The other user: everything new it can read in /proc, one JSON line each, until stdin closes.
POLLER = r"""
import json, os, select, sys, time
seen, scans, deadline = set(), 0, time.monotonic() + 300
while time.monotonic() < deadline and not select.select([sys.stdin], [], [], 0)[0]:
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        for what in ("cmdline", "environ"):
            try:
                with open(f"/proc/{pid}/{what}", "rb") as f:
                    data = f.read()
            except OSError:
                continue
            if data and (what, data) not in seen:
                seen.add((what, data))
                print(json.dumps([what, data.decode(errors="replace")]), flush=True)
    scans += 1
print(json.dumps(["scans", str(scans)]), flush=True)
"""

# $BROWSER: records its arguments and environment, returns at once (as a browser handing the
# page to its running instance does) and stays alive as the browser, signing in as one:
# read the file, follow its redirect to the page's origin (*.localhost is loopback: connect
# to 127.0.0.1 with that Host), load the page, trade the code.
BROWSER = r"""
import html, http.client, json, os, pathlib, re, sys, time, urllib.parse
record, url = pathlib.Path(sys.argv[1]), sys.argv[2]
if os.fork():
    sys.exit(0)
os.setsid()
null = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(null, fd)
(record / "got.json").write_text(json.dumps({"argv": sys.argv, "env": dict(os.environ),
                                             "pid": os.getpid()}))
page = pathlib.Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)).read_text()
target = html.unescape(re.search(r'http-equiv="refresh" content="0;url=([^"]+)"', page)[1])
u = urllib.parse.urlparse(target)
code = urllib.parse.parse_qs(u.fragment)["code"][0]
conn = http.client.HTTPConnection("127.0.0.1", u.port, timeout=30)
conn.request("GET", "/", headers={"Host": u.netloc})
r = conn.getresponse()
loaded = r.status, "kitplay playground" in r.read().decode()
conn.request("POST", "/api/v1/login", body=json.dumps({"code": code}),
             headers={"Host": u.netloc, "Origin": f"http://{u.netloc}",
                      "Content-Type": "application/json"})
r = conn.getresponse()
session = json.loads(r.read()).get("session")
(record / "result.json").write_text(json.dumps(
    {"target": target, "code": code, "loaded": loaded, "session": session}))
deadline = time.monotonic() + 120  # never outlives the test for long, whatever happens
while not (record / "close").exists() and time.monotonic() < deadline:
    time.sleep(0.05)
"""


class Lines:
    """A process's stdout, collected line by line in a thread."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.thread.start()

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line.decode(errors="replace"))


def test_open_browser_puts_no_code_on_any_command_line(bridge: Bridge, daemon: Daemon,
                                                       attacker: Attacker,
                                                       tmp_path: Path) -> None:
    record = tmp_path / "browser"
    record.mkdir()
    script = tmp_path / "browser.py"
    script.write_text(BROWSER)
    poller = attacker.popen("/usr/bin/python3", "-c", POLLER, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    seen = Lines(poller)
    try:
        wait_for(lambda: any('"scans"' not in x for x in seen.lines), 30, "the poller to run")
        env = {**os.environ, "PYTHONPATH": str(ROOT),
               "BROWSER": f"{sys.executable} {script} {record} %s"}
        env.pop("DISPLAY", None)
        r = subprocess.run([sys.executable, "-m", "kitplay.cli_client", "--socket",
                            str(daemon.socket), "open", "--browser"], env=env,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert "#code=" not in r.stdout + r.stderr
        result = json.loads(wait_for(lambda: _read(record / "result.json"), 60,
                                     "the browser to sign in"))
        got = json.loads((record / "got.json").read_text())
        redirect = Path(got["argv"][2].removeprefix("file://"))
        assert got["argv"][2] == redirect.as_uri() and str(redirect) in r.stderr
        # Signed in: the page loaded at its own origin, and the code bought a session.
        assert result["target"].startswith(bridge.page_url + "/#code=")
        assert result["loaded"] == [200, True] and result["session"], result
        assert bridge.get("/api/v1/jobs", headers={
            "Authorization": f"Bearer {result['session']}"}).status_code == 200
        # The redirect page is the user's alone, in a directory of the user's alone.
        st = redirect.lstat()
        assert st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) == 0o600
        assert stat.S_IMODE(redirect.parent.lstat().st_mode) == 0o700
        assert attacker.run("cat", str(redirect)).returncode != 0
        # The poller did see the browser's command line (the file's name, nothing more).
        wait_for(lambda: any(str(redirect) in x for x in seen.lines), 30,
                 "the poller to see the browser")
    finally:
        (record / "close").touch()
        browser = _read(record / "got.json")
        if browser:  # the stand-in browser ends before its directory goes
            pid = json.loads(browser)["pid"]
            wait_for(lambda: not pid_alive(pid), 30, "the stand-in browser to end")
        if poller.stdin is not None:
            poller.stdin.close()
        try:
            poller.wait(60)
        finally:
            poller.kill()
        seen.thread.join(30)
        if poller.stdout is not None:
            poller.stdout.close()
    everything = "".join(seen.lines)
    assert json.loads(seen.lines[-1])[0] == "scans" and int(json.loads(seen.lines[-1])[1]) > 1
    for secret in (result["code"], result["session"], bridge.token):
        assert secret not in everything, "the other user read a secret in /proc"
    assert "#code=" not in everything
    # The browser's environment held nothing of kitplay's either.
    assert not [k for k in got["env"] if "TOKEN" in k or k.startswith("KITPLAY_B")]


def test_open_without_browser_prints_the_url_for_the_terminal(bridge: Bridge,
                                                              daemon: Daemon) -> None:
    r = subprocess.run([sys.executable, "-m", "kitplay.cli_client", "--socket",
                        str(daemon.socket), "open"], env={**os.environ, "PYTHONPATH": str(ROOT)},
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith(bridge.page_url + "/#code="), r
    assert not list(daemon.socket.parent.glob("open-*.html"))  # no file without --browser


def _read(path: Path) -> Any:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None
