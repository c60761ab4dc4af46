"""Who is at the other end of a loopback TCP connection: the uid owning the peer's socket.

TCP has no SO_PEERCRED, but on loopback the peer's socket is this machine's, and the kernel
knows its owner. The socket-diagnostics netlink interface (``sock_diag(7)``,
``SOCK_DIAG_BY_FAMILY`` with the connection's exact four-tuple) answers for one socket in
about 15 us; ``/proc/net/tcp{,6}`` (which ``kitplay open`` reads) is the fallback, slower
with thousands of sockets. Not a loopback peer, or not found: None.

Struct layouts from linux/inet_diag.h and linux/netlink.h (stable kernel ABI):
``nlmsghdr`` (len u32, type u16, flags u16, seq u32, pid u32); ``inet_diag_req_v2`` (family
u8, protocol u8, ext u8, pad u8, states u32, ``inet_diag_sockid``); ``inet_diag_sockid``
(sport be16, dport be16, src be32[4], dst be32[4], if u32, cookie u32[2]); the answer's
``inet_diag_msg`` (family, state, timer, retrans u8; sockid; expires, rqueue, wqueue, uid,
inode u32).
"""

from __future__ import annotations

import ipaddress
import socket
import struct

__all__ = ["peer_uid"]

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 1
NLMSG_ERROR = 2
INET_DIAG_NOCOOKIE = 0xFFFFFFFF
_UID_OFFSET = 16 + 4 + 48 + 12  # nlmsghdr, inet_diag_msg's four bytes, sockid, three u32


def _packed(family: int, host: str) -> bytes:
    return socket.inet_pton(family, host).ljust(16, b"\0")


def _netlink_uid(family: int, peer: tuple[str, int], local: tuple[str, int]) -> int | None:
    # The peer's socket: its own address is our peer, its remote is us.
    sockid = (struct.pack(">HH", peer[1], local[1]) + _packed(family, peer[0])
              + _packed(family, local[0])
              + struct.pack("=III", 0, INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE))
    req = struct.pack("=BBBxI", family, socket.IPPROTO_TCP, 0, 0xFFFFFFFF) + sockid
    msg = struct.pack("=IHHII", 16 + len(req), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, 1, 0) + req
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG) as nl:
        nl.settimeout(1.0)
        nl.sendto(msg, (0, 0))
        data = nl.recv(8192)
    if len(data) < _UID_OFFSET + 4:
        return None
    _length, kind = struct.unpack_from("=IH", data)
    if kind != SOCK_DIAG_BY_FAMILY:  # NLMSG_ERROR: no such socket (ENOENT)
        return None
    uid: int = struct.unpack_from("=I", data, _UID_OFFSET)[0]
    return uid


def _proc_hex(family: int, host: str) -> str:
    packed = socket.inet_pton(family, host)
    return "".join(f"{w:08X}" for w in struct.unpack(f"={len(packed) // 4}I", packed))


def _proc_uid(family: int, peer: tuple[str, int], local: tuple[str, int]) -> int | None:
    want_local = f"{_proc_hex(family, peer[0])}:{peer[1]:04X}"
    want_remote = f"{_proc_hex(family, local[0])}:{local[1]:04X}"
    table = "/proc/net/tcp6" if family == socket.AF_INET6 else "/proc/net/tcp"
    try:
        with open(table) as f:
            next(f, None)
            for line in f:
                fields = line.split()
                if len(fields) > 7 and fields[1] == want_local and fields[2] == want_remote:
                    return int(fields[7])
    except (OSError, ValueError):
        pass
    return None


def peer_uid(sock: socket.socket) -> int | None:
    """The uid owning the other end of the connected TCP ``sock``, when that end is a socket
    on this machine's loopback; else None."""
    try:
        peer = sock.getpeername()[:2]
        local = sock.getsockname()[:2]
    except OSError:
        return None
    if not ipaddress.ip_address(peer[0].split("%")[0]).is_loopback:
        return None  # a remote peer (--allow-remote): not a user of this machine
    family = sock.family
    try:
        return _netlink_uid(family, peer, local)
    except OSError:
        return _proc_uid(family, peer, local)
