"""Run (or resume) a job: AOI -> tile grid -> segment, synthesise, caption, ground -> layers, report.

    accepted -> (tile, progress)* -> [synthetic (tile, progress)*] -> layer* -> report -> done

This process is the job's head: it prepares the job, hands batches of tiles to the job's executor
(groundsynth.pipeline.executors: inline, process or ray), records every finished tile in the journal
(the JobStore, its single writer) and emits it as a domain event (groundsynth.pipeline.events).
Resumable: tiles already in the journal are neither recomputed nor rewritten, and the job's
radiometric stretch and synthesis state are stored with the job so a resumed job uses the same
ones. Everything random derives from (spec.seed, tile id, stage), so every executor writes the same
bytes.

Layout of <workspace>/jobs/<job_id>/:
    real/image/<tile>.tif            uint8 R,G,B(,NIR), 0 = nodata, job stretch
    real/mask/<tile>.tif             uint8 classes + colour table, 255 = nodata
    real/labels/<tile>.tif           label raster on the tile grid (if a label raster was given)
    synthetic/image_v<N>/<tile>.tif  synthetic image at the SOURCE tile's footprint
    synthetic/mask_v<N>/<tile>.tif   the segmenter's prediction on the synthetic image
    synthetic/cond_mask_v<N>/<tile>.tif  the mask the image was generated from
    synthesis_state.pkl              what the synthesiser's fit returned (+ AOI mask statistics)
    <layer>.vrt                      mosaic per layer kind (real_image, real_mask, synthetic_image_v1, ...)
    tiles.gpkg                       layer "tiles": one polygon per tile with its attributes
    report.json (+ report.html)      written by groundsynth.report
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from groundsynth.artefacts.atomic import remove_temp_files
from groundsynth.pipeline.events import Accepted, Done, Emit
from groundsynth.pipeline.job_run import JobRun, JobStore
from groundsynth.pipeline.outputs import write_layers, write_report
from groundsynth.pipeline.prepare import RunOptions, gdal_cache_cap, prepare_job
from groundsynth.pipeline.real_tiles import run_real
from groundsynth.pipeline.synthetic_tiles import run_synthetic
from groundsynth.request.errors import GroundSynthError
from groundsynth.request.spec import JobSpec
from groundsynth.tiling.source import Stretch

log = logging.getLogger("groundsynth.pipeline")


def run_job(job_id: str, spec: JobSpec, workspace: str | Path, journal: JobStore, emit: Emit,
            cancelled: Callable[[], bool] = lambda: False, options: RunOptions | None = None,
            source_path: str | Path | None = None) -> str:
    """Run or resume a job; returns "SUCCEEDED" or "CANCELLED", raises GroundSynthError on failure.

    The journal row is created if missing, set RUNNING, and set to the final
    state (FAILED with the message when an error escapes). The executor is the job's
    `spec.executor` if set, else `options.executor`.
    """
    options = options or RunOptions()
    # GDAL's block cache cap is one value per process and every rasterio.Env restores the value it found:
    # capped for the whole job, so the head's threads (overviews beside the fit and the report, inline
    # tasks) restore the cap, never GDAL's default (5 % of the machine's memory), whatever their order
    with gdal_cache_cap(options.gdal_cache_mb):
        return _run_job(job_id, spec, workspace, journal, emit, cancelled, options, source_path)


def _run_job(job_id: str, spec: JobSpec, workspace: str | Path, journal: JobStore, emit: Emit,
             cancelled: Callable[[], bool], options: RunOptions, source_path: str | Path | None) -> str:
    from groundsynth.pipeline.executors import get_executor

    workspace = Path(workspace).resolve()
    t_start = time.perf_counter()
    run = None
    try:
        prep = prepare_job(spec, workspace, options, source_path)
        executor = get_executor(prep.spec.executor or options.executor, options.workers, options.ray_address)
        run = JobRun(job_id, prep, workspace, journal, emit, cancelled, options, executor)
        _setup(run)
        finished = run_real(run)
        if finished:
            finished = run_synthetic(run)
        _sweep(run)
        write_layers(run)
        if not finished:
            return _finish(run, "CANCELLED", t_start)
        write_report(run, t_start)
        return _finish(run, "SUCCEEDED", t_start)
    except Exception as exc:
        if journal.get_job(job_id) is not None:
            msg = exc.message if isinstance(exc, GroundSynthError) else f"internal error: {type(exc).__name__}: {exc}"
            journal.set_state(job_id, "FAILED", msg)
        raise
    finally:
        if run is not None:
            run.executor.release(job_id)


def _setup(run: JobRun) -> None:
    """Create or reopen the job's journal row, fix its stretch, emit Accepted. (Engines are built by
    the workers, on their first batch.)"""
    j, job_id, prep = run.journal, run.job_id, run.prep
    if j.get_job(job_id) is None:
        j.create_job(job_id, run.spec, str(run.dir))
    j.set_state(job_id, "RUNNING")
    run.dir.mkdir(parents=True, exist_ok=True)
    _sweep(run)
    stored = j.get_meta(job_id, "stretch")
    if stored is None:
        j.set_meta(job_id, "stretch", prep.stretch.to_dict())
    else:
        run.stretch = Stretch.from_dict(stored)
    j.set_meta(job_id, "raster", prep.raster)
    j.set_meta(job_id, "grid", {"tile_size": run.spec.tile_size, "overlap": run.spec.overlap,
                                "tiles": run.real_total, "skipped": prep.skipped_tiles})
    j.set_totals(job_id, run.real_total, run.syn_total)
    run.emit(Accepted(job_id=job_id, tile_count=run.real_total, skipped_tiles=prep.skipped_tiles,
                      output_dir=str(run.dir), spec=run.spec))


def _sweep(run: JobRun) -> None:
    """Temp files a killed worker (or head) left behind; nothing of this job is being written now."""
    n = remove_temp_files(run.dir)
    if n:
        log.info("job %s: removed %d temp file(s) left by an interrupted write", run.job_id, n)


def _finish(run: JobRun, state: str, t_start: float) -> str:
    run.journal.set_meta(run.job_id, "timings", run.timings(extra_total=time.perf_counter() - t_start))
    row = run.journal.get_job(run.job_id)
    run.journal.set_state(run.job_id, state)
    run.emit(Done(state=state, real_tiles=row.tiles_done, synthetic_tiles=row.synthetic_done,
                  output_dir=str(run.dir)))
    return state
