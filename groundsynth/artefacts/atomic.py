"""Atomic file output: write to a temp file in the same folder, then rename.

No half-written file is ever visible under its final name: readers see either
the old file or the complete new one. A write that fails because the disk is
full (ENOSPC/EDQUOT, or GDAL's "no space"/"free disk space" errors) raises
DiskFull naming the file; its temp file is removed like on any failure.

Durability: by default each file is fsynced before its rename. Writers of many small files (the
pipeline's tile batches) pass `sync=False` and call `sync_files` once for the whole batch, before
recording it anywhere: the rename still makes every file appear whole or not at all, and the batch
is on disk before the journal says so.
"""
from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from groundsynth.request.errors import DiskFull

_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_FULL_TEXTS = ("no space left on device", "disk quota exceeded", "free disk space", "database or disk is full")


def looks_like_disk_full(exc: BaseException) -> bool:
    """Is `exc` (or what it was raised from) "no space left" from the OS, GDAL or SQLite?"""
    seen = 0
    e: BaseException | None = exc
    while e is not None and seen < 5:
        if isinstance(e, DiskFull) or (isinstance(e, OSError) and e.errno in _FULL_ERRNOS):
            return True
        if any(t in str(e).lower() for t in _FULL_TEXTS):
            return True
        e, seen = e.__cause__ or e.__context__, seen + 1
    return False


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, suffix: str | None = None, sync: bool = True) -> Iterator[Path]:
    """Yield a temp path beside `final`; on success fsync (unless `sync` is False) and rename it over `final`.

    The temp name keeps the final suffix (drivers such as GTiff/GPKG pick the
    format from it) and starts with '.tmp-' so globbing for outputs skips it.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix if suffix is not None else final.suffix,
                               dir=final.parent)
    os.close(fd)
    os.unlink(tmp)   # let the writer create it (GDAL refuses some existing empty files)
    tmp_path = Path(tmp)
    try:
        try:
            yield tmp_path
            if sync:
                with open(tmp_path, "rb+") as fh:
                    os.fsync(fh.fileno())
            os.replace(tmp_path, final)
        except Exception as exc:
            if not isinstance(exc, DiskFull) and looks_like_disk_full(exc):
                raise DiskFull(f"disk full: no space left to write {final}", "workspace") from None
            raise
    finally:
        for leftover in (tmp_path, Path(str(tmp_path) + ".aux.xml")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def sync_files(paths: Iterable[str | os.PathLike]) -> None:
    """fsync each file, then each distinct folder holding them (so their renames are durable too)."""
    folders: dict[str, None] = {}
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        folders[os.path.dirname(os.path.abspath(p))] = None
    for folder in folders:
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def remove_temp_files(folder: str | os.PathLike) -> int:
    """Delete the '.tmp-*' files atomic_path leaves when its process is killed mid-write; returns how many.
    Call it only while nothing writes into `folder`."""
    n = 0
    for p in Path(folder).rglob(".tmp-*"):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            n += 1
    return n


def write_bytes(final: str | os.PathLike, data: bytes) -> None:
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)


def write_text(final: str | os.PathLike, text: str) -> None:
    write_bytes(final, text.encode("utf-8"))
