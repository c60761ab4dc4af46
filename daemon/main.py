"""``kitplayd``: the daemon's entry point (foreground; systemd or a shell manages it)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sqlite3
import sys
from pathlib import Path
from typing import Any

import trio

from . import __version__
from .config import Config, load_config
from .handlers import Handlers
from .jobs import JobManager
from .protocol.paths import ensure_private_dir
from .protocol.process import bound_malloc, harden_process
from .rpc import Dispatcher, load_jsonrpcserver
from .server import AlreadyRunning, bind_socket, serve, socket_from_systemd
from .store import Store

__all__ = ["main", "run_daemon"]

log = logging.getLogger("kitplayd")

WORKER_THREADS = 8
DESCRIPTION = ("kitplayd: the per-user daemon of kitplay. It serves JSON-RPC 2.0 on a Unix socket "
               "and runs the jobs (create, build, launch, test, package) that kitplay, the "
               "bridge and editor plugins ask for. It runs in the foreground until SIGTERM or "
               "Ctrl-C; systemd, kitplay daemon start or a terminal keeps it.")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="kitplayd", description=DESCRIPTION)
    p.add_argument("--socket", type=Path, help="Unix socket path (env KITPLAY_SOCKET; "
                   "default: $XDG_RUNTIME_DIR/kitplay/kitplayd.sock)")
    p.add_argument("--state-dir", type=Path, help="state directory: job records and logs (env "
                   "KITPLAY_STATE_DIR; default: ~/.local/state/kitplay)")
    p.add_argument("--workspace", type=Path, help="the workspace of calls that name none "
                   "(default: ~/.local/share/kitplay/workspace)")
    p.add_argument("--config", type=Path, help="config.toml (default: "
                   "~/.config/kitplay/config.toml)")
    p.add_argument("--log-level", default="info", help="how much to log on stderr (default: "
                   "info)",
                   choices=["debug", "info", "warning", "error"])
    p.add_argument("-V", "--version", action="version", version=f"kitplayd {__version__}")
    return p.parse_args(argv)


def build_config(ns: argparse.Namespace) -> Config:
    cfg = load_config(ns.config)
    if ns.socket:
        cfg.socket = ns.socket
    if ns.state_dir:
        cfg.state_dir = ns.state_dir
    if ns.workspace:
        cfg.workspace = ns.workspace
    cfg.socket = Path(os.path.abspath(cfg.socket))
    cfg.state_dir = Path(os.path.abspath(cfg.state_dir))
    cfg.workspace = Path(os.path.abspath(cfg.workspace))
    return cfg


async def run_daemon(cfg: Config, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Run until SIGTERM/SIGINT (or cancellation); ``task_status.started(socket_path)``."""
    # Worker threads only do short file and SQLite work; trio's default of 40 lets a burst
    # of followers leave 40 thread stacks and heaps behind (RSS; see bound_malloc).
    trio.to_thread.current_default_thread_limiter().total_tokens = WORKER_THREADS
    try:
        # The user's own and 0700 (an existing loose one is tightened, so kitplay.db and the
        # logs are not readable by others); another user's is refused.
        ensure_private_dir(cfg.state_dir, "state directory")
        cfg.logs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        cfg.workspace.mkdir(parents=True, exist_ok=True)
        store = Store(cfg.db_path)
    except PermissionError as e:
        raise ValueError(str(e)) from None
    except (OSError, sqlite3.Error) as e:  # read-only, full, not a directory: say so plainly
        raise ValueError(
            f"cannot use the state directory {cfg.state_dir} (or the workspace "
            f"{cfg.workspace}): {e}. Make it writable by this user, or choose another with "
            "--state-dir / KITPLAY_STATE_DIR") from None
    passed = socket_from_systemd()
    listen = passed or bind_socket(cfg.socket)
    bound = listen.getsockname() or str(cfg.socket)
    try:
        from .displays import Displays  # launch supervision (Xpra); optional module

        displays: Any = Displays(cfg)
    except ImportError:
        displays = None
    handlers = Handlers(cfg, None, Path(bound))  # type: ignore[arg-type]
    jobs = JobManager(cfg, store, handlers.plan, displays)
    handlers.jobs = jobs
    dispatcher = Dispatcher(handlers.table())
    try:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with trio.open_nursery() as nursery:
                await nursery.start(jobs.run)
                if displays is not None:  # what Xpra needs here, checked in the background
                    nursery.start_soon(displays.check)
                await nursery.start(lambda task_status: serve(
                    listen, dispatcher, max_line=cfg.max_line_bytes,
                    max_inflight=cfg.max_inflight_per_connection, task_status=task_status))
                log.info("kitplayd %s ready on %s (state %s)", __version__, bound, cfg.state_dir)
                task_status.started(Path(bound))
                notify_ready()
                # What only the task path needs, loaded now that the socket serves.
                nursery.start_soon(trio.to_thread.run_sync, load_jsonrpcserver)
                async for signum in signals:
                    log.info("received %s; shutting down", signal.Signals(signum).name)
                    break
                await jobs.shutdown()
                nursery.cancel_scope.cancel()
    finally:
        store.close()
        if passed is None:
            _remove_socket(bound)


def _remove_socket(path: str) -> None:
    """Remove our socket file on the way out (not one systemd passed us: it owns that)."""
    if os.environ.get("KITPLAY_KEEP_SOCKET"):
        return
    try:
        os.unlink(path)
    except OSError:
        pass


def notify_ready() -> None:
    """sd_notify READY=1: systemd (Type=notify) and the tests wait on it, never on sleeps."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        try:
            s.sendto(f"READY=1\nMAINPID={os.getpid()}".encode(), addr)
        except OSError as e:
            log.warning("cannot notify readiness on %s: %s", addr, e)


def main(argv: list[str] | None = None) -> None:
    ns = parse_args(argv)
    harden_process()
    bound_malloc()
    logging.basicConfig(level=ns.log_level.upper(),
                        format="%(asctime)s kitplayd %(levelname)s %(message)s")
    try:
        cfg = build_config(ns)
    except (ValueError, OSError) as e:
        print(f"kitplayd: bad configuration: {e}", file=sys.stderr)
        sys.exit(2)
    try:
        trio.run(run_daemon, cfg)
    except AlreadyRunning as e:
        print(f"kitplayd: {e}", file=sys.stderr)
        sys.exit(1)
    except (ValueError, PermissionError) as e:
        print(f"kitplayd: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
