"""report.json "accuracy_assessment": the job's segmentation against its reference sample.

`assess(job_dir, records, sample, owner)` reads each real tile's mask at the sample pixels that tile
owns (groundsynth.tiling.reference), then reports, for the whole sample and for each split value the
sample carries (e.g. "tune", "test"):

    n, not_assessed (pixels outside the AOI's tiles, in nodata tiles or masked 255),
    error_matrix (rows = MAP class, columns = REFERENCE class, sample counts),
    overall_accuracy, macro_f1, per_class {mapped, reference, correct, users_accuracy,
        producers_accuracy, f1}, each score with "ci95" (percentile bootstrap: whole sample units,
        within strata; groundsynth.metrics.accuracy.bootstrap_ci),
    stratified: area-weighted estimates (Stehman 2014 / Olofsson et al. 2014) when every unit
        has a stratum with a stratum_size, else the reason they are not given.

Scores are fractions in 0..1; undefined ones are null.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from groundsynth.artefacts.records import TileRecord
from groundsynth.metrics.accuracy import bootstrap_ci, error_matrix, sample_accuracy, stratified_estimates
from groundsynth.request.classes import CLASS_NAMES, NODATA
from groundsynth.tiling.grid import Cell

REPLICATES = 2000
DEFINITION = ("error matrix of sample pixels: rows = map (the job's masks), columns = reference; OA, user's (UA = "
              "1 - commission) and producer's (PA = 1 - omission) accuracy and F1 from the counts, macro F1 over "
              "classes in map or reference; 95 % percentile bootstrap intervals resampling whole sample units "
              "within strata; 'stratified' = area-weighted estimates for stratified random sampling (Stehman 2014, "
              "Olofsson et al. 2014)")


def mapped_classes(job_dir: Path, records: Sequence[TileRecord], sample: Any, owner: np.ndarray,
                   cells: Sequence[Cell]) -> np.ndarray:
    """Mask class at every sample pixel (NODATA where no real tile with a mask owns it)."""
    from groundsynth.report.images import read_mask

    mapped = np.full(len(sample), NODATA, np.int64)
    by_rc = {(r.row, r.col): r for r in records if r.kind == "real" and not r.nodata and r.artefacts.get("mask")}
    for k in np.unique(owner[owner >= 0]):
        cell = cells[int(k)]
        rec = by_rc.get((cell.row, cell.col))
        if rec is None:
            continue
        sel = np.flatnonzero(owner == k)
        mask = read_mask(job_dir / rec.artefacts["mask"])
        mapped[sel] = mask[sample.row[sel] - cell.row_off, sample.col[sel] - cell.col_off]
    return mapped


def _with_ci(acc: dict[str, Any], ci: dict[str, Any]) -> dict[str, Any]:
    acc["overall_accuracy_ci95"] = ci["oa"]
    acc["macro_f1_ci95"] = ci["macro_f1"]
    for i, name in enumerate(CLASS_NAMES):
        c = acc["per_class"][name]
        c["users_accuracy_ci95"], c["producers_accuracy_ci95"], c["f1_ci95"] = ci["ua"][i], ci["pa"][i], ci["f1"][i]
    return acc


def _part(mapped: np.ndarray, sample: Any, keep: np.ndarray, seed: int) -> dict[str, Any]:
    seen = keep & (mapped != NODATA)
    m, ref = mapped[seen], sample.cls[seen].astype(np.int64)
    units, strata = sample.unit[seen], sample.stratum[seen]
    out = sample_accuracy(error_matrix(m, ref))
    out["not_assessed"] = int(keep.sum() - seen.sum())
    out["units"] = int(np.unique(units).size)
    out["error_matrix"] = error_matrix(m, ref).tolist()
    out = _with_ci(out, bootstrap_ci(m, ref, units=units, strata=strata, replicates=REPLICATES, seed=seed))
    if m.size and all(strata) and set(strata) <= set(sample.stratum_sizes):
        if np.unique(units).size != units.size:
            out["stratified"] = {"unavailable": "polygon samples: the stratified estimators here take one pixel "
                                                "per unit"}
        else:
            out["stratified"] = stratified_estimates(m, ref, strata, dict(sample.stratum_sizes))
    else:
        out["stratified"] = {"unavailable": "the sample carries no stratum and stratum_size for every unit"}
    return out


def assess(job_dir: str | Path, records: Sequence[TileRecord], sample: Any, owner: np.ndarray,
           cells: Sequence[Cell], seed: int = 0) -> dict[str, Any]:
    """The accuracy_assessment section (module doc)."""
    mapped = mapped_classes(Path(job_dir), records, sample, owner, cells)
    everything = np.ones(len(sample), bool)
    out: dict[str, Any] = {"source": sample.source, "geometry": sample.geometry, "pixels": len(sample),
                           "outside_raster": sample.outside, "replicates": REPLICATES, "definition": DEFINITION,
                           "all": _part(mapped, sample, everything, seed)}
    splits = sorted({s for s in sample.split.tolist() if s})
    out["splits"] = {s: _part(mapped, sample, sample.split == s, seed) for s in splits}
    return out
