"""Where kitplay keeps its socket, runtime files and state (the paths the README states).

Standard library only: the CLI imports it.
"""

from __future__ import annotations

import os
import stat
import struct
from _socket import (  # not socket: `kitplay` avoids its import
    AF_INET,
    AF_INET6,
    SO_PEERCRED,
    SOL_SOCKET,
    inet_pton,
)

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing slows `kitplay` down
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

__all__ = [
    "MAX_SOCKET_PATH",
    "bridge_info_path",
    "check_peer",
    "check_private_file",
    "check_socket_path",
    "config_path",
    "default_socket",
    "default_socket_path",
    "default_state_dir",
    "ensure_private_dir",
    "runtime_dir",
    "tcp_listener_uids",
    "write_private",
]

# sockaddr_un.sun_path is 108 bytes including the terminating NUL.
MAX_SOCKET_PATH = 107


def default_socket() -> str:
    """The socket path as a string: ``$KITPLAY_SOCKET``, else ``$XDG_RUNTIME_DIR/kitplay/
    kitplayd.sock``, else ``/tmp/kitplay-$UID/kitplayd.sock``.  No pathlib: `kitplay`'s
    common commands start without it (pathlib imports urllib.parse, ~5 ms)."""
    env = os.environ.get("KITPLAY_SOCKET")
    if env:
        return env
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return os.path.join(xdg, "kitplay", "kitplayd.sock")
    return f"/tmp/kitplay-{os.getuid()}/kitplayd.sock"


def default_socket_path() -> Path:
    from pathlib import Path

    return Path(default_socket())


def default_state_dir() -> Path:
    from pathlib import Path

    env = os.environ.get("KITPLAY_STATE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "state"
    return base / "kitplay"


def config_path() -> Path:
    from pathlib import Path

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
    import tempfile  # not at the top: `kitplay` imports this module and must start fast

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


def ensure_private_dir(path: Path, what: str = "directory") -> bool:
    """Make ``path`` ours and 0700, or refuse; True when it is a shared sticky dir left as is.

    A root-owned sticky directory such as /tmp itself is used as it is (others cannot remove or
    replace what we put there). Anything else is created exclusively (``mkdir`` fails if
    someone made it first) and checked with ``lstat``: a symlink or another user's directory is
    refused, never used; one of ours with a looser mode is tightened to 0700.
    """
    if not os.path.lexists(path.parent):
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise PermissionError(
            f"the {what} {path} is {'a symlink' if stat.S_ISLNK(st.st_mode) else 'not a directory'}"
            f"; someone may have put it there to catch kitplay's files. Remove it (or choose "
            "another path) and start again")
    if st.st_uid == 0 and st.st_mode & stat.S_ISVTX:
        return True  # /tmp itself: shared, sticky, root's; never tightened
    if st.st_uid != os.getuid():
        raise PermissionError(
            f"the {what} {path} belongs to another user (uid {st.st_uid}), not to you (uid "
            f"{os.getuid()}); refusing to use it: they may have made it to catch kitplay's "
            "files. Remove it (as root or that user), or set XDG_RUNTIME_DIR / choose another "
            "path")
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return False


def _proc_net_forms(address: str) -> tuple[set[str], set[str]]:
    """How a listener that accepts connections to ``address`` shows in /proc/net/tcp and
    /proc/net/tcp6: bound to it, or to its family's wildcard (``::`` may take IPv4 too), or
    (IPv4) to its IPv4-mapped IPv6 form. /proc prints each 32-bit word in host order."""
    def words(packed: bytes) -> str:
        return "".join(f"{w:08X}" for w in struct.unpack(f"={len(packed) // 4}I", packed))

    any6 = "0" * 32
    if ":" in address:
        return set(), {words(inet_pton(AF_INET6, address)), any6}
    packed = inet_pton(AF_INET, address)
    return ({words(packed), "0" * 8},
            {words(b"\0" * 10 + b"\xff\xff" + packed), any6})


def tcp_listener_uids(port: int, address: str | None = None) -> set[int]:
    """The uids of the sockets listening on TCP ``port``; with ``address``, only those that
    take connections to that address (bound to it or to a wildcard), not another user's
    listener on another loopback address with the same port.

    Read from ``/proc/net/tcp{,6}``, which show every user's sockets with their owner: a
    loopback TCP peer has no SO_PEERCRED, and a port a stopped bridge left is anyone's to take.
    Empty when nothing listens there.
    """
    forms = _proc_net_forms(address) if address is not None else None
    uids: set[int] = set()
    for i, table in enumerate(("/proc/net/tcp", "/proc/net/tcp6")):
        try:
            with open(table) as f:
                next(f, None)  # the header line
                for line in f:
                    # sl local_address rem_address st ... uid: "0100007F:1F90 ... 0A ..."
                    fields = line.split()
                    if len(fields) <= 7 or fields[3] != "0A":
                        continue
                    host, _, hex_port = fields[1].rpartition(":")
                    if int(hex_port, 16) == port and (forms is None or host in forms[i]):
                        uids.add(int(fields[7]))
        except (OSError, ValueError):
            continue
    return uids


def check_peer(sock: Any, path: Path | str) -> None:
    """Raise PermissionError unless the process listening at ``path`` runs as this user.

    Checked with SO_PEERCRED before anything is sent: a socket another user put in our place
    (a hijacked runtime directory) would otherwise receive our requests and answer them.
    """
    creds = sock.getsockopt(SOL_SOCKET, SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _gid = struct.unpack("3i", creds)
    if uid != os.getuid():
        raise PermissionError(
            f"the socket {path} is served by uid {uid} (pid {pid}), not by you (uid "
            f"{os.getuid()}): refusing to talk to it. Another user may have put it there; "
            "remove it and start kitplayd again")
