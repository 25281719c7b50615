"""Set metrics, pure numpy: caption redundancy, CLIPScore scale, composition shift, distributions.

- Caption redundancy: 1 - unique captions / total captions (exact duplicates).
- Composition shift: per-class mean shares of the real and of the synthetic
  tiles and the Jensen-Shannon divergence between the two mean distributions,
  in bits (log base 2, so 0 = identical, 1 = disjoint).
- CLIPScore: 100 * max(cos, 0).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from groundsynth.request.classes import CLASS_NAMES

# ------------------------------------------------------------------ captions

def caption_redundancy(captions: Iterable[str]) -> float:
    """1 - unique/total over exact duplicates (the original's definition); 0.0 for no captions."""
    items = list(captions)
    if not items:
        return 0.0
    return 1.0 - len(set(items)) / len(items)


def clip_score(cos: float | np.ndarray) -> float | np.ndarray:
    """CLIPScore on the 0-100 scale: 100 * max(cos, 0)."""
    out = 100.0 * np.maximum(np.asarray(cos, dtype=float), 0.0)
    return float(out) if out.ndim == 0 else out


# ------------------------------------------------------------------ distributions

def js_divergence(p_in: Sequence[float] | np.ndarray, q_in: Sequence[float] | np.ndarray) -> float:
    """Jensen-Shannon divergence in bits between two distributions (normalised first)."""
    p = np.asarray(p_in, dtype=float)
    q = np.asarray(q_in, dtype=float)
    if p.shape != q.shape:
        raise ValueError(f"distributions differ in length: {p.shape} vs {q.shape}")
    if (p < 0).any() or (q < 0).any() or p.sum() <= 0 or q.sum() <= 0:
        raise ValueError("distributions must be non-negative with a positive sum")
    p = p / p.sum()
    q = q / q.sum()
    m = (p + q) / 2

    def kl(a: np.ndarray, b: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / b[nz])))

    return max(0.0, 0.5 * kl(p, m) + 0.5 * kl(q, m))


def composition_shift(real: Sequence[Sequence[float]], synthetic: Sequence[Sequence[float]],
                      class_names: Sequence[str] = CLASS_NAMES) -> dict:
    """Mean per-class shares of the real and synthetic tiles and their JS divergence (bits).

    Each input is a list of per-tile composition vectors (shares summing to 1).
    `js_divergence` is None when either side has no tiles.
    """
    def mean(rows: Sequence[Sequence[float]]) -> np.ndarray | None:
        arr = np.asarray(list(rows), dtype=float)
        if arr.size == 0:
            return None
        if arr.ndim != 2 or arr.shape[1] != len(class_names):
            raise ValueError(f"expected composition rows of {len(class_names)} shares, got shape {arr.shape}")
        return arr.mean(axis=0)

    r, s = mean(real), mean(synthetic)
    return {
        "real": None if r is None else {n: float(v) for n, v in zip(class_names, r, strict=True)},
        "synthetic": None if s is None else {n: float(v) for n, v in zip(class_names, s, strict=True)},
        "difference": None if r is None or s is None else {n: float(b - a) for n, a, b in zip(class_names, r, s, strict=True)},
        "js_divergence": None if r is None or s is None or r.sum() <= 0 or s.sum() <= 0 else js_divergence(r, s),
        "tiles_real": 0 if r is None else len(real),
        "tiles_synthetic": 0 if s is None else len(synthetic),
    }


def describe(values: Iterable[float]) -> dict:
    """n, mean, median, p10, p90, min, max of the finite values (None when empty)."""
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return {"n": 0, "mean": None, "median": None, "p10": None, "p90": None, "min": None, "max": None}
    p10, med, p90 = np.percentile(arr, [10, 50, 90])
    return {"n": int(arr.size), "mean": float(arr.mean()), "median": float(med), "p10": float(p10),
            "p90": float(p90), "min": float(arr.min()), "max": float(arr.max())}
