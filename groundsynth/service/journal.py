"""The job journal: an SQLite file (<workspace>/journal.sqlite) recording jobs, their
parameters, per-job metadata and every finished tile.

It is the backend's memory across restarts: a restarted backend reads every
job's true state from it (`mark_interrupted` turns jobs that were queued or
running when the process died into INTERRUPTED, to be resumed) and a resumed
job skips the tiles recorded here. A tile is recorded exactly once
(UNIQUE(job_id, tile_id)).

One connection per Journal, shared by threads under a lock (WAL mode, so other
connections, e.g. the server's event log, can read and write the same file).
Tables: jobs, job_meta, job_tiles. (The table name `events` is left to the
server's event log.)
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from groundsynth.artefacts.records import TileRecord
from groundsynth.request.errors import InvalidArgument, NotFound
from groundsynth.request.spec import JobSpec

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


class Journal:
    """Thread-safe access to <workspace>/journal.sqlite (or any path)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30, isolation_level=None)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=30000")
            self._db.executescript(_SCHEMA)

    @classmethod
    def for_workspace(cls, workspace: str | Path) -> Journal:
        return cls(Path(workspace) / "journal.sqlite")

    # ------------------------------------------------------------ helpers
    def _exec(self, sql: str, args: tuple = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, args)

    def _require(self, job_id: str) -> None:
        if self._exec("SELECT 1 FROM jobs WHERE job_id = ?", (job_id,)).fetchone() is None:
            raise NotFound(f"unknown job {job_id!r}", "job_id")

    # ------------------------------------------------------------ jobs
    def create_job(self, job_id: str, spec: JobSpec, output_dir: str) -> None:
        now = time.time()
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO jobs (job_id, state, spec_json, created, updated, output_dir) VALUES (?,?,?,?,?,?)",
                    (job_id, "QUEUED", spec.to_json(), now, now, str(output_dir)))
            except sqlite3.IntegrityError:
                raise InvalidArgument(f"job {job_id!r} already exists", "job_id") from None

    def set_state(self, job_id: str, state: str, error: str = "") -> None:
        if state not in JOB_STATES:
            raise ValueError(f"unknown job state {state!r}; expected one of {', '.join(JOB_STATES)}")
        with self._lock:
            self._require(job_id)
            self._exec("UPDATE jobs SET state = ?, error = ?, updated = ? WHERE job_id = ?",
                       (state, error, time.time(), job_id))

    def set_totals(self, job_id: str, tiles_total: int, synthetic_total: int) -> None:
        with self._lock:
            self._require(job_id)
            self._exec("UPDATE jobs SET tiles_total = ?, synthetic_total = ?, updated = ? WHERE job_id = ?",
                       (int(tiles_total), int(synthetic_total), time.time(), job_id))

    _ROW_SQL = """
        SELECT j.job_id, j.state, j.spec_json, j.tiles_total,
               (SELECT COUNT(*) FROM job_tiles t WHERE t.job_id = j.job_id AND t.kind = 'real'),
               j.synthetic_total,
               (SELECT COUNT(*) FROM job_tiles t WHERE t.job_id = j.job_id AND t.kind = 'synthetic'),
               j.created, j.updated, j.error, j.output_dir
        FROM jobs j"""

    @staticmethod
    def _row(r: tuple) -> JobRow:
        return JobRow(job_id=r[0], state=r[1], spec=JobSpec.from_json(r[2]), tiles_total=r[3], tiles_done=r[4],
                      synthetic_total=r[5], synthetic_done=r[6], created=r[7], updated=r[8], error=r[9],
                      output_dir=r[10])

    def get_job(self, job_id: str) -> JobRow | None:
        r = self._exec(self._ROW_SQL + " WHERE j.job_id = ?", (job_id,)).fetchone()
        return self._row(r) if r else None

    def list_jobs(self, limit: int = 0) -> list[JobRow]:
        sql = self._ROW_SQL + " ORDER BY j.created DESC, j.rowid DESC"
        args: tuple = ()
        if limit and limit > 0:
            sql += " LIMIT ?"
            args = (int(limit),)
        return [self._row(r) for r in self._exec(sql, args).fetchall()]

    def mark_interrupted(self) -> list[str]:
        """At backend start: jobs left QUEUED or RUNNING by a dead process become INTERRUPTED."""
        with self._lock:
            ids = [r[0] for r in self._exec(
                "SELECT job_id FROM jobs WHERE state IN ('QUEUED', 'RUNNING') ORDER BY created").fetchall()]
            if ids:
                self._exec(f"UPDATE jobs SET state = 'INTERRUPTED', updated = ? "
                           f"WHERE job_id IN ({','.join('?' * len(ids))})", (time.time(), *ids))
            return ids

    # ------------------------------------------------------------ meta
    def set_meta(self, job_id: str, key: str, value: Any) -> None:
        with self._lock:
            self._require(job_id)
            self._exec("INSERT INTO job_meta (job_id, key, value_json) VALUES (?,?,?) "
                       "ON CONFLICT (job_id, key) DO UPDATE SET value_json = excluded.value_json",
                       (job_id, key, json.dumps(value, sort_keys=True)))

    def get_meta(self, job_id: str, key: str, default: Any = None) -> Any:
        r = self._exec("SELECT value_json FROM job_meta WHERE job_id = ? AND key = ?", (job_id, key)).fetchone()
        return json.loads(r[0]) if r else default

    # ------------------------------------------------------------ tiles
    def record_tile(self, job_id: str, record: TileRecord) -> bool:
        """Record a finished tile once; False (and nothing changed) if it is already recorded."""
        with self._lock:
            cur = self._exec("INSERT OR IGNORE INTO job_tiles (job_id, tile_id, kind, record_json, created) "
                             "VALUES (?,?,?,?,?)", (job_id, record.tile_id, record.kind, record.to_json(), time.time()))
            if cur.rowcount:
                self._exec("UPDATE jobs SET updated = ? WHERE job_id = ?", (time.time(), job_id))
            return cur.rowcount == 1

    def update_tile(self, job_id: str, record: TileRecord) -> None:
        with self._lock:
            cur = self._exec("UPDATE job_tiles SET record_json = ?, kind = ? WHERE job_id = ? AND tile_id = ?",
                             (record.to_json(), record.kind, job_id, record.tile_id))
            if cur.rowcount == 0:
                raise NotFound(f"tile {record.tile_id!r} of job {job_id!r} is not recorded", "tile_id")

    def tiles(self, job_id: str, kind: str | None = None) -> list[TileRecord]:
        sql = "SELECT record_json FROM job_tiles WHERE job_id = ?"
        args: tuple[str, ...] = (job_id,)
        if kind:
            sql, args = sql + " AND kind = ?", (job_id, kind)
        return [TileRecord.from_json(r[0]) for r in self._exec(sql + " ORDER BY rowid", args).fetchall()]

    def tile_ids(self, job_id: str, kind: str | None = None) -> set[str]:
        sql = "SELECT tile_id FROM job_tiles WHERE job_id = ?"
        args: tuple[str, ...] = (job_id,)
        if kind:
            sql, args = sql + " AND kind = ?", (job_id, kind)
        return {r[0] for r in self._exec(sql, args).fetchall()}

    def close(self) -> None:
        with self._lock:
            self._db.close()
