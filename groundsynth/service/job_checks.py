"""What Submit checks about the files a job will open, before the pipeline sees the spec.

`check_job_files(spec, config)` runs security.check_raster on the source (raster_path, or the file of an
upload id) and on label_raster_path, security.resolve_source on a reference sample file
(JobSpec.reference.path: an allowed root), and security.check_weights_path on every `path` parameter of the
chosen engines (neural `weights`). It returns the spec with those paths resolved (symlinks followed), so the
job opens exactly what was checked, and the source file. The same checks run again when a job runs or
resumes (`source_file`).
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from groundsynth.request.errors import InvalidArgument, NotFound
from groundsynth.request.spec import JobSpec
from groundsynth.service.config import ServerConfig
from groundsynth.service.security import check_raster, check_weights_path, resolve_source

UPLOAD_ID_RE = re.compile(r"^[0-9a-f]{32}$")


def upload_file(config: ServerConfig, upload_id: str) -> Path:
    """The file of an upload id (see service.uploads)."""
    if not UPLOAD_ID_RE.match(upload_id):
        raise InvalidArgument(f"expected an id returned by UploadRaster (32 hex digits), got {upload_id!r}",
                              "upload_id")
    folder = Path(config.uploads_dir) / upload_id
    files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")] if folder.is_dir() else []
    if len(files) != 1:
        raise NotFound(f"unknown upload {upload_id!r}; upload the raster with UploadRaster first", "upload_id")
    return files[0]


def source_file(config: ServerConfig, spec: JobSpec, blocks: bool = True) -> Path:
    """The checked source raster of a spec, and its label raster checked too."""
    roots = config.roots()
    if spec.label_raster_path:
        check_raster(spec.label_raster_path, roots, "label_raster_path", blocks=blocks)
    if spec.reference.path:
        resolve_source(spec.reference.path, roots, "reference.path")
    if spec.raster_path:
        return check_raster(spec.raster_path, roots, "raster_path", blocks=blocks)
    path = upload_file(config, spec.upload_id or "")
    return check_raster(path, [path.parent], "upload_id", blocks=blocks)


def check_job_files(spec: JobSpec, config: ServerConfig) -> tuple[JobSpec, Path]:
    """(spec with checked paths resolved, source file); raises the GroundSynthError naming the field."""
    from groundsynth.engines import get_engine
    from groundsynth.models.weights import default_models_dir

    spec = dataclasses.replace(spec)
    roots = config.roots()
    if spec.label_raster_path:
        spec.label_raster_path = str(check_raster(spec.label_raster_path, roots, "label_raster_path"))
    if spec.reference.path:
        # a reference sample file is read by the backend too: under an allowed root, recorded resolved
        spec.reference = dataclasses.replace(spec.reference, path=str(resolve_source(spec.reference.path, roots,
                                                                                     "reference.path")))
    source = source_file(config, spec)
    models_dir = default_models_dir(str(config.workspace))
    stages = []
    for st in spec.stages:
        cls = get_engine(st.stage, st.engine)
        params = dict(st.params)
        for p in cls.params:
            if p.type == "path" and str(params.get(p.name, "") or "").strip():
                params[p.name] = check_weights_path(str(params[p.name]).strip(), cls.name, roots, models_dir,
                                                    f"stages[{st.stage}].params.{p.name}")
        stages.append(dataclasses.replace(st, params=params))
    spec.stages = stages
    return spec, source
