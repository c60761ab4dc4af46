"""Where kitplay keeps its socket, runtime files and state (DESIGN.md: names, paths).

Standard library only: the CLI imports it.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "MAX_SOCKET_PATH",
    "bridge_info_path",
    "check_socket_path",
    "config_path",
    "default_socket_path",
    "default_state_dir",
    "runtime_dir",
]

# sockaddr_un.sun_path is 108 bytes including the terminating NUL.
MAX_SOCKET_PATH = 107


def default_socket_path() -> Path:
    env = os.environ.get("KITPLAY_SOCKET")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return Path(xdg) / "kitplay" / "kitplayd.sock"
    return Path(f"/tmp/kitplay-{os.getuid()}") / "kitplayd.sock"


def default_state_dir() -> Path:
    env = os.environ.get("KITPLAY_STATE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "state"
    return base / "kitplay"


def config_path() -> Path:
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg) if xdg else Path.home() / ".config"
    return base / "kitplay" / "config.toml"


def runtime_dir(socket_path: Path) -> Path:
    """The directory holding the socket; the bridge's token file lives beside it."""
    return socket_path.parent


def bridge_info_path(socket_path: Path) -> Path:
    return runtime_dir(socket_path) / "bridge.json"


def check_socket_path(path: Path) -> None:
    """Raise ValueError with a clear message when a Unix socket path is too long."""
    n = len(os.fsencode(str(path)))
    if n > MAX_SOCKET_PATH:
        raise ValueError(
            f"socket path is {n} bytes, over the {MAX_SOCKET_PATH}-byte limit of Unix "
            f"sockets: {path}. Choose a shorter one with --socket or KITPLAY_SOCKET.")
