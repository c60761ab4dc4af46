"""Display sessions: a launched app shown in the browser through an Xpra server.

    shim ──> xpra start :N (HTML5 client on 127.0.0.1:PORT) ──> Xvfb :N
                                                            └─> sh (records exit) ──> app

One session per launch job, and the user's alone:

- the daemon picks the display and the loopback port; a reservation file per display in a
  per-user directory under /tmp (taken under an ``flock``) keeps concurrent sessions, even of
  different daemons, from ever choosing the same ones;
- Xpra gets its own HOME, XDG_RUNTIME_DIR, XAUTHORITY, socket, log and config directories
  under ``<state>/sessions/<job>/``; its config sets ``start =`` (empty), or Xpra 3.1.3
  opens a stray ``xmessage`` window;
- every session has a random password, handed to Xpra through ``--tcp-auth=env`` and
  ``XPRA_PASSWORD`` (never on a command line ``ps`` shows); the URL carries it as
  ``?password=``, which Xpra's HTML5 client reads;
- the app runs under a tiny ``sh`` wrapper that restores the daemon's HOME and runtime dir,
  drops the password from its environment, forwards SIGTERM and writes the app's own exit
  status (Xpra exits 0 whatever its child did), so restart policies see the real code;
- ``<state>/sessions/<job>.json`` records the session, so a restarted daemon lists it again;
- cleanup removes what a killed Xvfb leaves behind (``/tmp/.X<N>-lock``,
  ``/tmp/.X11-unix/X<N>``), the session directory and the reservation.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import shlex
import shutil
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import trio

from .capabilities import check_headless, check_native, check_xpra, refusal
from .config import Config
from .procs import is_shim
from .protocol.errors import Unsupported
from .protocol.paths import ensure_private_dir, write_private
from .toolchains.base import Plan

__all__ = ["Displays"]

log = logging.getLogger("kitplayd.displays")

DISPLAY_FIRST, DISPLAY_LAST = 100, 999
READY_TIMEOUT_S = 120.0
X_LOCK = "/tmp/.X{n}-lock"
X_SOCKET = "/tmp/.X11-unix/X{n}"

XPRA_FLAGS = (
    "--daemon=no", "--tcp-auth=env", "--html=on", "--exit-with-children=yes",
    "--terminate-children=yes", "--mdns=no", "--notifications=no", "--dbus-launch=",
    "--dbus-proxy=no", "--dbus-control=no", "--pulseaudio=no", "--speaker=off",
    "--microphone=off", "--webcam=no", "--printing=no", "--opengl=no", "--systemd-run=no",
    "--start-new-commands=no", "--file-transfer=no", "--open-files=no", "--open-url=no",
)

# Runs the app as a background child so it can forward SIGTERM, then records its status.
_CHILD_SH = r"""# kitplay: runs the app (SIGTERM forwarded) and writes its exit status to $1
f=$1; shift
"$@" & p=$!
trap 'kill -TERM $p 2>/dev/null' TERM INT HUP
while :; do wait $p; s=$?; kill -0 $p 2>/dev/null || break; done
echo $s > "$f.tmp" && mv "$f.tmp" "$f"
exit $s"""

ReadyFn = Callable[[int], Awaitable[dict[str, Any] | None]]


def reservations_dir() -> Path:
    return Path(f"/tmp/.kitplay-x11-{os.getuid()}")


class Displays:
    """The Xpra sessions of one daemon (the hooks ``JobManager`` calls)."""

    def __init__(self, cfg: Config) -> None:
        self.dir = cfg.state_dir / "sessions"
        # What an Xpra session needs on this machine (daemon/capabilities.py): checked at
        # start, and again before a launch is refused.
        self.xpra_python = cfg.xpra_python or None
        self.xpra: dict[str, Any] | None = None
        self.sessions: dict[str, dict[str, Any]] = {}
        for path in sorted(self.dir.glob("*.json")) if self.dir.is_dir() else []:
            try:
                info = json.loads(path.read_text())
                self.sessions[info["job_id"]] = info
            except (OSError, ValueError, KeyError, TypeError):
                log.warning("ignoring unreadable session record %s", path)

    # -- hooks ------------------------------------------------------------------------------

    async def check(self) -> dict[str, Any]:
        self.xpra = await trio.to_thread.run_sync(check_xpra, self.xpra_python)
        if not self.xpra["available"]:
            log.warning("display 'xpra' is unavailable: %s", refusal(self.xpra).message)
        return self.xpra

    async def ensure_checked(self) -> None:
        """Before a launch: the start-up check's report, or a fresh one where something was
        missing (installing it needs no daemon restart)."""
        if self.xpra is None or not self.xpra["available"]:
            await self.check()

    def check_available(self) -> None:
        if self.xpra is None:  # a launch arrived before the start-up check ran
            self.xpra = check_xpra(self.xpra_python)
        if not self.xpra["available"]:
            raise refusal(self.xpra)

    def backends(self) -> dict[str, Any]:
        """Each display backend, available or missing what (``daemon.status``)."""
        xpra = self.xpra if self.xpra is not None else {
            "available": None, "checking": True, "missing": []}
        return {"native": check_native(), "headless": check_headless(), "xpra": xpra}

    async def wrap(self, job_id: str, plan: Plan, argv: list[str],
                   env: dict[str, str]) -> tuple[list[str], dict[str, str], ReadyFn]:
        """The xpra command that runs ``argv`` as its child, its env, and its readiness wait."""
        await self.cleanup(job_id)  # a restart starts a fresh session
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        sdir = self.dir / job_id
        info: dict[str, Any] = {
            "job_id": job_id, "app": plan.app or "", "display": "", "port": 0, "url": None,
            "since": None, "dir": str(sdir), "password": secrets.token_urlsafe(24)}
        n, port = await trio.to_thread.run_sync(_allocate, self._record_path(job_id), info)
        info.update(display=f":{n}", port=port)
        self.sessions[job_id] = info  # from here on, cleanup() releases what was taken
        xauth = _prepare_dir(sdir)
        child = ["sh", str(sdir / "app.sh"), str(sdir / "app.exit"), *_restore_env(), *argv]
        cmd = ["xpra", "start", f":{n}", f"--bind-tcp=127.0.0.1:{port}",
               f"--start-child={shlex.join(child)}", f"--socket-dirs={sdir / 'sock'}",
               f"--log-dir={sdir / 'log'}", *XPRA_FLAGS]
        env = {**env, "HOME": str(sdir / "home"), "XDG_RUNTIME_DIR": str(sdir / "run"),
               "XAUTHORITY": str(xauth), "XPRA_USER_CONF_DIRS": str(sdir / "conf"),
               "XPRA_PASSWORD": info["password"]}
        self._save(info)

        async def ready(owner_pid: int) -> dict[str, Any] | None:
            """Ready when ``GET /`` answers 200 from a listener of the session's own process
            tree (``owner_pid``, the job's monitor, is Xpra's parent): the port was in a
            command line before Xpra bound it, and another user may have bound it first."""
            with trio.move_on_after(READY_TIMEOUT_S) as waited:
                while True:
                    await wait_http_ok(port)
                    owner = await trio.to_thread.run_sync(listener_owner, port, owner_pid)
                    if owner == "ours":
                        break
                    if owner is not None:  # someone else's: never hand them the password
                        log.warning("xpra session of job %s: port %d is held by %s; no URL",
                                    job_id, port, owner)
                        return None
                    await trio.sleep(0.02)
            if waited.cancelled_caught:
                log.warning("xpra session of job %s never answered on port %d", job_id, port)
                return None
            url = f"http://127.0.0.1:{port}/?password={info['password']}"
            info.update(url=url, since=time.time())
            self._save(info)
            return {"display": info["display"], "url": url}

        return cmd, env, ready

    def app_status(self, job_id: str, status: dict[str, Any]) -> dict[str, Any]:
        """The job's status with the app's own exit code in place of Xpra's."""
        info = self.sessions.get(job_id)
        if info is None:
            return status
        try:
            code = int((Path(info["dir"]) / "app.exit").read_text().strip())
        except (OSError, ValueError):
            return status
        out = {**status, "exit_code": code, "returncode": code if code < 128 else None,
               "signal": code - 128 if code > 128 else None, "xpra_exit": status}
        out.pop("interrupted", None)
        out.pop("error", None)
        return out

    def terminate(self, job_id: str, shim_pid: int) -> bool:
        """SIGTERM the job's Xpra server only: it stops the app first, then its Xvfb."""
        if job_id not in self.sessions:
            return False
        try:
            servers = psutil.Process(shim_pid).children()
        except psutil.Error:
            return False
        for p in servers:
            with contextlib.suppress(psutil.Error):
                p.send_signal(signal.SIGTERM)
        return bool(servers)

    async def cleanup(self, job_id: str) -> None:
        """Remove everything the session left: leftover Xvfb, X lock and socket, files."""
        info = self.sessions.pop(job_id, None)
        if info is None:
            return
        await trio.to_thread.run_sync(_remove_session, info, self._record_path(job_id))

    async def reconcile(self, live_jobs: set[str]) -> None:
        """After a restart: clean up the sessions of jobs that are no longer running."""
        for job_id in [j for j in self.sessions if j not in live_jobs]:
            await self.cleanup(job_id)

    def list(self) -> list[dict[str, Any]]:
        return [{k: info[k] for k in ("job_id", "app", "display", "url", "since")}
                for info in self.sessions.values() if info.get("url")]

    # -- records ----------------------------------------------------------------------------

    def _record_path(self, job_id: str) -> Path:
        return self.dir / f"{job_id}.json"

    def _save(self, info: dict[str, Any]) -> None:
        self.sessions[info["job_id"]] = info
        _write_private(self._record_path(info["job_id"]), info)


def _write_private(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically, readable by this user only (session records hold passwords),
    through an exclusive temp file: a symlink planted at any name is never followed."""
    write_private(path, json.dumps(data))


def _prepare_dir(sdir: Path) -> Path:
    """The session's own directories, Xpra config and app wrapper; returns XAUTHORITY."""
    for sub in ("home", "run", "sock", "log", "conf"):
        (sdir / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
    (sdir / "conf" / "xpra.conf").write_text("# kitplay: no default start command (xmessage)\n"
                                             "start =\n")
    (sdir / "app.sh").write_text(_CHILD_SH + "\n")
    xauth = sdir / "Xauthority"
    xauth.touch(mode=0o600)
    return xauth


def _restore_env() -> list[str]:
    """``env`` arguments giving the app the daemon's own HOME and runtime dir, no password."""
    unset = ["XPRA_PASSWORD", "XPRA_USER_CONF_DIRS", "WAYLAND_DISPLAY"]
    assign = []
    for var in ("HOME", "XDG_RUNTIME_DIR"):
        value = os.environ.get(var)
        if value:
            assign.append(f"{var}={value}")
        else:
            unset.append(var)
    return ["env", *(a for var in unset for a in ("-u", var)), *assign]


def listener_owner(port: int, root_pid: int) -> str | None:
    """"ours" when the socket listening on 127.0.0.1:``port`` belongs to ``root_pid`` or a
    descendant; a description of its owner when it belongs to another process; None when
    nothing listens there (or it cannot be told yet)."""
    try:
        root = psutil.Process(root_pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        tree = []
    for p in tree:
        with contextlib.suppress(psutil.Error):
            for c in p.net_connections(kind="tcp4"):
                if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port:
                    return "ours"
    # Not ours: name who holds it (net_connections() of the whole system maps to pids only
    # for our own processes unless we are root; the inode match below says "another").
    for c in psutil.net_connections(kind="tcp4"):
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and \
                c.laddr.ip in ("127.0.0.1", "0.0.0.0"):
            return f"pid {c.pid}" if c.pid else "another user's process"
    return None


async def wait_http_ok(port: int) -> None:
    """Wait until ``GET /`` on 127.0.0.1:``port`` answers 200 (the caller sets a deadline)."""
    delay = 0.01
    while await http_status(port) != 200:  # a refused connect costs ~0.1 ms: poll often
        await trio.sleep(delay)
        delay = min(delay * 2, 0.04)


async def http_status(port: int, path: str = "/") -> int | None:
    try:
        with trio.fail_after(5):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                await stream.send_all(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n"
                                      "\r\n".encode())
                head = b""
                while b"\r\n" not in head and len(head) < 4096:
                    data = await stream.receive_some(4096)
                    if not data:
                        break
                    head += data
        return int(head.split(b" ", 2)[1])
    except (OSError, trio.TooSlowError, trio.BrokenResourceError, ValueError, IndexError):
        return None


# -- allocation (runs in a worker thread; every daemon of this user shares the lock) --------

@contextlib.contextmanager
def _locked() -> Iterator[Path]:
    d = reservations_dir()
    try:  # made exclusively, checked with lstat: ours and 0700, or refused
        ensure_private_dir(d, "X display reservations directory")
    except PermissionError as e:
        raise Unsupported(str(e)) from None
    fd = os.open(d / "lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield d
    finally:
        os.close(fd)


def _reservation(d: Path, n: int) -> dict[str, Any] | None:
    """The live reservation of display ``n`` (a stale one, whose session is gone, is None)."""
    try:
        data: dict[str, Any] = json.loads((d / f"{n}.json").read_text())
    except (OSError, ValueError):
        return None
    return data if Path(data.get("record", "")).exists() else None


def _allocate(record: Path, info: dict[str, Any]) -> tuple[int, int]:
    with _locked() as d:
        taken_ports = set()
        for p in d.glob("*.json"):
            res = _reservation(d, int(p.stem)) if p.stem.isdigit() else None
            if res:
                taken_ports.add(res.get("port"))
            else:
                p.unlink(missing_ok=True)  # its session is gone (state dir removed)
        n = next((n for n in range(DISPLAY_FIRST, DISPLAY_LAST + 1)
                  if _reservation(d, n) is None and _x_free(n)), None)
        if n is None:
            raise Unsupported(f"no free X display between :{DISPLAY_FIRST} and "
                              f":{DISPLAY_LAST}; stop some sessions (`kitplay sessions list`)")
        port = _free_port(taken_ports)
        # The session record must exist before the reservation that points at it.
        _write_private(record, {**info, "display": f":{n}", "port": port})
        _write_private(d / f"{n}.json", {"record": str(record), "port": port})
        return n, port


def _free_port(taken: set[Any]) -> int:
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        if port not in taken:
            return port
    raise Unsupported("no free loopback port for an Xpra session")


def _remove_session(info: dict[str, Any], record: Path) -> None:
    n = int(str(info.get("display") or ":-1")[1:])
    sdir = Path(info["dir"])
    _stop_strays(sdir)
    if n >= 0:
        for path in (X_LOCK.format(n=n), X_SOCKET.format(n=n)):
            if _x_lock_owner(n) is None:
                with contextlib.suppress(OSError):
                    os.unlink(path)
    shutil.rmtree(sdir, ignore_errors=True)
    with _locked() as d:
        res = d / f"{n}.json"
        with contextlib.suppress(OSError, ValueError):
            if json.loads(res.read_text()).get("record") == str(record):
                res.unlink()
        record.unlink(missing_ok=True)


def _x_free(n: int) -> bool:
    """No X server holds display ``n``; a dead server's lock and socket of ours are removed.

    (Stale lock files make the next Xpra start take seconds instead of under one.)
    """
    lock, sock = X_LOCK.format(n=n), X_SOCKET.format(n=n)
    if not os.path.lexists(lock) and not os.path.lexists(sock):
        return True
    if _x_lock_owner(n) is not None:
        return False
    for path in (lock, sock):
        try:
            if os.lstat(path).st_uid != os.getuid():
                return False
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError:
            return False
    return True


def _x_lock_owner(n: int) -> psutil.Process | None:
    """The live process named in ``/tmp/.X<n>-lock``, if any."""
    try:
        pid = int(Path(X_LOCK.format(n=n)).read_text().strip())
        p = psutil.Process(pid)
        return None if p.status() == psutil.STATUS_ZOMBIE else p
    except (OSError, ValueError, psutil.Error):
        return None


def _stop_strays(sdir: Path) -> None:
    """Stop what a killed session left running (Xpra, its Xvfb, the app's wrapper and app).

    Normally nothing: the shim's tree is gone.  But SIGKILL on Xpra leaves Xvfb running, and
    a killed shim leaves all of them.  They are found by the session directory in their
    command lines; Xpra is asked first (it stops the app, then Xvfb), then the rest.
    """
    mark = str(sdir)
    found = []
    for p in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            cmdline = p.info["cmdline"] or ()
            if any(mark in a for a in cmdline) and not is_shim(list(cmdline)):
                found.append(p)
    if not found:
        return
    xpra = [p for p in found if "--start-child" in " ".join(p.info["cmdline"])]
    for group in (xpra, found):
        procs = list(group)
        for p in group:
            with contextlib.suppress(psutil.Error):
                procs += p.children(recursive=True)
        for p in procs:
            with contextlib.suppress(psutil.Error):
                p.terminate()
        _gone, alive = psutil.wait_procs(procs, timeout=3)
        for p in alive:
            with contextlib.suppress(psutil.Error):
                p.kill()
        psutil.wait_procs(alive, timeout=2)
