"""The bridge checks who serves the daemon socket before it sends anything.

Another user's program listening at the socket's path would otherwise receive the bridge's
calls (with whatever the page sends: app names, file contents) and answer them with anything
it likes. The fake daemon is run by a real second user; it counts the bytes it receives.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from tests.bridge_helpers import Bridge
from tests.helpers import short_tmpdir
from tests.local_user import Attacker, attacker_fixture  # noqa: F401

FAKE = """
import socket, sys
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(16)
print("ready", flush=True)
s.settimeout(60)
total, accepted = 0, 0
while accepted < int(sys.argv[2]):
    c, _ = s.accept()
    accepted += 1
    c.settimeout(3)
    try:
        while True:
            data = c.recv(65536)
            if not data:
                break
            total += len(data)
    except OSError:
        pass
    c.close()
print(accepted, total, flush=True)
"""


def test_bridge_refuses_another_users_daemon_and_sends_it_nothing(attacker: Attacker) -> None:
    base = short_tmpdir("kpfd")
    run = base / "run"
    os.chmod(base, 0o755)
    run.mkdir()
    os.chmod(run, 0o777)  # so the other user can put a socket there
    (base / "config.toml").write_text("")
    sock = run / "kitplayd.sock"
    fake = attacker.popen("/usr/bin/python3", "-c", FAKE, str(sock), "2",
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    bridge = Bridge(sock)
    try:
        assert fake.stdout is not None and fake.stdout.readline() == b"ready\n"
        bridge.start()
        r = bridge.get("/api/v1/daemon/status")
        assert r.status_code == 503, (r.status_code, r.text)
        err = r.json()["error"]
        assert f"uid {attacker.uid}" in err["message"] and err["data"]["reason"] == "peer", err
        r = bridge.post("/api/v1/build", {"app": "my_company.my_app"})
        assert r.status_code == 503, (r.status_code, r.text)
        out, errs = fake.communicate(timeout=60)
        assert out.split() == [b"2", b"0"], (out, errs)  # two connections, not one byte
    finally:
        bridge.stop()
        fake.kill()
        fake.wait()
        shutil.rmtree(base, ignore_errors=True)
