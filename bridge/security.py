"""What keeps other web pages and other machines out of a localhost server.

- Host allowlist (loopback literals and ``localhost`` with the bridge's port): DNS rebinding
  gives an attacker's page our address but never our Host header.
- A token on every ``/api`` request and WebSocket: ``Authorization: Bearer``, or the HttpOnly,
  SameSite=Strict cookie a browser gets by opening the page URL with ``?token=`` once.
- Origin: same origin on every state-changing request and every WebSocket upgrade; a cookie
  request that changes state must carry an Origin (browsers always send one then).
- Per-client token-bucket rate limit.
"""

from __future__ import annotations

import hmac
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from daemon.protocol.errors import KitplayError

from .errors import Forbidden, TooManyRequests, Unauthorized, refusal_data
from .settings import BridgeSettings

__all__ = ["SAFE_METHODS", "Guard", "RateLimiter"]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class RateLimiter:
    """Token buckets keyed by client address: ``rate`` per second, ``burst`` at once."""

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


def allowed_hosts(settings: BridgeSettings) -> frozenset[str]:
    port = settings.port
    hosts = {f"127.0.0.1:{port}", f"[::1]:{port}", f"localhost:{port}"}
    if settings.allow_remote and settings.host not in ("0.0.0.0", "::", "localhost"):
        hosts.add(f"{settings.url_host()}:{port}".lower())
    return frozenset(hosts)


class Guard:
    def __init__(self, settings: BridgeSettings) -> None:
        self.token = settings.token.encode()
        self.hosts = allowed_hosts(settings)
        self.origins = frozenset(f"http://{h}" for h in self.hosts)
        # Cookies ignore ports: name ours after the port so two bridges never clash.
        self.cookie_name = f"kitplay_token_{settings.port}"

    def check_host(self, headers: Any) -> KitplayError | None:
        host = (headers.get("Host") or "").strip().lower()
        if host in self.hosts:
            return None
        return Forbidden(
            f"Host {host[:100]!r} is not allowed: use one of {', '.join(sorted(self.hosts))}",
            refusal_data("host"))

    def token_ok(self, candidate: str | None) -> bool:
        return bool(candidate) and hmac.compare_digest(
            candidate.encode("utf-8", "replace"), self.token)  # type: ignore[union-attr]

    def authenticate(self, headers: Any,
                     cookies: Mapping[str, str]) -> tuple[str | None, KitplayError | None]:
        """("bearer" | "cookie", None) when the token is right, else (None, Unauthorized)."""
        auth = headers.get("Authorization")
        if auth is not None:
            scheme, _, value = auth.partition(" ")
            if scheme.lower() == "bearer" and self.token_ok(value.strip()):
                return "bearer", None
            return None, Unauthorized(
                "wrong token in the Authorization header; the token is in bridge.json "
                "(`kitplay open` prints the page URL with it)", refusal_data("token"))
        if self.token_ok(cookies.get(self.cookie_name)):
            return "cookie", None
        return None, Unauthorized(
            "this API needs the bridge's token: send `Authorization: Bearer <token>` (the token "
            "is in bridge.json beside the daemon socket), or open the page URL that "
            "kitplay-bridge printed", refusal_data("token"))

    def check_origin(self, headers: Any, via: str) -> KitplayError | None:
        """For state-changing requests and WebSocket upgrades."""
        origin = headers.get("Origin")
        if origin is None:
            if via == "bearer":
                return None  # not a browser (a browser cannot set the header cross-site)
            return Forbidden("a state-changing request from a browser must carry its Origin",
                             refusal_data("origin"))
        if origin.lower() in self.origins:
            return None
        return Forbidden(f"cross-origin request from {origin[:100]!r} refused",
                         refusal_data("origin"))
