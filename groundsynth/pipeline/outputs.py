"""Job-level outputs: one VRT mosaic per layer kind, the tile grid GeoPackage, and the report;
at the end of a job the mosaics' overviews (build_mosaic_overviews; the real ones are built beside the
synthesis fit) and the STAC collection (finish_outputs).

Layers are rewritten every `layers_every` recorded tiles (at most about ten
times a job, so big jobs stay linear) and once at the end; each rewrite emits
LayerReady for every layer. The report comes last (`write_report`): while a head thread builds the
mosaics' overviews, the workers run, side by side, the grounding-control pass
(groundsynth.pipeline.grounding_control: captions scored against their own and a mismatched tile's
reference, stored in the records; the tile grid is rewritten with them), the set metrics of the
grounder's `summarise` (where the engines are) and the three parts of the realism section; then
report.json (groundsynth.report), then the STAC collection in the head while a worker renders
report.html from it. Every output lists tiles sorted by kind, row, col and variant, never in the order
in which they finished.
"""
from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import numpy as np

from groundsynth.artefacts.records import TileRecord
from groundsynth.artefacts.stac import write_job_collection
from groundsynth.artefacts.tile_grid import write_tiles_gpkg
from groundsynth.artefacts.vrt import VrtTile, build_overviews, ovr_path, write_vrt
from groundsynth.pipeline.events import LayerReady, ReportReady
from groundsynth.pipeline.job_run import JobRun
from groundsynth.request.classes import NODATA

IMAGE_BANDS = ("red", "green", "blue", "nir")
IMAGE_COLORINTERP = ("Red", "Green", "Blue", "Undefined")


@contextmanager
def in_head_thread(fn: Callable[..., Any], *args: Any) -> Iterator[None]:
    """Run fn(*args) in a head thread while the with-body runs; both end before the block does. An error
    of the body is the one raised (the thread is waited for); else the thread's, if it had one."""
    with ThreadPoolExecutor(1, thread_name_prefix=fn.__name__) as pool:
        future = pool.submit(fn, *args)
        yield
        future.result()


def record_order(rec: TileRecord) -> tuple[int, int, int, int]:
    """Real tiles first, then synthetic ones; by row, col and variant."""
    return (0 if rec.kind == "real" else 1, rec.row, rec.col, rec.variant)


def sorted_records(run: JobRun) -> list[TileRecord]:
    return sorted(run.journal.tiles(run.job_id), key=record_order)


def maybe_refresh_layers(run: JobRun) -> None:
    # every layers_every tiles, but at most ~10 times per job so that big jobs stay linear
    every = max(run.opt.layers_every, (run.real_total + run.syn_total) // 10)
    if run.since_layers >= every:
        write_layers(run)


def _layer_groups(records: Sequence[TileRecord]) -> dict[str, list[tuple[str, TileRecord]]]:
    """layer name (real_image, synthetic_mask_v2, ...) -> [(artefact path, record)]."""
    groups: dict[str, list[tuple[str, TileRecord]]] = defaultdict(list)
    for rec in records:
        for kind, rel in rec.artefacts.items():
            layer = f"{rec.kind}_{kind}" + (f"_v{rec.variant}" if rec.kind == "synthetic" else "")
            groups[layer].append((rel, rec))
    return groups


def write_layers(run: JobRun, grid_only: bool = False) -> None:
    """Write the VRT mosaics and the tile grid (`grid_only`: the tile grid alone, the mosaics being final:
    the report phase builds their overviews meanwhile), then emit LayerReady for every layer."""
    run.since_layers = 0
    records = sorted_records(run)
    if not records:
        return
    prep = run.prep
    with run.timer("outputs"):
        groups = _layer_groups(records)
        written: list[tuple[str, str, str]] = []
        n_outputs = len(groups) + 1        # the VRTs and tiles.gpkg
        for layer in sorted(groups):
            run.progress("outputs", len(written), n_outputs)
            if grid_only:
                written.append((layer, f"{layer}.vrt", "vrt"))
                continue
            tiles = [VrtTile(rel, r.col_off, r.row_off, r.width, r.height) for rel, r in groups[layer]]
            if layer.split("_v")[0].endswith("_image"):
                n = 4 if prep.has_nir else 3
                write_vrt(run.dir / f"{layer}.vrt", tiles, prep.transform, prep.crs_wkt, IMAGE_BANDS[:n],
                          nodata=0, colorinterp=IMAGE_COLORINTERP[:n])
            else:
                write_vrt(run.dir / f"{layer}.vrt", tiles, prep.transform, prep.crs_wkt, ("class",),
                          nodata=NODATA, palette=True)
            written.append((layer, f"{layer}.vrt", "vrt"))
        run.progress("outputs", len(written), n_outputs)
        write_tiles_gpkg(run.dir / "tiles.gpkg", records, prep.crs_wkt)
        written.append(("tiles", "tiles.gpkg", "gpkg"))
        run.progress("outputs", len(written), n_outputs)
    for layer, path, fmt in written:
        run.layers[layer] = {"layer": layer, "path": path, "format": fmt}
        run.emit(LayerReady(layer=layer, path=path, format=fmt))
    run.journal.set_meta(run.job_id, "layers", sorted(run.layers.values(), key=lambda d: d["layer"]))


def write_report(run: JobRun, t_start: float) -> None:
    """The end of a job, as a small graph: the mosaics' overviews are built in a head thread (GDAL) while the
    workers score the grounding control and compute the set metrics and the realism parts side by side;
    then report.json/html, the STAC collection, ReportReady."""
    from groundsynth.pipeline.context import HtmlTask
    from groundsynth.pipeline.grounding_control import final_control_pass, summarise_control
    from groundsynth.report import write_report as write_report_files
    from groundsynth.report import write_report_html
    from groundsynth.report.html import PIECES as HTML_PIECES

    records = sorted_records(run)
    with in_head_thread(build_mosaic_overviews, run):
        t0 = time.perf_counter()
        control_pass = final_control_pass(run, records)
        set_metrics, realism = report_metrics(run, records, control_pass)
        control = summarise_control(run, control_pass)
        if control.get("families"):
            write_layers(run, grid_only=True)      # the tile grid gets the control scores
        records = sorted_records(run)
    context = {
        "job_id": run.job_id,
        "engines": {s: {"name": p.cls.name, "params": p.params} for s, p in run.prep.plans.items()},
        "set_metrics": set_metrics or {},
        "stretch": run.stretch.to_dict(),
        "timings": run.timings(extra_total=time.perf_counter() - t_start),
        "raster": run.prep.raster,
        "seed": run.spec.seed,
        "grid": run.journal.get_meta(run.job_id, "grid"),
        "warnings": run.prep.warnings + nodata_warnings(run, records) + fit_warnings(run),
        "synthesis_fit": run.journal.get_meta(run.job_id, "synthesis_fit"),
        "layers": sorted(run.layers.values(), key=lambda d: d["layer"]),
        "grounding_control": control,
        "realism": realism,
    }
    if run.prep.reference is not None:
        context["reference"] = {"sample": run.prep.reference, "owner": run.prep.reference_owner,
                                "cells": run.prep.grid.cells}
    summary = write_report_files(run.dir, run.spec, records, context, html=False) or {}
    run.timer.seconds["report"] += time.perf_counter() - t0
    # report.html's slow pieces on the workers side by side, from report.json, while the head writes the STAC
    # collection; then the head writes the page from them
    with in_head_thread(finish_outputs, run, records, summary):
        results = run.execute_all([HtmlTask(p) for p in HTML_PIECES], in_flight=len(HTML_PIECES))
    write_report_html(run.dir, {k: v for r in results for k, v in r.value.items()})
    html = "report.html" if (run.dir / "report.html").exists() else ""
    numeric = {str(k): float(v) for k, v in summary.items()
               if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)}
    run.journal.set_meta(run.job_id, "report", {"json_path": "report.json", "html_path": html, "summary": numeric})
    run.emit(ReportReady(json_path="report.json", html_path=html, summary=numeric))
    run.progress("report", 1, 1)


def report_metrics(run: JobRun, records: Sequence[TileRecord], control: Any = None
                   ) -> tuple[dict[str, Any], tuple[Any, dict[str, Any]]]:
    """The report's heavy numbers, computed side by side on the executor's workers: the grounding-control
    pass's tasks (`control`, a grounding_control.ControlPass, committed into it), the grounder's set metrics
    and the three parts of the realism section (groundsynth.report.realism). (set metrics, (realism plan, its
    parts)): the plan as realism_plan gave it, which is the section itself when realism cannot be measured."""
    from groundsynth.pipeline.context import ControlTask, RealismTask, SummaryTask
    from groundsynth.report.realism import PARTS, RealismPlan, plan_key, realism_plan

    # longest first (the realism parts, then the set metrics, then the many small control batches), all
    # in flight at once (a few small tasks): the pass ends when its longest task does, not a queue later
    plan = realism_plan(records, run.journal.get_meta(run.job_id, "synthesis_fit"))
    tasks: list[Any] = []
    parts: dict[str, Any] = {}
    if isinstance(plan, RealismPlan):
        early = run.early_realism       # the "real" part, computed beside the fit for the same tiles
        if early is not None and early[0] == plan_key(plan):
            parts["real"] = early[1]
        tasks += [RealismTask(part, plan, int(run.spec.seed or 0)) for part in PARTS if part not in parts]
    if "ground" in run.stages:
        tasks.append(SummaryTask(tuple(records)))
    tasks += list(control.tasks) if control is not None else []
    results = run.execute_all(tasks, in_flight=len(tasks)) if tasks else []
    set_metrics: dict[str, Any] = {}
    for task, result in zip(tasks, results, strict=True):
        if isinstance(task, ControlTask):
            control.commit(task, result)
        elif isinstance(task, SummaryTask):
            set_metrics = result.value
        else:
            parts[task.part] = result.value
    return set_metrics, (plan, parts)


def build_mosaic_overviews(run: JobRun, kinds: tuple[str, ...] = ("real", "synthetic")) -> None:
    """<layer>.vrt.ovr for every mosaic of these tile kinds that has none yet (in bounded memory:
    artefacts.vrt.overview_settings). An existing .ovr belongs to its VRT (write_vrt removes it on any
    change), so the real mosaics' overviews, built beside the synthesis fit, are not built again."""
    with run.timer("overviews"):
        for layer in list(run.layers.values()):
            vrt = run.dir / layer["path"]
            if layer["format"] == "vrt" and layer["layer"].startswith(kinds) and not ovr_path(vrt).exists():
                build_overviews(vrt, palette=not layer["layer"].split("_v")[0].endswith("_image"),
                                cache_cap_mb=run.opt.gdal_cache_mb)


def finish_outputs(run: JobRun, records: Sequence[TileRecord], summary: dict[str, Any]) -> None:
    """End of a job, after the report: the STAC collection of the tiles (the mosaics' overviews were built
    beside the report's numbers: write_report)."""
    with run.timer("stac"):
        write_job_collection(run.dir, run.job_id, records, run.spec.to_dict(), summary, run.prep.crs_wkt,
                             4 if run.prep.has_nir else 3)


def nodata_warnings(run: JobRun, records: Sequence[TileRecord]) -> list[str]:
    real = [r for r in records if r.kind == "real"]
    flagged = sum(r.nodata for r in real)
    out = []
    if real and flagged == len(real):
        out.append(f"every real tile ({flagged}) is a nodata tile: nothing was segmented or synthesised")
    elif flagged:
        out.append(f"{flagged} of {len(real)} real tiles are nodata tiles (< {100 * run.opt.min_valid:g}% "
                   "valid pixels): flagged, masked 255, not synthesised")
    return out


def fit_warnings(run: JobRun) -> list[str]:
    fit = run.journal.get_meta(run.job_id, "synthesis_fit") or {}
    return [fit["warning"]] if fit.get("warning") else []
