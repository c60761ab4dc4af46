"""``kitplay open`` never sends the master token to a port another user holds.

A bridge killed with SIGKILL (or by the OOM killer) leaves ``bridge.json`` behind, and its
master token stays the same for the next bridge (``bridge.token``).  Any local user can listen
on the freed 127.0.0.1 port; ``kitplay open`` must find out that the listener is not the
user's own before it sends ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Any

from tests.bridge_helpers import make_bridge_fixture  # noqa: F401
from tests.helpers import ROOT, Daemon
from tests.local_user import Attacker, attacker_fixture  # noqa: F401

# Listens on the port (of 127.0.0.1, or the address given), says so, and prints every request
# it receives.
CATCHER = """
import socket, sys
host = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1"
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, int(sys.argv[1]))); s.listen(8)
print("listening", flush=True)
while True:
    c, _ = s.accept()
    c.settimeout(5)
    try:
        print(c.recv(65536).decode(errors="replace"), flush=True)
        c.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\n{}")
    except OSError:
        pass
    c.close()
"""


def test_open_refuses_a_port_another_user_took_over(make_bridge: Any, daemon: Daemon,
                                                    attacker: Attacker) -> None:
    b = make_bridge(daemon)
    token, port = b.token, b.port
    assert b.proc is not None
    os.kill(b.proc.pid, signal.SIGKILL)  # bridge.json stays behind
    b.proc.wait(10)
    assert b.info_path.exists()
    catcher = attacker.popen(sys.executable, "-c", CATCHER, str(port), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    try:
        assert catcher.stdout is not None
        assert catcher.stdout.readline().strip() == b"listening", catcher.stderr
        r = subprocess.run([sys.executable, "-m", "kitplay.cli_client",
                            "--socket", str(daemon.socket),
                            "open"], env={**os.environ, "PYTHONPATH": str(ROOT)},
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 3, (r.stdout, r.stderr)
        assert f"uid {attacker.uid}" in r.stderr, r.stderr
    finally:
        catcher.kill()
        seen = catcher.communicate(timeout=10)[0].decode(errors="replace")
    assert token not in seen, "the master token went to another user's listener"


def _kitplay_open(d: Daemon) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kitplay.cli_client", "--socket",
                           str(d.socket), "open"], env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=60)


class Catchers:
    """Listeners of the other user on (host, port) pairs; what each received, once closed."""

    def __init__(self, attacker: Attacker, where: list[tuple[str, int]]) -> None:
        self.procs = [attacker.popen(sys.executable, "-c", CATCHER, str(port), host,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                      for host, port in where]
        for p in self.procs:
            assert p.stdout is not None
            line = p.stdout.readline()
            assert line.strip() == b"listening", (line, p.stderr.read() if p.stderr else "")

    def close(self) -> str:
        seen = ""
        for p in self.procs:
            p.kill()
            seen += p.communicate(timeout=10)[0].decode(errors="replace")
        return seen


def test_open_checks_the_exact_addresses_the_bridge_bound(make_bridge: Any, daemon: Daemon,
                                                          attacker: Attacker) -> None:
    """Another user's listener on the same port of another address (127.0.0.2, or ::1 when
    the bridge did not bind it) is nothing to refuse, and gets nothing."""
    b = make_bridge(daemon)  # 127.0.0.1 and ::1
    catchers = Catchers(attacker, [("127.0.0.2", b.port)])
    try:
        r = _kitplay_open(daemon)
        assert r.returncode == 0 and r.stdout.startswith(b.page_url + "/#code="), r.stderr
    finally:
        assert catchers.close() == ""
    b.stop()
    b = make_bridge(daemon, bind="127.0.0.2:0")  # an address of its own: no ::1 then
    assert json.loads(b.info_path.read_text())["listen"] == [f"127.0.0.2:{b.port}"]
    catchers = Catchers(attacker, [("127.0.0.1", b.port), ("::1", b.port)])
    try:
        r = _kitplay_open(daemon)
        assert r.returncode == 0 and r.stdout.startswith(f"http://127.0.0.2:{b.port}/#code="), \
            r.stderr
    finally:
        assert catchers.close() == ""


def test_open_refuses_when_any_bound_address_changed_hands(make_bridge: Any, daemon: Daemon,
                                                           attacker: Attacker) -> None:
    """The bridge was killed: another user took [::1]:PORT (where browsers go first for the
    page) or the wildcard; nothing listens on 127.0.0.1. kitplay open sends nothing."""
    b = make_bridge(daemon)
    token, port = b.token, b.port
    assert b.proc is not None
    os.kill(b.proc.pid, signal.SIGKILL)
    b.proc.wait(10)
    for where in ([("::1", port)], [("0.0.0.0", port)], [("::", port)]):
        catchers = Catchers(attacker, where)
        try:
            r = _kitplay_open(daemon)
            assert r.returncode == 3, (where, r.stdout, r.stderr)
            want = f"nothing listens on 127.0.0.1:{port}" if where[0][0] == "::1" else \
                f"held by uid {attacker.uid}"
            assert want in r.stderr, (where, r.stderr)
        finally:
            assert token not in catchers.close()


def test_bridge_will_not_start_when_another_user_holds_its_port_on_ipv6(
        daemon: Daemon, attacker: Attacker) -> None:
    """Browsers try [::1]:PORT first for the page's *.localhost name: a bridge holding only
    127.0.0.1:PORT would send the page's sign-in to whoever holds [::1]:PORT."""
    import socket

    with socket.socket() as probe:  # a port free on 127.0.0.1
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    catchers = Catchers(attacker, [("::1", port)])
    try:
        r = subprocess.run([sys.executable, "-m", "kitplay.bridge", "--socket",
                            str(daemon.socket), "--bind", f"127.0.0.1:{port}", "--config",
                            str(daemon.config)], env={**os.environ, "PYTHONPATH": str(ROOT)},
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 1, (r.stdout, r.stderr)
        assert f"cannot bind [::1]:{port}" in r.stderr and f"uid {attacker.uid}" in r.stderr, \
            r.stderr
        assert "#code=" not in r.stdout
    finally:
        assert catchers.close() == ""
