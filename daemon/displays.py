"""Display sessions: a launched app shown in the browser through an Xpra server.

    shim ──> sh (Xpra's stderr to its own log) ──> xpra start ──> Xvfb (picks its display)
                                                            └─> sh (records exit) ──> app

One session per launch job (a new one at each restart), and the user's alone:

- Xpra listens on one Unix socket, ``<runtime dir>/displays/<session>.sock``: the directory
  of the daemon's socket (``$XDG_RUNTIME_DIR/kitplay``), private to the user (0700), so the
  socket needs no password (``--auth=none``; Xpra makes it 0600).  No TCP port, no password
  in any URL, page or command line.  Checked with Debian's Xpra 3.1.3: bound with
  ``--bind=PATH --auth=none`` it answers ``GET /`` with its HTML5 client and a WebSocket
  upgrade with ``101 Switching Protocols`` on any path, and serves ``/Info``, ``/Status`` and
  ``/connect.html`` as well: the bridge (``kitplay.bridge.displays``) relays only the
  client's files and its WebSocket, under ``/display/<session>/``;
- the session id is random, new for every Xpra start: a page of an ended session never
  reaches a later one;
- the job's ``result.display`` (``{session, path, ready}``) is set as soon as Xpra is
  started, with ``ready: false`` and an empty ``<session>.starting`` file beside the socket
  while Xpra starts: the bridge holds the clients of a starting session until Xpra answers,
  so a page loads the client meanwhile; ``ready`` turns true (and the file goes) once Xpra
  answers ``GET /`` on its socket and the app's wrapper has recorded its X display;
- Xvfb picks a free X display itself: ``xpra start`` without a display number runs it with
  ``-displayfd`` (xpra/x11/vfb_util.py ``start_Xvfb``), and the X server's ``-displayfd``
  also turns off its lock files (xorg-server os/utils.c: ``nolock = TRUE``), so lock files
  planted in /tmp block nothing; it takes the first display whose socket it can bind;
- Xpra's sharing is on (``--sharing=yes``): the page's embedded view and a full-size tab of
  the same session stay connected together (Xpra 3.1.3 server_base.handle_sharing: otherwise
  a client that does not ask to share disconnects the others);
- Xpra gets its own HOME, XDG_RUNTIME_DIR, XAUTHORITY, socket, log and config directories
  under ``<state>/sessions/<job>/``; its config sets ``start =`` (empty), or Xpra 3.1.3
  opens a stray ``xmessage`` window;
- Xpra's own log (its stderr, and Xvfb's) goes to ``logs/<job>.display.log``; the job's log
  holds the app's output (stdout and stderr) alone;
- the app runs under a tiny ``sh`` wrapper that restores the daemon's HOME and runtime dir,
  records the X display it got, forwards SIGTERM and writes the app's own exit status (Xpra
  exits 0 whatever its child did), so restart policies see the real code;
- ``<state>/sessions/<job>.json`` records the session, so a restarted daemon lists it again;
- cleanup stops what a killed session left (Xvfb runs in a session of its own), removes a
  dead X server's socket, the session's socket and its directory.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import shlex
import shutil
import signal
import stat
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil
import trio

from .capabilities import check_headless, check_native, check_xpra, refusal
from .config import Config
from .logs import tail_lines
from .procs import is_shim
from .protocol.displays import DISPLAY_PATH, sockets_dir, starting_marker
from .protocol.errors import Unsupported
from .protocol.paths import check_socket_path, ensure_private_dir, write_private
from .toolchains.base import Plan

__all__ = ["Displays", "display_log_path"]

log = logging.getLogger("kitplayd.displays")

READY_TIMEOUT_S = 120.0
X_SOCKET = "/tmp/.X11-unix/X{n}"

XPRA_FLAGS = (
    "--daemon=no", "--auth=none", "--sharing=yes", "--html=on", "--exit-with-children=yes",
    "--terminate-children=yes", "--mdns=no", "--notifications=no", "--dbus-launch=",
    "--dbus-proxy=no", "--dbus-control=no", "--pulseaudio=no", "--speaker=off",
    "--microphone=off", "--webcam=no", "--printing=no", "--systemd-run=no",
    # Not even probed: Xpra 3.1.3 probes OpenGL with a whole `xpra opengl` process before it
    # serves, unless told "noprobe" (xpra/x11/x11_server_core.py query_opengl); "no" still
    # probes. The probe cost 0.4 s of a 0.9 s start here.
    "--opengl=noprobe",
    "--start-new-commands=no", "--file-transfer=no", "--open-files=no", "--open-url=no",
)

# Xpra logs to stderr (with --daemon=no); so does Xvfb, which inherits it.  Their stderr goes
# to the display log; stdout stays the job's log, where the app writes (the wrapper below
# sends the app's stderr there too).
_XPRA_SH = 'log=$1; shift; exec "$@" 2>>"$log"'

# Runs the app as a background child so it can forward SIGTERM, then records its status.
# $1 is the session directory: the X display goes to $1/display, the exit status to
# $1/app.exit.
_CHILD_SH = r"""# kitplay: runs the app (SIGTERM forwarded) and writes its exit status
d=$1; shift
echo "$DISPLAY" > "$d/display.tmp" && mv "$d/display.tmp" "$d/display"
"$@" 2>&1 & p=$!
trap 'kill -TERM $p 2>/dev/null' TERM INT HUP
while :; do wait $p; s=$?; kill -0 $p 2>/dev/null || break; done
echo $s > "$d/app.exit.tmp" && mv "$d/app.exit.tmp" "$d/app.exit"
exit $s"""

ReadyFn = Callable[[int], Awaitable[dict[str, Any] | None]]


def display_log_path(logs_dir: Path, job_id: str) -> Path:
    """Xpra's own log of a launch job's session (Xpra and Xvfb: not the app's output)."""
    return logs_dir / f"{job_id}.display.log"


def public_display(info: dict[str, Any]) -> dict[str, Any]:
    """What a job record and the page get: the session id, its path on the bridge, and
    whether Xpra answers yet (the bridge holds a client of a starting session until it
    does, so a page can load the client while Xpra starts)."""
    return {"session": info["session"], "path": DISPLAY_PATH.format(session=info["session"]),
            "ready": bool(info.get("since"))}


class Displays:
    """The Xpra sessions of one daemon (the hooks ``JobManager`` calls)."""

    def __init__(self, cfg: Config) -> None:
        self.dir = cfg.state_dir / "sessions"
        self.logs_dir = cfg.logs_dir
        self.sockets = sockets_dir(cfg.socket)
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
        await trio.to_thread.run_sync(self._prepare_sockets)
        session = secrets.token_urlsafe(12)
        sock = self.sockets / f"{session}.sock"
        check_socket_path(sock)
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        sdir = self.dir / job_id
        xlog = display_log_path(self.logs_dir, job_id)
        info: dict[str, Any] = {
            "job_id": job_id, "app": plan.app or "", "session": session, "socket": str(sock),
            "x_display": "", "since": None, "dir": str(sdir)}
        self._save(info)  # from here on, cleanup() removes what was made
        await trio.to_thread.run_sync(_create_marker, starting_marker(sock))
        xauth = await trio.to_thread.run_sync(_prepare_dir, sdir)
        child = ["sh", str(sdir / "app.sh"), str(sdir), *_restore_env(), *argv]
        cmd = ["sh", "-c", _XPRA_SH, "sh", str(xlog),
               "xpra", "start", f"--bind={sock}", f"--start-child={shlex.join(child)}",
               f"--socket-dirs={sdir / 'sock'}", f"--log-dir={sdir / 'log'}", *XPRA_FLAGS]
        env = {**env, "HOME": str(sdir / "home"), "XDG_RUNTIME_DIR": str(sdir / "run"),
               "XAUTHORITY": str(xauth), "XPRA_USER_CONF_DIRS": str(sdir / "conf")}
        with contextlib.suppress(OSError):  # a fresh display log for each Xpra start
            xlog.unlink()

        return cmd, env, lambda _pid: self.wait_ready(job_id)

    def resume(self, job_id: str) -> ReadyFn | None:
        """For a job adopted after a restart whose session was still starting when the last
        daemon stopped: its readiness wait, picked up where it was."""
        info = self.sessions.get(job_id)
        if info is None or not info.get("session") or info.get("since"):
            return None
        return lambda _pid: self.wait_ready(job_id)

    async def wait_ready(self, job_id: str) -> dict[str, Any] | None:
        """The job's result once its Xpra answers ``GET /`` on the session's socket and the
        app's wrapper has recorded its X display.  The socket's directory is the user's own
        (0700): nobody else can have bound that name."""
        info = self.sessions.get(job_id)
        if info is None:
            return None
        sdir, sock = Path(info["dir"]), Path(info["socket"])
        with trio.move_on_after(READY_TIMEOUT_S) as waited:
            delay = 0.005
            while await unix_http_status(sock) != 200 or \
                    not await trio.Path(sdir / "display").exists():
                await trio.sleep(delay)  # a refused connect costs ~0.1 ms: poll often
                delay = min(delay * 2, 0.02)
        if waited.cancelled_caught:
            log.warning("xpra session of job %s never answered on %s", job_id, sock)
            return None
        try:
            x_display = (await trio.Path(sdir / "display").read_text()).strip()
        except OSError:
            x_display = ""
        if self.sessions.get(job_id) is not info:
            return None  # ended (or restarted) meanwhile
        info.update(x_display=x_display, since=time.time())
        self._save(info)
        with contextlib.suppress(OSError):
            os.unlink(starting_marker(sock))
        return {"display": public_display(info)}

    def starting(self, job_id: str) -> dict[str, Any]:
        """The job's result as soon as its Xpra was started: its display, not ready yet."""
        info = self.sessions.get(job_id)
        return {"display": public_display(info)} if info and info.get("session") else {}

    def _prepare_sockets(self) -> None:
        """The sockets' directory: made exclusively, checked with lstat (ours, 0700)."""
        try:
            ensure_private_dir(self.sockets, "display sockets directory")
        except PermissionError as e:
            raise Unsupported(f"cannot start an Xpra display: {e}") from None

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

    def failure(self, job_id: str) -> str | None:
        """Why a session's Xpra ended before its app ever ran, from its own log; None when
        the app ran (its own exit status tells the story) or it is not a session job."""
        info = self.sessions.get(job_id)
        if info is None or (Path(info["dir"]) / "app.exit").exists():
            return None
        return display_failure(display_log_path(self.logs_dir, job_id))

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
        """Remove everything the session left: leftover Xvfb and X socket, its socket, files."""
        info = self.sessions.pop(job_id, None)
        if info is None:
            return
        await trio.to_thread.run_sync(_remove_session, info, self._record_path(job_id))

    async def reconcile(self, live_jobs: set[str]) -> None:
        """After a restart: clean up the sessions of jobs that are no longer running."""
        for job_id in [j for j in self.sessions if j not in live_jobs]:
            await self.cleanup(job_id)

    def list(self) -> list[dict[str, Any]]:
        """The sessions that are up (a record of an older kitplay, without a session id,
        is not listed: the bridge cannot reach it)."""
        return [{"job_id": info["job_id"], "app": info["app"], **public_display(info),
                 "x_display": info.get("x_display") or "", "since": info["since"]}
                for info in self.sessions.values() if info.get("since") and info.get("session")]

    # -- records ----------------------------------------------------------------------------

    def _record_path(self, job_id: str) -> Path:
        return self.dir / f"{job_id}.json"

    def _save(self, info: dict[str, Any]) -> None:
        self.sessions[info["job_id"]] = info
        # Atomic, through an exclusive temp file: a symlink planted at any name is never
        # followed.
        write_private(self._record_path(info["job_id"]), json.dumps(info))


def _prepare_dir(sdir: Path) -> Path:
    """The session's own directories, Xpra config and app wrapper; returns XAUTHORITY."""
    shutil.rmtree(sdir, ignore_errors=True)  # what a previous start left (display, app.exit)
    for sub in ("home", "run", "sock", "log", "conf"):
        (sdir / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
    (sdir / "conf" / "xpra.conf").write_text("# kitplay: no default start command (xmessage)\n"
                                             "start =\n")
    (sdir / "app.sh").write_text(_CHILD_SH + "\n")
    xauth = sdir / "Xauthority"
    xauth.touch(mode=0o600)
    return xauth


def _create_marker(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    os.close(fd)


def _restore_env() -> list[str]:
    """``env`` arguments giving the app the daemon's own HOME and runtime dir."""
    unset = ["XPRA_USER_CONF_DIRS", "WAYLAND_DISPLAY"]
    assign = []
    for var in ("HOME", "XDG_RUNTIME_DIR"):
        value = os.environ.get(var)
        if value:
            assign.append(f"{var}={value}")
        else:
            unset.append(var)
    return ["env", *(a for var in unset for a in ("-u", var)), *assign]


# Xpra 3.1.3 logs a problem as a line ending in ":" and its details on the next lines,
# indented ("xpra initialization error:\n Xvfb: did not provide a display number using
# displayfd"); Xvfb as "Fatal server error:\n(EE) <why>".  Messages that name what went wrong
# are picked; Xpra's notes on optional modules it lacks ("No module named ...") and its
# warnings are not a cause.
_FAILURE = re.compile(r"error|fatal|failed|cannot|could not|no such|denied|not found", re.I)
_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d [\d:,]+ ")


def display_failure(path: Path) -> str | None:
    """The cause a dead Xpra's log gives: its last messages that say what went wrong."""
    messages: list[str] = []
    joined = False
    for raw in tail_lines(path, 60).splitlines():
        line = _TIMESTAMP.sub("", raw.rstrip())
        if not line.strip():
            continue
        if messages and (joined or line[0].isspace()):
            messages[-1] += " " + line.strip()
        else:
            messages.append(line.strip())
        joined = line.endswith(":")
    said = [m for m in messages if _FAILURE.search(m) and "No module named" not in m
            and not m.startswith(("Warning", "(Xpra:"))]
    return "; ".join((said or messages)[-2:])[:600] or None


async def unix_http_status(path: Path, target: str = "/") -> int | None:
    """The status of ``GET target`` on the HTTP server listening on Unix socket ``path``."""
    try:
        with trio.fail_after(5):
            stream = await trio.open_unix_socket(str(path))
            async with stream:
                await stream.send_all(f"GET {target} HTTP/1.0\r\nHost: localhost\r\n\r\n"
                                      .encode())
                head = b""
                while b"\r\n" not in head and len(head) < 4096:
                    data = await stream.receive_some(4096)
                    if not data:
                        break
                    head += data
        return int(head.split(b" ", 2)[1])
    except (OSError, trio.TooSlowError, trio.BrokenResourceError, ValueError, IndexError):
        return None


# -- cleanup (runs in a worker thread) ------------------------------------------------------

def _remove_session(info: dict[str, Any], record: Path) -> None:
    sdir = Path(info["dir"])
    _stop_strays(sdir)
    x_display = str(info.get("x_display") or "")
    if not x_display:  # the wrapper may have written it after the record was saved
        with contextlib.suppress(OSError):
            x_display = (sdir / "display").read_text().strip()
    if re.fullmatch(r":\d+", x_display):
        _remove_dead_x_socket(int(x_display[1:]))
    sock = info.get("socket")
    if sock:
        for path in (sock, starting_marker(Path(sock))):
            with contextlib.suppress(OSError):
                os.unlink(path)  # Xpra removes its socket when it stops; not when killed
    shutil.rmtree(sdir, ignore_errors=True)
    record.unlink(missing_ok=True)


def _remove_dead_x_socket(n: int) -> None:
    """A killed Xvfb leaves ``/tmp/.X11-unix/X<n>``: remove it if it is ours and no socket
    listens there any more (``/proc/net/unix`` lists the paths of live sockets)."""
    path = X_SOCKET.format(n=n)
    try:
        st = os.lstat(path)
    except OSError:
        return
    if st.st_uid != os.getuid() or not stat.S_ISSOCK(st.st_mode):
        return
    try:
        with open("/proc/net/unix") as f:
            if any(line.rstrip("\n").endswith(" " + path) for line in f):
                return  # a live X server of this display (a new session may have taken it)
    except OSError:
        return
    with contextlib.suppress(OSError):
        os.unlink(path)


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
