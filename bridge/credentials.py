"""Who may use the bridge: the master token, and the browser's login codes, sessions and tickets.

- The **master token** is for API clients (the CLI, scripts, editors). It is read from
  ``KITPLAY_BRIDGE_TOKEN`` or from ``bridge.token`` in the runtime directory, which keeps it the
  same across bridge restarts (so clients reconnect without asking again) until
  ``kitplay-bridge --rotate-token`` replaces it. It never goes into a URL, a cookie or a log.
- A **login code** is what the printed page URL carries (in its ``#fragment``, which browsers
  never send to a server). It works once, for ``CODE_TTL_S`` seconds: the page trades it for a
  **session token** that it keeps in ``sessionStorage`` and sends as ``Authorization: Bearer``.
  ``kitplay open`` mints a new code with the master token.
- A **stream ticket** opens one WebSocket (browsers cannot set headers on a WebSocket); it works
  once, for ``TICKET_TTL_S`` seconds.

Codes, sessions and tickets live in this process's memory only: they end with the bridge.
Only their SHA-256 digests are kept, so looking one up compares digests, not secrets.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from kitplay.daemon.protocol.paths import check_private_file, write_private

__all__ = ["CODE_TTL_S", "TICKET_TTL_S", "TOKEN_ENV", "Credentials", "load_master_token"]

TOKEN_ENV = "KITPLAY_BRIDGE_TOKEN"
TOKEN_FILE = "bridge.token"
MIN_TOKEN_CHARS = 22  # 22 url-safe characters carry 132 bits
CODE_TTL_S = 120.0
TICKET_TTL_S = 30.0
MAX_CODES = 64
MAX_TICKETS = 1024
MAX_SESSIONS = 1024


def env_token() -> str:
    """``KITPLAY_BRIDGE_TOKEN``, checked for length; "" when unset."""
    env = os.environ.get(TOKEN_ENV, "")
    if env and len(env) < MIN_TOKEN_CHARS:
        raise ValueError(f"{TOKEN_ENV} is too short: use at least {MIN_TOKEN_CHARS} random "
                         "characters (128 bits), e.g. from `python -c 'import secrets; "
                         "print(secrets.token_urlsafe(32))'`")
    return env


def load_master_token(runtime_dir: Path, *, rotate: bool = False) -> str:
    """The token kept in ``runtime_dir/bridge.token`` (0600), made on first use or ``rotate``."""
    path = runtime_dir / TOKEN_FILE
    if not rotate:
        try:
            check_private_file(path)
            token = path.read_text().strip()
        except FileNotFoundError:
            token = ""
        except PermissionError as e:  # others may have read it: never use it as it is
            raise PermissionError(f"{e}; or replace the token with `kitplay-bridge "
                                  "--rotate-token`") from None
        if len(token) >= MIN_TOKEN_CHARS:
            return token
    token = secrets.token_urlsafe(32)
    write_private(path, token + "\n")
    return token


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


class _Expiring:
    """Digests of one-time secrets with a deadline, oldest first, at most ``cap`` of them."""

    def __init__(self, ttl: float, cap: int, clock: Callable[[], float]) -> None:
        self.ttl, self.cap, self.clock = ttl, cap, clock
        self._items: OrderedDict[bytes, float] = OrderedDict()

    def mint(self) -> str:
        now = self.clock()
        self._expire(now)
        while len(self._items) >= self.cap:
            self._items.popitem(last=False)
        secret = secrets.token_urlsafe(32)
        self._items[_digest(secret)] = now + self.ttl
        return secret

    def take(self, secret: str) -> bool:
        """True once for a live secret; it is gone afterwards, used or not."""
        now = self.clock()
        self._expire(now)
        deadline = self._items.pop(_digest(secret), None)
        return deadline is not None and deadline > now

    def _expire(self, now: float) -> None:
        while self._items:
            key, deadline = next(iter(self._items.items()))
            if deadline > now:
                break
            del self._items[key]


class Credentials:
    def __init__(self, master_token: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._master = master_token.encode("utf-8", "surrogatepass")
        self.codes = _Expiring(CODE_TTL_S, MAX_CODES, clock)
        self.tickets = _Expiring(TICKET_TTL_S, MAX_TICKETS, clock)
        self._sessions: OrderedDict[bytes, None] = OrderedDict()

    def is_master(self, candidate: str) -> bool:
        """The whole value, compared in constant time (a longer or shorter guess fails too)."""
        return hmac.compare_digest(candidate.encode("utf-8", "surrogatepass"), self._master)

    def identify(self, candidate: str) -> str | None:
        """"master", "session" or None for a bearer value."""
        if not candidate:
            return None
        if self.is_master(candidate):
            return "master"
        if _digest(candidate) in self._sessions:
            return "session"
        return None

    def mint_code(self) -> str:
        return self.codes.mint()

    def redeem_code(self, code: str) -> str | None:
        """A new session token for a live login code (which is then used up), else None."""
        if not self.codes.take(code):
            return None
        while len(self._sessions) >= MAX_SESSIONS:
            self._sessions.popitem(last=False)
        session = secrets.token_urlsafe(32)
        self._sessions[_digest(session)] = None
        return session

    def end_session(self, session: str) -> None:
        self._sessions.pop(_digest(session), None)

    def mint_ticket(self) -> str:
        return self.tickets.mint()

    def redeem_ticket(self, ticket: str) -> bool:
        return self.tickets.take(ticket)
