"""The clients the bench times.  The same code drives kitplayd and its baseline.

- ``RawClient`` and ``time_raw``: the lightest client there is, and the one the headline
  ratios use: a blocking stdlib socket, one call at a time, the request encoded once, the
  answer read up to its newline and checked without a JSON decode (its id, no ``"error"``);
  against the echo server the answer is the request line itself.  Its own cost is a few
  microseconds, so it adds as little as possible to both sides of a ratio;
- ``time_calls``: sequential calls on one connection with ``daemon.protocol.client.Client``
  (the stdlib client the CLI uses; it encodes, decodes and matches ids on every call);
- ``throughput``: N concurrent connections from one trio process, each with one call in flight;
- ``XmlRpcUnix``: a minimal keep-alive XML-RPC client over a Unix socket for supervisord, doing
  the same client-side work as ``Client.call`` (encode, one write, read, decode).
"""

from __future__ import annotations

import itertools
import json
import socket
import statistics
import time
import xmlrpc.client
from pathlib import Path
from typing import Any

import trio
from kitplay.daemon.protocol.client import Client
from kitplay.daemon.protocol.framing import LineBuffer, dumps, request

__all__ = ["RawClient", "RawHttp", "XmlRpcUnix", "pct", "throughput", "time_calls", "time_http",
           "time_raw"]


def pct(samples: list[float], q: float) -> float:
    """The q-th percentile (0-100) of ``samples``."""
    if q == 50:
        return statistics.median(samples)
    s = sorted(samples)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


class RawClient:
    """A blocking stdlib socket client that sends pre-encoded frames, one call at a time."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(path))
        self._buf = b""

    def frame(self, method: str, params: Any = None, rid: int = 1) -> bytes:
        return dumps(request(method, params if params is not None else {}, rid))

    def roundtrip(self, frame: bytes) -> bytes:
        """Send one frame, return the next line (without its newline)."""
        self.sock.sendall(frame)
        buf = self._buf
        while (end := buf.find(b"\n")) < 0:
            data = self.sock.recv(1 << 20)
            if not data:
                raise ConnectionError("the server closed the connection")
            buf += data
        self._buf = buf[end + 1:]
        return buf[:end]

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def time_raw(client: RawClient, method: str, params: Any, n: int) -> list[float]:
    """Seconds per call for ``n`` sequential calls with the lightest client."""
    frame = client.frame(method, params, 7)
    rt = client.roundtrip
    # Checked once outside the clock, then cheaply inside it: the right id, no error.
    first = json.loads(rt(frame))
    if first.get("id") != 7 or "error" in first:
        raise RuntimeError(f"bad answer to {method}: {first!r}"[:300])
    out = []
    clock = time.perf_counter
    for _ in range(n):
        t = clock()
        line = rt(frame)
        out.append(clock() - t)
        if b'"error":{"code"' in line:
            raise RuntimeError(f"{method} failed: {line[:300]!r}")
    return out


def time_calls(client: Client, method: str, params: Any, n: int) -> list[float]:
    """Seconds per call for ``n`` sequential calls."""
    out = []
    call = client.call
    clock = time.perf_counter
    for _ in range(n):
        t = clock()
        call(method, params)
        out.append(clock() - t)
    return out


async def _worker(path: Path, method: str, params: Any, stop: float, counts: list[int],
                  i: int) -> None:
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    await sock.connect(str(path))
    stream = trio.SocketStream(sock)
    lines = LineBuffer()
    pending: list[bytes] = []
    ids = itertools.count(1)
    async with stream:
        while trio.current_time() < stop:
            rid = next(ids)
            await stream.send_all(dumps(request(method, params, rid)))
            while not pending:
                data = await stream.receive_some(65536)
                if not data:
                    raise RuntimeError("server closed the connection")
                pending.extend(lines.feed(data))
            msg = json.loads(pending.pop(0))
            if msg.get("id") != rid or "error" in msg:
                raise RuntimeError(f"bad answer: {msg!r}"[:300])
            counts[i] += 1


async def _throughput(path: Path, method: str, params: Any, clients: int,
                      seconds: float) -> float:
    counts = [0] * clients
    stop = trio.current_time() + seconds
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        for i in range(clients):
            nursery.start_soon(_worker, path, method, params, stop, counts, i)
    return sum(counts) / (trio.current_time() - start)


def throughput(path: Path, method: str, params: Any, clients: int, seconds: float) -> float:
    """Completed calls per second with ``clients`` connections busy for ``seconds``."""
    return trio.run(_throughput, path, method, params, clients, seconds)


class RawHttp:
    """A minimal keep-alive HTTP/1.1 GET client over TCP: one pre-encoded request, the header
    block read to its end, exactly ``Content-Length`` bytes of body; as light as ``RawClient``."""

    def __init__(self, port: int, headers: dict[str, str] | None = None) -> None:
        self.port = port
        self.headers = headers or {}
        self._connect()

    def _connect(self) -> None:
        self.sock = socket.create_connection(("127.0.0.1", self.port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = b""

    def request(self, path: str) -> bytes:
        head = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in self.headers.items())
        return (head + "\r\n").encode()

    def get(self, request: bytes) -> tuple[int, bytes]:
        try:
            return self._get(request)
        except ConnectionError:
            # Hypercorn closes a keep-alive connection after keep_alive_max_requests (1,000):
            # open another, as any HTTP client does.
            self.sock.close()
            self._connect()
            return self._get(request)

    def _get(self, request: bytes) -> tuple[int, bytes]:
        self.sock.sendall(request)
        buf = self._buf
        while (end := buf.find(b"\r\n\r\n")) < 0:
            buf += self._recv()
        head, buf = buf[:end], buf[end + 4:]
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(buf) < length:
            buf += self._recv()
        body, self._buf = buf[:length], buf[length:]
        return status, body

    def _recv(self) -> bytes:
        data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionError("the server closed the connection")
        return data

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawHttp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def time_http(client: RawHttp, path: str, n: int) -> list[float]:
    """Seconds per GET for ``n`` sequential requests; each must answer 200."""
    req = client.request(path)
    out = []
    clock = time.perf_counter
    for _ in range(n):
        t = clock()
        status, body = client.get(req)
        out.append(clock() - t)
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}: {body[:300]!r}")
    return out


class XmlRpcUnix:
    """``call(method, *args)`` over one persistent HTTP/1.1 connection to a Unix socket.

    As lean as ``Client.call``: encode, one ``sendall``, read the header block and exactly
    ``Content-Length`` bytes, decode.  (``http.client`` would add ~50 us of header parsing.)
    """

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(path))
        self._buf = b""

    def call(self, method: str, *args: Any) -> Any:
        body = xmlrpc.client.dumps(args, method).encode()
        self.sock.sendall(b"POST /RPC2 HTTP/1.1\r\nHost: localhost\r\n"
                          b"Content-Type: text/xml\r\nContent-Length: %d\r\n\r\n%s"
                          % (len(body), body))
        buf = self._buf
        while (end := buf.find(b"\r\n\r\n")) < 0:
            buf += self._recv()
        head, buf = buf[:end], buf[end + 4:]
        status = head.split(b" ", 2)[1]
        length = -1
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length < 0:
            raise RuntimeError("supervisord answered without Content-Length")
        while len(buf) < length:
            buf += self._recv()
        data, self._buf = buf[:length], buf[length:]
        if status != b"200":
            raise RuntimeError(f"supervisord answered HTTP {status.decode()}")
        return xmlrpc.client.loads(data)[0][0]

    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("supervisord closed the connection")
        return data

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> XmlRpcUnix:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
