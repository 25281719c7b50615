"""Job files a backend names stay inside the folder they belong to.

A backend on another machine names the files of a job (LayerReady paths, the report path, the
SourceFilename entries of its VRT mosaics); the plugin fetches them into its cache. A hostile or broken
backend must not make it write or read anywhere else, so every name is checked before it is used:

- `inside(folder, rel)`: a relative name made of plain parts: no absolute path, no drive letter, no `..`,
  no `~`, no NUL (so no `/vsi...` path either); `\\` counts as a separator too. With `resolve=True` (the cache) the
  result is also resolved and must still lie in the folder, so a symlink inside it cannot lead out.
- `vrt_sources(path)`: the source file names of a VRT, parsed safely: a VRT with a DOCTYPE or an entity
  declaration is refused before it reaches the XML parser (no entity expansion, no external entities),
  and every source must be relative to the VRT (`relativeToVRT="1"`).
"""
from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET  # nosec B405 # parsed only after DOCTYPE/ENTITY are refused (vrt_sources)
from pathlib import Path

from ..errors import PluginError

MAX_VRT_BYTES = 64 * 1024 * 1024
_DRIVE = re.compile(r"^[A-Za-z]:")
_DTD = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


class UnsafeJobFile(PluginError):
    title = "Unsafe job file"


def _refuse(name: str, why: str) -> UnsafeJobFile:
    return UnsafeJobFile(f"the backend named the job file {name!r}, which {why}; it was not fetched or opened "
                         "(is this backend trustworthy?)")


def relative_parts(rel: str) -> list[str]:
    """The parts of a job-relative name; UnsafeJobFile when it is absolute or climbs out."""
    if not isinstance(rel, str) or not rel.strip():
        raise _refuse(str(rel), "is empty")
    if "\0" in rel:
        raise _refuse(rel, "holds a NUL character")
    text = rel.replace("\\", "/")
    if text.startswith("/") or _DRIVE.match(text):
        raise _refuse(rel, "is an absolute path, outside the job's folder")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if not parts:
        raise _refuse(rel, "names no file")
    if any(p == ".." for p in parts):
        raise _refuse(rel, "climbs out of the job's folder (..)")
    if parts[0].startswith("~"):
        raise _refuse(rel, "starts with ~ (a home folder)")
    return parts


def inside(folder: str | os.PathLike, rel: str, resolve: bool = False) -> Path:
    """`folder / rel`, refused (UnsafeJobFile) unless it stays inside `folder`; with `resolve`, also after
    following symlinks (for the cache, where the plugin writes)."""
    folder = Path(folder)
    dest = folder.joinpath(*relative_parts(rel))
    if resolve:
        real_folder = Path(os.path.realpath(folder))
        real = Path(os.path.realpath(dest))
        if real == real_folder or not real.is_relative_to(real_folder):
            raise _refuse(rel, f"leads out of the cache {folder} through a symbolic link")
    return dest


def job_folder(cache_dir: str | os.PathLike, job_id: str) -> Path:
    """The cache folder of one job: `cache_dir / job_id`, a single plain name."""
    try:
        plain = len(relative_parts(job_id)) == 1 and "/" not in job_id and "\\" not in job_id
    except UnsafeJobFile:
        plain = False
    if not plain:
        raise UnsafeJobFile(f"the backend named a job {job_id!r}, which is not a plain folder name; nothing of it "
                            "was fetched")
    return inside(cache_dir, job_id, resolve=True)


def vrt_sources(path: str | os.PathLike, rel: str = "") -> list[str]:
    """The SourceFilename entries of a fetched VRT (each relative to the VRT); UnsafeJobFile for a VRT that
    declares a DOCTYPE or entities, that is not XML, or that names a source by an absolute path."""
    path = Path(path)
    name = rel or path.name
    if path.stat().st_size > MAX_VRT_BYTES:
        raise UnsafeJobFile(f"the VRT {name} is larger than {MAX_VRT_BYTES // 2 ** 20} MiB; it was not parsed")
    data = path.read_bytes()
    if _DTD.search(data):
        raise UnsafeJobFile(f"the VRT {name} declares a DOCTYPE or entities; it was not parsed "
                            "(the backend's VRTs never do)")
    try:
        root = ET.fromstring(data)  # nosec B314 # DOCTYPE/ENTITY refused above: no entity expansion, no external entities
    except ET.ParseError as exc:
        raise UnsafeJobFile(f"the VRT {name} is not valid XML ({exc})") from None
    sources = []
    for src in root.iter("SourceFilename"):
        text = src.text or ""
        if not text.strip():
            continue
        if src.get("relativeToVRT") != "1":
            raise _refuse(text, f"is a source of {name} that is not relative to the VRT")
        relative_parts(text)
        sources.append(text)
    return sources


__all__ = ["UnsafeJobFile", "inside", "job_folder", "relative_parts", "vrt_sources"]
