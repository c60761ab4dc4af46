"""Bridge figures in one run: ``GET /api/jobs/<id>`` p50 beside the socket's ``jobs.get`` p50,
and a 100 MB log through ``WS /api/stream/<id>`` in MB/s.

Run: ``python -m bench.bridge_request [--requests N] [--megabytes M]``. A real daemon and a
real bridge are started in a temporary directory; both clients keep one connection open and
call sequentially.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import time

import trio

from tests.bridge_helpers import Bridge, big_log_job
from tests.helpers import Daemon


def p50_us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


def socket_jobs_get(d: Daemon, job_id: str, n: int) -> list[float]:
    out = []
    with d.client() as c:
        for _ in range(n // 10):
            c.call("jobs.get", {"job_id": job_id})
        for _ in range(n):
            t = time.perf_counter()
            c.call("jobs.get", {"job_id": job_id})
            out.append(time.perf_counter() - t)
    return out


def rest_jobs_get(b: Bridge, job_id: str, n: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", b.port)
    headers = {"Authorization": f"Bearer {b.token}"}
    out = []
    try:
        for i in range(n + n // 10):
            t = time.perf_counter()
            conn.request("GET", f"/api/jobs/{job_id}", headers=headers)
            r = conn.getresponse()
            body = r.read()
            dt = time.perf_counter() - t
            assert r.status == 200, body
            if i >= n // 10:
                out.append(dt)
    finally:
        conn.close()
    return out


async def follow_ws(b: Bridge, job_id: str) -> tuple[int, float]:
    from trio_websocket import open_websocket_url

    url = b.ws_url(f"/api/stream/{job_id}")
    auth = [(b"Authorization", f"Bearer {b.token}".encode())]
    expect = 0
    t = time.perf_counter()
    async with open_websocket_url(url, extra_headers=auth, max_message_size=16 << 20) as ws:
        while True:
            msg = json.loads(await ws.get_message())
            if msg["type"] == "output":
                assert msg["offset"] == expect
                expect = msg["next_offset"]
            elif msg["type"] == "end":
                break
        stream = ws._stream
    await stream.aclose()
    return expect, time.perf_counter() - t


async def follow_socket(d: Daemon, job_id: str) -> tuple[int, float]:
    from kitplay.daemon.protocol.aclient import open_client

    expect = 0
    t = time.perf_counter()
    async with open_client(d.socket) as c, c.subscribe(job_id) as sub:
        async for method, params in sub:
            if method == "jobs.output":
                expect = params["next_offset"]
    return expect, time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--megabytes", type=int, default=100)
    p.add_argument("--runs", type=int, default=3)
    ns = p.parse_args()
    d = Daemon().start()
    try:
        b = Bridge(d.socket, "--rate-limit", "1000000", "--rate-burst", "1000000",
                   "--log-level", "warning").start()
        try:
            job = big_log_job(d, ns.megabytes)
            size = job["log_size"]
            sock = socket_jobs_get(d, job["id"], ns.requests)
            rest = rest_jobs_get(b, job["id"], ns.requests)
            sock2 = socket_jobs_get(d, job["id"], ns.requests)
            print(f"jobs.get over the socket   p50 {p50_us(sock + sock2):7.0f} us")
            print(f"GET /api/jobs/<id> (bridge) p50 {p50_us(rest):7.0f} us "
                  f"({p50_us(rest) / p50_us(sock + sock2):.1f}x)")
            ws_rates, sock_rates = [], []
            for _ in range(ns.runs):
                n, secs = trio.run(follow_ws, b, job["id"])
                assert n == size, (n, size)
                ws_rates.append(n / secs / 1e6)
                n, secs = trio.run(follow_socket, d, job["id"])
                assert n == size, (n, size)
                sock_rates.append(n / secs / 1e6)
            print(f"{size / 1e6:.0f} MB log via WebSocket      "
                  f"{statistics.median(ws_rates):7.0f} MB/s (median of {ns.runs})")
            print(f"{size / 1e6:.0f} MB log via socket follow  "
                  f"{statistics.median(sock_rates):7.0f} MB/s")
        finally:
            b.stop()
    finally:
        d.cleanup()


if __name__ == "__main__":
    main()
