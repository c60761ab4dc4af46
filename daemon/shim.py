"""The job monitor: one small process per job step, between the daemon and the command.

    kitplayd ──> shim (session + group leader, child subreaper) ──> command ──> ...

It exists so that a job outlives the daemon and still leaves a record:

- it runs the command in its own session and process group, and as a child subreaper,
  so descendants that double-fork or call ``setsid`` stay in its tree;
- the command's stdout and stderr are a kernel pipe that the shim ``splice``s into
  ``logs/<job>.log`` (no copy through user space, nothing through the daemon), enforcing
  the per-job size cap with a visible truncation marker;
- when the command ends, the shim stops whatever it left behind, writes
  ``logs/<job>.exit`` (JSON: returncode, signal, exit_code, finished_at) atomically and exits
  with the command's exit code.  A restarted daemon reads that file for jobs it adopted.

Usage: python -P -m kitplay.daemon.shim LOG EXIT_FILE CAP CWD STDIN GRACE -- ARGV...
Standard library only, plus psutil for the clean-up (imported late).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time

PR_SET_CHILD_SUBREAPER = 36
F_SETPIPE_SZ = 1031
CHUNK = 1 << 20
COALESCE, COALESCE_S = 4096, 0.002


def _truncation_marker(cap: int) -> bytes:
    return (f"\n[kitplay] log truncated: this job's output passed the {cap}-byte cap; "
            "the rest was discarded. Raise log_cap_bytes in config.toml to keep more.\n"
            ).encode()


class Relay(threading.Thread):
    """Moves the command's output from the pipe into the log file, up to the cap."""

    def __init__(self, pipe_r: int, log_fd: int, budget: int, cap: int) -> None:
        super().__init__(daemon=True)
        self.pipe_r, self.log_fd, self.budget, self.cap = pipe_r, log_fd, budget, cap
        self.written = 0
        self.truncated = False
        self.error = ""  # why writing the log failed, if it did

    def run(self) -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            while True:
                if self.truncated:
                    n = os.splice(self.pipe_r, devnull, CHUNK)
                else:
                    room = self.budget - self.written
                    if room <= 0:
                        os.write(self.log_fd, _truncation_marker(self.cap))
                        self.truncated = True
                        continue
                    n = os.splice(self.pipe_r, self.log_fd, min(CHUNK, room))
                    self.written += n
                if n == 0:
                    return
                if n < COALESCE:
                    # A trickle (an unbuffered program writes line by line): let it pile up
                    # in the 1 MB pipe for a moment instead of waking for every write, which
                    # costs the writer a context switch per line (2x its run time, measured).
                    time.sleep(COALESCE_S)
        except OSError as e:  # disk full, file gone: say so in the log if we can
            self.error = str(e)
            try:
                os.write(self.log_fd, f"\n[kitplay] log write failed: {e}\n".encode())
            except OSError:
                pass
            # keep draining so the command never blocks on a full pipe
            while os.read(self.pipe_r, CHUNK):
                pass
        finally:
            os.close(devnull)


def _reap_tree(grace: float) -> None:
    """Stop every process left in our tree: SIGTERM, grace, SIGKILL; reap them all."""
    import psutil

    me = psutil.Process()
    deadline = time.monotonic() + grace
    sig = signal.SIGTERM
    while True:
        kids = me.children(recursive=True)
        if not kids:
            break
        for p in kids:
            try:
                p.send_signal(sig)
                if sig == signal.SIGTERM:
                    p.send_signal(signal.SIGCONT)  # a stopped process must run to see it
            except psutil.Error:
                pass
        _gone, alive = psutil.wait_procs(kids, timeout=0.05)
        _reap_zombies()
        if alive and time.monotonic() >= deadline:
            sig = signal.SIGKILL
    _reap_zombies()


def _reap_zombies() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


class ExitFile:
    """``logs/<job>.exit``, written atomically through ``<job>.exit.tmp``.

    The temporary file is made at the start, one page long, so that writing the status at the
    end needs no new space: a job that ends on a full disk still leaves its exit status.  If
    ``logs/`` was removed meanwhile, it is made again: a missing directory never turns the
    command's exit status into a failure.
    """

    SIZE = 4096

    def __init__(self, path: str) -> None:
        self.path, self.tmp = path, path + ".tmp"
        self.fd = -1
        try:
            # 0600 whatever the umask: the monitor runs with the user's (its child inherits it).
            self.fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.write(self.fd, b" " * self.SIZE)
        except OSError:
            self._close()

    def write(self, status: dict[str, object]) -> bool:
        data = json.dumps(status).encode()
        if self.fd >= 0 and len(data) <= self.SIZE:
            try:
                if os.fstat(self.fd).st_nlink:  # still named (logs/ was not removed)
                    os.pwrite(self.fd, data.ljust(self.SIZE), 0)  # JSON allows the spaces
                    os.fsync(self.fd)
                    os.replace(self.tmp, self.path)
                    return True
            except OSError:
                pass
            finally:
                self._close()
        try:
            os.makedirs(os.path.dirname(self.path) or ".", mode=0o700, exist_ok=True)
            with os.fdopen(os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
                           "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(self.tmp, self.path)
            return True
        except OSError as e:
            sys.stderr.write(f"kitplay shim: cannot write {self.path}: {e}\n")
            return False

    def _close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _open_log(log: str) -> int:
    try:
        return os.open(log, os.O_WRONLY | os.O_CREAT, 0o600)
    except FileNotFoundError:  # logs/ removed just now: make it again
        os.makedirs(os.path.dirname(log) or ".", mode=0o700, exist_ok=True)
        return os.open(log, os.O_WRONLY | os.O_CREAT, 0o600)


def _lower_priority() -> None:
    """Run (and start the command) this much nicer than the daemon (config job_nice)."""
    value = os.environ.pop("KITPLAY_JOB_NICE", "")  # daemon.procs.NICE_ENV
    if not value.isdigit():
        return
    nice = min(int(value), 19)
    try:
        os.nice(nice)
    except OSError:
        pass
    # The monitor leads a session of its own, and with the scheduler's autogroups (Linux's
    # CONFIG_SCHED_AUTOGROUP, on by default in Debian's kernels; sched(7)) a new session gets
    # a new group that competes with the daemon's group as an equal, whatever its members'
    # nice values: the group's own nice is what counts between groups. Raising it is allowed
    # to the group's owner (as setpriority(2) allows raising one's own nice value).
    try:
        with open("/proc/self/autogroup", "w") as f:
            f.write(str(nice))
    except OSError:
        pass  # no autogroups here: plain nice values already order the processes


def _restore_nofile() -> None:
    """The fd soft limit the daemon started with (it raised its own), for the job."""
    value = os.environ.pop("KITPLAY_JOB_NOFILE", "")  # daemon.protocol.process.NOFILE_ENV
    if not value.isdigit():
        return
    import resource

    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(int(value), soft), hard))
    except (ValueError, OSError):
        pass


def main(argv: list[str]) -> int:
    if len(argv) < 8 or argv[6] != "--":
        sys.stderr.write(__doc__ or "")
        return 2
    log, exit_file, cap_s, cwd, stdin_path, grace_s = argv[:6]
    command = argv[7:]
    cap, grace = int(cap_s), float(grace_s)

    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    log_fd = _open_log(log)
    exit_out = ExitFile(exit_file)
    start_size = os.lseek(log_fd, 0, os.SEEK_END)
    pipe_r, pipe_w = os.pipe()
    try:
        import fcntl
        fcntl.fcntl(pipe_w, F_SETPIPE_SZ, CHUNK)
    except OSError:
        pass
    stdin_fd = os.open(stdin_path or os.devnull, os.O_RDONLY)
    _restore_nofile()
    _lower_priority()

    terminated = []
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, lambda signum, frame: terminated.append(signum))

    relay = Relay(pipe_r, log_fd, max(0, cap - start_size), cap)
    relay.start()
    try:
        child = subprocess.Popen(command, stdin=stdin_fd, stdout=pipe_w, stderr=pipe_w,
                                 cwd=cwd or None, close_fds=True)
    except OSError as e:
        os.write(pipe_w, f"[kitplay] cannot start {command[0]!r}: {e.strerror}\n".encode())
        os.close(pipe_w)
        relay.join(5)
        exit_out.write({"returncode": 127, "signal": None, "exit_code": 127,
                        "finished_at": time.time(), "error": str(e)})
        return 127
    os.close(pipe_w)
    os.close(stdin_fd)

    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            status = 0
            break
        if pid == child.pid:
            break
    child.returncode = 0  # reaped above; keep Popen from waiting again
    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None

    _reap_tree(grace)
    relay.join(5)
    exit_code = code if code is not None else 128 + (sig or 0)
    exit_out.write({
        "returncode": code, "signal": sig, "exit_code": exit_code,
        "finished_at": time.time(), "log_bytes": relay.written, "truncated": relay.truncated,
        "terminated": bool(terminated), **({"log_error": relay.error} if relay.error else {}),
    })
    return exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
