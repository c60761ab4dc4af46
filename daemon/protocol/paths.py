"""Where kitplay keeps its socket, runtime files and state (DESIGN.md: names, paths).

Standard library only: the CLI imports it.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

__all__ = [
    "MAX_SOCKET_PATH",
    "bridge_info_path",
    "check_private_file",
    "check_socket_path",
    "config_path",
    "default_socket_path",
    "default_state_dir",
    "runtime_dir",
    "write_private",
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


def check_private_file(path: Path) -> None:
    """Raise PermissionError unless ``path`` is a regular file of ours that only we can use.

    FileNotFoundError passes through. ``lstat``: a symlink is refused, never followed.
    """
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        raise PermissionError(f"{path} is not a regular file (a symlink or something else was "
                              "put there): remove it")
    if st.st_uid != os.getuid():
        raise PermissionError(f"{path} belongs to uid {st.st_uid}, not to you (uid "
                              f"{os.getuid()}): someone else put it there; remove it")
    if st.st_mode & 0o077:
        raise PermissionError(f"{path} is readable or writable by others (mode "
                              f"{stat.S_IMODE(st.st_mode):o}): `chmod 600 {path}`")


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (0600) through an exclusive temp file and a rename.

    The temp file is made by ``mkstemp`` (O_CREAT|O_EXCL with a random name, so a symlink or
    file planted in advance is never followed or reused); the rename replaces ``path`` itself,
    never what a symlink at ``path`` points to.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
