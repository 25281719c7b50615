"""report.json: every metric per tile and in aggregate, and everything needed to rerun the job.

Layout (schema_version 1):
    schema_version, generator, created (UTC), job_id,
    spec            JobSpec.to_dict(): JobSpec.from_dict(report["spec"]) rebuilds the job
    seed, engines   {stage: {"name", "params"}} as run (parameters after defaults)
    versions        python, groundsynth and package versions (importlib.metadata, nothing imported)
    stretch, timings, raster, grid, layers, warnings   (from the pipeline, when given)
    crs             WKT of the tile grid (tiles carry theirs only when it differs)
    tiles           one entry per tile: ids, kind, footprint, artefacts (paths relative to the
                    job dir), composition {class: share}, dominant_class, captions, metrics,
                    attributes, label_metrics (real tiles with labels)
    aggregates      {"all"|"real"|"synthetic": {metric: {n, mean, median, p10, p90, min, max}}}
    set_metrics     redundancy, composition shift, score distributions (ground engine summary)
    label_evaluation  whole-set segmenter vs labels (groundsynth.metrics.segmentation.segmentation_scores) or null
    accuracy_assessment  segmentation vs the job's reference sample (groundsynth.report.accuracy_report) or null
    grounding_control, dataset_filters, tile_grid   groundsynth.report.evidence (own vs mismatched tile; filter
                    counts; the default score of the tile grid: one that varies)
    realism         synthetic vs held-out real tiles beside real vs held-out (groundsynth.report.realism) or null;
                    synthetic tile entries carry "realism" (copied shares, speckle)
    summary         the headline numbers (also sent in ReportReady.summary)
Scores are fractions in 0..1 except grounding (0..100). Undefined values are null.
"""
from __future__ import annotations

import datetime as _dt
import math
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from groundsynth import __version__
from groundsynth.artefacts.records import TileRecord
from groundsynth.metrics import segmentation
from groundsynth.metrics import sets as metrics
from groundsynth.report.evidence import evidence_headline, evidence_sections
from groundsynth.report.realism import realism_headline, realism_section
from groundsynth.request.classes import CLASS_NAMES
from groundsynth.request.spec import JobSpec

SCHEMA_VERSION = 1
PACKAGES = ("numpy", "scipy", "rasterio", "shapely", "pyproj", "fiona", "matplotlib", "pillow", "grpcio",
            "protobuf", "torch", "torchvision", "transformers", "open_clip_torch", "timm")


def package_versions() -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {"python": platform.python_version(), "groundsynth": __version__}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def clean(value: Any) -> Any:
    """JSON-safe copy: numpy scalars/arrays to Python, tuples to lists, NaN/inf to None."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return clean(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    return str(value)


# ------------------------------------------------------------------ pieces

def tile_entry(r: TileRecord, grid_crs: str) -> dict[str, Any]:
    comp = r.composition_by_name() if len(r.composition) == len(CLASS_NAMES) else {}
    entry = {
        "tile_id": r.tile_id, "kind": r.kind, "row": r.row, "col": r.col, "variant": r.variant,
        "source_tile_id": r.source_tile_id, "nodata": r.nodata,
        "bounds": list(r.bounds), "geotransform": list(r.geotransform), "width": r.width, "height": r.height,
        "col_off": r.col_off, "row_off": r.row_off,
        "artefacts": dict(r.artefacts),
        "composition": comp,
        "dominant_class": max(comp, key=lambda n: comp[n]) if comp and sum(comp.values()) > 0 else None,
        "captions": list(r.captions),
        "metrics": dict(r.metrics),
        "attributes": dict(r.attributes),
    }
    if r.crs and r.crs != grid_crs:
        entry["crs"] = r.crs
    return entry


def aggregates(records: Sequence[TileRecord]) -> dict[str, dict[str, dict]]:
    out: dict[str, dict[str, dict]] = {}
    live = [r for r in records if not r.nodata]
    for group, rs in (("all", live), ("real", [r for r in live if r.kind == "real"]),
                      ("synthetic", [r for r in live if r.kind == "synthetic"])):
        keys = sorted({k for r in rs for k in r.metrics})
        out[group] = {k: metrics.describe(r.metrics[k] for r in rs if k in r.metrics) for k in keys}
    return out


def label_evaluation(job_dir: Path, records: Sequence[TileRecord],
                     per_tile: dict[str, dict] | None = None) -> dict | None:
    """Whole-set confusion matrix of the real tiles' masks against their label tiles (255 ignored)."""
    pairs = [r for r in records if r.kind == "real" and not r.nodata
             and r.artefacts.get("labels") and r.artefacts.get("mask")]
    if not pairs:
        return None
    from groundsynth.report.images import read_mask

    acc = segmentation.ConfusionAccumulator()
    for r in pairs:
        truth = read_mask(job_dir / r.artefacts["labels"])
        pred = read_mask(job_dir / r.artefacts["mask"])
        cm = segmentation.confusion_matrix(truth, pred)
        acc.matrix += cm
        if per_tile is not None:
            s = segmentation.segmentation_scores(cm)
            per_tile[r.tile_id] = {"accuracy": s["accuracy"], "miou": s["miou"], "macro_f1": s["macro_f1"]}
    out = acc.scores()
    out["tiles"] = len(pairs)
    out["confusion_matrix"] = acc.matrix.tolist()
    out["definition"] = ("pixel-level over all real tiles (one confusion matrix), macro over the classes present "
                         "in labels or prediction; rows = labels, columns = prediction; 255 ignored")
    return out


def headline(records: Sequence[TileRecord], set_metrics: dict, labels: dict | None,
             accuracy: dict | None = None) -> dict[str, float]:
    """Flat numbers for ReportReady.summary; keys whose value is undefined are left out."""
    live = [r for r in records if not r.nodata]

    def mean(key: str, kind: str | None = None) -> float | None:
        vals = [r.metrics[key] for r in live if key in r.metrics and (kind is None or r.kind == kind)
                and r.metrics[key] is not None and math.isfinite(r.metrics[key])]
        return float(np.mean(vals)) if vals else None

    out: dict[str, float | None] = {
        "tiles_real": float(sum(r.kind == "real" for r in live)),
        "tiles_synthetic": float(sum(r.kind == "synthetic" for r in live)),
        "tiles_nodata": float(sum(r.nodata for r in records)),
        "grounding_mean": mean("grounding"),
        "grounding_mean_real": mean("grounding", "real"),
        "grounding_mean_synthetic": mean("grounding", "synthetic"),
        "fidelity_miou_mean": mean("fidelity_miou", "synthetic"),
        "redundancy": (set_metrics.get("redundancy") or {}).get("all"),
        "composition_js": (set_metrics.get("composition_shift") or {}).get("js_divergence"),
    }
    if labels:
        out.update(seg_macro_f1=labels["macro_f1"], seg_miou=labels["miou"], seg_accuracy=labels["accuracy"])
    if accuracy:
        for key, part in (("", accuracy["all"]), *((f"_{s}", p) for s, p in accuracy["splits"].items())):
            out[f"ref_points{key}"] = part["n"]
            out[f"ref_overall_accuracy{key}"] = part["overall_accuracy"]
            out[f"ref_macro_f1{key}"] = part["macro_f1"]
    return {k: float(v) for k, v in out.items() if v is not None and math.isfinite(v)}


# ------------------------------------------------------------------ document

def build_report(job_dir: Path, spec: JobSpec, records: Sequence[TileRecord], context: dict) -> dict[str, Any]:
    """The report.json document (plain JSON types)."""
    job_dir = Path(job_dir)
    set_metrics = context.get("set_metrics") or {}
    if not set_metrics:      # ground stage not run: the set metrics need no engine, compute them here
        from groundsynth.engines.builtin.composition_ground import summarise_records

        set_metrics = summarise_records(records)
    per_tile_labels: dict[str, dict] = {}
    labels = label_evaluation(job_dir, records, per_tile_labels)
    per_tile_realism: dict[str, dict] = {}
    realism = realism_section(job_dir, records, context.get("synthesis_fit"), per_tile_realism,
                              int(context.get("seed", spec.seed) or 0), precomputed=context.get("realism"))
    accuracy = None
    if context.get("reference"):
        from groundsynth.report.accuracy_report import assess

        ref = context["reference"]
        accuracy = assess(job_dir, records, ref["sample"], ref["owner"], ref["cells"], seed=spec.seed)
    grid_crs = next((r.crs for r in records if r.crs), "")
    tiles = []
    for r in records:
        entry = tile_entry(r, grid_crs)
        if r.tile_id in per_tile_labels:
            entry["label_metrics"] = per_tile_labels[r.tile_id]
        if r.tile_id in per_tile_realism:
            entry["realism"] = per_tile_realism[r.tile_id]
        tiles.append(entry)
    doc = {
        "schema_version": SCHEMA_VERSION,
        "generator": f"groundsynth {__version__}",
        "created": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "job_id": context.get("job_id", ""),
        "spec": spec.to_dict(),
        "seed": context.get("seed", spec.seed),
        "engines": context.get("engines", {}),
        "versions": package_versions(),
        "stretch": context.get("stretch"),
        "timings": context.get("timings", {}),
        "raster": context.get("raster"),
        "grid": context.get("grid"),
        "layers": context.get("layers", []),
        "warnings": context.get("warnings", []),
        "crs": grid_crs,
        "classes": list(CLASS_NAMES),
        "tiles": tiles,
        "aggregates": aggregates(records),
        "set_metrics": set_metrics,
        "label_evaluation": labels,
        "accuracy_assessment": accuracy,
        **evidence_sections(records, spec, context),
        "realism": realism,
        "summary": {**headline(records, set_metrics, labels, accuracy), **realism_headline(realism)},
        "reproduce": {
            "how": "JobSpec.from_dict(report['spec']) with the engines and seed above, same package versions; "
                   "or `groundsynth export` to rebuild the training set from this job dir",
        },
    }
    extra = {k: v for k, v in evidence_headline(doc).items() if v is not None and math.isfinite(v)}
    doc["summary"].update({k: float(v) for k, v in extra.items()})
    return clean(doc)
