"""``kitplay-bridge``: the HTTP bridge (REST, WebSocket, playground page) of a kitplay daemon.

``kitplay-bridge --with-daemon`` starts the daemon and the bridge together in one process (the
bridge still talks to the daemon through its socket) and prints the page URL to open.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import trio
from kitplay.daemon.protocol.paths import config_path
from kitplay.daemon.protocol.process import bound_malloc, harden_process
from kitplay.daemon.protocol.version import __version__

from .credentials import TOKEN_ENV
from .server import serve_bridge
from .settings import DEFAULT_BIND, BridgeSettings, load_bridge_config, parse_bind

__all__ = ["main", "run"]

log = logging.getLogger("kitplay.bridge")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="kitplay-bridge", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bind", metavar="HOST:PORT",
                   help=f"address to listen on (default {DEFAULT_BIND}; port 0 picks a free one)")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow a non-loopback --bind (anyone who can reach it and has the "
                        "token controls your daemon)")
    p.add_argument("--rotate-token", action="store_true",
                   help="replace the master token (bridge.token in the runtime directory) with "
                        "a new one; API clients holding the old one must read bridge.json again")
    p.add_argument("--with-daemon", action="store_true",
                   help="also run kitplayd in this process")
    p.add_argument("--socket", type=Path, help="daemon socket (env KITPLAY_SOCKET)")
    p.add_argument("--state-dir", type=Path, help="daemon state dir (with --with-daemon)")
    p.add_argument("--workspace", type=Path, help="default workspace (with --with-daemon)")
    p.add_argument("--config", type=Path, help="config.toml (default: XDG config dir)")
    p.add_argument("--rate-limit", type=float, metavar="PER_S",
                   help="requests per second per credential (config [bridge] rate_limit_per_s)")
    p.add_argument("--rate-burst", type=int, metavar="N",
                   help="burst of requests per credential (config [bridge] rate_limit_burst)")
    p.add_argument("--anon-rate", type=float, metavar="PER_S",
                   help="requests per second without a valid credential, all together "
                        "(config [bridge] anon_rate_per_s)")
    p.add_argument("--anon-burst", type=int, metavar="N",
                   help="burst of requests without a valid credential (config [bridge] "
                        "anon_burst)")
    p.add_argument("--max-connections", type=int, metavar="N",
                   help="open connections at most; near it only yours are taken, and at it "
                        "others are closed for yours (config [bridge] max_connections)")
    p.add_argument("--idle-timeout", type=float, metavar="SECONDS",
                   help="close a connection silent this long, or whose request head is not "
                        "complete by then (config [bridge] idle_timeout_s; default 5)")
    p.add_argument("--max-body", type=int, metavar="BYTES",
                   help="largest request body (config [bridge] max_body_bytes)")
    p.add_argument("--log-level", default="info",
                   choices=["debug", "info", "warning", "error"])
    p.add_argument("--version", action="version", version=f"kitplay-bridge {__version__}")
    return p.parse_args(argv)


def build_settings(ns: argparse.Namespace, socket_path: Path) -> BridgeSettings:
    s = BridgeSettings(socket=socket_path)
    s.apply(load_bridge_config(ns.config or config_path()))
    if ns.bind:
        s.host, s.port = parse_bind(ns.bind)
    overrides = {"rate_limit_per_s": ns.rate_limit, "rate_limit_burst": ns.rate_burst,
                 "max_body_bytes": ns.max_body, "anon_rate_per_s": ns.anon_rate,
                 "anon_burst": ns.anon_burst, "max_connections": ns.max_connections,
                 "idle_timeout_s": ns.idle_timeout}
    s.apply({k: v for k, v in overrides.items() if v is not None})
    s.allow_remote = ns.allow_remote
    s.rotate_token = ns.rotate_token
    if s.rotate_token and s.token:  # the token is KITPLAY_BRIDGE_TOKEN's: bridge.token unused
        raise ValueError("--rotate-token replaces bridge.token, but the master token comes "
                         "from KITPLAY_BRIDGE_TOKEN: set that to a new value (or unset it) "
                         "instead")
    if not s.is_loopback and not s.allow_remote:
        raise ValueError(f"refusing to listen on {s.bind}, which is not a loopback address: "
                         "anyone who can reach it could try to drive your daemon. Pass "
                         "--allow-remote if you really mean it.")
    return s


async def run(settings: BridgeSettings, daemon_cfg: Any = None) -> None:
    """Serve until SIGTERM/SIGINT; with ``daemon_cfg``, run kitplayd in this process too."""
    async with trio.open_nursery() as nursery:
        if daemon_cfg is None:
            signal_seen = trio.Event()

            async def watch_signals(task_status: Any) -> None:
                with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                    task_status.started()
                    async for signum in signals:
                        log.info("received %s; shutting down", signal.Signals(signum).name)
                        signal_seen.set()
                        return

            await nursery.start(watch_signals)
            url = await nursery.start(lambda task_status: serve_bridge(
                settings, shutdown_trigger=signal_seen.wait, task_status=task_status))
        else:
            # kitplayd handles SIGTERM/SIGINT itself (it stops its jobs gracefully); the bridge
            # stops when the daemon has.
            from kitplay.daemon.main import run_daemon

            daemon_done = trio.Event()

            async def daemon_task(task_status: Any) -> None:
                try:
                    await run_daemon(daemon_cfg, task_status=task_status)
                finally:
                    daemon_done.set()

            settings.socket = await nursery.start(daemon_task)
            url = await nursery.start(lambda task_status: serve_bridge(
                settings, shutdown_trigger=daemon_done.wait, task_status=task_status))
        print(f"kitplay-bridge: open {url}", flush=True)
        if not settings.is_loopback:
            print(f"kitplay-bridge: WARNING: listening on {settings.bind}, reachable from other "
                  "machines; the token is all that protects your daemon", file=sys.stderr,
                  flush=True)


def main(argv: list[str] | None = None) -> None:
    ns = parse_args(argv)
    harden_process()
    bound_malloc()
    logging.basicConfig(level=ns.log_level.upper(),
                        format="%(asctime)s kitplay-bridge %(levelname)s %(message)s")
    daemon_cfg = None
    try:
        if ns.with_daemon:
            from kitplay.daemon.main import build_config

            daemon_cfg = build_config(argparse.Namespace(
                config=ns.config, socket=ns.socket, state_dir=ns.state_dir,
                workspace=ns.workspace))
            socket_path = daemon_cfg.socket
        else:
            for flag in ("state_dir", "workspace"):
                if getattr(ns, flag) is not None:
                    raise ValueError(f"--{flag.replace('_', '-')} is a daemon setting: use it "
                                     "with --with-daemon (or pass it to kitplayd)")
            from kitplay.daemon.protocol.paths import default_socket_path

            socket_path = Path(os.path.abspath(ns.socket or default_socket_path()))
        settings = build_settings(ns, socket_path)
    except (ValueError, OSError) as e:
        print(f"kitplay-bridge: {e}", file=sys.stderr)
        sys.exit(2)
    # The token lives in settings from here on: nothing this process starts (with
    # --with-daemon, every job of the daemon) may inherit it.
    os.environ.pop(TOKEN_ENV, None)
    try:
        trio.run(run, settings, daemon_cfg)
    except BaseException as e:
        leaf = _leaf(e)
        # Binding failures, kitplayd's AlreadyRunning, a bad socket path: say it in one line.
        if isinstance(leaf, (OSError, RuntimeError, ValueError)):
            print(f"kitplay-bridge: {leaf}", file=sys.stderr)
            sys.exit(1)
        raise


def _leaf(e: BaseException) -> BaseException:
    while isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1:
        e = e.exceptions[0]
    return e


if __name__ == "__main__":
    main()
