"""What keeps other web pages and other machines out of a localhost server.

- Host allowlist (loopback literals and ``localhost`` with the bridge's port, for API clients;
  the page's own random ``kp-<random>.localhost`` name): DNS rebinding gives an attacker's
  page our address but never our Host header.
- The page, its files and the sign-in live on the page's own origin only (settings.py,
  ``page_origin``): an origin nobody else can have served pages or service workers for.
- A credential on every ``/api`` request and WebSocket: ``Authorization: Bearer`` with the
  master token or a page session (``credentials.py``), or a one-time ticket on a WebSocket.
  No cookie is ever read or set: browsers send a host's cookies to every port of that host, so
  a cookie would leak to any other program listening on 127.0.0.1, and any such program can
  toss (overwrite) ours.
- Origin: the page's origin on every state-changing request and every WebSocket upgrade that
  carries one (API clients send none).
- Rate limits after authentication: a bucket per credential, and one small bucket shared by
  every request without a valid credential, which can never use up the user's.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from typing import Any

from kitplay.daemon.protocol.errors import KitplayError

from .credentials import Credentials
from .errors import Forbidden, TooManyRequests, Unauthorized, refusal_data
from .settings import BridgeSettings

__all__ = ["SAFE_METHODS", "Guard", "RateLimiter"]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_OLD_PAGE_HOST = re.compile(r"kp-[0-9a-f]{1,64}\.localhost(:[0-9]{1,5})?")


class RateLimiter:
    """Token buckets keyed by credential: ``rate`` per second, ``burst`` at once."""

    MAX_CLIENTS = 10_000

    def __init__(self, rate: float, burst: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def check(self, key: str) -> float | None:
        """Take one token; None when allowed, else the seconds until the next token."""
        now = self.clock()
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate
        if len(self._buckets) >= self.MAX_CLIENTS and key not in self._buckets:
            self._prune(now)
        self._buckets[key] = (tokens - 1, now)
        return None

    def _prune(self, now: float) -> None:
        full = [k for k, (t, last) in self._buckets.items()
                if t + (now - last) * self.rate >= self.burst]
        for k in full:
            del self._buckets[k]

    def refusal(self, retry_after: float) -> tuple[KitplayError, dict[str, str]]:
        secs = max(1, math.ceil(retry_after))
        err = TooManyRequests(
            f"too many requests: at most {self.rate:g} per second (bursts of {self.burst:g}); "
            f"retry in {secs} s", refusal_data("rate", retry_after_s=secs))
        return err, {"Retry-After": str(secs)}


def page_hosts(settings: BridgeSettings) -> frozenset[str]:
    """The Host values of the page's origin."""
    return frozenset({settings.page_origin().removeprefix("http://").lower()})


def allowed_hosts(settings: BridgeSettings) -> frozenset[str]:
    port = settings.port
    hosts = {f"127.0.0.1:{port}", f"[::1]:{port}", f"localhost:{port}"}
    if settings.host not in ("0.0.0.0", "::", "localhost"):
        hosts.add(f"{settings.url_host()}:{port}".lower())
    return frozenset(hosts | page_hosts(settings))


class Guard:
    def __init__(self, settings: BridgeSettings, credentials: Credentials) -> None:
        self.credentials = credentials
        self.hosts = allowed_hosts(settings)
        self.page_hosts = page_hosts(settings)
        self.origins = frozenset(f"http://{h}" for h in self.page_hosts)

    def check_host(self, headers: Any) -> KitplayError | None:
        host = (headers.get("Host") or "").strip().lower()
        if host in self.hosts:
            return None
        if _OLD_PAGE_HOST.fullmatch(host):
            return Forbidden(
                "this page is from an earlier start of kitplay-bridge, which gives the page a "
                "new address at every start: run `kitplay open --browser` (or open the URL "
                "kitplay-bridge printed)", refusal_data("host"))
        # The page's own name is not listed: nobody needs to learn it from a refusal.
        return Forbidden(
            f"Host {host[:100]!r} is not allowed: API clients use one of "
            f"{', '.join(sorted(self.hosts - self.page_hosts))}", refusal_data("host"))

    def on_page_host(self, headers: Any) -> bool:
        """True for a request to the page's own origin (its Host was checked already)."""
        return (headers.get("Host") or "").strip().lower() in self.page_hosts

    def bearer(self, headers: Any) -> str | None:
        """The Authorization header's bearer value ("" for another scheme), None without one."""
        auth = headers.get("Authorization")
        if auth is None:
            return None
        scheme, _, value = auth.partition(" ")
        return value.strip() if scheme.lower() == "bearer" else ""

    def authenticate(self, headers: Any) -> tuple[str | None, KitplayError | None]:
        """("master" | "session", None) for a valid bearer credential, else (None, Unauthorized)."""
        value = self.bearer(headers)
        if value is not None:
            who = self.credentials.identify(value)
            if who is not None:
                return who, None
            return None, Unauthorized(
                "wrong or expired credential in the Authorization header: API clients use the "
                "token in bridge.json; the page's session ends when the bridge stops (run "
                "`kitplay open` for a new page URL)", refusal_data("token"))
        return None, Unauthorized(
            "this API needs a credential: send `Authorization: Bearer <token>` (the token is in "
            "bridge.json beside the daemon socket), or open the page URL that `kitplay open` "
            "prints", refusal_data("token"))

    def check_origin(self, headers: Any) -> KitplayError | None:
        """For state-changing requests and WebSocket upgrades.

        No Origin is fine: that is not a browser, or a same-origin request that needs no
        CORS (browsers always send Origin on cross-origin requests, and on every WebSocket).
        """
        origin = headers.get("Origin")
        if origin is None or origin.lower() in self.origins:
            return None
        return Forbidden(f"cross-origin request from {origin[:100]!r} refused",
                         refusal_data("origin"))
