"""Security checks for client-given names: the one place that decides what the server may open.

(The access token is groundsynth.api.v1.auth.)

- `check_raster(path, roots, field)`: EVERY file a source or label raster would make GDAL open lies under
  an allowed root. Used by Submit for `raster_path` and `label_raster_path` (and again when a job runs or
  resumes) and by UploadRaster (roots = the upload's own folder). It refuses, with PERMISSION_DENIED:
  `/vsi*` paths (network and archive handlers: /vsicurl, /vsis3, /vsizip...), URLs and connection strings,
  paths that resolve (symlinks followed) outside the roots, VRT members that do (recursively, relative
  names resolved like GDAL does), VRT Python pixel functions, and formats that read other files or
  servers (only the local formats of LOCAL_DRIVERS open; a VRT only after its members were checked).
  Nothing is opened by GDAL before the checks that need no GDAL have passed, so a hostile VRT never makes
  the server fetch a URL. A file GDAL cannot read as a raster, or whose pixel blocks do not read
  (truncated), is INVALID_ARGUMENT.
- `resolve_source(path, roots, field)`: the path part of that check (absolute, under a root, a file).
- `check_weights_path(value, ...)`: an engine's `path` parameter (neural `weights`) must resolve under the
  allowed roots or the models folder; the error is the same whether or not an outside path exists.
- Names inside the workspace (artefact paths, upload file names and ids) are joined with `safe_join`:
  no absolute paths, no "..", no NUL, and the resolved result must stay inside the base folder.
"""
from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET  # nosec B405 # parsed only once DOCTYPE/ENTITY are refused (_vrt_members)
from collections.abc import Iterable
from pathlib import Path

from groundsynth.request.errors import InvalidArgument, NotFound, PermissionDenied

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\- ]{0,199}$")
# GDAL drivers of self-contained local rasters (sidecars such as .aux.xml/.ovr/.msk/.hdr sit beside the file
# and are checked with it). Everything else (WMS, WMTS, GTI, STACIT, MRF, PDS, ERS, HTTP, ...) can name other
# files or URLs and is refused.
LOCAL_DRIVERS = ("GTiff", "COG", "JP2OpenJPEG", "JPEG", "PNG", "HFA", "ENVI", "EHdr", "AAIGrid", "VRT")
_VRT_MAX_BYTES = 16 * 1024 * 1024
_VRT_MAX_DEPTH = 8
_VRT_FILE_TAGS = ("sourcefilename", "sourcedataset")
_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


# ------------------------------------------------------------------ paths

def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _real_roots(roots: Iterable[os.PathLike | str]) -> list[Path]:
    return [Path(os.path.realpath(r)) for r in roots]


def _outside(path: str, roots: list[Path], field: str) -> PermissionDenied:
    return PermissionDenied(
        f"{path} is outside the allowed roots; expected a file under one of: "
        f"{', '.join(str(r) for r in roots)} (start the server with --allow-root DIR)", field)


def _refuse_remote(path: str, field: str, what: str = "") -> None:
    if path.startswith("/vsi") or _URL_RE.match(path):
        raise PermissionDenied(f"{what}{path!r} names a network or virtual file system path (/vsi*, URLs); "
                               "expected a local file under the allowed roots", field)


def resolve_source(path: str, roots: Iterable[Path], field: str) -> Path:
    """A client-given raster path, resolved; it must be an existing file under an allowed root."""
    if not path or "\x00" in path:
        raise InvalidArgument(f"expected an absolute file path, got {path!r}", field)
    _refuse_remote(path, field)
    if not os.path.isabs(path):
        raise InvalidArgument(f"expected an absolute path, got {path!r}", field)
    real = Path(os.path.realpath(path))
    real_roots = _real_roots(roots)
    if not any(_within(real, r) for r in real_roots):
        raise _outside(path, real_roots, field)
    if not real.is_file():
        raise NotFound(f"no such file {path}", field)
    return real


# ------------------------------------------------------------------ rasters

def check_raster(path: str | os.PathLike, roots: Iterable[os.PathLike | str], field: str,
                 blocks: bool = True) -> Path:
    """Resolve `path` and check every file it opens (see the module doc); returns the resolved path."""
    real_roots = _real_roots(roots)
    real = resolve_source(os.fspath(path), real_roots, field)
    if _is_vrt(real):
        _check_vrt(real, real_roots, field, depth=0, seen=set())
    _check_with_gdal(real, real_roots, field, blocks)
    return real


def check_upload_raster(path: Path, field: str) -> None:
    """An uploaded file: a raster whose every file lies in its own folder, with readable pixels."""
    check_raster(path, [Path(path).parent], field)


def _is_vrt(path: Path) -> bool:
    """Would GDAL take this file for a VRT? (It looks for "<VRTDataset" in the first 1024 bytes.)"""
    with open(path, "rb") as fh:
        return b"<VRTDataset" in fh.read(1024)


def _check_vrt(path: Path, roots: list[Path], field: str, depth: int, seen: set[Path]) -> None:
    if depth > _VRT_MAX_DEPTH or path in seen:
        raise InvalidArgument(f"{path.name}: VRTs nested deeper than {_VRT_MAX_DEPTH} levels or in a loop", field)
    seen.add(path)
    for member in _vrt_members(path, field):
        _refuse_remote(member, field, f"{path.name} reads ")
        real = Path(os.path.realpath(member))
        if not any(_within(real, r) for r in roots):
            raise PermissionDenied(f"{path.name} reads {member}, which is outside the allowed roots; every file a "
                                   f"VRT reads must lie under one of: {', '.join(str(r) for r in roots)}", field)
        if not real.is_file():
            raise InvalidArgument(f"{path.name} reads {member}, which does not exist", field)
        if _is_vrt(real):
            _check_vrt(real, roots, field, depth + 1, seen)
        else:                               # a member must be a local format too (not a WMS/GTI/... file)
            _check_with_gdal(real, roots, field, blocks=False)


def _vrt_members(path: Path, field: str) -> list[str]:
    """The files a VRT names (SourceFilename, SourceDataset; relativeToVRT resolved), as absolute paths."""
    if path.stat().st_size > _VRT_MAX_BYTES:
        raise InvalidArgument(f"{path.name}: a VRT over {_VRT_MAX_BYTES} bytes is not accepted", field)
    data = path.read_bytes()
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise PermissionDenied(f"{path.name}: a VRT with a DOCTYPE or entities is not accepted", field)
    try:
        root = ET.fromstring(data)  # nosec B314 # DOCTYPE/ENTITY refused above: no entity expansion, no external entities
    except ET.ParseError as exc:
        raise InvalidArgument(f"{path.name} is not a valid VRT ({exc})", field) from None
    out = []
    for el in root.iter():                  # GDAL reads VRT tags and attributes case-insensitively
        tag = str(el.tag).lower()
        if tag == "pixelfunctionlanguage" and (el.text or "").strip().lower() == "python":
            raise PermissionDenied(f"{path.name}: VRT Python pixel functions are not accepted", field)
        if tag not in _VRT_FILE_TAGS:
            continue
        name = (el.text or "").strip()
        if not name:
            continue
        if name.lower().startswith("vrt://"):
            name = name[len("vrt://"):].split("?", 1)[0]
        _refuse_remote(name, field, f"{path.name} reads ")
        relative = {k.lower(): v for k, v in el.attrib.items()}.get("relativetovrt", "0").strip() == "1"
        # like GDAL: relativeToVRT="1" is relative to the VRT's folder, otherwise to the working directory
        out.append(os.path.join(path.parent, name) if relative and not os.path.isabs(name) else os.path.abspath(name))
    return out


def _check_with_gdal(real: Path, roots: list[Path], field: str, blocks: bool) -> None:
    import rasterio
    from rasterio.errors import RasterioIOError
    from rasterio.io import DatasetReader

    from groundsynth.tiling.source import check_blocks_readable

    try:
        with rasterio.Env(GDAL_VRT_ENABLE_PYTHON="NO", GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"), \
                DatasetReader(real, driver=list(LOCAL_DRIVERS)) as ds:     # only these drivers may open it
            if ds.driver == "VRT" and not _is_vrt(real):
                raise PermissionDenied(f"{real.name}: GDAL reads it as a VRT that was not checked", field)
            if ds.count < 1 or ds.width < 1 or ds.height < 1:
                raise InvalidArgument(f"{real.name}: expected a raster with at least one band", field)
            for f in ds.files:
                _refuse_remote(f, field, f"{real.name} reads ")
                if not any(_within(Path(os.path.realpath(f)), r) for r in roots):
                    raise PermissionDenied(f"{real.name} reads {f}, which is outside the allowed roots "
                                           f"({', '.join(str(r) for r in roots)})", field)
            if blocks:
                check_blocks_readable(ds, real.name, field)
    except RasterioIOError:
        if _refers_elsewhere(real):
            raise PermissionDenied(f"{real.name} describes a raster read from a server or from other files "
                                   "(WMS, WMTS, tile index, STAC...); expected a local raster file", field) from None
        raise InvalidArgument(f"{real.name}: expected a raster file GDAL can read (formats: "
                              f"{', '.join(LOCAL_DRIVERS)})", field) from None


_ELSEWHERE_MARKERS = (b"://", b"<GDAL_WMS", b"<GDAL_WMTS", b"<WMS_Capabilities", b"<Capabilities",
                      b"<GDALTileIndexDataset", b"stac_version", b"<MRF_META>", b"/vsi")


def _refers_elsewhere(path: Path) -> bool:
    """Does a file GDAL's local drivers refused look like a description of remote or other data?"""
    with open(path, "rb") as fh:
        head = fh.read(65536)
    return any(m in head for m in _ELSEWHERE_MARKERS)


# ------------------------------------------------------------------ engine paths

def check_weights_path(value: str, engine_name: str, roots: Iterable[os.PathLike | str], models_dir: str,
                       field: str) -> str:
    """An engine `path` parameter as the engine will resolve it, confined to the roots and the models folder.

    Returns the resolved absolute path (the job records it, so the engine opens what was checked). The
    PermissionDenied message does not depend on whether an outside path exists."""
    from types import SimpleNamespace

    from groundsynth.models.weights import weights_location

    if "\x00" in value:
        raise InvalidArgument("expected a path", field)
    allowed = [*_real_roots(roots), Path(os.path.realpath(models_dir))]
    if value.startswith("/vsi") or _URL_RE.match(value):
        raise PermissionDenied(f"expected weights under the allowed roots or the models folder "
                               f"({', '.join(str(a) for a in allowed)}), got {value!r}", field)
    resolved = weights_location(value, engine_name, SimpleNamespace(models_dir=models_dir, workspace=None))
    real = Path(os.path.realpath(resolved))
    if not any(_within(real, a) for a in allowed):
        raise PermissionDenied(f"expected weights under the allowed roots or the models folder "
                               f"({', '.join(str(a) for a in allowed)}), got {value!r}", field)
    return str(real)


# ------------------------------------------------------------------ workspace names

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
