"""Job records in SQLite (WAL).

Synchronous and small: each call is one indexed statement, well under a millisecond, so the
daemon calls it directly from its trio thread.  ``synchronous=NORMAL`` in WAL mode keeps
every committed record across a crash of the daemon process.

On small disks: the write-ahead log is checkpointed once it holds ``WAL_PAGES`` pages and cut
back to that size after each checkpoint, so it never holds more than about 1 MiB (SQLite's
default lets it reach 4 MiB before the first checkpoint, more than a small state disk has).
A write refused for want of space checkpoints the log into the database (which frees its
pages for reuse) and is tried once more.  A database that cannot be opened as usual on a full
disk (its shared-memory index cannot be made) is opened with an exclusive lock, which needs
none; ``reopen`` goes back to the usual mode once there is space.  ``problem`` says, in
words, why the state cannot take writes: read-only, full, or missing.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

__all__ = ["Store", "SCHEMA_VERSION", "WAL_PAGES", "IDEMPOTENCY_S", "Problem"]

SCHEMA_VERSION = 1
WAL_PAGES = 256  # 1 MiB of 4 KiB pages
IDEMPOTENCY_S = 86400.0  # how long an idempotency key names its job
_LOW_SPACE = 64 * 1024
_ENDED = ("succeeded", "failed", "cancelled", "interrupted")  # schemas.TERMINAL_STATUSES

_COLUMNS = (
    "id", "kind", "status", "params", "workspace", "toolchain", "created_at", "started_at",
    "finished_at", "exit_code", "result", "error", "progress", "pid", "pid_start", "restarts",
    "step_index", "extra",
)
_JSON_COLUMNS = frozenset({"params", "result", "error", "progress", "extra"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    params TEXT NOT NULL,
    workspace TEXT NOT NULL,
    toolchain TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    exit_code INTEGER,
    result TEXT,
    error TEXT,
    progress TEXT,
    pid INTEGER,
    pid_start REAL,
    restarts INTEGER NOT NULL DEFAULT 0,
    step_index INTEGER NOT NULL DEFAULT 0,
    extra TEXT
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status);
CREATE INDEX IF NOT EXISTS jobs_kind ON jobs(kind);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""


class Problem:
    """Why the state cannot take writes: ``cause`` ("full", "read-only", "missing", "error")
    and a message a user can act on."""

    __slots__ = ("cause", "message")

    def __init__(self, cause: str, message: str) -> None:
        self.cause, self.message = cause, message

    def __repr__(self) -> str:
        return f"Problem({self.cause!r}, {self.message!r})"


def problem(e: BaseException, path: Path) -> Problem:
    """What ``e`` (raised writing the database at ``path``) means for the user."""
    where = path.parent
    name = getattr(e, "sqlite_errorname", "") or ""
    err = getattr(e, "errno", None)
    if not where.is_dir() or err == errno.ENOENT:
        return Problem("missing", f"the state directory {where} is missing (removed?): {e}")
    if name.startswith("SQLITE_READONLY") or err in (errno.EROFS, errno.EACCES, errno.EPERM):
        return Problem("read-only", f"the database {path} is read-only ({e}); make it (and "
                       f"{where}) writable by this user")
    try:
        low = shutil.disk_usage(where).free < _LOW_SPACE
    except OSError:
        low = False
    if name == "SQLITE_FULL" or err == errno.ENOSPC or low:
        return Problem("full", f"the disk holding {where} is full ({e}); free some space "
                       "there")
    return Problem("error", f"cannot write the database {path}: {e}")


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.exclusive = False  # opened with an exclusive lock (a full disk; see reopen)
        try:
            self.db = self._connect(False)
        except sqlite3.OperationalError as e:
            if not path.exists() or problem(e, path).cause != "full":
                raise
            self.db = self._connect(True)  # no shared-memory index to make
            self.exclusive = True
        row = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None:
            self.db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        elif int(row[0]) > SCHEMA_VERSION:
            raise RuntimeError(
                f"{path} was written by a newer kitplay (schema {row[0]}); upgrade kitplay")
        self._select = "SELECT " + ",".join(_COLUMNS) + " FROM jobs"
        # Jobs per (status, kind), counted once here and then kept as jobs are added and
        # change status (daemon.status and a full jobs.list report them on every call; a
        # count is a scan of the table: milliseconds with 100,000 jobs).
        self._counts: dict[tuple[str, str], int] = {}
        self._recount()
        self.identity = _identity(path)

    def _connect(self, exclusive: bool) -> sqlite3.Connection:
        db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        try:
            if exclusive:
                db.execute("PRAGMA locking_mode=EXCLUSIVE")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=5000")
            db.execute(f"PRAGMA wal_autocheckpoint={WAL_PAGES}")
            db.execute(f"PRAGMA journal_size_limit={WAL_PAGES * 4096}")
            try:
                db.executescript(_SCHEMA)
            except sqlite3.OperationalError:
                # A database that cannot take writes (read-only, full) still serves reads
                # when its tables are there: ``probe`` says why it cannot take writes.
                if db.execute("SELECT COUNT(*) FROM sqlite_master WHERE name IN "
                              "('jobs', 'meta')").fetchone()[0] < 2:
                    raise
        except BaseException:
            db.close()
            raise
        return db

    def _recount(self) -> None:
        self._counts = {(st, kind): n for st, kind, n in self.db.execute(
            "SELECT status, kind, COUNT(*) FROM jobs GROUP BY status, kind")}

    def close(self) -> None:
        self.db.close()

    # -- health ---------------------------------------------------------------------------

    def probe(self) -> Problem | None:
        """Whether the database takes a write now (None) or why not.  A database opened
        read-only (SQLite falls back to that silently) answers reads and refuses every write:
        this says so from the start."""
        if self.exclusive:
            return problem(OSError(errno.ENOSPC, "No space left on device"), self.path)
        try:
            self._write(lambda: self.db.execute(
                "INSERT OR REPLACE INTO meta VALUES ('written_at', ?)", (str(time.time()),)))
        except (sqlite3.Error, OSError) as e:
            return problem(e, self.path)
        return None

    def moved(self) -> bool:
        """True when the database file is no longer the one this store opened (removed,
        with its directory or alone): writes would go to a file nobody can open again."""
        return _identity(self.path) != self.identity

    def restore(self) -> None:
        """Write what the open (removed) database holds to its path again, and use that."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.path.exists():
            raise FileExistsError(f"{self.path} is another database now; not replacing it")
        self.db.execute("VACUUM INTO ?", (str(self.path),))
        os.chmod(self.path, 0o600)
        self.reopen()

    def reopen(self) -> None:
        """A fresh connection in the usual mode (after read-only or full spells); if that
        fails, one as it was (the exclusive lock must go first: it would block the other)."""
        self.db.close()
        try:
            self.db, self.exclusive = self._connect(False), False
        except sqlite3.Error:
            self.db = self._connect(self.exclusive)
            raise
        self.identity = _identity(self.path)
        self._recount()

    def checkpoint(self) -> None:
        """Move the write-ahead log into the database and cut it back: frees its pages."""
        try:
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass

    def _write(self, do: Any) -> Any:
        """Run a write; refused for want of space, checkpoint and try it once more."""
        try:
            return do()
        except sqlite3.OperationalError as e:
            if getattr(e, "sqlite_errorname", "") != "SQLITE_FULL" or self.db.in_transaction:
                raise
            self.checkpoint()
            return do()

    def insert(self, job: dict[str, Any]) -> None:
        cols = [c for c in _COLUMNS if c in job]
        vals = [_enc(c, job[c]) for c in cols]
        self._write(lambda: self.db.execute(
            f"INSERT INTO jobs ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})", vals))
        self._count(job["status"], job["kind"], 1)

    def insert_many(self, jobs: list[dict[str, Any]],
                    keys: dict[str, str] | None = None) -> None:
        """Insert ``jobs`` in one transaction: one commit for all (a group commit), all or
        none, with the idempotency ``keys`` (job id -> key) of those that have one.  Once this
        returns they are in the WAL, which a crash of the daemon keeps."""
        if len(jobs) == 1 and not keys:
            self.insert(jobs[0])  # autocommit: one statement is its own transaction
            return
        self._write(lambda: self._insert_all(jobs, keys or {}))
        for job in jobs:
            self._count(job["status"], job["kind"], 1)

    def _insert_all(self, jobs: list[dict[str, Any]], keys: dict[str, str]) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for job in jobs:
                cols = [c for c in _COLUMNS if c in job]
                self.db.execute(f"INSERT INTO jobs ({','.join(cols)}) VALUES "
                                f"({','.join('?' * len(cols))})", [_enc(c, job[c]) for c in cols])
                key = keys.get(job["id"])
                if key is not None:
                    self.db.execute("INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?)",
                                    (key, job["id"], job["created_at"]))
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise

    def find_key(self, key: str, now: float | None = None) -> str | None:
        """The job an idempotency key named within the last ``IDEMPOTENCY_S``, if any."""
        row = self.db.execute("SELECT job_id, created_at FROM idempotency WHERE key=?",
                              (key,)).fetchone()
        if row is None or row[1] < (time.time() if now is None else now) - IDEMPOTENCY_S:
            return None
        return str(row[0])

    def forget_keys(self, now: float | None = None) -> None:
        """Drop the idempotency keys older than ``IDEMPOTENCY_S``."""
        self._write(lambda: self.db.execute(
            "DELETE FROM idempotency WHERE created_at < ?",
            ((time.time() if now is None else now) - IDEMPOTENCY_S,)))

    def update(self, job_id: str, **fields: Any) -> None:
        if not fields:
            return
        old = None
        if "status" in fields:
            old = self.db.execute("SELECT status, kind FROM jobs WHERE id=?",
                                  (job_id,)).fetchone()
        sets = ",".join(f"{c}=?" for c in fields)
        args = [*(_enc(c, v) for c, v in fields.items()), job_id]
        self._write(lambda: self.db.execute(f"UPDATE jobs SET {sets} WHERE id=?", args))
        if old is not None and old[0] != fields["status"]:
            self._count(old[0], old[1], -1)
            self._count(fields["status"], old[1], 1)

    def _count(self, status: str, kind: str, n: int) -> None:
        key = (status, kind)
        left = self._counts.get(key, 0) + n
        if left:
            self._counts[key] = left
        else:
            self._counts.pop(key, None)

    def get(self, job_id: str) -> dict[str, Any] | None:
        row = self.db.execute(self._select + " WHERE id=?", (job_id,)).fetchone()
        return _dec(row) if row else None

    def count(self, status: str | None = None, kind: str | None = None) -> int:
        """Jobs with this status and kind (either may be None: any), from the kept counts."""
        return sum(n for (st, k), n in self._counts.items()
                   if (status is None or st == status) and (kind is None or k == kind))

    def count_matching(self, status: str | None = None, kind: str | None = None,
                       app: str | None = None) -> int:
        """The same (and of this app), counted in the table."""
        where, args = _where(status, kind, app)
        return int(self.db.execute("SELECT COUNT(*) FROM jobs" + where, args).fetchone()[0])

    def list_ids(self, status: str | None = None, kind: str | None = None,
                 limit: int = 100, app: str | None = None,
                 offset: int = 0) -> list[tuple[str, str]]:
        """(id, status) of the jobs with this status, kind and app (each may be None: any),
        newest first, skipping the ``offset`` newest."""
        where, args = _where(status, kind, app)
        sql = "SELECT id, status FROM jobs" + where + " ORDER BY seq DESC LIMIT ? OFFSET ?"
        return self.db.execute(sql, [*args, limit, offset]).fetchall()

    def get_many(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """The records of ``ids`` (those that exist), by id."""
        out: dict[str, dict[str, Any]] = {}
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            for row in self.db.execute(
                    self._select + f" WHERE id IN ({','.join('?' * len(part))})", part):
                rec = _dec(row)
                out[rec["id"]] = rec
        return out

    def by_status(self, *statuses: str) -> list[dict[str, Any]]:
        marks = ",".join("?" * len(statuses))
        return [_dec(r) for r in self.db.execute(
            self._select + f" WHERE status IN ({marks}) ORDER BY seq", statuses)]

    def counts(self) -> dict[str, int]:
        """Jobs per status (kept in memory; ``count_rows`` asks the table itself)."""
        out: dict[str, int] = {}
        for (status, _kind), n in self._counts.items():
            out[status] = out.get(status, 0) + n
        return out

    def count_rows(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall())

    def finished_beyond(self, keep: int) -> tuple[list[str], int]:
        """Ids of finished jobs older than the newest ``keep`` ones whose logs are still kept,
        and the mark to pass to ``set_retention_mark`` once their logs are removed.

        Only jobs above the mark are read, so a store of 100,000 old jobs costs a start or a
        retention pass nothing (it read them all: 50 ms).  The mark stops below the oldest job
        that has not ended, whose log is kept until it ends and ages out like the others.
        """
        row = self.db.execute("SELECT seq FROM jobs WHERE finished_at IS NOT NULL "
                              "ORDER BY seq DESC LIMIT 1 OFFSET ?", (keep,)).fetchone()
        if row is None:
            return [], self.retention_mark()
        boundary = row[0]
        rows = self.db.execute(
            "SELECT id, extra FROM jobs WHERE seq > ? AND seq <= ? AND finished_at IS NOT NULL",
            (self.retention_mark(), boundary)).fetchall()
        live = self.db.execute("SELECT MIN(seq) FROM jobs WHERE status IN "
                               "('queued', 'running')").fetchone()[0]
        mark = boundary if live is None else min(boundary, live - 1)
        # Logs already removed are skipped, so each run touches only newly old jobs.
        return [r[0] for r in rows if not (r[1] and '"log_removed":true' in r[1])], mark

    def ended_ids(self, finished_before: float | None, keep: int | None) -> list[str]:
        """Ids of ended jobs, newest first: beyond the newest ``keep`` ended ones and (when
        given) ended before ``finished_before``; either criterion may be None (not applied)."""
        marks = ",".join("?" * len(_ENDED))
        sql = (f"SELECT id, COALESCE(finished_at, created_at) FROM jobs WHERE status IN "
               f"({marks}) ORDER BY seq DESC LIMIT -1 OFFSET ?")
        rows = self.db.execute(sql, [*_ENDED, keep or 0]).fetchall()
        return [r[0] for r in rows if finished_before is None or r[1] < finished_before]

    def delete(self, ids: list[str]) -> None:
        """Remove the records of ``ids``, and the idempotency keys that named them, in one
        transaction (all or none)."""
        if not ids:
            return
        for status, kind in self._write(lambda: self._delete_all(ids)):
            self._count(status, kind, -1)

    def _delete_all(self, ids: list[str]) -> list[tuple[str, str]]:
        gone: list[tuple[str, str]] = []
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for i in range(0, len(ids), 500):
                part = ids[i:i + 500]
                marks = ",".join("?" * len(part))
                gone += self.db.execute(
                    f"SELECT status, kind FROM jobs WHERE id IN ({marks})", part).fetchall()
                self.db.execute(f"DELETE FROM jobs WHERE id IN ({marks})", part)
                self.db.execute(f"DELETE FROM idempotency WHERE job_id IN ({marks})", part)
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise
        return gone

    def retention_mark(self) -> int:
        """Every finished job at or below this seq has had its log removed."""
        row = self.db.execute("SELECT value FROM meta WHERE key='retention_mark'").fetchone()
        return int(row[0]) if row else 0

    def set_retention_mark(self, mark: int) -> None:
        self._write(lambda: self.db.execute(
            "INSERT OR REPLACE INTO meta VALUES ('retention_mark', ?)", (str(mark),)))

    def newest_id(self) -> str | None:
        row = self.db.execute("SELECT id FROM jobs ORDER BY seq DESC LIMIT 1").fetchone()
        return None if row is None else str(row[0])


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _where(status: str | None, kind: str | None,
           app: str | None = None) -> tuple[str, list[str]]:
    where, args = [], []
    if status:
        where.append("status=?")
        args.append(status)
    if kind:
        where.append("kind=?")
        args.append(kind)
    if app:
        # A job's app is its `app` parameter; a create job names the app it makes `name`.
        where.append("(json_extract(params, '$.app')=? OR "
                     "(kind='create' AND json_extract(params, '$.name')=?))")
        args += [app, app]
    return (" WHERE " + " AND ".join(where) if where else ""), args


def _enc(col: str, value: Any) -> Any:
    if col in _JSON_COLUMNS and value is not None:
        return json.dumps(value, separators=(",", ":"))
    return value


def _dec(row: tuple[Any, ...]) -> dict[str, Any]:
    out = dict(zip(_COLUMNS, row))
    for c in _JSON_COLUMNS:
        if out[c] is not None:
            out[c] = json.loads(out[c])
    return out
