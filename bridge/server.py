"""Serving the app: bind, run Hypercorn's trio worker, publish ``bridge.json`` while up.

The listening sockets are bound here (not by Hypercorn) so the real port is known before the
first request: the Host allowlist needs it, and ``--bind 127.0.0.1:0`` picks a free port.

On loopback the bridge holds the port on both 127.0.0.1 and ::1. Browsers reach the page's
``kp-<random>.localhost`` name on ::1 first (Chromium, checked: with one server on
127.0.0.1:PORT and another on [::1]:PORT, every ``*.localhost:PORT`` load went to ::1): a
port held on 127.0.0.1 alone would let another user's listener on [::1]:PORT serve the page's
very origin, and read the login code from its address.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import resource
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio
from hypercorn.config import Config as HyperConfig
from kitplay.daemon.protocol.paths import (
    bridge_info_path,
    ensure_private_dir,
    runtime_dir,
    tcp_listener_uids,
    write_private,
)

from .app import create_app
from .credentials import load_master_token
from .serving import ConnectionCap, serve_capped
from .settings import BROWSER_LOOPBACKS, BridgeSettings

__all__ = ["bind_listeners", "serve_bridge", "write_info"]

log = logging.getLogger("kitplay.bridge")


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def _cannot_bind(settings: BridgeSettings, host: str, e: OSError) -> OSError:
    where = f"[{host}]:{settings.port}" if ":" in host else f"{host}:{settings.port}"
    why = e.strerror or str(e)
    if e.errno == errno.EADDRINUSE:
        owners = sorted(tcp_listener_uids(settings.port, host) - {os.getuid()})
        if owners:
            why += f" (by uid {owners[0]}, another user)"
    also = "" if host == settings.host or (settings.host == "localhost"
                                           and host == "127.0.0.1") else (
        f"; the bridge holds the port on {' and '.join(BROWSER_LOOPBACKS)} both, because "
        "browsers try ::1 first for the page's *.localhost name")
    return OSError(e.errno, f"cannot bind {where}: {why}{also}; choose another port with "
                            "--bind 127.0.0.1:PORT (0 picks a free one)")


def bind_listeners(settings: BridgeSettings) -> list[socket.socket]:
    """Bind ``settings.host:settings.port`` (on loopback: 127.0.0.1 and ::1, the same port);
    set ``settings.port`` to the real port and ``settings.listen`` to what was bound."""
    first = "127.0.0.1" if settings.host == "localhost" else settings.host
    hosts = [first]
    if settings.serves_page_host:
        hosts += [h for h in BROWSER_LOOPBACKS if h != first]
    for _attempt in range(50 if settings.port == 0 else 1):
        socks: list[socket.socket] = []
        port = settings.port
        try:
            for host in hosts:
                try:
                    socks.append(_bind(host, port))
                except OSError as e:
                    if host != first and e.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                        continue  # no IPv6 here: then nobody can listen on ::1 either
                    if settings.port == 0 and host != first and e.errno == errno.EADDRINUSE:
                        raise _Retry from None  # the free port on 127.0.0.1 is taken on ::1
                    settings.port = port
                    raise _cannot_bind(settings, host, e) from None
                port = socks[0].getsockname()[1]
        except BaseException as e:
            for sock in socks:
                sock.close()
            if isinstance(e, _Retry):
                continue
            raise
        settings.port = port
        settings.listen = [(s.getsockname()[0], port) for s in socks]
        return socks
    raise OSError(errno.EADDRINUSE, "cannot find a port free on both 127.0.0.1 and ::1; "
                                    "choose one with --bind 127.0.0.1:PORT")


class _Retry(Exception):
    pass


def write_info(settings: BridgeSettings) -> Path:
    """``bridge.json`` (0600) beside the daemon socket: ``url`` (for API clients: a loopback
    literal), ``page_url`` (the page's own origin), ``listen`` (every address bound, so
    ``kitplay open`` checks who holds exactly those), port, token, pid."""
    path = bridge_info_path(settings.socket)
    listen = [f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in settings.listen]
    info = {"url": settings.base_url() + "/", "page_url": settings.page_origin() + "/",
            "listen": listen, "port": settings.port, "token": settings.token,
            "pid": os.getpid()}
    write_private(path, json.dumps(info))
    return path


def remove_info(path: Path) -> None:
    """Remove bridge.json if it is still ours (another bridge may have replaced it)."""
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


async def serve_bridge(settings: BridgeSettings, *,
                       shutdown_trigger: Callable[[], Awaitable[Any]],
                       task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Serve until ``shutdown_trigger`` returns; ``task_status.started(page URL, login code)``."""
    rundir = runtime_dir(settings.socket)
    if ensure_private_dir(rundir, "runtime directory"):
        raise PermissionError(
            f"the socket's directory {rundir} is shared ({rundir} is a sticky directory such as "
            "/tmp): the bridge keeps its token beside the socket, so put the socket in a "
            "directory of your own (--socket / KITPLAY_SOCKET)")
    if not settings.token:
        settings.token = load_master_token(rundir, rotate=settings.rotate_token)
    socks = bind_listeners(settings)
    app = create_app(settings)
    # Keep a reserve of descriptors under the process's limit (daemon link, streams' daemon
    # connections, files): the cap refuses before accept() could fail with EMFILE.
    fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    cap = ConnectionCap(max(1, min(settings.max_connections, (fd_limit - 64) // 2)))
    app.extensions["kitplay"]["connections"] = cap
    config = HyperConfig()
    config.graceful_timeout = 2.0
    config.accesslog = None
    config.errorlog = logging.getLogger("kitplay.bridge.hypercorn")
    config.include_server_header = False
    config.websocket_ping_interval = None
    # Hypercorn 0.18 (hypercorn/trio/tcp_server.py): keep_alive_timeout runs from a
    # connection's accept until its first complete request head (h11.py sends Updated(idle=
    # False) only then) and again between requests, so it ends idle connections and half-sent
    # heads alike. read_timeout (a limit on every receive) is left unset: it would also end
    # WebSockets and long polls (jobs.wait) whose clients rightly send nothing for minutes.
    config.keep_alive_timeout = settings.idle_timeout_s
    config.read_timeout = None
    info_path: Path | None = None
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(lambda task_status: serve_capped(
                app, config, socks, cap, shutdown_trigger=shutdown_trigger,
                task_status=task_status))
            info_path = write_info(settings)
            code = app.extensions["kitplay"]["credentials"].mint_code()
            url = f"{settings.page_origin()}/#code={code}"
            log.info("kitplay-bridge on %s, API %s (daemon socket %s)", settings.page_origin(),
                     settings.base_url(), settings.socket)
            task_status.started(url)
    finally:
        if info_path is not None:
            remove_info(info_path)
