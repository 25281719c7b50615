"""The state of one running job and the steps every tile batch shares.

`JobRun` holds what the stages need (prepared job, journal, engines, emit,
timers, totals) and the shared steps: calling an engine (an unexpected
exception becomes an error naming the engine and tiles), captioning and
grounding a batch, filling and recording tile records, reporting progress.
The stage modules (real_tiles, synthetic_tiles, outputs) work on a JobRun.
"""
from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from groundsynth.artefacts.records import TileRecord
from groundsynth.engines.base import Engine, GroundInput
from groundsynth.metrics import dataset_filters
from groundsynth.pipeline.events import Emit, Progress, TileDone
from groundsynth.pipeline.prepare import PreparedJob, RunOptions, job_dir
from groundsynth.request.classes import composition
from groundsynth.request.errors import GroundSynthError
from groundsynth.request.seeds import derive_seed
from groundsynth.tiling.grid import Cell
from groundsynth.tiling.source import Stretch


class JobStore(Protocol):
    """What the pipeline needs of the journal (groundsynth.service.journal.Journal is one)."""

    def get_job(self, job_id: str) -> Any: ...
    def create_job(self, job_id: str, spec: Any, output_dir: str) -> None: ...
    def set_state(self, job_id: str, state: str, error: str = "") -> None: ...
    def get_meta(self, job_id: str, key: str, default: Any = None) -> Any: ...
    def set_meta(self, job_id: str, key: str, value: Any) -> None: ...
    def set_totals(self, job_id: str, tiles_total: int, synthetic_total: int) -> None: ...
    def record_tile(self, job_id: str, rec: TileRecord) -> bool: ...
    def update_tile(self, job_id: str, rec: TileRecord) -> None: ...
    def tile_ids(self, job_id: str, kind: str | None = None) -> set[str]: ...
    def tiles(self, job_id: str, kind: str | None = None) -> list[TileRecord]: ...


class StageTimer:
    """Seconds spent per named step, summed over the job."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - t0


class EngineFailed(GroundSynthError):
    """An engine raised something other than a GroundSynthError (INTERNAL, names engine and tile)."""

    def __init__(self, message: str, tile_id: str = ""):
        super().__init__(message)
        self.tile_id = tile_id


class JobRun:
    def __init__(self, job_id: str, prep: PreparedJob, workspace: Path, journal: JobStore, emit: Emit,
                 cancelled: Callable[[], bool], options: RunOptions):
        self.job_id, self.prep, self.spec = job_id, prep, prep.spec
        self.workspace, self.journal, self.emit, self.cancelled, self.opt = workspace, journal, emit, cancelled, options
        self.dir = job_dir(workspace, job_id)
        self.timer = StageTimer()
        self.since_layers = 0
        self.layers: dict[str, dict[str, str]] = {}
        self.variants = prep.variants
        self.engines: dict[str, Engine] = {}
        self.stretch: Stretch = prep.stretch
        self.synthesis_state: Any = None     # what the synthesiser's fit returned
        self.real_total = prep.tile_count
        self.syn_total = prep.tile_count * self.variants   # refined once nodata tiles are known

    # ------------------------------------------------------------ engines
    def engine_call(self, stage: str, tile_ids: Sequence[str], fn: Callable[[], Any]) -> Any:
        with self.timer(stage):
            try:
                return fn()
            except GroundSynthError:
                raise
            except Exception as exc:
                name = self.prep.plans[stage].cls.name
                tid = tile_ids[0] if len(tile_ids) == 1 else ""
                where = f"tile {tile_ids[0]}" if len(tile_ids) == 1 else f"tiles {tile_ids[0]}..{tile_ids[-1]}"
                raise EngineFailed(f"{stage} engine {name!r} failed on {where}: {type(exc).__name__}: {exc}",
                                   tid) from exc

    def caption_and_ground(self, kind: str, ids: Sequence[str], images: Sequence[np.ndarray],
                           valids: Sequence[np.ndarray], masks: Sequence[np.ndarray],
                           conds: Sequence[np.ndarray] | None = None) -> tuple[list[list[str]], list[dict]]:
        """Captions and scores of a batch of tiles (empty where the stage is not run)."""
        captions: list[list[str]] = [[] for _ in ids]
        metrics: list[dict[str, float]] = [{} for _ in ids]
        if "caption" in self.engines:
            captioner = self.engines["caption"]
            seeds = [derive_seed(self.spec.seed, i, "caption") for i in ids]
            out = self.engine_call("caption", ids, lambda: captioner.caption(images, masks, seeds))  # type: ignore[attr-defined]
            captions = [[str(c) for c in caps] for caps in out]
        if "ground" in self.engines:
            grounder = self.engines["ground"]
            cond_list: Sequence[np.ndarray | None] = conds if conds is not None else [None] * len(ids)
            items = [GroundInput(i, kind, im, valid, m, caps, cond)
                     for i, im, valid, m, caps, cond in zip(ids, images, valids, masks, captions, cond_list, strict=True)]
            out = self.engine_call("ground", ids, lambda: grounder.ground(items))  # type: ignore[attr-defined]
            metrics = [{str(n): float(x) for n, x in m.items()} for m in out]
        return captions, metrics

    # ------------------------------------------------------------ records
    def tile_record(self, tile_id: str, kind: str, cell: Cell, variant: int = 0, source: str = "") -> TileRecord:
        t = cell.transform(self.prep.transform)
        return TileRecord(tile_id=tile_id, kind=kind, row=cell.row, col=cell.col, variant=variant,
                          source_tile_id=source, crs=self.prep.crs_wkt, bounds=cell.bounds(self.prep.transform),
                          geotransform=tuple(t.to_gdal()), width=cell.width, height=cell.height,
                          col_off=cell.col_off, row_off=cell.row_off,
                          attributes={**{f"engine_{s}": p.cls.name for s, p in self.prep.plans.items()},
                                      "split": self.prep.splits[(cell.row, cell.col)]})

    def fill(self, rec: TileRecord, mask: np.ndarray | None, captions: list[str], metrics: dict[str, float],
             valid: np.ndarray) -> None:
        rec.composition = [float(v) for v in composition(mask)] if mask is not None else []
        rec.captions = captions
        rec.metrics = metrics
        rec.attributes["valid_share"] = f"{float(valid.mean()):.4f}"
        dataset_filters.flag(rec.attributes, valid, rec.composition, self.spec.filters)   # "dropped_by"

    def write_all(self, writes: Sequence[Callable[[], None]]) -> None:
        """Write a batch's files; tiles are recorded only after all their files exist.
        (Writing with two threads measured no faster on 2 cores: per-file GDAL overhead dominates.)"""
        with self.timer("write"):
            for w in writes:
                w()

    def record(self, rec: TileRecord) -> None:
        if self.journal.record_tile(self.job_id, rec):
            self.emit(TileDone(rec))
            self.since_layers += 1

    # ------------------------------------------------------------ progress
    def progress(self, stage: str, done: int, total: int) -> None:
        self.emit(Progress(stage=stage, done=done, total=total))

    def timings(self, extra_total: float | None = None) -> dict[str, float]:
        out = {k: round(v, 4) for k, v in sorted(self.timer.seconds.items())}
        if extra_total is not None:
            out["total"] = round(extra_total, 4)
        return out
