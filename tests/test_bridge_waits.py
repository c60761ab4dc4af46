"""Long ``jobs.wait`` calls through the real bridge do not block its other calls.

The bridge shares one daemon connection for its REST calls, and the daemon serves at most
``max_inflight_per_connection`` waiting calls per connection (64 by default, 4 here): more
waits than that on the shared connection would leave every other REST call waiting behind
them until a wait ended.
"""

from __future__ import annotations

import http.client
import json
import threading
from typing import Any

import httpx

from tests.bridge_helpers import Bridge, make_bridge_fixture  # noqa: F401
from tests.helpers import Daemon, write_app

LIMIT = 4
WAITS = 3 * LIMIT


def test_many_long_waits_leave_the_bridge_answering(make_daemon: type[Daemon],
                                                     make_bridge: Any) -> None:
    d = make_daemon(config=f"max_inflight_per_connection = {LIMIT}\n").start()
    b: Bridge = make_bridge(d, "--rate-limit", "10000", "--rate-burst", "10000")
    write_app(d.workspace, "my.sleeper", launch=["{python}", "-c", "import time; time.sleep(600)"])
    job = d.call("launch", {"app": "my.sleeper"})["job"]
    results: list[Any] = []
    sent = threading.Semaphore(0)

    def wait() -> None:
        c = http.client.HTTPConnection("127.0.0.1", b.port, timeout=120)
        try:
            c.request("GET", f"/api/jobs/{job['id']}/wait?timeout_s=120",
                      headers={"Authorization": f"Bearer {b.token}"})
            sent.release()  # the request is out: the bridge has it
            r = c.getresponse()
            results.append((r.status, json.loads(r.read())))
        finally:
            c.close()

    threads = [threading.Thread(target=wait) for _ in range(WAITS)]
    for t in threads:
        t.start()
    for _ in threads:
        assert sent.acquire(timeout=30)
    # Every wait is in flight: the bridge's other calls are still answered.
    with httpx.Client(base_url=b.url, timeout=30,
                      headers={"Authorization": f"Bearer {b.token}"}) as c:
        for _ in range(3):
            r = c.get("/api/daemon/status")
            assert r.status_code == 200, r.text
            r = c.get(f"/api/jobs/{job['id']}")
            assert r.status_code == 200 and r.json()["job"]["status"] == "running", r.text
    assert not results, results  # no wait has ended: they were all in flight
    d.call("jobs.cancel", {"job_id": job["id"], "grace_s": 5})
    for t in threads:
        t.join(60)
    assert len(results) == WAITS
    assert all(code == 200 and not body["timed_out"] and body["job"]["status"] == "cancelled"
               for code, body in results), results
