"""A raw, persistent NDJSON connection to a daemon socket, for protocol tests.

Unlike ``daemon.protocol.client.Client`` it hides nothing: it sends arbitrary bytes and
returns every message (responses and notifications) exactly as the daemon wrote it.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any


class RawConn:
    def __init__(self, path: Path | str, timeout: float = 30.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(str(path))
        except OSError:
            self.sock.close()
            raise
        self._buf = b""
        self.eof = False

    def __enter__(self) -> RawConn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, msg: Any) -> None:
        self.sock.sendall(json.dumps(msg).encode() + b"\n")

    def recv_line(self) -> bytes | None:
        """The next raw line, or None at EOF."""
        while b"\n" not in self._buf:
            try:
                data = self.sock.recv(1 << 20)
            except ConnectionResetError:
                data = b""
            if not data:
                self.eof = True
                return None
            self._buf += data
        line, self._buf = self._buf.split(b"\n", 1)
        return line

    def recv(self) -> Any:
        line = self.recv_line()
        if line is None:
            raise EOFError("the daemon closed the connection")
        return json.loads(line)

    def recv_until(self, pred: Callable[[Any], bool]) -> tuple[Any, list[Any]]:
        """Read until a message matches ``pred``; return it and the messages before it."""
        before: list[Any] = []
        while True:
            msg = self.recv()
            if pred(msg):
                return msg, before
            before.append(msg)

    def request(self, method: str, params: Any = None, id: Any = 1) -> dict[str, Any]:
        """Send one request and return its full response (notifications are skipped)."""
        msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": id}
        if params is not None:
            msg["params"] = params
        self.send(msg)
        resp, _ = self.recv_until(lambda m: isinstance(m, dict) and "method" not in m
                                  and m.get("id") == id)
        return resp

    def error(self, method: str, params: Any = None) -> dict[str, Any]:
        """Call and return the error object; fail if the call succeeded."""
        resp = self.request(method, params)
        assert "error" in resp, f"{method} {params!r} unexpectedly succeeded: {resp}"
        assert "result" not in resp
        return resp["error"]

    def result(self, method: str, params: Any = None) -> Any:
        resp = self.request(method, params)
        assert "error" not in resp, f"{method} {params!r} failed: {resp['error']}"
        return resp["result"]


class LspRawConn(RawConn):
    """The same, speaking the LSP base protocol (``Content-Length: N\\r\\n\\r\\n`` + body).

    It parses the daemon's frames strictly: exactly one ``Content-Length`` field, ``\\r\\n``
    line ends, and a body of exactly that many bytes.
    """

    def send(self, msg: Any) -> None:
        self.send_body(json.dumps(msg).encode())

    def send_body(self, body: bytes) -> None:
        self.sock.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def _fill(self, n: int) -> bool:
        while len(self._buf) < n:
            try:
                data = self.sock.recv(1 << 20)
            except ConnectionResetError:
                data = b""
            if not data:
                self.eof = True
                return False
            self._buf += data
        return True

    def recv_body(self) -> bytes | None:
        """The next raw body, or None at EOF."""
        while b"\r\n\r\n" not in self._buf:
            if not self._fill(len(self._buf) + 1):
                return None
        header, rest = self._buf.split(b"\r\n\r\n", 1)
        assert header.startswith(b"Content-Length: ") and b"\n" not in header, header
        n = int(header[len(b"Content-Length: "):])
        self._buf = rest
        if not self._fill(n):
            raise AssertionError(f"EOF inside a body: half a message ({self._buf!r:.200})")
        body, self._buf = self._buf[:n], self._buf[n:]
        return body

    def recv_line(self) -> bytes | None:  # RawConn.recv reads messages through this
        return self.recv_body()
