"""Vectorised PatchMatch and patch voting for synthesise/texture (numpy; no loop per pixel or patch).

A nearest-neighbour field (NNF) maps every target pixel p (flat index into the target level,
H x W) to a source pixel q: a flat index into one pyramid level of the exemplar pool, whose
tiles are laid end to end (q = tile * h * w + y * w + x). Candidates are scored all at once:

    cost(p, q) = |F_T(p) - F_S(q)|^2 + mode_weight * [mode_S(q) != mode_T(p)]
                 + coherence * (share of p's 4 neighbours whose match does not continue q's copy)
                 + occurrence * (times q's source block is already copied, beyond once)
                 (+ infinity where class_S(q) != class_T(p), q is not allowed, or q lies in the
                 excluded tile: the synthetic tile's own source is never copied)

F is a patch descriptor (PCA of the patch's pixels, plus the label-map guidance; see
_texture_pool). PatchMatch (Barnes et al. 2009) improves the NNF by propagation (a neighbour's
match, shifted by the neighbour's offset: coherent copies; jump-flooding steps, all pixels at
once) and random search (around the current match at shrinking radii, and random source
pixels of the right class and appearance mode). The M-step of texture optimisation (Kwatra et
al. 2005) is `vote`: every pixel becomes the weighted mean of what the patches covering it
say about it (weights exp(-cost / 2 sigma^2), Wexler et al. 2007).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

INF = np.float32(1e30)
FEATHER = 0.7


@dataclass
class Level:
    """One pyramid level of the exemplar pool, flattened over its tiles."""

    h: int
    w: int
    pix: np.ndarray                 # uint8 (C, N) pixel codes 1 + round(254 v) (the tile files' encoding)
    feat: np.ndarray                # float16 (N, F) patch descriptors
    label: np.ndarray               # uint8 (N,) class
    mode: np.ndarray                # uint8 (N,) appearance mode within the class
    allowed: np.ndarray             # bool (N,): valid patch centre (whole patch valid, inside its tile)
    by_class: dict[int, np.ndarray] = field(default_factory=dict)              # class -> allowed q
    by_mode: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)   # (class, mode) -> allowed q

    @property
    def hw(self) -> int:
        return self.h * self.w


@dataclass
class Target:
    """The target at one level: descriptors (filled per EM iteration), class and mode per pixel."""

    H: int
    W: int
    label: np.ndarray               # (H * W,) class
    mode: np.ndarray                # (H * W,) wanted appearance mode
    guide: np.ndarray               # float32 (H * W, G) label guidance (weighted)
    feat: np.ndarray | None = None  # float32 (H * W, F) = [appearance PCA, guide]


@dataclass
class Search:
    """Settings of one search: the excluded pool tile (-1: none), mode, coherence and occurrence weights,
    and the occurrence of each source block (`usage`, refreshed per EM iteration by `occurrences`)."""

    exclude: int = -1
    mode_weight: float = 0.0
    coherence: float = 0.0
    occurrence: float = 0.0
    block: int = 8
    usage: np.ndarray | None = None


def _block_of(lv: Level, q: np.ndarray, b: int) -> np.ndarray:
    nby, nbx = -(-lv.h // b), -(-lv.w // b)
    y = (q % lv.hw) // lv.w
    return ((q // lv.hw) * nby + y // b) * nbx + (q % lv.w) // b


def occurrences(lv: Level, nnf: np.ndarray, b: int) -> np.ndarray:
    """How many times over each b x b source block is copied by the NNF (1 = once, as a whole)."""
    nby, nbx = -(-lv.h // b), -(-lv.w // b)
    n = (lv.pix.shape[1] // lv.hw) * nby * nbx
    return np.bincount(_block_of(lv, nnf, b), minlength=n).astype(np.float32) / (b * b)


def cost(lv: Level, tg: Target, q: np.ndarray, s: Search, nnf: np.ndarray | None = None) -> np.ndarray:
    """cost(p, q[p]) for every target pixel p (see module doc); with the current `nnf`, plus
    `coherence` x the share of p's 4 neighbours whose match does not continue q (a copy breaks there)."""
    assert tg.feat is not None
    d = tg.feat - np.take(lv.feat, q, axis=0)            # float32 - float16: promoted exactly, no copy pass
    c = np.einsum("ij,ij->i", d, d)
    c += s.mode_weight * (np.take(lv.mode, q) != tg.mode)
    if nnf is not None and s.coherence > 0:
        c += (s.coherence / 4) * _breaks(lv, tg, nnf, q)
    if s.usage is not None and s.occurrence > 0:
        # occurrence penalty (Kaspar et al. 2015): a source block copied more than once costs more
        c += s.occurrence * np.maximum(np.take(s.usage, _block_of(lv, q, s.block)) - 1, 0)
    bad = (np.take(lv.label, q) != tg.label) | ~np.take(lv.allowed, q)
    if s.exclude >= 0:
        bad |= (q // lv.hw) == s.exclude
    c[bad] = INF
    return c.astype(np.float32, copy=False)


def _breaks(lv: Level, tg: Target, nnf: np.ndarray, q: np.ndarray) -> np.ndarray:
    """How many of p's 4 neighbours n have a match other than q moved by n - p (0..4; off-tile ones count 0)."""
    H, W = tg.H, tg.W
    g = nnf.reshape(H, W)
    qq = q.reshape(H, W)
    out = np.zeros((H, W), np.float32)
    out[:, :-1] += g[:, 1:] != qq[:, :-1] + 1
    out[:, 1:] += g[:, :-1] != qq[:, 1:] - 1
    out[:-1, :] += g[1:, :] != qq[:-1, :] + lv.w
    out[1:, :] += g[:-1, :] != qq[1:, :] - lv.w
    return out.ravel()


def _offset(lv: Level, q: np.ndarray, dy: np.ndarray | int, dx: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
    """q moved by (dy, dx) inside its tile; (q', inside)."""
    y = (q % lv.hw) // lv.w + dy
    x = q % lv.w + dx
    inside = (y >= 0) & (y < lv.h) & (x >= 0) & (x < lv.w)
    return np.where(inside, q + dy * lv.w + dx, q), inside


def _improve(lv: Level, tg: Target, nnf: np.ndarray, best: np.ndarray, cand: np.ndarray, ok: np.ndarray,
             s: Search) -> None:
    c = cost(lv, tg, cand, s, nnf)
    better = ok & (c < best)
    nnf[better] = cand[better]
    best[better] = c[better]


def propagate(lv: Level, tg: Target, nnf: np.ndarray, best: np.ndarray, steps: tuple[int, ...], s: Search) -> None:
    """Jump-flooding propagation: every pixel tries its neighbours' matches at distance s, shifted by s."""
    H, W = tg.H, tg.W
    for step in steps:
        for dy, dx in ((step, 0), (-step, 0), (0, step), (0, -step)):
            # the match of the neighbour at p - (dy, dx), moved by (dy, dx)
            shifted = np.roll(nnf.reshape(H, W), (dy, dx), axis=(0, 1)).ravel()
            yy = np.arange(H)[:, None] - dy
            xx = np.arange(W)[None, :] - dx
            has = ((yy >= 0) & (yy < H) & (xx >= 0) & (xx < W)).ravel()
            cand, inside = _offset(lv, shifted, dy, dx)
            _improve(lv, tg, nnf, best, cand, has & inside, s)


def random_search(lv: Level, tg: Target, nnf: np.ndarray, best: np.ndarray, rng: np.random.Generator,
                  radii: tuple[int, ...], jumps: int, s: Search) -> None:
    """Candidates around the current match at shrinking radii, and `jumps` random source pixels of the
    pixel's class and wanted mode."""
    n = nnf.size
    for r in radii:
        dy = rng.integers(-r, r + 1, n)
        dx = rng.integers(-r, r + 1, n)
        cand, inside = _offset(lv, nnf, dy, dx)
        _improve(lv, tg, nnf, best, cand, inside, s)
    for _ in range(jumps):
        cand = draw(lv, tg, rng, s.exclude)
        _improve(lv, tg, nnf, best, cand, np.ones(n, bool), s)


def draw(lv: Level, tg: Target, rng: np.random.Generator, exclude: int) -> np.ndarray:
    """A random allowed source pixel for every target pixel: of its class and wanted mode (of its class
    where the mode has no pixel), never in the excluded tile. Every target class must be in the pool."""
    out = np.zeros(tg.label.size, np.int64)
    keys = np.unique(tg.label.astype(np.int64) * 256 + tg.mode)
    for key in keys:
        k, m = int(key) // 256, int(key) % 256
        where = np.flatnonzero((tg.label == k) & (tg.mode == m))
        pool = usable_sources(lv.by_mode.get((k, m)), lv.hw, exclude)
        if pool is None:
            pool = usable_sources(lv.by_class.get(k), lv.hw, exclude)
        if pool is None:
            raise KeyError(k)
        out[where] = pool[rng.integers(0, pool.size, where.size)]
    return out


def usable_sources(idx: np.ndarray | None, hw: int, exclude: int) -> np.ndarray | None:
    if idx is None or idx.size == 0:
        return None
    if exclude >= 0:
        idx = idx[(idx // hw) != exclude]
    return idx if idx.size else None


def vote(lv: Level, tg: Target, nnf: np.ndarray, best: np.ndarray, radius: int, sharp: bool = False,
         other: float = 1.0) -> np.ndarray:
    """(C, H, W): every pixel = weighted mean of the source pixels that the patches covering it copy; a source
    pixel of another class than the target pixel weighs `other` times as much (1 = plain vote; small: they
    count only where no own-class source covers the pixel, so no colour bleeds over a class edge).
    `sharp`: every pixel takes the source pixel of the covering patch that matched best (real values, no
    blur), except across seams (where neighbouring pixels come from different source places), which are
    feathered with the weighted mean over about a pixel, as a real image has no 1-px steps."""
    from scipy import ndimage

    H, W = tg.H, tg.W
    C = lv.pix.shape[0]
    finite = best < INF
    sigma2 = float(np.percentile(best[finite], 75)) if finite.any() else 1.0
    # clamped exponent: where every patch covering a pixel matched badly, they still share the vote evenly
    expo = np.minimum(best / (2 * max(sigma2, 1e-6)), 20.0)
    weight = np.where(finite, np.exp(-expo), 0.0).astype(np.float32).reshape(H, W)
    grid = nnf.reshape(H, W)
    cgrid = best.reshape(H, W)
    labels = tg.label.reshape(H, W)
    acc = np.zeros((C, H, W), np.float32)
    wsum = np.zeros((H, W), np.float32)
    pick = np.zeros((C, H, W), np.float32)
    src = np.zeros((H, W), np.int64)
    low = np.full((H, W), 2 * INF, np.float32)      # above INF: a pixel no same-class source covers still takes one
    for oy, ox in sorted(((a, b) for a in range(-radius, radius + 1) for b in range(-radius, radius + 1)),
                         key=lambda o: abs(o[0]) + abs(o[1])):
        # pixel x takes, from the patch centred at p = x - o, the source pixel q(p) + o
        ys = slice(max(oy, 0), H + min(oy, 0))
        xs = slice(max(ox, 0), W + min(ox, 0))
        ps = (slice(max(-oy, 0), H - max(oy, 0)), slice(max(-ox, 0), W - max(ox, 0)))
        q = grid[ps] + oy * lv.w + ox
        val = np.take(lv.pix, q, axis=1)                 # uint8; promoted to float32 where it is used
        same = np.take(lv.label, q) == labels[ys, xs]
        w = weight[ps] * np.where(same, np.float32(1), np.float32(other))
        acc[:, ys, xs] += w[None] * val
        wsum[ys, xs] += w
        if sharp:
            better = (np.where(same, cgrid[ps], INF) if other < 1 else cgrid[ps]) < low[ys, xs]
            low[ys, xs] = np.where(better, cgrid[ps], low[ys, xs])
            pick[:, ys, xs] = np.where(better[None], val, pick[:, ys, xs])
            src[ys, xs] = np.where(better, q, src[ys, xs])
    mean = acc / np.maximum(wsum, 1e-30)[None]
    if sharp:
        seam = np.zeros((H, W), np.float32)
        seam[:, 1:] += src[:, 1:] != src[:, :-1] + 1
        seam[1:, :] += src[1:, :] != src[:-1, :] + lv.w
        a = np.clip(ndimage.gaussian_filter(np.minimum(seam, 1), FEATHER) * 2.0, 0, 1)[None]
        mean = (1 - a) * pick + a * mean
    return np.clip((mean - 1) / 254, 0, 1)


def upsample(lv_fine: Level, lv_coarse: Level, nnf: np.ndarray, H: int, W: int, h: int, w: int) -> np.ndarray:
    """The NNF of a coarse target (h x w, matches in the coarse level) as an NNF of the fine target
    (H x W = 2h x 2w, matches in the fine level): pixel (2y + a, 2x + b) -> source (2sy + a, 2sx + b)."""
    t = nnf // lv_coarse.hw
    sy = (nnf % lv_coarse.hw) // lv_coarse.w
    sx = nnf % lv_coarse.w
    Y, X = np.mgrid[0:H, 0:W]
    cy, cx = np.minimum(Y // 2, h - 1), np.minimum(X // 2, w - 1)
    c = (cy * w + cx).ravel()
    fy = np.clip(2 * sy[c] + (Y.ravel() - 2 * cy.ravel()), 0, lv_fine.h - 1)
    fx = np.clip(2 * sx[c] + (X.ravel() - 2 * cx.ravel()), 0, lv_fine.w - 1)
    return (t[c] * lv_fine.hw + fy * lv_fine.w + fx).astype(np.int64)
