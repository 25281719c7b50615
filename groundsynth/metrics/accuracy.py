"""Accuracy assessment of a class map against a reference sample (pure numpy).

The language of land-cover accuracy assessment (Olofsson et al. 2014, "Good practices for estimating
area and assessing accuracy of land change", Remote Sensing of Environment 148; Stehman 2014,
"Estimating area and map accuracy for stratified random sampling when the strata are different from
the map classes", IJRS 35):

- `error_matrix(mapped, reference)`: sample counts, ROWS = MAP class, COLUMNS = REFERENCE class
  (the convention of the accuracy literature; note that `segmentation.confusion_matrix` has truth in
  rows).
- `sample_accuracy(matrix)`: from the counts as they are (each sample unit weighs the same):
  overall accuracy OA = sum n_ii / n; user's accuracy UA_i = n_ii / n_i+ (share of the points MAPPED
  as i that are i: 1 - commission error); producer's accuracy PA_j = n_jj / n_+j (share of the points
  that ARE j that the map calls j: 1 - omission error); F1_i = 2 UA PA / (UA + PA). A class with no
  mapped and no reference point has no scores (None) and is left out of the macro F1; one with
  points in either but never matched scores 0 and counts (as in segmentation.py).
- `bootstrap_ci(mapped, reference, ...)`: percentile 95 % intervals of OA, UA, PA, F1 and macro F1,
  resampling sample units with replacement (whole units: all points of one polygon together;
  within strata when the sample is stratified, so each stratum keeps its sample size). Replicates
  in which a score is undefined are left out for that score.
- `stratified_estimates(mapped, reference, strata, stratum_weights)`: area-weighted estimates for
  stratified random sampling (Stehman 2014): each unit u of stratum h stands for W_h / n_h of the
  area. Proportions (OA, area share of each reference class p_.j, cell shares p_ij) are
  p = sum_h W_h ybar_h with V = sum_h W_h^2 s_yh^2 / n_h; UA and PA are ratios R = Y / X of two such
  estimates (UA_i: y = [map i and ref i], x = [map i]; PA_j: y = [map j and ref j], x = [ref j]) with
  V(R) = sum_h W_h^2 (s_yh^2 + R^2 s_xh^2 - 2 R s_xyh) / n_h / X^2. When the strata ARE the map
  classes this is exactly Olofsson et al. (2014) eqs. 2-10 (tested against their worked example).
  Every stratum with a weight needs at least 2 units, otherwise the estimates are undefined.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from groundsynth.request.classes import CLASS_NAMES, NUM_CLASSES

Z95 = 1.959963984540054


# ------------------------------------------------------------------ counts

def error_matrix(mapped: np.ndarray, reference: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """(k, k) int64 sample counts, rows = map class, columns = reference class; values outside 0..k-1 skipped."""
    m = np.asarray(mapped).ravel().astype(np.int64)
    r = np.asarray(reference).ravel().astype(np.int64)
    if m.shape != r.shape:
        raise ValueError(f"mapped and reference differ in length: {m.size} vs {r.size}")
    keep = (m >= 0) & (m < num_classes) & (r >= 0) & (r < num_classes)
    return np.bincount(m[keep] * num_classes + r[keep], minlength=num_classes ** 2).reshape(num_classes, num_classes)


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype=float)
    den = np.asarray(den, dtype=float)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _scores(mats: np.ndarray) -> dict[str, np.ndarray]:
    """OA, UA, PA, F1 (per class) and macro F1 of (..., k, k) matrices (rows map, cols reference); NaN undefined."""
    mats = np.asarray(mats, dtype=float)
    diag = np.diagonal(mats, axis1=-2, axis2=-1)
    rows, cols = mats.sum(axis=-1), mats.sum(axis=-2)
    total = mats.sum(axis=(-2, -1))
    ua, pa = _div(diag, rows), _div(diag, cols)
    f1 = _div(2 * diag, rows + cols)              # = 2 UA PA / (UA + PA), 0 when never matched
    defined = (rows + cols) > 0
    with np.errstate(invalid="ignore"):
        macro = np.where(defined.any(axis=-1), np.nansum(np.where(defined, f1, 0.0), axis=-1)
                         / np.maximum(defined.sum(axis=-1), 1), np.nan)
    return {"oa": _div(diag.sum(axis=-1), total), "ua": ua, "pa": pa, "f1": f1, "macro_f1": macro}


def _num(v: Any) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)


def sample_accuracy(matrix: np.ndarray, class_names: Sequence[str] = CLASS_NAMES) -> dict[str, Any]:
    """OA, per-class UA/PA/F1 with counts, macro F1 from an error matrix (rows = map, columns = reference)."""
    m = np.asarray(matrix, dtype=np.int64)
    s = _scores(m)
    per_class = {name: {"mapped": int(m[i].sum()), "reference": int(m[:, i].sum()), "correct": int(m[i, i]),
                        "users_accuracy": _num(s["ua"][i]), "producers_accuracy": _num(s["pa"][i]),
                        "f1": _num(s["f1"][i])}
                 for i, name in enumerate(class_names)}
    return {"n": int(m.sum()), "overall_accuracy": _num(s["oa"]), "macro_f1": _num(s["macro_f1"]),
            "per_class": per_class}


# ------------------------------------------------------------------ bootstrap

def _replicate_matrices(mapped: np.ndarray, reference: np.ndarray, units: np.ndarray, strata: np.ndarray,
                        rng: np.random.Generator, replicates: int, k: int) -> np.ndarray:
    """(replicates, k, k) error matrices of bootstrap samples: units drawn with replacement within each stratum."""
    cell = mapped * k + reference
    picks = []                                        # per stratum: (replicates, n_h) point indices, or lists
    for h in np.unique(strata):
        in_h = np.flatnonzero(strata == h)
        u_ids, inverse = np.unique(units[in_h], return_inverse=True)
        draw = rng.integers(0, len(u_ids), size=(replicates, len(u_ids)))
        if len(u_ids) == len(in_h):                   # one point per unit: vectorised
            order = np.argsort(inverse)
            picks.append(in_h[order][draw])
        else:
            members = [in_h[inverse == j] for j in range(len(u_ids))]
            picks.append([np.concatenate([members[j] for j in row]) for row in draw])
    mats = np.zeros((replicates, k * k), dtype=np.int64)
    for p in picks:
        if isinstance(p, np.ndarray):
            flat = (np.arange(replicates)[:, None] * k * k + cell[p]).ravel()
            mats += np.bincount(flat, minlength=replicates * k * k).reshape(replicates, k * k)
        else:
            for b, idx in enumerate(p):
                mats[b] += np.bincount(cell[idx], minlength=k * k)
    return mats.reshape(replicates, k, k)


def bootstrap_ci(mapped: np.ndarray, reference: np.ndarray, units: np.ndarray | None = None,
                 strata: np.ndarray | None = None, replicates: int = 2000, seed: int = 0,
                 num_classes: int = NUM_CLASSES, level: float = 0.95) -> dict[str, Any]:
    """Percentile bootstrap intervals: {"oa": [lo, hi], "macro_f1": [..], "ua"/"pa"/"f1": (k, 2) lists}.

    `units` groups points that must be resampled together (polygon samples; default: every point its
    own unit); `strata` keeps each stratum's number of units fixed (default: one stratum).
    """
    mapped = np.asarray(mapped, dtype=np.int64).ravel()
    reference = np.asarray(reference, dtype=np.int64).ravel()
    n = mapped.size
    units = np.arange(n) if units is None else np.asarray(units).ravel()
    strata = np.zeros(n, np.int64) if strata is None else np.asarray(strata).ravel()
    k = num_classes
    mats = _replicate_matrices(mapped, reference, units, strata, np.random.default_rng(seed), replicates, k) \
        if n else np.zeros((replicates, k, k), dtype=np.int64)
    s = _scores(mats)
    q = (100 * (1 - level) / 2, 100 * (1 + level) / 2)

    def ci(values: np.ndarray) -> list[float | None]:
        v = values[np.isfinite(values)]
        if n == 0 or v.size < max(10, replicates // 10):   # undefined in most replicates: no interval
            return [None, None]
        lo, hi = np.percentile(v, q)
        return [float(lo), float(hi)]

    return {"oa": ci(s["oa"]), "macro_f1": ci(s["macro_f1"]),
            "ua": [ci(s["ua"][:, i]) for i in range(k)], "pa": [ci(s["pa"][:, i]) for i in range(k)],
            "f1": [ci(s["f1"][:, i]) for i in range(k)], "replicates": replicates, "seed": seed, "level": level}


# ------------------------------------------------------------------ stratified (area-weighted) estimates

def _stratum_moments(y: np.ndarray, x: np.ndarray, strata: np.ndarray, weights: dict[Any, float]
                     ) -> tuple[float, float, np.ndarray]:
    """(Y, X, per-stratum arrays [W_h, n_h, s2_y, s2_x, s_xy]) for the stratified estimators."""
    Y = X = 0.0
    rows = []
    for h, w in weights.items():
        sel = strata == h
        nh = int(sel.sum())
        yh, xh = y[sel].astype(float), x[sel].astype(float)
        Y += w * yh.mean()
        X += w * xh.mean()
        cov = np.cov(np.vstack([yh, xh]), ddof=1)
        rows.append((w, nh, cov[0, 0], cov[1, 1], cov[0, 1]))
    return Y, X, np.asarray(rows, dtype=float)


def _proportion(y: np.ndarray, strata: np.ndarray, weights: dict[Any, float]) -> tuple[float, float]:
    Y, _, m = _stratum_moments(y, np.ones_like(y), strata, weights)
    return Y, float(np.sqrt(np.sum(m[:, 0] ** 2 * m[:, 2] / m[:, 1])))


def _ratio(y: np.ndarray, x: np.ndarray, strata: np.ndarray, weights: dict[Any, float]
           ) -> tuple[float | None, float | None]:
    Y, X, m = _stratum_moments(y, x, strata, weights)
    if X <= 0:
        return None, None
    R = Y / X
    var = np.sum(m[:, 0] ** 2 * (m[:, 2] + R * R * m[:, 3] - 2 * R * m[:, 4]) / m[:, 1]) / (X * X)
    return float(R), float(np.sqrt(max(var, 0.0)))


def _est(value: float | None, se: float | None) -> dict[str, Any]:
    if value is None or se is None:
        return {"value": None, "se": None, "ci95": [None, None]}
    return {"value": float(value), "se": float(se), "ci95": [float(value - Z95 * se), float(value + Z95 * se)]}


def stratified_estimates(mapped: np.ndarray, reference: np.ndarray, strata: np.ndarray,
                         stratum_weights: dict[Any, float], num_classes: int = NUM_CLASSES,
                         class_names: Sequence[str] = CLASS_NAMES) -> dict[str, Any]:
    """Area-weighted OA, UA, PA and reference-class area shares with standard errors (see module doc).

    `stratum_weights` {stratum: W_h} (normalised here to sum to 1; W_h = share of the area in stratum h).
    Returns {"overall_accuracy", "per_class": {name: {"users_accuracy", "producers_accuracy",
    "area_share", "mapped_share"}}, "weights"}, each estimate {"value", "se", "ci95"}; or
    {"unavailable": reason} when a weighted stratum has fewer than 2 units.
    """
    mapped = np.asarray(mapped, dtype=np.int64).ravel()
    reference = np.asarray(reference, dtype=np.int64).ravel()
    strata = np.asarray(strata).ravel()
    total = float(sum(stratum_weights.values()))
    weights = {h: float(w) / total for h, w in stratum_weights.items() if w > 0}
    for h in weights:
        if int(np.sum(strata == h)) < 2:
            return {"unavailable": f"stratum {h} has weight {weights[h]:.4g} but {int(np.sum(strata == h))} "
                                   "reference unit(s); every weighted stratum needs at least 2"}
    known = np.isin(strata, list(weights))
    mapped, reference, strata = mapped[known], reference[known], strata[known]
    oa = _proportion((mapped == reference).astype(float), strata, weights)
    per_class: dict[str, Any] = {}
    for i, name in enumerate(class_names[:num_classes]):
        hit = ((mapped == i) & (reference == i)).astype(float)
        per_class[name] = {
            "users_accuracy": _est(*_ratio(hit, (mapped == i).astype(float), strata, weights)),
            "producers_accuracy": _est(*_ratio(hit, (reference == i).astype(float), strata, weights)),
            "area_share": _est(*_proportion((reference == i).astype(float), strata, weights)),
            "mapped_share": _est(*_proportion((mapped == i).astype(float), strata, weights)),
        }
    return {"overall_accuracy": _est(*oa), "per_class": per_class, "weights": {str(h): w for h, w in weights.items()}}
