"""Another local user cannot starve the bridge of connections.

The bridge caps its open connections (or it runs out of file descriptors). A real second user
keeps 2,000 half-sent requests open against it, opening a new one whenever one is closed;
the user's authenticated requests, each on a new connection, must still succeed (99% at
least). Near the cap only the user's connections are taken, and at the cap another's is
closed for the user's (bridge/serving.py); half-sent requests end after ``idle_timeout_s``.
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import threading
from typing import Any

from tests.bridge_helpers import make_bridge_fixture  # noqa: F401
from tests.helpers import Daemon, wait_for
from tests.local_user import Attacker, attacker_fixture  # noqa: F401

# Holds N half-sent requests open for SECONDS, opening another whenever one is closed;
# prints its counts as JSON lines.
HOLDER = r"""
import json, resource, selectors, socket, sys, time
port, n, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
head = b"GET /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nX-Pad: " % port  # never ended
sel = selectors.DefaultSelector()
stats = {"opened": 0, "refused": 0, "closed": 0}
end, last = time.monotonic() + seconds, 0.0
while time.monotonic() < end:
    while len(sel.get_map()) < n:
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        sel.register(s, selectors.EVENT_WRITE)
        stats["opened"] += 1
    for key, events in sel.select(timeout=0.1):
        s = key.fileobj
        if key.events == selectors.EVENT_WRITE:
            try:
                s.send(head)
                sel.modify(s, selectors.EVENT_READ)
                continue
            except OSError:
                data = b""
        else:
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
        stats["refused" if data.startswith(b"HTTP/1.1 503") else "closed"] += 1
        sel.unregister(s)
        s.close()
    if time.monotonic() - last > 0.5:
        last = time.monotonic()
        print(json.dumps({**stats, "open": len(sel.get_map())}), flush=True)
print(json.dumps({**stats, "done": True}), flush=True)
"""


class Holder:
    def __init__(self, attacker: Attacker, port: int, n: int, seconds: float) -> None:
        self.proc = attacker.popen("/usr/bin/python3", "-c", HOLDER, str(port), str(n),
                                   str(seconds), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE)
        self.last: dict[str, Any] = {}
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.last = json.loads(line)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.thread.join(10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def _request(port: int, token: str) -> int:
    """One authenticated request on a new connection: its status (0: no answer)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/api/v1/jobs", headers={"Authorization": f"Bearer {token}"})
        r = conn.getresponse()
        r.read()
        return r.status
    except OSError:
        return 0
    finally:
        conn.close()


def test_another_users_2000_half_sent_requests_leave_the_user_served(
        make_bridge: Any, daemon: Daemon, attacker: Attacker) -> None:
    b = make_bridge(daemon, "--rate-limit", "10000", "--rate-burst", "10000")
    holder = Holder(attacker, b.port, 2000, 120)
    try:
        # The cap is reached: the other user's connections are being refused.
        wait_for(lambda: holder.last.get("refused", 0) > 100, 60, "the bridge's cap reached")
        statuses = [_request(b.port, b.token) for _ in range(200)]
        state = dict(holder.last)
    finally:
        holder.stop()
    assert not state.get("done"), "the flood ended before the user's requests did"
    ok = statuses.count(200)
    assert ok >= 198, (ok, sorted(set(statuses)), state)
    # Afterwards, everything is served as before.
    wait_for(lambda: _request(b.port, b.token) == 200, 30, "service after the flood")


def _raw_request(s: socket.socket, port: int, token: str | None) -> int:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    s.sendall(f"GET /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")))
    while len(body) < length:
        body += s.recv(65536)
    return int(head.split()[1])


def _closed(s: socket.socket) -> bool:
    s.setblocking(False)
    try:
        return s.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        s.setblocking(True)


def test_at_the_cap_idle_connections_make_room_and_authenticated_ones_stay(
        make_bridge: Any, daemon: Daemon) -> None:
    b = make_bridge(daemon, "--max-connections", "50", "--idle-timeout", "120",
                    "--rate-limit", "10000", "--rate-burst", "10000")
    held: list[socket.socket] = []
    try:
        # The user's own idle connections fill the cap: a new request closes one of them.
        held = [socket.create_connection(("127.0.0.1", b.port), timeout=30) for _ in range(50)]
        wait_for(lambda: _request(b.port, b.token) == 200, 30, "the request served")
        wait_for(lambda: any(_closed(s) for s in held), 30, "an idle connection closed")
        for s in held:
            s.close()
        # The user's authenticated connections fill it: they stay, the newcomer gets 503.
        held = []
        for _ in range(50):
            s = socket.create_connection(("127.0.0.1", b.port), timeout=30)
            held.append(s)
            assert _raw_request(s, b.port, b.token) == 200

        def refused() -> bool:
            conn = http.client.HTTPConnection("127.0.0.1", b.port, timeout=30)
            try:
                conn.request("GET", "/api/v1/jobs", headers={"Authorization": "Bearer " + b.token})
                r = conn.getresponse()
                body = json.loads(r.read())
                return r.status == 503 and body["error"]["data"]["reason"] == "connections"
            finally:
                conn.close()

        wait_for(refused, 30, "a clear 503 with every connection the user's and signed in")
        assert not [s for s in held if _closed(s)]
        assert [_raw_request(s, b.port, b.token) for s in held[:5]] == [200] * 5
    finally:
        for s in held:
            s.close()


def test_half_sent_requests_end_after_the_idle_timeout(make_bridge: Any,
                                                       daemon: Daemon) -> None:
    b = make_bridge(daemon, "--idle-timeout", "1")
    s = socket.create_connection(("127.0.0.1", b.port), timeout=30)
    try:
        s.sendall(f"GET /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1:{b.port}\r\nX-Pad: ".encode())
        assert s.recv(4096) == b""  # closed by the bridge, not the socket's 30 s timeout
    finally:
        s.close()


def test_the_cap_chooses_whom_to_close() -> None:
    from kitplay.bridge.serving import Conn, ConnectionCap

    me, other = 1000, 1001
    cap = ConnectionCap(10, owner_uid=me, lookup=lambda sock: sock)  # "sockets" are uids
    assert cap.soft == 9

    def conn(n: int, uid: int, authenticated: bool = False) -> Conn:
        c = Conn(("127.0.0.1", n), uid)
        c.authenticated = authenticated
        return c

    for n, (uid, auth) in enumerate([(me, True), (other, False), (me, False), (other, True),
                                     (me, True), (me, False), (me, True), (me, True),
                                     (me, True)]):
        c = conn(n, uid, auth)
        assert cap.admit(c)
        cap.conns[c.peer] = c
    assert not cap.admit(conn(100, other))  # near the cap: not the user's
    first = conn(101, me)
    assert cap.admit(first)  # below the cap: the user's, taken
    cap.conns[first.peer] = first
    for n in range(102, 106):
        c = conn(n, me)
        assert cap.admit(c)
        cap.conns[c.peer] = c
    # Closed in order: the other user's unsigned (1), the other user's signed-in (3), then
    # the user's unsigned oldest first (2, 5): never the user's signed-in ones.
    assert cap.shed == 4
    left = {c.peer[1] for c in cap.conns.values()}
    assert not left & {1, 3, 2, 5}, left
    assert {0, 4, 6, 7, 8} <= left
    for n in (101, 102, 103, 104, 105):  # unsigned newcomers: closed before signed-in ones
        cap.conns[("127.0.0.1", n)].authenticated = True
    assert not cap.admit(conn(200, me))  # every connection is the user's and signed in
