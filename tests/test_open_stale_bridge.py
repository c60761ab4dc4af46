"""``kitplay open`` never sends the master token to a port another user holds.

A bridge killed with SIGKILL (or by the OOM killer) leaves ``bridge.json`` behind, and its
master token stays the same for the next bridge (``bridge.token``).  Any local user can listen
on the freed 127.0.0.1 port; ``kitplay open`` must find out that the listener is not the
user's own before it sends ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

from tests.bridge_helpers import make_bridge_fixture  # noqa: F401
from tests.helpers import ROOT, Daemon
from tests.local_user import Attacker, attacker_fixture  # noqa: F401

# Listens on the port, says so, and prints every request it receives.
CATCHER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8)
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
