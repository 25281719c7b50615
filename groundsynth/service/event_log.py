"""Per-job event log: persisted, numbered, and fanned out to live streams.

Every event of a job (groundsynth.v1.JobEvent) gets the next `seq` of that job
(1, 2, 3, ... continuing across backend restarts) and is stored in the
`job_events` table of the journal's sqlite file (own connection, WAL mode), so
Watch can replay a job's history after a restart. Live Submit/Watch streams
wait on one threading.Condition that `append` notifies.

Thread safety: the connection is used only under `_lock`, and every query's
rows are read (fetchall) before the lock is released, so no statement stays
open between calls. SQLITE_FULL is DiskFull ("disk full", naming the workspace).
"""
from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from groundsynth.api.v1.contract import pb
from groundsynth.service.storage import broken_database, is_disk_full, sqlite_disk_full

TERMINAL_KINDS = ("done", "failed")
EVENT_KINDS = ("accepted", "progress", "tile", "layer", "report", "failed", "done")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS job_events (
    job_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    time REAL NOT NULL,
    kind TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (job_id, seq)
)
"""


class EventLog:
    """Append-only event store with subscriber fan-out (thread-safe)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA busy_timeout=30000")
            self._db.execute(_SCHEMA)
        except sqlite3.Error as exc:
            if is_disk_full(exc):
                raise sqlite_disk_full(self.path) from None
            raise broken_database(self.path, exc) from None
        self._lock = threading.Lock()            # guards the connection and _last
        self._cond = threading.Condition()       # notified on every append
        self._last: dict[str, int] = {}
        self._closed = False

    # ---------------------------------------------------------------- writing
    def append(self, job_id: str, kind: str, msg: Any) -> Any:
        """Persist `msg` (the pb sub-message of `kind`) as the job's next event; returns the pb.JobEvent."""
        if kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {kind!r}; expected one of {', '.join(EVENT_KINDS)}")
        with self._lock:
            seq = self._last_seq_locked(job_id) + 1
            event = pb.JobEvent(job_id=job_id, seq=seq, time=time.time())
            getattr(event, kind).CopyFrom(msg)
            try:
                self._db.execute("INSERT INTO job_events (job_id, seq, time, kind, data) VALUES (?, ?, ?, ?, ?)",
                                 (job_id, seq, event.time, kind, event.SerializeToString()))
            except sqlite3.Error as exc:
                if is_disk_full(exc):
                    raise sqlite_disk_full(self.path) from None
                raise
            self._last[job_id] = seq
        with self._cond:
            self._cond.notify_all()
        return event

    def _last_seq_locked(self, job_id: str) -> int:
        if job_id not in self._last:
            rows = self._db.execute("SELECT MAX(seq) FROM job_events WHERE job_id = ?", (job_id,)).fetchall()
            self._last[job_id] = int(rows[0][0] or 0) if rows else 0
        return self._last[job_id]

    # ---------------------------------------------------------------- reading
    def last_seq(self, job_id: str) -> int:
        with self._lock:
            return self._last_seq_locked(job_id)

    def events(self, job_id: str, after_seq: int = 0, limit: int = 1000) -> list[Any]:
        """Stored events of a job with seq > after_seq, in order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT data FROM job_events WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                (job_id, int(after_seq), int(limit))).fetchall()
        return _parse(rows)

    def tile_ids(self, job_id: str) -> set[str]:
        """Ids of the tiles the job's stored `tile` events report."""
        with self._lock:
            rows = self._db.execute("SELECT data FROM job_events WHERE job_id = ? AND kind = 'tile'",
                                    (job_id,)).fetchall()
        return {ev.tile.tile_id for ev in _parse(rows)}

    def last_kind(self, job_id: str) -> str | None:
        with self._lock:
            rows = self._db.execute("SELECT kind FROM job_events WHERE job_id = ? ORDER BY seq DESC LIMIT 1",
                                    (job_id,)).fetchall()
        return rows[0][0] if rows else None

    def follow(self, job_id: str, after_seq: int = 0, *, finished: Callable[[], bool],
               active: Callable[[], bool] = lambda: True, poll_s: float = 0.5) -> Iterator[Any]:
        """Yield the job's events after `after_seq`, then new ones as they come, until a
        `done`/`failed` event has been yielded, or `finished()` says the job has ended and
        every stored event was yielded, or `active()` turns False (client went away)."""
        seq = int(after_seq)
        while active() and not self._closed:
            batch = self.events(job_id, seq)
            for ev in batch:
                seq = ev.seq
                yield ev
                if ev.WhichOneof("event") in TERMINAL_KINDS and self.last_seq(job_id) == seq:
                    return
            if batch:
                continue
            if finished() and self.last_seq(job_id) <= seq:
                return
            with self._cond:
                if self.last_seq(job_id) <= seq:
                    self._cond.wait(poll_s)

    def wake_all(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def delete(self, job_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM job_events WHERE job_id = ?", (job_id,))
            self._last.pop(job_id, None)

    def close(self) -> None:
        self._closed = True
        self.wake_all()
        with self._lock:
            self._db.close()


def _parse(rows: list[tuple[bytes]]) -> list[Any]:
    """pb.JobEvents of (data,) rows of job_events."""
    out = []
    for (data,) in rows:
        ev = pb.JobEvent()
        ev.ParseFromString(data)
        out.append(ev)
    return out
