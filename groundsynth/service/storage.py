"""Storage failures told plainly: a broken journal, a full disk, and the files such a failure leaves.

- `broken_database(path, detail)`: the journal is not a readable SQLite file (truncated, corrupt):
  FailedPrecondition naming `journal`, with what to do. `serve` prints it as
  `error (FAILED_PRECONDITION): journal: ...` and exits 2, no traceback.
- `is_disk_full(exc)` / `sqlite_disk_full(path)` / `disk_full_error(workspace, exc)`: ENOSPC/EDQUOT from a
  file write (groundsynth.artefacts.atomic raises DiskFull) and SQLITE_FULL from the journal become
  RESOURCE_EXHAUSTED "disk full" naming the workspace, never INTERNAL "Write failed".
- `sweep_unrecorded(job_dir, recorded)`: after a job failed for lack of space, tile files the journal does not
  list (written before the record that failed) are removed, so every file left is a recorded one.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from groundsynth.artefacts.atomic import looks_like_disk_full
from groundsynth.request.errors import DiskFull, FailedPrecondition

SQLITE_FULL = 13


def broken_database(path: str | os.PathLike, detail: object) -> FailedPrecondition:
    path = Path(path)
    return FailedPrecondition(
        f"{path} is not a readable job journal ({detail}); it may be truncated or corrupt (a disk that filled "
        f"up, a copy cut short). Stop every server on this workspace, move the file aside "
        f"(mv {path} {path}.broken; also its -wal/-shm files) and start again: a new, empty journal is "
        "created and the job folders under jobs/ stay on disk, but the jobs recorded only in the old "
        "journal are no longer listed; or restore the file from a backup", "journal")


def is_disk_full(exc: BaseException) -> bool:
    """Is `exc` "no space left" from the OS, SQLite or GDAL?"""
    if isinstance(exc, sqlite3.Error) and getattr(exc, "sqlite_errorcode", None) == SQLITE_FULL:
        return True
    return looks_like_disk_full(exc)


def sqlite_disk_full(path: str | os.PathLike) -> DiskFull:
    folder = Path(path).resolve().parent
    return DiskFull(f"disk full: no space left to write the job journal {path} in the workspace {folder}; "
                    "free space there, then resubmit (or resume) the job", "workspace")


def disk_full_error(workspace: str | os.PathLike, exc: BaseException) -> DiskFull:
    """A DiskFull naming the workspace (message field "workspace"), from any disk-full error."""
    detail = exc.message if isinstance(exc, DiskFull) else f"{type(exc).__name__}: {exc}"
    detail = detail.removeprefix("workspace: ")
    return DiskFull(f"disk full: no space left in the workspace {Path(workspace).resolve()} ({detail}); free "
                    "space there and submit the job again (the tiles recorded so far are kept)", "workspace")


def sweep_unrecorded(job_dir: str | os.PathLike, recorded: Iterable[str]) -> list[Path]:
    """Remove tile GeoTIFFs under `job_dir` that no recorded tile names (paths relative to `job_dir`),
    and temp files ('.tmp-*') a write cut short left; returns what was removed."""
    base = Path(job_dir)
    keep = {(base / rel).resolve() for rel in recorded}
    removed: list[Path] = []
    if not base.is_dir():
        return removed
    for path in base.rglob("*"):
        if not path.is_file() or path.is_symlink():
            continue
        tile_file = path.suffix.lower() == ".tif" and path.parent.parent.name in ("real", "synthetic")
        if path.name.startswith(".tmp-") or (tile_file and path.resolve() not in keep):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
    return removed


# ------------------------------------------------------------------ job deletion

DELETED_PREFIX = ".deleting-"


class _Tomb:
    """A job directory renamed out of the way; `finish()` removes it and counts what it held."""

    def __init__(self, path: Path, original: Path):
        self.path = path
        self.original = original

    def restore(self) -> None:
        """Put the folder back (the rows could not be deleted, e.g. disk full)."""
        os.replace(self.path, self.original)

    def finish(self) -> tuple[int, int]:
        files = size = 0
        for p in self.path.rglob("*"):
            if p.is_file() and not p.is_symlink():
                files += 1
                size += p.stat().st_size
        shutil.rmtree(self.path, ignore_errors=True)
        return files, size


def remove_job_dir(workspace: str | os.PathLike, job_id: str, output_dir: str) -> _Tomb | None:
    """Rename <workspace>/jobs/<job_id> to jobs/.deleting-<job_id> (atomic: the job's files vanish at once);
    the caller then deletes the rows and calls `finish()`. Only that exact folder is ever touched."""
    jobs_root = Path(os.path.realpath(Path(workspace) / "jobs"))
    folder = jobs_root / job_id
    if Path(os.path.realpath(output_dir)) != folder or not folder.is_dir() or folder.is_symlink():
        return None                     # nothing of ours there (or a path we must not touch)
    tomb = jobs_root / f"{DELETED_PREFIX}{job_id}"
    shutil.rmtree(tomb, ignore_errors=True)
    os.replace(folder, tomb)
    return _Tomb(tomb, folder)


def sweep_deleted(workspace: str | os.PathLike) -> None:
    """At start: remove job folders a deletion renamed but did not finish removing."""
    jobs_root = Path(workspace) / "jobs"
    if jobs_root.is_dir():
        for p in jobs_root.glob(f"{DELETED_PREFIX}*"):
            shutil.rmtree(p, ignore_errors=True)
