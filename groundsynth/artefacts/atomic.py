"""Atomic file output: write to a temp file in the same folder, then rename.

No half-written file is ever visible under its final name: readers see either
the old file or the complete new one.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temp path beside `final`; on success fsync and rename it over `final`.

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
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, final)
    finally:
        for leftover in (tmp_path, Path(str(tmp_path) + ".aux.xml")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def write_bytes(final: str | os.PathLike, data: bytes) -> None:
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)


def write_text(final: str | os.PathLike, text: str) -> None:
    write_bytes(final, text.encode("utf-8"))
