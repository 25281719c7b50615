"""Classifier two-sample test: can a simple classifier tell set A's patches from set B's? (pure numpy)

Patches: fully valid 64 px patches (`groundsynth.metrics.realism.patches`) that are land
(less than `MAX_WATER` of their mask is Water: open water is easy to fake and would hide land).
Features (`FEATURES`, 24 per patch, from the uint8 values / 255):
  per band mean (4) and std (4), per band mean absolute gradient (4; R, G, B, NIR; a 3-band
  image repeats G for NIR), brightness (mean of R, G, B) 10th/50th/90th percentiles (3),
  brightness Laplacian std (fine-scale energy) (1), lag-1 autocorrelation along x and y (2),
  lag-4 autocorrelation (1), mean 3x3 local std (1), vegetation index mean and std (2;
  (NIR - R) / (NIR + R), or (G - R) / (G + R) without NIR), saturation mean (1), edge density
  (share of pixels with |gradient| > 0.05) (1).
Classifier: linear discriminant (features standardised on the training folds, pooled
covariance shrunk towards the identity by `SHRINK`, equal priors). Cross-validated
`FOLDS`-fold, grouped by tile (every patch of a tile, and of a source tile's variants, lies in
one fold; a group name found in both sets is one group, so a tile present in both is never on
both sides of a split), repeated `REPEATS` times with different fold assignments. The score is the
balanced accuracy (mean of the two recalls), so 0.5 = indistinguishable whatever the sizes.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

FEATURES = ("mean_r", "mean_g", "mean_b", "mean_nir", "std_r", "std_g", "std_b", "std_nir",
            "grad_r", "grad_g", "grad_b", "grad_nir", "bright_p10", "bright_p50", "bright_p90",
            "laplace_std", "autocorr_x1", "autocorr_y1", "autocorr_4", "local_std", "veg_mean", "veg_std",
            "saturation", "edge_density")
MAX_WATER = 0.5
WATER = 6
SHRINK = 0.1
FOLDS = 5
REPEATS = 3
MIN_PATCHES = 8
FEATURE_CHUNK = 32


def _autocorr(b: np.ndarray, dy: int, dx: int) -> np.ndarray:
    n, h, w = b.shape
    x = b - b.mean(axis=(1, 2), keepdims=True)
    a, c = x[:, :h - dy, :w - dx], x[:, dy:, dx:]
    return (a * c).mean(axis=(1, 2)) / np.maximum((x ** 2).mean(axis=(1, 2)), 1e-8)


def _local_std(b: np.ndarray) -> np.ndarray:
    """Standard deviation over every 3 x 3 window of each patch (n, s, s) -> (n, s - 2, s - 2), from the
    windows' sums of values and of squares (float64: no cancellation at uint8 scale)."""
    x = b.astype(np.float64)
    h, w = x.shape[1] - 2, x.shape[2] - 2
    s1 = np.zeros((x.shape[0], h, w))
    s2 = np.zeros_like(s1)
    for dy in range(3):
        for dx in range(3):
            part = x[:, dy:dy + h, dx:dx + w]
            s1 += part
            s2 += part * part
    mean = s1 / 9
    return np.sqrt(np.maximum(s2 / 9 - mean * mean, 0))


def patch_features(p: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
    """(n, 24) features of uint8 patches (n, C, s, s), C = 3 or 4 (see module doc), of the patches where
    `keep` (a bool per patch; default all); computed FEATURE_CHUNK patches at a time, so that the float
    intermediates stay small however many patches there are (and the kept patches are never copied out)."""
    idx = np.arange(len(p)) if keep is None else np.flatnonzero(keep)
    if len(idx) == 0:
        return _features(p[:0])
    return np.concatenate([_features(p[idx[i:i + FEATURE_CHUNK]]) for i in range(0, len(idx), FEATURE_CHUNK)])


def _features(p: np.ndarray) -> np.ndarray:
    x = p.astype(np.float32) / 255.0
    if x.shape[1] == 3:
        x = np.concatenate([x, x[:, 1:2]], axis=1)
    n = x.shape[0]
    gy, gx = np.abs(np.diff(x, axis=2))[:, :, :, :-1], np.abs(np.diff(x, axis=3))[:, :, :-1, :]
    grad = (gx + gy).mean(axis=(2, 3))
    b = x[:, :3].mean(axis=1)
    q = np.percentile(b.reshape(n, -1), [10, 50, 90], axis=1).T
    lap = 4 * b[:, 1:-1, 1:-1] - b[:, :-2, 1:-1] - b[:, 2:, 1:-1] - b[:, 1:-1, :-2] - b[:, 1:-1, 2:]
    local = _local_std(b).mean(axis=(1, 2))
    has_nir = p.shape[1] == 4
    num = x[:, 3] - x[:, 0] if has_nir else x[:, 1] - x[:, 0]
    den = x[:, 3] + x[:, 0] if has_nir else x[:, 1] + x[:, 0]
    veg = num / np.maximum(den, 1e-3)
    mx, mn = x[:, :3].max(axis=1), x[:, :3].min(axis=1)
    sat = ((mx - mn) / np.maximum(mx, 1e-3)).mean(axis=(1, 2))
    gb = np.hypot(np.diff(b, axis=1)[:, :, :-1], np.diff(b, axis=2)[:, :-1, :])
    cols = [x.mean(axis=(2, 3)), x.std(axis=(2, 3)), grad, q, lap.std(axis=(1, 2))[:, None],
            _autocorr(b, 0, 1)[:, None], _autocorr(b, 1, 0)[:, None],
            (0.5 * (_autocorr(b, 0, 4) + _autocorr(b, 4, 0)))[:, None], local[:, None],
            veg.mean(axis=(1, 2))[:, None], veg.std(axis=(1, 2))[:, None], sat[:, None],
            (gb > 0.05).mean(axis=(1, 2))[:, None]]
    return np.concatenate(cols, axis=1).astype(np.float64)


def land(masks: np.ndarray) -> np.ndarray:
    """Bool per patch: less than MAX_WATER of it is Water."""
    if len(masks) == 0:
        return np.zeros(0, bool)
    return (masks == WATER).mean(axis=(1, 2)) < MAX_WATER


def lda_fit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(mean, scale, w, threshold) of a shrunk linear discriminant on standardised features."""
    mu, sd = x.mean(axis=0), x.std(axis=0) + 1e-9
    z = (x - mu) / sd
    m0, m1 = z[y == 0].mean(axis=0), z[y == 1].mean(axis=0)
    r = np.concatenate([z[y == 0] - m0, z[y == 1] - m1])
    cov = r.T @ r / max(len(r) - 2, 1)
    cov = (1 - SHRINK) * cov + SHRINK * np.eye(len(cov))
    w = np.linalg.solve(cov, m1 - m0)
    return mu, sd, w, float(w @ (m0 + m1) / 2)


def lda_predict(model: tuple[np.ndarray, np.ndarray, np.ndarray, float], x: np.ndarray) -> np.ndarray:
    mu, sd, w, t = model
    return (((x - mu) / sd) @ w > t).astype(int)


def grouped_cv_accuracy(x: np.ndarray, y: np.ndarray, groups: Sequence[str], seed: int = 0,
                        folds: int = FOLDS, repeats: int = REPEATS) -> float | None:
    """Balanced accuracy of the LDA under grouped k-fold CV (median over `repeats` fold assignments)."""
    names = sorted(set(groups))
    gi = np.array([names.index(g) for g in groups])
    k = min(folds, len(names))
    if k < 2 or (y == 0).sum() < MIN_PATCHES or (y == 1).sum() < MIN_PATCHES:
        return None
    scores = []
    for r in range(repeats):
        fold_of = np.random.default_rng([seed, r]).permutation(len(names)) % k
        pred = np.full(len(y), -1)
        for f in range(k):
            test = fold_of[gi] == f
            train = ~test
            if (y[train] == 0).sum() < 2 or (y[train] == 1).sum() < 2:
                continue
            pred[test] = lda_predict(lda_fit(x[train], y[train]), x[test])
        done = pred >= 0
        recalls = [float((pred[done & (y == c)] == c).mean()) for c in (0, 1) if (done & (y == c)).any()]
        if len(recalls) == 2:
            scores.append(float(np.mean(recalls)))
    return float(np.median(scores)) if scores else None


def two_sample_accuracy(pa: np.ndarray, ma: np.ndarray, ga: Sequence[str], pb: np.ndarray, mb: np.ndarray,
                        gb: Sequence[str], seed: int = 0, land_only: bool = True) -> float | None:
    """Grouped-CV balanced accuracy of telling A's patches from B's (None: too few patches)."""
    ka = land(ma) if land_only else np.ones(len(pa), bool)
    kb = land(mb) if land_only else np.ones(len(pb), bool)
    if ka.sum() < MIN_PATCHES or kb.sum() < MIN_PATCHES:
        return None
    x = np.concatenate([patch_features(pa, ka), patch_features(pb, kb)])
    y = np.r_[np.zeros(int(ka.sum()), int), np.ones(int(kb.sum()), int)]
    # one group name = one fold on both sides: a tile in both sets (a copy) is never trained on while tested
    groups = [g for g, k in zip(ga, ka, strict=True) if k] + [g for g, k in zip(gb, kb, strict=True) if k]
    return grouped_cv_accuracy(x, y, groups, seed)
