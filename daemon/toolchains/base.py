"""What a toolchain gives the job runner: plans made of steps.

A toolchain turns a method call (``templates.create``, ``build``, ``launch``) into a ``Plan``,
checking everything it can before a job exists, so bad input is an immediate error and not a
failed job.  Plans are not stored: a restarted daemon rebuilds a job's plan from its params and
resumes at the recorded step.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..protocol.errors import InvalidParams, NotFound
from ..trust import check_trusted, check_workspace, real_path

__all__ = ["Plan", "Step", "StepLog", "Toolchain", "inside", "read_below", "read_regular",
           "resolve_workspace"]

PATH_MAX = 4096  # Linux: longer paths cannot be opened at all
NAME_MAX = 255


def read_regular(path: Path | str) -> bytes:
    """The bytes of ``path`` if it is a regular file; OSError otherwise.

    A workspace may be someone else's clone, and git keeps symlinks: a file the daemon reads
    for a report (versions, catalogue, records) may point at a named pipe, whose open would
    block the daemon, or at a device such as /dev/zero, whose read never ends.  Opened without
    blocking, checked with fstat, then read.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file (a pipe, device or directory)",
                          str(path))
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    finally:
        os.close(fd)


def read_below(root: Path | str, rel: str, limit: int) -> bytes:
    """The bytes of the regular file ``root/rel``, reached without following any symlink.

    For files a workspace names to be shown to the user (a template's README or icon): each
    directory on the way is opened with O_NOFOLLOW relative to the one before, so neither a
    symlink nor ``..`` can lead outside ``root`` (which is trusted as given).  OSError when
    the path leaves ``root``, crosses a symlink, is not a regular file, or holds more than
    ``limit`` bytes.
    """
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if not parts or ".." in parts or "\x00" in rel:
        raise OSError(errno.EINVAL, "not a path inside the workspace", rel)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in parts[:-1]:
            step = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                           dir_fd=fd)
            os.close(fd)
            fd = step
        f = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
                    | os.O_NOCTTY, dir_fd=fd)
    finally:
        os.close(fd)
    try:
        st = os.fstat(f)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", rel)
        if st.st_size > limit:
            raise OSError(errno.EFBIG, f"larger than {limit} bytes", rel)
        with os.fdopen(f, "rb", closefd=False) as fh:
            data = fh.read(limit + 1)
        if len(data) > limit:
            raise OSError(errno.EFBIG, f"larger than {limit} bytes", rel)
        return data
    finally:
        os.close(f)


class StepLog(Protocol):
    def write(self, text: str) -> None: ...


@dataclass
class Step:
    """One step of a job: a process (``argv``) or a short function run in a worker thread."""

    name: str
    argv: list[str] | None = None
    func: Callable[[StepLog], None] | None = None
    cwd: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    stdin: bytes | None = None
    timeout_s: float | None = None


@dataclass
class Plan:
    kind: str                      # a schemas.JOB_KINDS value
    workspace: Path
    toolchain: str
    steps: list[Step]
    # Computes the job's result after every step succeeded (runs in a worker thread).
    finish: Callable[[], dict[str, Any]] | None = None
    # Jobs with the same serial key run one at a time (builds of one workspace).
    serial_key: str | None = None
    # For launch: the app's name and whether it needs a display server.
    app: str | None = None
    display: str = "native"
    needs_display: bool = False
    # Explains a failed step in the job's error (e.g. the tool's last lines):
    # (step name, generic message, the job's log path) -> message.
    describe_failure: Callable[[str, str, Path], str] | None = None
    # Test reports (JUnit XML) the steps may write: removed before the job runs, listed in
    # its result ("junit") when they exist after it, whether it passed or failed.
    reports: list[Path] = field(default_factory=list)


class Toolchain(Protocol):
    kind: str
    root: Path

    def info(self) -> dict[str, Any]: ...
    def markers(self) -> list[Path]: ...
    def list_templates(self) -> list[dict[str, Any]]: ...
    def get_template(self, name: str) -> dict[str, Any]: ...
    def template_icon(self, name: str) -> dict[str, Any]: ...
    def license_info(self) -> dict[str, Any]: ...
    def list_apps(self) -> list[dict[str, Any]]: ...
    def create_replay(self, params: dict[str, Any]) -> str: ...
    def plan_create(self, params: dict[str, Any]) -> Plan: ...
    def plan_build(self, params: dict[str, Any]) -> Plan: ...
    def plan_launch(self, params: dict[str, Any]) -> Plan: ...
    def plan_test(self, params: dict[str, Any]) -> Plan: ...
    def plan_package(self, params: dict[str, Any]) -> Plan: ...
    def plan_package_container(self, params: dict[str, Any]) -> Plan: ...
    def plan_modify(self, params: dict[str, Any]) -> Plan: ...


def resolve_workspace(value: str | None, default: Path) -> Path:
    """The workspace a call names, or the daemon's default; must be an existing directory."""
    if value is None:
        path = default
    else:
        if "\x00" in value:
            raise InvalidParams("parameter 'workspace' contains a NUL byte",
                                {"param": "workspace"})
        longest = max((len(os.fsencode(c)) for c in value.split("/")), default=0)
        if len(os.fsencode(value)) > PATH_MAX or longest > NAME_MAX:
            raise InvalidParams(
                f"parameter 'workspace' is too long ({len(value)} characters): a path is at "
                f"most {PATH_MAX} bytes and each name in it at most {NAME_MAX}",
                {"param": "workspace", "limit": PATH_MAX})
        path = Path(value).expanduser()
        if not path.is_absolute():
            raise InvalidParams(
                f"parameter 'workspace' must be an absolute path, got {value!r}; the kitplay "
                "command resolves relative paths for you", {"param": "workspace"})
    path = Path(real_path(path))
    if not path.is_dir():
        raise NotFound(
            f"workspace {path} does not exist or is not a directory; create it or pass "
            "another --workspace", {"workspace": str(path)})
    check_workspace(path, resolved=True)
    return path


def inside(root: Path, *parts: str) -> Path:
    """``root / parts``, refusing anything that would leave ``root`` (.., absolute, symlinks).

    ``root`` is a toolchain's root, already resolved by ``resolve_workspace``: were it not, the
    resolved target could not start with it and the path would be refused, never let out.
    """
    # Strings, not pathlib: this runs on every build and launch call (bench: submissions/s).
    base = os.fspath(root)
    target = real_path(os.path.join(base, *parts))
    if target != base and not target.startswith(base.rstrip("/") + "/"):
        raise InvalidParams(
            f"path {'/'.join(parts)!r} leaves the workspace {base}; use a name inside it",
            {"workspace": base})
    # ``root`` is a toolchain's root: resolve_workspace checked it and what is above it.
    check_trusted(target, Path(base), resolved=True, below_workspace=True)
    return Path(target)
