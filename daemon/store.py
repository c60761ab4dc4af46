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
        # Jobs per status, counted once here and then kept as jobs are added and change
        # status (daemon.status reports them on every call; a count is a scan of the table).
        self._counts: dict[str, int] = dict(self.db.execute(
            "SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall())

    def close(self) -> None:
        self.db.close()

    def insert(self, job: dict[str, Any]) -> None:
        cols = [c for c in _COLUMNS if c in job]
        vals = [_enc(c, job[c]) for c in cols]
        self.db.execute(
            f"INSERT INTO jobs ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})", vals)
        self._count(job["status"], 1)

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
            self._count(job["status"], 1)

    def update(self, job_id: str, **fields: Any) -> None:
        if not fields:
            return
        old = None
        if "status" in fields:
            row = self.db.execute("SELECT status FROM jobs WHERE id=?", (job_id,)).fetchone()
            old = row[0] if row else None
        sets = ",".join(f"{c}=?" for c in fields)
        self.db.execute(f"UPDATE jobs SET {sets} WHERE id=?",
                        [*(_enc(c, v) for c, v in fields.items()), job_id])
        if old is not None and old != fields["status"]:
            self._count(old, -1)
            self._count(fields["status"], 1)

    def _count(self, status: str, n: int) -> None:
        left = self._counts.get(status, 0) + n
        if left:
            self._counts[status] = left
        else:
            self._counts.pop(status, None)

    def get(self, job_id: str) -> dict[str, Any] | None:
        row = self.db.execute(self._select + " WHERE id=?", (job_id,)).fetchone()
        return _dec(row) if row else None

    def list_jobs(self, status: str | None = None, kind: str | None = None,
                  limit: int = 100) -> list[dict[str, Any]]:
        where, args = _where(status, kind)
        sql = self._select + where + " ORDER BY seq DESC LIMIT ?"
        return [_dec(r) for r in self.db.execute(sql, [*args, limit])]

    def count(self, status: str | None = None, kind: str | None = None) -> int:
        """Jobs matching the filters: from the counts kept in memory unless ``kind`` is
        given (a 100,000-job table takes a scan to count)."""
        if kind is None:
            return self._counts.get(status, 0) if status else sum(self._counts.values())
        where, args = _where(status, kind)
        return int(self.db.execute("SELECT COUNT(*) FROM jobs" + where, args).fetchone()[0])

    def by_status(self, *statuses: str) -> list[dict[str, Any]]:
        marks = ",".join("?" * len(statuses))
        return [_dec(r) for r in self.db.execute(
            self._select + f" WHERE status IN ({marks}) ORDER BY seq", statuses)]

    def counts(self) -> dict[str, int]:
        """Jobs per status (kept in memory; ``count_rows`` asks the table itself)."""
        return dict(self._counts)

    def count_rows(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall())

    def finished_beyond(self, keep: int) -> list[str]:
        """Ids of finished jobs older than the newest ``keep`` ones whose logs are still kept."""
        rows = self.db.execute(
            "SELECT id, extra FROM jobs WHERE finished_at IS NOT NULL ORDER BY seq DESC "
            "LIMIT -1 OFFSET ?", (keep,)).fetchall()
        # Logs already removed are skipped, so each run touches only newly old jobs.
        return [r[0] for r in rows if not (r[1] and '"log_removed":true' in r[1])]


def _where(status: str | None, kind: str | None) -> tuple[str, list[str]]:
    where, args = [], []
    if status:
        where.append("status=?")
        args.append(status)
    if kind:
        where.append("kind=?")
        args.append(kind)
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
