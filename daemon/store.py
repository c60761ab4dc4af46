"""Job records in SQLite (WAL).

Synchronous and small: each call is one indexed statement, well under a millisecond, so the
daemon calls it directly from its trio thread.  ``synchronous=NORMAL`` in WAL mode keeps
every committed record across a crash of the daemon process.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

__all__ = ["Store", "SCHEMA_VERSION"]

SCHEMA_VERSION = 1
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
"""


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA busy_timeout=5000")
        self.db.executescript(_SCHEMA)
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
        self._counts: dict[tuple[str, str], int] = {
            (st, kind): n for st, kind, n in self.db.execute(
                "SELECT status, kind, COUNT(*) FROM jobs GROUP BY status, kind")}

    def close(self) -> None:
        self.db.close()

    def insert(self, job: dict[str, Any]) -> None:
        cols = [c for c in _COLUMNS if c in job]
        vals = [_enc(c, job[c]) for c in cols]
        self.db.execute(
            f"INSERT INTO jobs ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})", vals)
        self._count(job["status"], job["kind"], 1)

    def insert_many(self, jobs: list[dict[str, Any]]) -> None:
        """Insert ``jobs`` in one transaction: one commit for all (a group commit), all or
        none.  Once this returns they are in the WAL, which a crash of the daemon keeps."""
        if len(jobs) == 1:
            self.insert(jobs[0])  # autocommit: one statement is its own transaction
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for job in jobs:
                cols = [c for c in _COLUMNS if c in job]
                self.db.execute(f"INSERT INTO jobs ({','.join(cols)}) VALUES "
                                f"({','.join('?' * len(cols))})", [_enc(c, job[c]) for c in cols])
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise
        for job in jobs:
            self._count(job["status"], job["kind"], 1)

    def update(self, job_id: str, **fields: Any) -> None:
        if not fields:
            return
        old = None
        if "status" in fields:
            old = self.db.execute("SELECT status, kind FROM jobs WHERE id=?",
                                  (job_id,)).fetchone()
        sets = ",".join(f"{c}=?" for c in fields)
        self.db.execute(f"UPDATE jobs SET {sets} WHERE id=?",
                        [*(_enc(c, v) for c, v in fields.items()), job_id])
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
        """Remove the records of ``ids`` in one transaction (all or none)."""
        if not ids:
            return
        gone: list[tuple[str, str]] = []
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for i in range(0, len(ids), 500):
                part = ids[i:i + 500]
                marks = ",".join("?" * len(part))
                gone += self.db.execute(
                    f"SELECT status, kind FROM jobs WHERE id IN ({marks})", part).fetchall()
                self.db.execute(f"DELETE FROM jobs WHERE id IN ({marks})", part)
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise
        for status, kind in gone:
            self._count(status, kind, -1)

    def retention_mark(self) -> int:
        """Every finished job at or below this seq has had its log removed."""
        row = self.db.execute("SELECT value FROM meta WHERE key='retention_mark'").fetchone()
        return int(row[0]) if row else 0

    def set_retention_mark(self, mark: int) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('retention_mark', ?)", (str(mark),))


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
