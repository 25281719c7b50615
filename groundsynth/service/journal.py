"""The job journal: an SQLite file (<workspace>/journal.sqlite) recording jobs, their
parameters, per-job metadata and every finished tile.

It is the backend's memory across restarts: a restarted backend reads every
job's true state from it (`mark_interrupted` turns jobs that were queued or
running when the process died into INTERRUPTED, to be resumed) and a resumed
job skips the tiles recorded here. A tile is recorded exactly once
(UNIQUE(job_id, tile_id)).

Thread safety: one connection per Journal, shared by threads under one lock.
Every query's rows are read completely (fetchall) while the lock is held, so
no statement stays open between calls (an open statement keeps a read
transaction that another thread's write on the same connection then trips
over: "another row available", "database is locked"), and writes of more than
one statement run in one `BEGIN IMMEDIATE` transaction. WAL mode, so other
connections (the server's event log, other processes) read and write the same
file. Tables: jobs, job_meta, job_tiles. (The table name `events` is left to
the server's event log.)

Errors: a file that is not a readable SQLite database (truncated, corrupt) is
FailedPrecondition naming `journal` and what to do; a full disk is
ResourceExhausted "disk full" naming the journal's folder (service.storage).
"""
from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from groundsynth.artefacts.records import TileRecord
from groundsynth.request.errors import InvalidArgument, NotFound
from groundsynth.request.spec import JobSpec
from groundsynth.service.storage import broken_database, is_disk_full, sqlite_disk_full

JOB_STATES = ("QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", "INTERRUPTED")
FINAL_STATES = ("SUCCEEDED", "FAILED", "CANCELLED")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    spec_json TEXT NOT NULL,
    tiles_total INTEGER NOT NULL DEFAULT 0,
    synthetic_total INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    error TEXT NOT NULL DEFAULT '',
    output_dir TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS job_meta (
    job_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value_json TEXT NOT NULL,
    PRIMARY KEY (job_id, key)
);
CREATE TABLE IF NOT EXISTS job_tiles (
    job_id TEXT NOT NULL,
    tile_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    record_json TEXT NOT NULL,
    created REAL NOT NULL,
    UNIQUE (job_id, tile_id)
);
CREATE INDEX IF NOT EXISTS job_tiles_kind ON job_tiles (job_id, kind);
"""


@dataclass
class JobRow:
    job_id: str
    state: str
    spec: JobSpec
    tiles_total: int
    tiles_done: int
    synthetic_total: int
    synthetic_done: int
    created: float
    updated: float
    error: str
    output_dir: str
    position: tuple[float, int] = (0.0, 0)    # (created, rowid): where the job sits in list order (list_page)


class Journal:
    """Thread-safe access to <workspace>/journal.sqlite (or any path)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30, isolation_level=None)
        except sqlite3.Error as exc:
            raise broken_database(self.path, exc) from None
        try:
            with self._lock:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute("PRAGMA busy_timeout=30000")
                self._db.executescript(_SCHEMA)
                problems = [r[0] for r in self._db.execute("PRAGMA quick_check").fetchall()]
        except sqlite3.Error as exc:
            self._db.close()
            if is_disk_full(exc):
                raise sqlite_disk_full(self.path) from None
            raise broken_database(self.path, exc) from None
        if problems != ["ok"]:
            self._db.close()
            raise broken_database(self.path, "; ".join(problems[:3]))

    @classmethod
    def for_workspace(cls, workspace: str | Path) -> Journal:
        return cls(Path(workspace) / "journal.sqlite")

    # ------------------------------------------------------------ helpers (rows read under the lock)
    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock, self._errors():
            return self._db.execute(sql, args).fetchall()

    def _one(self, sql: str, args: tuple = ()) -> tuple | None:
        rows = self._query(sql, args)
        return rows[0] if rows else None

    def _write(self, sql: str, args: tuple = ()) -> int:
        """One statement (its own transaction); returns the number of rows changed."""
        with self._lock, self._errors():
            return self._db.execute(sql, args).rowcount

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """Several statements as one write transaction, under the lock."""
        with self._lock, self._errors():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            if is_disk_full(exc):
                raise sqlite_disk_full(self.path) from None
            raise

    @staticmethod
    def _exists(db: sqlite3.Connection, job_id: str) -> None:
        if not db.execute("SELECT 1 FROM jobs WHERE job_id = ?", (job_id,)).fetchall():
            raise NotFound(f"unknown job {job_id!r}", "job_id")

    # ------------------------------------------------------------ jobs
    def create_job(self, job_id: str, spec: JobSpec, output_dir: str) -> None:
        now = time.time()
        try:
            self._write("INSERT INTO jobs (job_id, state, spec_json, created, updated, output_dir) VALUES (?,?,?,?,?,?)",
                        (job_id, "QUEUED", spec.to_json(), now, now, str(output_dir)))
        except sqlite3.IntegrityError:
            raise InvalidArgument(f"job {job_id!r} already exists", "job_id") from None

    def set_state(self, job_id: str, state: str, error: str = "") -> None:
        if state not in JOB_STATES:
            raise ValueError(f"unknown job state {state!r}; expected one of {', '.join(JOB_STATES)}")
        with self._transaction() as db:
            self._exists(db, job_id)
            db.execute("UPDATE jobs SET state = ?, error = ?, updated = ? WHERE job_id = ?",
                       (state, error, time.time(), job_id))

    def set_totals(self, job_id: str, tiles_total: int, synthetic_total: int) -> None:
        with self._transaction() as db:
            self._exists(db, job_id)
            db.execute("UPDATE jobs SET tiles_total = ?, synthetic_total = ?, updated = ? WHERE job_id = ?",
                       (int(tiles_total), int(synthetic_total), time.time(), job_id))

    _ROW_SQL = """
        SELECT j.job_id, j.state, j.spec_json, j.tiles_total,
               (SELECT COUNT(*) FROM job_tiles t WHERE t.job_id = j.job_id AND t.kind = 'real'),
               j.synthetic_total,
               (SELECT COUNT(*) FROM job_tiles t WHERE t.job_id = j.job_id AND t.kind = 'synthetic'),
               j.created, j.updated, j.error, j.output_dir, j.rowid
        FROM jobs j"""
    _ORDER = " ORDER BY j.created DESC, j.rowid DESC"

    @staticmethod
    def _row(r: tuple) -> JobRow:
        return JobRow(job_id=r[0], state=r[1], spec=JobSpec.from_json(r[2]), tiles_total=r[3], tiles_done=r[4],
                      synthetic_total=r[5], synthetic_done=r[6], created=r[7], updated=r[8], error=r[9],
                      output_dir=r[10], position=(r[7], r[11]))

    def get_job(self, job_id: str) -> JobRow | None:
        r = self._one(self._ROW_SQL + " WHERE j.job_id = ?", (job_id,))
        return self._row(r) if r else None

    def list_jobs(self, limit: int = 0) -> list[JobRow]:
        sql, args = self._ROW_SQL + self._ORDER, cast(tuple, ())
        if limit and limit > 0:
            sql, args = sql + " LIMIT ?", (int(limit),)
        return [self._row(r) for r in self._query(sql, args)]

    def list_page(self, limit: int, after: tuple[float, int] | None = None) -> tuple[list[JobRow], bool]:
        """Up to `limit` jobs, newest first, after the `position` of the last job of the previous page;
        returns (rows, whether more jobs follow)."""
        sql, args = self._ROW_SQL, cast(tuple, ())
        if after is not None:
            sql += " WHERE (j.created < ? OR (j.created = ? AND j.rowid < ?))"
            args = (float(after[0]), float(after[0]), int(after[1]))
        rows = self._query(sql + self._ORDER + " LIMIT ?", (*args, int(limit) + 1))
        return [self._row(r) for r in rows[:limit]], len(rows) > limit

    def count_jobs(self) -> int:
        r = self._one("SELECT COUNT(*) FROM jobs")
        return int(r[0]) if r else 0

    def mark_interrupted(self) -> list[str]:
        """At backend start: jobs left QUEUED or RUNNING by a dead process become INTERRUPTED."""
        with self._transaction() as db:
            ids = [r[0] for r in db.execute(
                "SELECT job_id FROM jobs WHERE state IN ('QUEUED', 'RUNNING') ORDER BY created").fetchall()]
            if ids:          # same transaction: exactly the jobs just selected
                db.execute("UPDATE jobs SET state = 'INTERRUPTED', updated = ? WHERE state IN ('QUEUED', 'RUNNING')",
                           (time.time(),))
            return ids

    def delete_job(self, job_id: str) -> None:
        """Remove a job's rows (jobs, job_meta, job_tiles) in one transaction."""
        with self._transaction() as db:
            self._exists(db, job_id)
            db.execute("DELETE FROM job_tiles WHERE job_id = ?", (job_id,))
            db.execute("DELETE FROM job_meta WHERE job_id = ?", (job_id,))
            db.execute("DELETE FROM jobs WHERE job_id = ?", (job_id,))

    # ------------------------------------------------------------ meta
    def set_meta(self, job_id: str, key: str, value: Any) -> None:
        with self._transaction() as db:
            self._exists(db, job_id)
            db.execute("INSERT INTO job_meta (job_id, key, value_json) VALUES (?,?,?) "
                       "ON CONFLICT (job_id, key) DO UPDATE SET value_json = excluded.value_json",
                       (job_id, key, json.dumps(value, sort_keys=True)))

    def get_meta(self, job_id: str, key: str, default: Any = None) -> Any:
        r = self._one("SELECT value_json FROM job_meta WHERE job_id = ? AND key = ?", (job_id, key))
        return json.loads(r[0]) if r else default

    # ------------------------------------------------------------ tiles
    def record_tile(self, job_id: str, record: TileRecord) -> bool:
        """Record a finished tile once; False (and nothing changed) if it is already recorded."""
        with self._transaction() as db:
            cur = db.execute("INSERT OR IGNORE INTO job_tiles (job_id, tile_id, kind, record_json, created) "
                             "VALUES (?,?,?,?,?)", (job_id, record.tile_id, record.kind, record.to_json(), time.time()))
            added = cur.rowcount == 1
            if added:
                db.execute("UPDATE jobs SET updated = ? WHERE job_id = ?", (time.time(), job_id))
            return added

    def update_tile(self, job_id: str, record: TileRecord) -> None:
        n = self._write("UPDATE job_tiles SET record_json = ?, kind = ? WHERE job_id = ? AND tile_id = ?",
                        (record.to_json(), record.kind, job_id, record.tile_id))
        if n == 0:
            raise NotFound(f"tile {record.tile_id!r} of job {job_id!r} is not recorded", "tile_id")

    def tiles(self, job_id: str, kind: str | None = None) -> list[TileRecord]:
        sql = "SELECT record_json FROM job_tiles WHERE job_id = ?"
        args: tuple[str, ...] = (job_id,)
        if kind:
            sql, args = sql + " AND kind = ?", (job_id, kind)
        return [TileRecord.from_json(r[0]) for r in self._query(sql + " ORDER BY rowid", args)]

    def tile_ids(self, job_id: str, kind: str | None = None) -> set[str]:
        sql = "SELECT tile_id FROM job_tiles WHERE job_id = ?"
        args: tuple[str, ...] = (job_id,)
        if kind:
            sql, args = sql + " AND kind = ?", (job_id, kind)
        return {r[0] for r in self._query(sql, args)}

    def close(self) -> None:
        with self._lock:
            self._db.close()
