"""The in-process job pipeline: AOI -> tile grid -> segment, synthesise, caption, ground -> outputs.

`prepare_job` checks a spec against the raster and the engine registry without
doing the work (the server calls it to validate a Submit synchronously);
`run_job` runs (or resumes) a job, recording every finished tile in the
journal and emitting events as the matching groundsynth.v1 messages:

    accepted -> (tile, progress)* -> [synthetic (tile, progress)*] -> layer* -> report -> done

Resumable: tiles already in the journal are neither recomputed nor rewritten;
the job's radiometric stretch is stored in the journal so a resumed job uses
the same one. Everything random derives from (spec.seed, tile id, stage).

Layout of <workspace>/jobs/<job_id>/:
    real/image/<tile>.tif            uint8 R,G,B(,NIR), 0 = nodata, job stretch
    real/mask/<tile>.tif             uint8 classes + colour table, 255 = nodata
    real/labels/<tile>.tif           label raster on the tile grid (if a label raster was given)
    synthetic/image_v<N>/<tile>.tif  synthetic image at the SOURCE tile's footprint
    synthetic/mask_v<N>/<tile>.tif   the segmenter's prediction on the synthetic image
    synthetic/cond_mask_v<N>/<tile>.tif  the mask the image was generated from
    <layer>.vrt                      mosaic per layer kind (real_image, real_mask, synthetic_image_v1, ...)
    tiles.gpkg                       layer "tiles": one polygon per tile with its attributes
    report.json (+ report.html)      written by groundsynth.report
"""
from __future__ import annotations

import datetime as _dt
import math
import secrets
import time
from collections import defaultdict
from contextlib import contextmanager
from functools import partial
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
from affine import Affine

from groundsynth.engines import get_engine
from groundsynth.engines.base import Engine, EngineContext, GroundInput, TileInput
from groundsynth.models.weights import default_models_dir
from groundsynth.request.errors import FailedPrecondition, GroundSynthError, InvalidArgument, ResourceExhausted
from groundsynth.service.journal import Journal
from groundsynth.engines import mask_strategies
from groundsynth.request.classes import NODATA, composition
from groundsynth.tiling.source import SourceRaster, Stretch
from groundsynth.artefacts.tiles import read_image_tile, read_mask_tile, write_image_tile, write_mask_tile
from groundsynth.artefacts.records import TileRecord, real_tile_id, synthetic_tile_id
from groundsynth.request.seeds import derive_seed
from groundsynth.request.spec import JobSpec
from groundsynth.tiling.grid import Cell, Grid, aoi_shape, build_grid, parse_crs, reproject_geometry, to_pixel_space
from groundsynth.artefacts.tile_grid import write_tiles_gpkg
from groundsynth.artefacts.vrt import VrtTile, write_vrt

Emit = Callable[[str, object], None]
REAL_STAGES = ("segment", "caption", "ground")


@dataclass
class RunOptions:
    max_tiles: int = 10000          # real tiles per job (ResourceExhausted above)
    batch_size: int = 8             # tiles per engine call
    device: str = "cpu"             # for neural engines
    min_valid: float = 0.01         # a tile with a smaller share of valid pixels is a nodata tile
    layers_every: int = 64          # rewrite tiles.gpkg and the VRTs every N recorded tiles
    fit_max_tiles: int = 256        # real tiles given to synthesiser.fit / AoiStats (evenly sampled)


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

    @property
    def tile_count(self) -> int:
        return len(self.grid.cells)

    @property
    def skipped_tiles(self) -> int:
        return self.grid.skipped

    @property
    def variants(self) -> int:
        return self.spec.synthesis.variants if "synthesise" in self.plans else 0


def new_job_id() -> str:
    """e.g. "j20261122T001500Z-3fa2c1": sortable, unique, safe as a directory name."""
    return "j" + _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


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
    plans = _plan_engines(spec, workspace)
    path, source_field = _resolve_source(spec, source_path)
    if spec.label_raster_path and not Path(spec.label_raster_path).exists():
        from groundsynth.request.errors import NotFound

        raise NotFound(f"no such label raster: {spec.label_raster_path}", "label_raster_path")
    with SourceRaster(path, spec.bands, source_field) as src:
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
        return PreparedJob(spec=spec, source_path=path, raster=src.meta(), crs_wkt=src.crs.to_wkt(),
                           transform=src.transform, width=src.width, height=src.height, has_nir=src.has_nir,
                           grid=grid, stretch=Stretch.from_sample(sample, valid), plans=plans, warnings=warnings)


# ---------------------------------------------------------------- run

class _Timer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - t0


class _EngineError(GroundSynthError):
    """An engine raised something other than a GroundSynthError (INTERNAL, names engine and tile)."""

    def __init__(self, message: str, tile_id: str = ""):
        super().__init__(message)
        self.tile_id = tile_id


class _JobRun:
    def __init__(self, job_id: str, prep: PreparedJob, workspace: Path, journal: Journal, emit: Emit,
                 cancelled: Callable[[], bool], options: RunOptions):
        self.job_id, self.prep, self.spec = job_id, prep, prep.spec
        self.workspace, self.journal, self.emit, self.cancelled, self.opt = workspace, journal, emit, cancelled, options
        self.dir = job_dir(workspace, job_id)
        self.timer = _Timer()
        self.since_layers = 0
        self.layers: dict[str, dict[str, str]] = {}
        self.variants = prep.variants
        self.engines: dict[str, Engine] = {}
        self.real_total = prep.tile_count
        self.syn_total = prep.tile_count * self.variants   # refined once nodata tiles are known

    # ------------------------------------------------------------ helpers
    def _engine_call(self, stage: str, tile_ids: Sequence[str], fn: Callable[[], Any]) -> Any:
        with self.timer(stage):
            try:
                return fn()
            except GroundSynthError:
                raise
            except Exception as exc:
                name = self.prep.plans[stage].cls.name
                tid = tile_ids[0] if len(tile_ids) == 1 else ""
                where = f"tile {tile_ids[0]}" if len(tile_ids) == 1 else f"tiles {tile_ids[0]}..{tile_ids[-1]}"
                raise _EngineError(f"{stage} engine {name!r} failed on {where}: {type(exc).__name__}: {exc}",
                                   tid) from exc

    def _progress(self, stage: str, done: int, total: int) -> None:
        from groundsynth.api.v1.contract import pb

        self.emit("progress", pb.Progress(stage=stage, done=done, total=total))

    def _record(self, rec: TileRecord) -> None:
        if self.journal.record_tile(self.job_id, rec):
            self.emit("tile", rec.to_proto())
            self.since_layers += 1

    def _tile_record(self, tile_id: str, kind: str, cell: Cell, variant: int = 0, source: str = "") -> TileRecord:
        t = cell.transform(self.prep.transform)
        return TileRecord(tile_id=tile_id, kind=kind, row=cell.row, col=cell.col, variant=variant,
                          source_tile_id=source, crs=self.prep.crs_wkt, bounds=cell.bounds(self.prep.transform),
                          geotransform=tuple(t.to_gdal()), width=cell.width, height=cell.height,
                          col_off=cell.col_off, row_off=cell.row_off,
                          attributes={f"engine_{s}": p.cls.name for s, p in self.prep.plans.items()})

    def _write_all(self, writes: Sequence[Callable[[], None]]) -> None:
        """Write a batch's files; tiles are recorded only after all their files exist.
        (Writing with two threads measured no faster on 2 cores: per-file GDAL overhead dominates.)"""
        with self.timer("write"):
            for w in writes:
                w()

    def _maybe_refresh_layers(self) -> None:
        # every layers_every tiles, but at most ~10 times per job so that big jobs stay linear
        every = max(self.opt.layers_every, (self.real_total + self.syn_total) // 10)
        if self.since_layers >= every:
            self.write_layers()

    # ------------------------------------------------------------ setup
    def setup(self) -> None:
        from groundsynth.api.v1.contract import pb

        j = self.journal
        if j.get_job(self.job_id) is None:
            j.create_job(self.job_id, self.spec, str(self.dir))
        j.set_state(self.job_id, "RUNNING")
        self.dir.mkdir(parents=True, exist_ok=True)
        stored = j.get_meta(self.job_id, "stretch")
        if stored is None:
            j.set_meta(self.job_id, "stretch", self.prep.stretch.to_dict())
            self.stretch = self.prep.stretch
        else:
            self.stretch = Stretch.from_dict(stored)
        j.set_meta(self.job_id, "raster", self.prep.raster)
        j.set_meta(self.job_id, "grid", {"tile_size": self.spec.tile_size, "overlap": self.spec.overlap,
                                         "tiles": self.real_total, "skipped": self.prep.skipped_tiles})
        j.set_totals(self.job_id, self.real_total, self.syn_total)
        self.emit("accepted", pb.Accepted(job_id=self.job_id, tile_count=self.real_total,
                                          skipped_tiles=self.prep.skipped_tiles, output_dir=str(self.dir),
                                          spec=self.spec.to_proto()))
        ctx = EngineContext(seed=self.spec.seed, device=self.opt.device, workspace=str(self.workspace),
                            models_dir=default_models_dir(str(self.workspace)), has_nir=self.prep.has_nir,
                            extra={"stretch": self.stretch.to_dict(),
                                   "label_raster_path": self.spec.label_raster_path or "",
                                   "job_id": self.job_id})
        for stage, plan in self.prep.plans.items():
            with self.timer(f"load_{stage}"):
                self.engines[stage] = plan.cls(dict(plan.raw_params), ctx)

    # ------------------------------------------------------------ real tiles
    def run_real(self, src: SourceRaster) -> bool:
        """Process the real tiles not yet in the journal; False if cancelled."""
        done = self.journal.tile_ids(self.job_id, "real")
        pending = [c for c in self.prep.grid.cells if real_tile_id(c.row, c.col) not in done]
        n_done = self.real_total - len(pending)
        bs = max(1, self.opt.batch_size)
        for i in range(0, len(pending), bs):
            if self.cancelled():
                return False
            self._real_batch(src, pending[i:i + bs])
            n_done += len(pending[i:i + bs])
            for stage in REAL_STAGES:
                if stage in self.engines:
                    total = self.real_total + (self.syn_total if stage != "segment" else 0)
                    self._progress(stage, n_done, total)
            self._maybe_refresh_layers()
        return True

    def _real_batch(self, src: SourceRaster, cells: Sequence[Cell]) -> None:
        spec = self.spec
        ids = [real_tile_id(c.row, c.col) for c in cells]
        images, valids, labels = [], [], []
        with self.timer("read"):
            for c in cells:
                raw, valid = src.read_window(c.col_off, c.row_off, c.width, c.height)
                img = self.stretch.apply(raw)
                img[:, ~valid] = 0
                images.append(img)
                valids.append(valid)
        if spec.label_raster_path:
            from groundsynth.tiling.labels import read_labels

            with self.timer("labels"):
                for c in cells:
                    labels.append(read_labels(spec.label_raster_path, src.crs, c.transform(self.prep.transform),
                                              (c.height, c.width)))
        nodata = [float(v.mean()) < self.opt.min_valid for v in valids]
        live = [k for k in range(len(cells)) if not nodata[k]]
        masks: list[np.ndarray | None] = [None] * len(cells)
        for k in range(len(cells)):
            if nodata[k]:
                masks[k] = np.full(valids[k].shape, NODATA, np.uint8)
            elif labels and "segment" not in self.engines:
                masks[k] = labels[k]
        if "segment" in self.engines and live:
            tiles = [TileInput(ids[k], images[k], valids[k], labels[k] if labels else None, "real") for k in live]
            out = self._engine_call("segment", [ids[k] for k in live], lambda: self.engines["segment"].segment(tiles))
            for k, m in zip(live, out):
                m = np.asarray(m, dtype=np.uint8).copy()
                m[~valids[k]] = NODATA
                masks[k] = m
        captions: list[list[str]] = [[] for _ in cells]
        metrics: list[dict[str, float]] = [{} for _ in cells]
        if live:
            empty = np.full(valids[0].shape, NODATA, np.uint8)
            caps, mets = self._caption_and_ground(
                "real", [ids[k] for k in live], [images[k] for k in live], [valids[k] for k in live],
                [masks[k] if masks[k] is not None else empty for k in live])
            for k, c, m in zip(live, caps, mets):
                captions[k], metrics[k] = c, m
        recs, writes = [], []
        for k, c in enumerate(cells):
            rec = self._tile_record(ids[k], "real", c)
            rec.nodata = nodata[k]
            t = c.transform(self.prep.transform)
            rec.artefacts["image"] = f"real/image/{ids[k]}.tif"
            writes.append(partial(write_image_tile, self.dir / rec.artefacts["image"], images[k], valids[k], t,
                                  src.crs))
            if masks[k] is not None:
                rec.artefacts["mask"] = f"real/mask/{ids[k]}.tif"
                writes.append(partial(write_mask_tile, self.dir / rec.artefacts["mask"], masks[k], t, src.crs))
            if labels:
                rec.artefacts["labels"] = f"real/labels/{ids[k]}.tif"
                writes.append(partial(write_mask_tile, self.dir / rec.artefacts["labels"], labels[k], t, src.crs))
            self._fill(rec, masks[k], captions[k], metrics[k], valids[k])
            recs.append(rec)
        self._write_all(writes)
        for rec in recs:
            self._record(rec)

    def _caption_and_ground(self, kind: str, ids: Sequence[str], images: Sequence[np.ndarray],
                            valids: Sequence[np.ndarray], masks: Sequence[np.ndarray],
                            conds: Sequence[np.ndarray] | None = None) -> tuple[list[list[str]], list[dict]]:
        """Captions and scores of a batch of tiles (empty where the stage is not run)."""
        captions: list[list[str]] = [[] for _ in ids]
        metrics: list[dict[str, float]] = [{} for _ in ids]
        if "caption" in self.engines:
            seeds = [derive_seed(self.spec.seed, i, "caption") for i in ids]
            out = self._engine_call("caption", ids, lambda: self.engines["caption"].caption(images, masks, seeds))
            captions = [[str(c) for c in caps] for caps in out]
        if "ground" in self.engines:
            conds = conds if conds is not None else [None] * len(ids)
            items = [GroundInput(i, kind, im, valid, m, caps, cond)
                     for i, im, valid, m, caps, cond in zip(ids, images, valids, masks, captions, conds)]
            out = self._engine_call("ground", ids, lambda: self.engines["ground"].ground(items))
            metrics = [{str(n): float(x) for n, x in m.items()} for m in out]
        return captions, metrics

    @staticmethod
    def _fill(rec: TileRecord, mask: np.ndarray | None, captions: list[str], metrics: dict[str, float],
              valid: np.ndarray) -> None:
        rec.composition = [float(v) for v in composition(mask)] if mask is not None else []
        rec.captions = captions
        rec.metrics = metrics
        rec.attributes["valid_share"] = f"{float(valid.mean()):.4f}"

    # ------------------------------------------------------------ synthetic tiles
    def run_synthetic(self) -> bool:
        if not self.variants:
            return True
        real = sorted((r for r in self.journal.tiles(self.job_id, "real") if not r.nodata),
                      key=lambda r: (r.row, r.col))
        self.syn_total = len(real) * self.variants
        self.journal.set_totals(self.job_id, self.real_total, self.syn_total)
        done = self.journal.tile_ids(self.job_id, "synthetic")
        pending = [(r, v) for r in real for v in range(1, self.variants + 1)
                   if synthetic_tile_id(r.row, r.col, v) not in done]
        if not pending:
            return True
        n_done = self.syn_total - len(pending)
        stats = self._fit(real)
        bs = max(1, self.opt.batch_size)
        for i in range(0, len(pending), bs):
            if self.cancelled():
                return False
            self._synthetic_batch(pending[i:i + bs], stats)
            n_done += len(pending[i:i + bs])
            self._progress("synthesise", n_done, self.syn_total)
            for stage in ("caption", "ground"):
                if stage in self.engines:
                    self._progress(stage, self.real_total + n_done, self.real_total + self.syn_total)
            self._maybe_refresh_layers()
        return True

    def _read_real(self, rec: TileRecord) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with self.timer("read"):
            image, valid = read_image_tile(self.dir / rec.artefacts["image"])
            mask = read_mask_tile(self.dir / rec.artefacts["mask"])
        return image, valid, mask

    def _fit(self, real: Sequence[TileRecord]) -> Any:
        """synthesiser.fit on (a sample of) the valid real tiles, read back from their files; AOI mask stats."""
        n = len(real)
        k = min(n, max(1, self.opt.fit_max_tiles))
        sample = [real[int(i)] for i in np.linspace(0, n - 1, k).round().astype(int)] if n else []
        images, masks, valids = [], [], []
        for rec in sample:
            image, valid, mask = self._read_real(rec)
            images.append(image)
            valids.append(valid)
            masks.append(mask)
        self._engine_call("synthesise", ["fit"], lambda: self.engines["synthesise"].fit(images, masks, valids))
        with self.timer("mask_strategy"):
            return mask_strategies.AoiStats.from_masks(masks)

    def _condition(self, real_mask: np.ndarray, stats: Any, syn_id: str) -> np.ndarray:
        with self.timer("mask_strategy"):
            cond = mask_strategies.condition_mask(self.spec.synthesis.mask_strategy, real_mask,
                                                       dict(self.spec.synthesis.boost_targets), stats,
                                                       derive_seed(self.spec.seed, syn_id, "mask"))
        cond = np.asarray(cond, dtype=np.uint8).copy()
        cond[real_mask == NODATA] = NODATA
        return cond

    def _synthetic_batch(self, items: Sequence[tuple[TileRecord, int]], stats: Any) -> None:
        seed = self.spec.seed
        ids = [synthetic_tile_id(r.row, r.col, v) for r, v in items]
        conds, valids = [], []
        cache: dict[str, tuple] = {}
        for (rec, v), sid in zip(items, ids):
            if rec.tile_id not in cache:
                cache[rec.tile_id] = self._read_real(rec)
            _, valid, mask = cache[rec.tile_id]
            cond = self._condition(mask, stats, sid)
            conds.append(cond)
            valids.append(valid & (cond != NODATA))
        seeds = [derive_seed(seed, sid, "synthesise") for sid in ids]
        images = self._engine_call("synthesise", ids, lambda: self.engines["synthesise"].synthesise(conds, seeds))
        images = [np.asarray(im, dtype=np.float32).copy() for im in images]
        for im, valid in zip(images, valids):
            im[:, ~valid] = 0
        tiles = [TileInput(sid, im, valid, None, "synthetic") for sid, im, valid in zip(ids, images, valids)]
        masks = self._engine_call("segment", ids, lambda: self.engines["segment"].segment(tiles))
        masks = [np.asarray(m, dtype=np.uint8).copy() for m in masks]
        for m, valid in zip(masks, valids):
            m[~valid] = NODATA
        captions, metrics = self._caption_and_ground("synthetic", ids, images, valids, masks, conds)
        crs = self.prep.crs_wkt
        recs, writes = [], []
        for k, ((rec, v), sid) in enumerate(zip(items, ids)):
            cell = Cell(rec.row, rec.col, rec.col_off, rec.row_off, rec.width, rec.height)
            out_rec = self._tile_record(sid, "synthetic", cell, v, rec.tile_id)
            t = cell.transform(self.prep.transform)
            name = f"{rec.tile_id}.tif"
            out_rec.artefacts = {"image": f"synthetic/image_v{v}/{name}", "mask": f"synthetic/mask_v{v}/{name}",
                                 "cond_mask": f"synthetic/cond_mask_v{v}/{name}"}
            writes += [partial(write_image_tile, self.dir / out_rec.artefacts["image"], images[k], valids[k], t, crs),
                       partial(write_mask_tile, self.dir / out_rec.artefacts["mask"], masks[k], t, crs),
                       partial(write_mask_tile, self.dir / out_rec.artefacts["cond_mask"], conds[k], t, crs)]
            self._fill(out_rec, masks[k], captions[k], metrics[k], valids[k])
            recs.append(out_rec)
        self._write_all(writes)
        for out_rec in recs:
            self._record(out_rec)

    # ------------------------------------------------------------ outputs
    def write_layers(self) -> None:
        from groundsynth.api.v1.contract import pb

        self.since_layers = 0
        records = self.journal.tiles(self.job_id)
        if not records:
            return
        with self.timer("outputs"):
            groups: dict[str, list[tuple[str, TileRecord]]] = defaultdict(list)
            for rec in records:
                for kind, rel in rec.artefacts.items():
                    layer = f"{rec.kind}_{kind}" + (f"_v{rec.variant}" if rec.kind == "synthetic" else "")
                    groups[layer].append((rel, rec))
            written = []
            n_outputs = len(groups) + 1        # the VRTs and tiles.gpkg
            for layer in sorted(groups):
                self._progress("outputs", len(written), n_outputs)
                tiles = [VrtTile(rel, r.col_off, r.row_off, r.width, r.height) for rel, r in groups[layer]]
                is_image = layer.split("_v")[0].endswith("_image")
                if is_image:
                    n = 4 if self.prep.has_nir else 3
                    write_vrt(self.dir / f"{layer}.vrt", tiles, self.prep.transform, self.prep.crs_wkt,
                              ("red", "green", "blue", "nir")[:n], nodata=0,
                              colorinterp=("Red", "Green", "Blue", "Undefined")[:n])
                else:
                    write_vrt(self.dir / f"{layer}.vrt", tiles, self.prep.transform, self.prep.crs_wkt,
                              ("class",), nodata=NODATA, palette=True)
                written.append((layer, f"{layer}.vrt", "vrt"))
            self._progress("outputs", len(written), n_outputs)
            write_tiles_gpkg(self.dir / "tiles.gpkg", records, self.prep.crs_wkt)
            written.append(("tiles", "tiles.gpkg", "gpkg"))
            self._progress("outputs", len(written), n_outputs)
        for layer, path, fmt in written:
            self.layers[layer] = {"layer": layer, "path": path, "format": fmt}
            self.emit("layer", pb.LayerReady(layer=layer, path=path, format=fmt))
        self.journal.set_meta(self.job_id, "layers", sorted(self.layers.values(), key=lambda d: d["layer"]))

    def write_report(self, t_start: float) -> None:
        from groundsynth.api.v1.contract import pb

        records = self.journal.tiles(self.job_id)
        t0 = time.perf_counter()
        set_metrics: dict[str, Any] = {}
        if "ground" in self.engines:
            set_metrics = self._engine_call("ground", ["summary"], lambda: self.engines["ground"].summarise(records))
        timings = self.timings(extra_total=time.perf_counter() - t_start)
        context = {
            "job_id": self.job_id,
            "engines": {s: {"name": p.cls.name, "params": p.params} for s, p in self.prep.plans.items()},
            "set_metrics": set_metrics or {},
            "stretch": self.stretch.to_dict(),
            "timings": timings,
            "raster": self.prep.raster,
            "seed": self.spec.seed,
            "grid": self.journal.get_meta(self.job_id, "grid"),
            "warnings": self.prep.warnings + self.warnings(records),
            "layers": sorted(self.layers.values(), key=lambda d: d["layer"]),
        }
        try:
            from groundsynth.report import write_report
        except ImportError:
            write_report = _minimal_report
        summary = write_report(self.dir, self.spec, records, context) or {}
        self.timer.seconds["report"] += time.perf_counter() - t0
        html = "report.html" if (self.dir / "report.html").exists() else ""
        numeric = {str(k): float(v) for k, v in summary.items()
                   if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)}
        self.journal.set_meta(self.job_id, "report", {"json_path": "report.json", "html_path": html,
                                                      "summary": numeric})
        self.emit("report", pb.ReportReady(json_path="report.json", html_path=html, summary=numeric))
        self._progress("report", 1, 1)

    def warnings(self, records: Sequence[TileRecord]) -> list[str]:
        real = [r for r in records if r.kind == "real"]
        flagged = sum(r.nodata for r in real)
        out = []
        if real and flagged == len(real):
            out.append(f"every real tile ({flagged}) is a nodata tile: nothing was segmented or synthesised")
        elif flagged:
            out.append(f"{flagged} of {len(real)} real tiles are nodata tiles (< {100 * self.opt.min_valid:g}% "
                       "valid pixels): flagged, masked 255, not synthesised")
        return out

    def timings(self, extra_total: float | None = None) -> dict[str, float]:
        out = {k: round(v, 4) for k, v in sorted(self.timer.seconds.items())}
        if extra_total is not None:
            out["total"] = round(extra_total, 4)
        return out

    def finish(self, state: str, t_start: float) -> str:
        from groundsynth.api.v1.contract import pb

        timings = self.timings(extra_total=time.perf_counter() - t_start)
        self.journal.set_meta(self.job_id, "timings", timings)
        row = self.journal.get_job(self.job_id)
        self.journal.set_state(self.job_id, state)
        self.emit("done", pb.Done(state=pb.JobState.Value(state), real_tiles=row.tiles_done,
                                  synthetic_tiles=row.synthetic_done, output_dir=str(self.dir)))
        return state


def _minimal_report(job_dir: Path, spec: JobSpec, records: list[TileRecord], context: dict) -> dict:
    """Fallback when groundsynth.report is not installed: report.json with spec, context and tiles."""
    import json

    from groundsynth.artefacts.atomic import write_text

    doc = {"schema_version": 0, "job_id": context.get("job_id"), "spec": spec.to_dict(),
           "context": context, "tiles": [json.loads(r.to_json()) for r in records]}
    write_text(Path(job_dir) / "report.json", json.dumps(doc, indent=1, sort_keys=True, default=str))
    return {"tiles_real": float(sum(r.kind == "real" for r in records)),
            "tiles_synthetic": float(sum(r.kind == "synthetic" for r in records))}


def run_job(job_id: str, spec: JobSpec, workspace: str | Path, journal: Journal, emit: Emit,
            cancelled: Callable[[], bool] = lambda: False, options: RunOptions | None = None,
            source_path: str | Path | None = None) -> str:
    """Run or resume a job; returns "SUCCEEDED" or "CANCELLED", raises GroundSynthError on failure.

    The journal row is created if missing, set RUNNING, and set to the final
    state (FAILED with the message when an error escapes).
    """
    options = options or RunOptions()
    workspace = Path(workspace).resolve()
    t_start = time.perf_counter()
    try:
        prep = prepare_job(spec, workspace, options, source_path)
        run = _JobRun(job_id, prep, workspace, journal, emit, cancelled, options)
        run.setup()
        with SourceRaster(prep.source_path, prep.spec.bands) as src:
            finished = run.run_real(src)
        if finished:
            finished = run.run_synthetic()
        run.write_layers()
        if not finished:
            return run.finish("CANCELLED", t_start)
        run.write_report(t_start)
        return run.finish("SUCCEEDED", t_start)
    except Exception as exc:
        if journal.get_job(job_id) is not None:
            msg = exc.message if isinstance(exc, GroundSynthError) else f"internal error: {type(exc).__name__}: {exc}"
            journal.set_state(job_id, "FAILED", msg)
        raise
