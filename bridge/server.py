"""Serving the app: bind, run Hypercorn's trio worker, publish ``bridge.json`` while up.

The listening socket is bound here (not by Hypercorn) so the real port is known before the
first request: the Host allowlist needs it, and ``--bind 127.0.0.1:0`` picks a free port.
"""

from __future__ import annotations

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
    write_private,
)

from .app import create_app
from .credentials import load_master_token
from .serving import ConnectionCap, serve_capped
from .settings import BridgeSettings

__all__ = ["bind_listener", "serve_bridge", "write_info"]

log = logging.getLogger("kitplay.bridge")


def bind_listener(settings: BridgeSettings) -> socket.socket:
    """Bind ``settings.host:settings.port`` and set ``settings.port`` to the real port."""
    host = "127.0.0.1" if settings.host == "localhost" else settings.host
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, settings.port))
    except OSError as e:
        sock.close()
        raise OSError(e.errno, f"cannot bind {settings.bind}: {e.strerror}; choose another "
                               "port with --bind 127.0.0.1:PORT (0 picks a free one)") from None
    sock.listen(128)
    settings.port = sock.getsockname()[1]
    return sock


def write_info(settings: BridgeSettings) -> Path:
    """``bridge.json`` (0600) beside the daemon socket: url, port, token, pid."""
    path = bridge_info_path(settings.socket)
    info = {"url": settings.base_url() + "/", "port": settings.port, "token": settings.token,
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
    sock = bind_listener(settings)
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
    info_path: Path | None = None
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(lambda task_status: serve_capped(
                app, config, sock, cap, shutdown_trigger=shutdown_trigger,
                task_status=task_status))
            info_path = write_info(settings)
            code = app.extensions["kitplay"]["credentials"].mint_code()
            url = f"{settings.base_url()}/#code={code}"
            log.info("kitplay-bridge on %s (daemon socket %s)", settings.base_url(),
                     settings.socket)
            task_status.started(url)
    finally:
        if info_path is not None:
            remove_info(info_path)
