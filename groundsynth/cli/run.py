"""`groundsynth run`: run the pipeline in-process, without a server.

    groundsynth run --raster scene.tif --aoi 435730,4160000,445000,4179460 --workspace ws \
        [--aoi-crs EPSG:4326 | --polygon WKT] [--stages segment,caption] [--engine segment=spectral] \
        [--param segment.ndvi_tree=0.5] [--variants N] [--mask-strategy boost --boost Shrub=0.3] \
        [--label-raster labels.tif] [--tile-size 256] [--overlap 0] [--bands 1,2,3,4] [--seed S] [--job-id ID] \
        [--executor inline|process|ray] [--workers N] [--ray-address HOST:PORT]

The tile work runs on the chosen executor (docs/scale-out.md): `process` (default) uses a pool of
worker processes, one per core; `inline` runs it in this process; `ray` on a Ray cluster
(--ray-address; a local one when none is given).

A tqdm progress bar goes to stderr; the last stdout line is the job's output
directory. Exit codes: 0 done, 2 user error ("error (CODE): message"), 130 interrupted
(re-run with the printed --job-id to resume).
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from groundsynth.request.errors import InvalidArgument
from groundsynth.request.spec import (
    EXECUTOR_NAMES,
    Aoi,
    BandMapping,
    DatasetFilters,
    JobSpec,
    ReferenceSamples,
    StageConfig,
    SynthesisOptions,
)


def _floats(text: str, n: int, field: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(v) for v in text.split(","))
    except ValueError:
        vals = ()
    if len(vals) != n:
        raise InvalidArgument(f"expected {n} comma-separated numbers, got {text!r}", field)
    return vals


def _pairs(items: list[str], field: str) -> list[tuple[str, str]]:
    out = []
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidArgument(f"expected KEY=VALUE, got {item!r}", field)
        out.append((key.strip(), value.strip()))
    return out


def add_job_arguments(p: argparse.ArgumentParser) -> None:
    """The job-defining flags (shared with `demo` and usable by `submit`)."""
    p.add_argument("--aoi", help="bbox MINX,MINY,MAXX,MAXY in --aoi-crs (default: the raster CRS), e.g. --aoi -75.7,37.6,-75.6,37.7")
    p.add_argument("--polygon", help="AOI as a WKT POLYGON/MULTIPOLYGON in --aoi-crs (instead of --aoi)")
    p.add_argument("--aoi-crs", default="", help="CRS of the AOI, e.g. EPSG:4326 (default: the raster CRS)")
    p.add_argument("--stages", default="", help="comma-separated stages (default: segment,synthesise,caption,ground)")
    p.add_argument("--engine", action="append", default=[], metavar="STAGE=NAME", help="engine for a stage")
    p.add_argument("--param", action="append", default=[], metavar="STAGE.NAME=VALUE", help="engine parameter")
    p.add_argument("--variants", type=int, default=None, help="synthetic variants per real tile, 0..16 "
                                                              "(default 1 with the synthesise stage)")
    p.add_argument("--mask-strategy", default="real", help="real, boost or layout")
    p.add_argument("--boost", action="append", default=[], metavar="CLASS=SHARE", help="boost target, e.g. Shrub=0.3")
    p.add_argument("--label-raster", default=None, help="ESA WorldCover label raster (any CRS)")
    p.add_argument("--tile-size", type=int, default=256)
    p.add_argument("--overlap", type=int, default=0)
    p.add_argument("--bands", default="1,2,3,0", help="R,G,B,NIR[,SWIR1,SWIR2] 1-based band indexes (NIR 0 = auto, "
                   "-1 = none; SWIR 0 = auto from the band descriptions swir1/B11, swir2/B12, -1 = none)")
    p.add_argument("--reference", default=None, metavar="FILE",
                   help="reference sample for the accuracy assessment: GeoPackage/GeoJSON/shapefile/CSV of points or "
                        "polygons with a class attribute (name or WorldCover code), any CRS (docs/accuracy.md)")
    p.add_argument("--reference-class-field", default="", metavar="NAME",
                   help="attribute of --reference holding the class (default: class, class_name, label or code)")
    p.add_argument("--reference-crs", default="", metavar="CRS",
                   help="CRS of a CSV --reference's coordinates (default EPSG:4326)")
    p.add_argument("--reference-split", default="", choices=("", "tune", "test"),
                   help="assess only the reference features of this split (default: all, reported per split too)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", default="")
    p.add_argument("--keep-nodata", action="store_true",
                   help="dataset filter: keep tiles with nodata pixels (default: drop them, like the original)")
    p.add_argument("--max-water", type=float, default=0.0, metavar="SHARE",
                   help="dataset filter: drop tiles with more water than SHARE (default 0.9; 1 = never)")
    p.add_argument("--synthesise-dropped", action="store_true",
                   help="also synthesise the real tiles the dataset filters drop (default: not)")
    p.add_argument("--executor", default="", choices=("", *EXECUTOR_NAMES), metavar="{inline,process,ray}",
                   help="where the tile work runs: inline (this process), process (a pool of worker processes, "
                        "one per core; the default) or ray (a Ray cluster)")


def add_executor_arguments(p: argparse.ArgumentParser) -> None:
    """--workers and --ray-address (for commands that run the pipeline here: run, demo)."""
    p.add_argument("--workers", type=int, default=0,
                   help="worker processes (process) or Ray actors (ray); 0 = one per core / cluster CPU")
    p.add_argument("--ray-address", default="", metavar="HOST:PORT",
                   help="the Ray cluster to use with --executor ray (default: start a local one)")


def spec_from_args(args: argparse.Namespace, raster: str) -> JobSpec:
    if bool(args.aoi) == bool(args.polygon):
        raise InvalidArgument("give exactly one of --aoi MINX,MINY,MAXX,MAXY or --polygon WKT", "aoi")
    bbox = _floats(args.aoi, 4, "aoi.bbox") if args.aoi else None
    aoi = Aoi(bbox=(bbox[0], bbox[1], bbox[2], bbox[3]) if bbox else None, polygon_wkt=args.polygon,
              crs=args.aoi_crs or "")
    try:
        bands = [int(v) for v in args.bands.split(",")]
    except ValueError:
        bands = []
    if len(bands) not in (3, 4, 5, 6):
        raise InvalidArgument(f"expected R,G,B[,NIR[,SWIR1[,SWIR2]]] band indexes, got {args.bands!r}", "bands")
    stage_names = [s.strip() for s in args.stages.split(",") if s.strip()] if args.stages else \
        ["segment", "synthesise", "caption", "ground"]
    stages = {s: StageConfig(s) for s in stage_names}
    for stage, name in _pairs(args.engine, "stages.engine"):
        if stage not in stages:
            raise InvalidArgument(f"--engine for stage {stage!r}, which is not among --stages", "stages.engine")
        stages[stage].engine = name
    for key, value in _pairs(args.param, "stages.params"):
        stage, dot, pname = key.partition(".")
        if not dot or stage not in stages:
            raise InvalidArgument(f"expected STAGE.NAME=VALUE for a stage among --stages, got {key!r}",
                                  "stages.params")
        stages[stage].params[pname] = value
    if args.variants is not None and args.variants < 0:
        raise InvalidArgument(f"expected 0..16 variants, got {args.variants}", "synthesis.variants")
    boost: dict[str, float] = {}
    for cls, share in _pairs(args.boost, "synthesis.boost_targets"):
        boost[cls] = _floats(share, 1, "synthesis.boost_targets")[0]
    return JobSpec(aoi=aoi, raster_path=str(Path(raster).resolve()),
                   bands=BandMapping(bands[0], bands[1], bands[2], bands[3] if len(bands) >= 4 else -1,
                                     *bands[4:6]),
                   tile_size=args.tile_size, overlap=args.overlap, stages=list(stages.values()),
                   synthesis=SynthesisOptions(variants=-1 if args.variants is None else args.variants,
                                              mask_strategy=args.mask_strategy,
                                              boost_targets=boost),
                   seed=args.seed,
                   label_raster_path=str(Path(args.label_raster).resolve()) if args.label_raster else None,
                   name=args.name, executor=getattr(args, "executor", "") or "", reference=reference_from_args(args),
                   filters=DatasetFilters(getattr(args, "keep_nodata", False), getattr(args, "max_water", 0.0),
                                          getattr(args, "synthesise_dropped", False)))


def reference_from_args(args: argparse.Namespace) -> ReferenceSamples:
    path = getattr(args, "reference", None)
    if not path:
        return ReferenceSamples()
    return ReferenceSamples(path=str(Path(path).resolve()), class_field=args.reference_class_field,
                            crs=args.reference_crs, split=args.reference_split)


class ProgressBar:
    """Turns job events into a tqdm bar on stderr (units: tiles, real + synthetic). On a terminal it redraws
    up to 10 times a second; into a file or a pipe (a CI log) it writes a line when the stage changes and at
    most every NON_TTY_INTERVAL seconds, not one per tile."""

    NON_TTY_INTERVAL = 15.0

    def __init__(self, quiet: bool = False, initial: int = 0):
        from tqdm import tqdm

        tty = bool(getattr(sys.stderr, "isatty", lambda: False)())
        self.bar = tqdm(total=0, initial=initial, unit="tile", file=sys.stderr, disable=quiet, dynamic_ncols=True,
                        mininterval=0.1 if tty else self.NON_TTY_INTERVAL)
        self.real_total = 0
        self.syn_total = 0
        self.stage = ""
        self.held = 0           # synthetic tiles seen before the synthetic total is known (not counted yet)

    def _stage(self, name: str, refresh: bool = True) -> None:
        if name != self.stage:
            self.stage = name
            self.bar.set_description(name, refresh=refresh)     # redraws once

    def _release(self) -> None:
        if self.held:
            self.bar.update(self.held)
            self.held = 0

    def __call__(self, kind: str, msg: Any) -> None:
        """`kind` names the event (accepted, progress, tile, ...); `msg` is a domain event or a pb message."""
        if kind == "accepted":
            self.real_total = msg.tile_count
            self.bar.total = msg.tile_count
            self._stage("real tiles")
        elif kind == "progress" and msg.stage == "synthesise":
            changed = msg.total != self.syn_total
            if changed:
                self.syn_total = msg.total
                self.bar.total = self.real_total + msg.total
            self._release()
            self._stage("synthetic tiles")
            if changed:
                self.bar.refresh()
        elif kind == "tile":
            if getattr(getattr(msg, "record", msg), "kind", "") == "synthetic":   # TileDone or a pb TileResult
                if not self.syn_total:
                    # the batch's synthesise progress (with the total) follows its tiles: count them then,
                    # so the bar never shows the real tiles' total under the synthetic label (64/64)
                    self._stage("synthetic tiles", refresh=False)
                    self.held += 1
                    return
                self._stage("synthetic tiles")
            self.bar.update(1)
        elif kind == "report":
            self._release()
            self._stage("report written")

    def close(self) -> None:
        self._release()
        self.bar.close()


def run_in_process(spec: JobSpec, workspace: Path, job_id: str | None, quiet: bool = False,
                   on_event: Callable[[Any], None] | None = None, batch_size: int = 8, executor: str = "",
                   workers: int = 0, ray_address: str = "") -> Path:
    """Run (or resume, given an existing job_id) a job here with a progress bar; returns its directory.
    The tile work runs on `executor` (spec.executor, if set, wins; default process)."""
    from groundsynth.pipeline.prepare import RunOptions, job_dir, new_job_id, prepare_job
    from groundsynth.pipeline.runner import run_job
    from groundsynth.service.journal import Journal
    from groundsynth.service.workspace_lock import lock_workspace, unlock_workspace

    workspace = workspace.resolve()
    workspace.mkdir(parents=True, exist_ok=True)
    if workers < 0:
        raise InvalidArgument(f"expected 0 (one per core) or a positive number, got {workers}", "workers")
    options = RunOptions(batch_size=batch_size, executor=executor or RunOptions.executor, workers=workers,
                         ray_address=ray_address)
    prepare_job(spec, workspace, options)     # fail fast on bad input, before creating a job
    lock = lock_workspace(workspace, "backend run")   # a server on this workspace would resume our job too
    journal = Journal(workspace / "journal.sqlite")
    try:
        if job_id and journal.get_job(job_id) is None:
            raise InvalidArgument(f"unknown job {job_id!r} in {workspace}", "job_id")
        job_id = job_id or new_job_id()
        print(f"job {job_id} (resume with --job-id {job_id})", file=sys.stderr)
        row = journal.get_job(job_id)
        bar = ProgressBar(quiet, initial=row.tiles_done + row.synthetic_done if row else 0)  # resumed: done so far
        try:
            def emit(event: Any) -> None:
                bar(event.kind, event)
                if on_event:
                    on_event(event)

            state = run_job(job_id, spec, workspace, journal, emit, lambda: False, options)
        finally:
            bar.close()
        if state != "SUCCEEDED":
            print(f"job {job_id} ended {state}", file=sys.stderr)
        return job_dir(workspace, job_id)
    finally:
        journal.close()
        unlock_workspace(lock)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the pipeline in-process (no server)",
                       description="Run the GroundSynth pipeline on an AOI of a raster, in this process.")
    p.add_argument("--raster", help="source raster (GeoTIFF or anything GDAL reads); not needed with --job-id")
    p.add_argument("--workspace", required=True, type=Path, help="workspace folder (journal + jobs/)")
    p.add_argument("--job-id", default=None,
                   help="resume this job (its recorded spec is used; job flags are ignored)")
    p.add_argument("--batch-size", type=int, default=8, help="tiles per engine call")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_job_arguments(p)
    add_executor_arguments(p)
    p.set_defaults(func=main)


def stored_spec(workspace: Path, job_id: str) -> JobSpec:
    from groundsynth.service.journal import Journal

    path = workspace / "journal.sqlite"
    if not path.exists():
        raise InvalidArgument(f"no journal in {workspace}, so no job {job_id!r} to resume", "job_id")
    journal = Journal(path)
    try:
        row = journal.get_job(job_id)
    finally:
        journal.close()
    if row is None:
        raise InvalidArgument(f"unknown job {job_id!r} in {workspace}", "job_id")
    return row.spec


def main(args: argparse.Namespace) -> int:
    if args.job_id:
        spec = stored_spec(args.workspace, args.job_id)
        spec.executor = args.executor or spec.executor      # this run's executor (outputs are the same)
    elif not args.raster:
        raise InvalidArgument("give --raster PATH (or --job-id to resume a job)", "raster_path")
    else:
        spec = spec_from_args(args, args.raster)
    out = run_in_process(spec, args.workspace, args.job_id, args.quiet, batch_size=args.batch_size,
                         workers=args.workers, ray_address=args.ray_address)
    print(out)
    return 0
