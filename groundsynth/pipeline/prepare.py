"""Prepare a job: check a spec against its raster and the engine registry without doing the work.

The server calls `prepare_job` to validate a Submit synchronously (bad input
fails the call itself, naming the field); `run_job` calls it again when the job
runs. Cheap: one decimated read of the AOI window for the job stretch.
"""
from __future__ import annotations

import datetime as _dt
import math
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from affine import Affine

from groundsynth.engines import get_engine
from groundsynth.engines.base import Engine
from groundsynth.models.weights import default_models_dir
from groundsynth.request.errors import FailedPrecondition, InvalidArgument, ResourceExhausted
from groundsynth.request.spec import JobSpec
from groundsynth.tiling.grid import Grid, aoi_shape, build_grid, parse_crs, reproject_geometry, to_pixel_space
from groundsynth.tiling.labels import check_label_raster
from groundsynth.tiling.source import SourceRaster, Stretch, land_pixels
from groundsynth.tiling.splits import assign_splits


@dataclass
class RunOptions:
    max_tiles: int = 10000          # real tiles per job (ResourceExhausted above)
    batch_size: int = 8             # tiles per engine call
    device: str = "cpu"             # for neural engines
    min_valid: float = 0.01         # a tile with a smaller share of valid pixels is a nodata tile
    layers_every: int = 64          # rewrite tiles.gpkg and the VRTs every N recorded tiles
    fit_max_tiles: int = 256        # train-split real tiles given to synthesiser.fit / AoiStats (evenly sampled)
    executor: str = "process"       # inline, process or ray (groundsynth.pipeline.executors); a job's
                                    # JobSpec.executor, when set, takes precedence
    workers: int = 0                # worker processes / Ray actors; 0 = one per core (per cluster CPU)
    ray_address: str = ""           # Ray cluster HOST:PORT; "" = start a local one
    in_flight: int = 0              # batches handed out and not yet recorded; 0 = two per worker
    tile_cache_mb: int = 32         # real tiles a worker keeps in memory for fit and synthesis
    gdal_cache_mb: int = 64         # GDAL block cache cap in every worker


@dataclass
class StagePlan:
    stage: str
    cls: type[Engine]
    raw_params: dict[str, str]
    params: dict[str, Any]


@dataclass
class PreparedJob:
    """A validated job: resolved source, grid, stretch sample and engine plan."""

    spec: JobSpec                      # normalised
    source_path: Path
    raster: dict[str, Any]             # raster metadata (report)
    crs_wkt: str
    transform: Affine
    width: int
    height: int
    has_nir: bool
    grid: Grid
    stretch: Stretch                   # computed from the AOI sample (a resumed job uses the journal's)
    plans: dict[str, StagePlan]
    warnings: list[str] = field(default_factory=list)
    splits: dict[tuple[int, int], str] = field(default_factory=dict)   # (row, col) -> train / val / test
    swir_roles: list[str] = field(default_factory=list)   # SWIR channels read after the image bands
    reference: Any = None                  # groundsynth.tiling.reference.ReferenceSample (JobSpec.reference)
    reference_owner: Any = None            # per sample pixel: index of the grid cell that owns it (-1: none)

    def reference_arrays(self) -> dict[str, Any] | None:
        """The sample as worker tasks need it: row, col, cls and the (grid row, grid col) owning each pixel."""
        if self.reference is None:
            return None
        import numpy as np

        cells = self.grid.cells
        own = self.reference_owner
        return {"row": self.reference.row, "col": self.reference.col, "cls": self.reference.cls,
                "owner_row": np.array([cells[k].row if k >= 0 else -1 for k in own], np.int64),
                "owner_col": np.array([cells[k].col if k >= 0 else -1 for k in own], np.int64)}

    @property
    def tile_count(self) -> int:
        return len(self.grid.cells)

    @property
    def skipped_tiles(self) -> int:
        return self.grid.skipped

    @property
    def variants(self) -> int:
        return self.spec.synthesis.variants if "synthesise" in self.plans else 0


def gdal_cache_cap(mb: int) -> Any:
    """rasterio.Env capping GDAL's block cache at `mb` MiB (else up to 5 % of the machine's memory, kept for
    every block a job's head reads: the AOI sample, the mosaics' overviews)."""
    import rasterio

    return rasterio.Env(GDAL_CACHEMAX=max(1, int(mb)) << 20)


def new_job_id() -> str:
    """e.g. "j20261122T001500Z-3fa2c1": sortable, unique, safe as a directory name."""
    return "j" + _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def job_dir(workspace: str | Path, job_id: str) -> Path:
    return Path(workspace).resolve() / "jobs" / job_id


# ---------------------------------------------------------------- prepare

def _resolve_source(spec: JobSpec, source_path: str | Path | None) -> tuple[Path, str]:
    if source_path is not None:
        return Path(source_path), "upload_id" if spec.upload_id else "raster_path"
    if spec.raster_path:
        return Path(spec.raster_path), "raster_path"
    raise FailedPrecondition("an upload_id must be resolved to a file by the server (source_path)", "upload_id")


def _plan_engines(spec: JobSpec, workspace: Path) -> dict[str, StagePlan]:
    plans: dict[str, StagePlan] = {}
    models_dir = default_models_dir(str(workspace))
    for st in spec.stages:
        cls = get_engine(st.stage, st.engine)
        params = cls.parse_params(dict(st.params), field_prefix=f"stages[{st.stage}].params")
        # An explicit `weights` param is checked by the engine itself (naming that path);
        # availability() only speaks for the default weights location.
        cls.check_job(spec)
        ok, reason = (True, "") if params.get("weights") else cls.availability(models_dir)
        if not ok:
            raise FailedPrecondition(f"engine {cls.name!r} is not available: {reason}", f"stages[{st.stage}].engine")
        plans[st.stage] = StagePlan(st.stage, cls, dict(st.params), params)
    if "synthesise" in plans and spec.synthesis.variants > 0 and "segment" not in plans:
        raise InvalidArgument("the synthesise stage needs the segment stage (masks of real and synthetic tiles)",
                              "stages")
    return plans


def _aoi_in_pixels(spec: JobSpec, src: SourceRaster):
    from pyproj import CRS, Transformer

    raster_crs = CRS.from_wkt(src.crs.to_wkt())
    aoi_crs = parse_crs(spec.aoi.crs) if spec.aoi.crs.strip() else raster_crs
    geom = aoi_shape(spec.aoi.bbox, spec.aoi.polygon_wkt)
    try:
        geom_r = reproject_geometry(geom, aoi_crs, raster_crs)
    except Exception as exc:   # pyproj raises several types for impossible transforms
        raise InvalidArgument(f"cannot reproject the AOI from {aoi_crs.name} to the raster CRS ({exc})", "aoi") from None
    if geom_r.is_empty or not all(math.isfinite(v) for v in geom_r.bounds):
        raise InvalidArgument(f"the AOI cannot be expressed in the raster CRS {raster_crs.name}", "aoi")
    return to_pixel_space(geom_r, src.transform), aoi_crs, raster_crs, Transformer


def prepare_job(spec: JobSpec, workspace: str | Path, options: RunOptions | None = None,
                source_path: str | Path | None = None) -> PreparedJob:
    """Validate a job against its raster and the engines; cheap (one decimated read)."""
    options = options or RunOptions()
    workspace = Path(workspace)
    spec = spec.normalised()
    if spec.executor:
        from groundsynth.pipeline.executors import check_executor

        check_executor(spec.executor)
    plans = _plan_engines(spec, workspace)
    path, source_field = _resolve_source(spec, source_path)
    if spec.label_raster_path:
        check_label_raster(spec.label_raster_path)      # exists, integer codes, CRS, pixels readable

    # GDAL's block cache capped here as in the workers: the AOI sample touches every block of the AOI,
    # which GDAL would otherwise keep, up to 5 % of the machine's memory
    with gdal_cache_cap(options.gdal_cache_mb), SourceRaster(path, spec.bands, source_field) as src:
        aoi_px, aoi_crs, raster_crs, Transformer = _aoi_in_pixels(spec, src)
        grid = build_grid(aoi_px, src.width, src.height, spec.tile_size, spec.overlap, max_cells=options.max_tiles)
        if not grid.cells:
            left, bottom, right, top = src.ds.bounds
            tb = Transformer.from_crs(raster_crs, aoi_crs, always_xy=True).transform_bounds(left, bottom, right, top)
            raise InvalidArgument(
                f"the AOI lies entirely outside the raster {path.name}, which covers "
                f"({tb[0]:.6g}, {tb[1]:.6g}, {tb[2]:.6g}, {tb[3]:.6g}) in the AOI CRS ({aoi_crs.name})", "aoi")
        if len(grid.cells) > options.max_tiles:
            raise ResourceExhausted(
                f"the AOI needs {len(grid.cells)} tiles of {spec.tile_size} px, more than the limit of "
                f"{options.max_tiles}; use a smaller AOI or larger tiles" if not grid.truncated else
                f"the AOI needs more than {options.max_tiles} tiles of {spec.tile_size} px (the limit); "
                "use a smaller AOI or larger tiles", "aoi")
        sample, valid = src.read_sample(grid.pixel_bounds)
        if not valid.any():
            raise InvalidArgument(f"the AOI holds no valid pixels in {path.name} (all nodata)", "aoi")
        warnings = []
        aoi_part = 1.0
        if aoi_px.area > 0:
            from shapely import box

            aoi_part = aoi_px.intersection(box(0, 0, src.width, src.height)).area / aoi_px.area
        if aoi_part < 0.999:
            warnings.append(f"{100 * (1 - aoi_part):.1f}% of the AOI lies outside the raster and is ignored")
        splits = assign_splits(((c.row, c.col) for c in grid.cells), spec.split.fractions(),
                               spec.split.block_tiles, spec.seed, spec.tile_size, spec.overlap)
        stretch = Stretch.from_sample(sample, valid, land=land_pixels(sample, valid, src.has_nir))
        reference, owner = _reference(spec, src, grid, warnings)
        return PreparedJob(spec=spec, source_path=path, raster=src.meta(), crs_wkt=src.crs.to_wkt(),
                           transform=src.transform, width=src.width, height=src.height, has_nir=src.has_nir,
                           grid=grid, stretch=stretch, plans=plans, warnings=warnings,
                           splits=splits, swir_roles=list(src.swir_roles), reference=reference,
                           reference_owner=owner)


def _reference(spec: JobSpec, src: SourceRaster, grid: Grid, warnings: list[str]) -> tuple[Any, Any]:
    """The job's reference sample on the raster grid and each pixel's owning cell (or (None, None))."""
    if not spec.reference.given:
        return None, None
    from groundsynth.tiling.reference import load_reference, owners

    sample = load_reference(spec.reference, src.crs.to_wkt(), src.transform, src.width, src.height)
    owner = owners(sample.row, sample.col, grid.cells)
    if sample.outside:
        warnings.append(f"{sample.outside} reference feature(s) of {sample.source} lie outside the raster")
    if (owner < 0).any():
        warnings.append(f"{int((owner < 0).sum())} of {len(sample)} reference pixels lie outside the AOI's tiles "
                        "and are not assessed")
    return sample, owner
