"""Security helpers: path checks for client-given names (the access token is groundsynth.api.v1.auth).

- Source paths (`raster_path`, `label_raster_path`) must resolve (symlinks
  followed) to a file under one of the allowed roots: PERMISSION_DENIED otherwise.
- Names inside the workspace (artefact paths, upload file names and ids) are
  joined with `safe_join`: no absolute paths, no "..", no NUL, and the resolved
  result (symlinks followed) must stay inside the base folder.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from groundsynth.request.errors import InvalidArgument, NotFound, PermissionDenied

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\- ]{0,199}$")


# ------------------------------------------------------------------ paths

def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def resolve_source(path: str, roots: Iterable[Path], field: str) -> Path:
    """A client-given raster path, resolved; it must be an existing file under an allowed root."""
    if not path or "\x00" in path:
        raise InvalidArgument(f"expected an absolute file path, got {path!r}", field)
    if not os.path.isabs(path):
        raise InvalidArgument(f"expected an absolute path, got {path!r}", field)
    real = Path(os.path.realpath(path))
    roots = [Path(os.path.realpath(r)) for r in roots]
    if not any(_within(real, r) for r in roots):
        raise PermissionDenied(
            f"{path} is outside the allowed roots; expected a file under one of: "
            f"{', '.join(str(r) for r in roots)} (start the server with --allow-root DIR)", field)
    if not real.is_file():
        raise NotFound(f"no such file {path}", field)
    return real


def safe_join(base: str | os.PathLike, rel: str, field: str) -> Path:
    """`base/rel` for a client-given relative path; refuses anything that could leave `base`.

    Lexical checks (absolute, "..", NUL, backslash) raise InvalidArgument; a
    symlink pointing out of `base` raises PermissionDenied. The result may not exist.
    """
    if not rel or "\x00" in rel or "\\" in rel:
        raise InvalidArgument(f"expected a relative '/'-separated path, got {rel!r}", field)
    if rel.startswith("/") or os.path.isabs(rel) or re.match(r"^[A-Za-z]:", rel):
        raise InvalidArgument(f"expected a path relative to the job directory, got absolute {rel!r}", field)
    parts = rel.split("/")
    if any(p in ("..",) for p in parts):
        raise InvalidArgument(f"expected a path inside the job directory, got {rel!r} ('..' is not allowed)", field)
    base_real = Path(os.path.realpath(base))
    target = base_real.joinpath(*[p for p in parts if p not in ("", ".")])
    real = Path(os.path.realpath(target))
    if not _within(real, base_real):
        raise PermissionDenied(f"{rel!r} resolves outside the job directory", field)
    return real


def safe_filename(name: str, field: str) -> str:
    """A plain file name (no folders), e.g. "aoi.tif"; raises InvalidArgument otherwise."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or name.strip() != name:
        raise InvalidArgument(
            f"expected a plain file name such as 'aoi.tif' (letters, digits, '.', '_', '-', space; "
            f"no folders; at most 200 characters), got {name!r}", field)
    return name
