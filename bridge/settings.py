"""The bridge's settings: defaults, then ``[bridge]`` of config.toml, then flags.

config.toml (``$XDG_CONFIG_HOME/kitplay/config.toml``)::

    [bridge]
    bind = "127.0.0.1:8765"
    rate_limit_per_s = 50       # requests per second per credential, sustained
    rate_limit_burst = 200      # requests a credential may make at once
    anon_rate_per_s = 5         # all requests without a valid credential, together
    anon_burst = 20
    max_connections = 1000      # open connections; near it, only yours (see docs/security.md)
    idle_timeout_s = 5          # a connection silent this long, or a request head not
                                # complete in this time, is closed
    max_body_bytes = 1048576    # larger request bodies get 413

Put daemon keys under ``[daemon]`` when the file has a ``[bridge]`` table.
"""

from __future__ import annotations

import ipaddress
import secrets
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from kitplay.daemon.protocol.paths import default_socket_path

from .credentials import env_token

__all__ = ["DEFAULT_BIND", "BridgeSettings", "load_bridge_config", "parse_bind"]

DEFAULT_BIND = "127.0.0.1:8765"
# Browsers (Chromium checked) resolve every *.localhost name to ::1 first, then 127.0.0.1.
BROWSER_LOOPBACKS = ("127.0.0.1", "::1")


def new_page_host() -> str:
    """A host name for the page that nobody else can know: new at every bridge start."""
    return f"kp-{secrets.token_hex(12)}.localhost"


@dataclass
class BridgeSettings:
    socket: Path = field(default_factory=default_socket_path)
    host: str = "127.0.0.1"
    port: int = 8765
    allow_remote: bool = False
    # The master token: KITPLAY_BRIDGE_TOKEN, else (when "") bridge.token in the runtime dir.
    token: str = field(default_factory=env_token)
    rotate_token: bool = False
    rate_limit_per_s: float = 50.0
    rate_limit_burst: int = 200
    anon_rate_per_s: float = 5.0
    anon_burst: int = 20
    max_connections: int = 1000
    max_body_bytes: int = 1024 * 1024
    idle_timeout_s: float = 5.0
    # The page's own origin, http://<page_host>:<port>: see page_origin().
    page_host: str = field(default_factory=new_page_host)
    # The addresses actually bound, (host, port), the first one for API clients.
    listen: list[tuple[str, int]] = field(default_factory=list)

    @property
    def bind(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        return is_loopback(self.host)

    def url_host(self) -> str:
        """The host part of the URL to print: loopback literals as they are."""
        if self.host in ("0.0.0.0", "::"):
            return "127.0.0.1"
        return f"[{self.host}]" if ":" in self.host else self.host

    def base_url(self) -> str:
        """Where API clients reach the bridge (a loopback literal: no name to resolve)."""
        return f"http://{self.url_host()}:{self.port}"

    @property
    def serves_page_host(self) -> bool:
        """The page lives on its own random name when the bridge holds both addresses a
        browser tries for a ``*.localhost`` name (``bind_listeners`` binds both)."""
        return self.host in (*BROWSER_LOOPBACKS, "localhost")

    def page_origin(self) -> str:
        """The page's origin: ``http://kp-<random>.localhost:PORT``, which no one who binds the
        port while the bridge is down can know, so whatever they leave in the browser for
        ``http://127.0.0.1:PORT`` (a service worker, cached files) never reaches the page. A
        bridge bound elsewhere (``--allow-remote``, another 127/8 address) serves the page on
        its own address."""
        if self.serves_page_host:
            return f"http://{self.page_host}:{self.port}"
        return self.base_url()

    def apply(self, values: dict[str, Any]) -> None:
        """Apply the ``[bridge]`` table of config.toml; refuse unknown keys and wrong types."""
        known = {f.name for f in fields(self)} - {"socket", "host", "port", "token",
                                                   "allow_remote", "rotate_token",
                                                   "page_host", "listen"}
        for key, value in values.items():
            key = key.replace("-", "_")
            if key == "bind":
                if not isinstance(value, str):
                    raise ValueError(f"[bridge] bind must be a string, got {value!r}")
                self.host, self.port = parse_bind(value)
                continue
            if key not in known:
                raise ValueError(f"unknown [bridge] key {key!r}; known: bind, "
                                 f"{', '.join(sorted(known))}")
            current = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"[bridge] {key} must be a number, got {value!r}")
            if value <= 0:
                raise ValueError(f"[bridge] {key} must be positive, got {value!r}")
            setattr(self, key, type(current)(value))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_bind(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` -> (host, port); port 0 picks a free one."""
    host, sep, port_s = text.rpartition(":")
    if not sep or not host or not port_s.isdigit():
        raise ValueError(f"--bind takes HOST:PORT (like {DEFAULT_BIND}), got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"write an IPv6 address in brackets, like [::1]:8765; got {text!r}")
    port = int(port_s)
    if port > 65535:
        raise ValueError(f"port must be 0-65535, got {port}")
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"--bind takes an IP address (or localhost), got {host!r}") from None
    return host, port


def load_bridge_config(path: Path) -> dict[str, Any]:
    """The ``[bridge]`` table of config.toml (empty when the file or table is missing)."""
    if not path.is_file():
        return {}
    with path.open("rb") as f:
        try:
            data = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"{path}: {e}") from None
    table = data.get("bridge", {})
    if not isinstance(table, dict):
        raise ValueError(f"{path}: [bridge] must be a table")
    return table
