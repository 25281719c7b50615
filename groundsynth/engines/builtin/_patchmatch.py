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
    feat: np.ndarray                # int16 (N, F) patch descriptors times `scale` (rounded)
    label: np.ndarray               # uint8 (N,) class
    mode: np.ndarray                # uint8 (N,) appearance mode within the class
    allowed: np.ndarray             # bool (N,): valid patch centre (whole patch valid, inside its tile)
    by_class: dict[int, np.ndarray] = field(default_factory=dict)              # class -> allowed q
    by_mode: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)   # (class, mode) -> allowed q
    scale: float = 1.0              # int16 steps per descriptor unit: feat = round(descriptor * scale)
    _tables: dict = field(default_factory=dict, repr=False)    # coordinate and block tables (cache)

    @property
    def hw(self) -> int:
        return self.h * self.w

    def table(self, name: str, b: int = 0) -> np.ndarray:
        """Per source pixel q: its row ("y", int16), column ("x", int16) or b x b block ("block", int32), in
        its tile; a gather from these is several times faster than the integer division it replaces. "key"
        (uint8): 16 x class + mode where q is allowed, else 255 (a class no target has), one gather for three."""
        key = (name, b)
        if key in self._tables:
            return self._tables[key]
        q = np.arange(self.pix.shape[1])
        y, x = (q % self.hw) // self.w, q % self.w
        if name == "key":
            table = np.where(self.allowed, self.label.astype(np.int32) * 16 + self.mode, 255).astype(np.uint8)
        elif name == "y":
            table = y.astype(np.int16)
        elif name == "x":
            table = x.astype(np.int16)
        else:
            nby, nbx = -(-self.h // b), -(-self.w // b)
            table = (((q // self.hw) * nby + y // b) * nbx + x // b).astype(np.int32)
        self._tables[key] = table
        return table

    def sources(self, k: int, m: int | None, exclude: int) -> tuple[np.ndarray, int, int] | None:
        """The allowed source pixels of class k (and mode m; None: any mode) as (indices, lo, hi): the
        indices are sorted, so the excluded tile's are the run [lo, hi), skipped without a copy; None when
        none is left outside the excluded tile."""
        idx = self.by_class.get(k) if m is None else self.by_mode.get((k, m))
        if idx is None or idx.size == 0:
            return None
        lo = hi = 0
        if exclude >= 0:
            lo, hi = (int(v) for v in np.searchsorted(idx, [exclude * self.hw, (exclude + 1) * self.hw]))
        return (idx, lo, hi) if idx.size > hi - lo else None

    def target_features(self, x: np.ndarray) -> np.ndarray:
        """Target descriptors (n, F) in the units of `feat` (float32: the target side is not rounded)."""
        return (x * np.float32(self.scale)).astype(np.float32, copy=False)


@dataclass
class Target:
    """The target at one level: descriptors (filled per EM iteration), class and mode per pixel."""

    H: int
    W: int
    label: np.ndarray               # (H * W,) class
    mode: np.ndarray                # (H * W,) wanted appearance mode
    guide: np.ndarray               # float32 (H * W, G) label guidance (weighted)
    feat: np.ndarray | None = None  # float32 (H * W, F) = [appearance PCA, guide]
    _col: np.ndarray | None = field(default=None, repr=False)

    def column(self) -> np.ndarray:
        """(H * W,) int16 column of every target pixel."""
        if self._col is None:
            self._col = np.tile(np.arange(self.W, dtype=np.int16), self.H)
        return self._col


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
    return np.take(lv.table("block", b), q)


def occurrences(lv: Level, nnf: np.ndarray, b: int) -> np.ndarray:
    """How many times over each b x b source block is copied by the NNF (1 = once, as a whole)."""
    nby, nbx = -(-lv.h // b), -(-lv.w // b)
    n = (lv.pix.shape[1] // lv.hw) * nby * nbx
    return np.bincount(_block_of(lv, nnf, b), minlength=n).astype(np.float32) / (b * b)


def cost(lv: Level, tg: Target, q: np.ndarray, s: Search, nnf: np.ndarray | None = None,
         at: np.ndarray | None = None) -> np.ndarray:
    """cost(p, q) for the target pixels p = `at` (flat indices; None: every pixel, q[p] for each) (see module
    doc); with the current `nnf`, plus `coherence` x the share of p's 4 neighbours whose match does not
    continue q (a copy breaks there)."""
    assert tg.feat is not None
    feat, label, mode = (tg.feat, tg.label, tg.mode) if at is None else (tg.feat[at], tg.label[at], tg.mode[at])
    d = feat - np.take(lv.feat, q, axis=0)               # float32 - int16: widened exactly, no copy pass
    c = np.einsum("ij,ij->i", d, d) * np.float32(1 / lv.scale ** 2)
    kq = np.take(lv.table("key"), q)
    c += s.mode_weight * ((kq & 15) != mode)
    if nnf is not None and s.coherence > 0:
        c += (s.coherence / 4) * _breaks(lv, tg, nnf, q, np.arange(q.size) if at is None else at)
    if s.usage is not None and s.occurrence > 0:
        # occurrence penalty (Kaspar et al. 2015): a source block copied more than once costs more
        c += s.occurrence * np.maximum(np.take(s.usage, _block_of(lv, q, s.block)) - 1, 0)
    bad = (kq >> 4) != label                             # another class, or not allowed (255 >> 4 = 15)
    if s.exclude >= 0:
        bad |= (q // lv.hw) == s.exclude
    c[bad] = INF
    return c.astype(np.float32, copy=False)


def _breaks(lv: Level, tg: Target, nnf: np.ndarray, q: np.ndarray, at: np.ndarray) -> np.ndarray:
    """For target pixels p = `at` matched to q: how many of p's 4 neighbours n have a match other than q
    moved by n - p (0..4; neighbours off the target count 0)."""
    H, W = tg.H, tg.W
    x = np.take(tg.column(), at)
    out = np.zeros(at.size, np.float32)
    for has, step, shift in ((x < W - 1, 1, 1), (x > 0, -1, -1), (at < (H - 1) * W, W, lv.w), (at >= W, -W, -lv.w)):
        out += has & (np.take(nnf, np.where(has, at + step, at)) != q + shift)
    return out


def _offset(lv: Level, q: np.ndarray, dy: np.ndarray | int, dx: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
    """q moved by (dy, dx) inside its tile; (q', inside)."""
    y = np.take(lv.table("y"), q) + dy
    x = np.take(lv.table("x"), q) + dx
    inside = (y >= 0) & (y < lv.h) & (x >= 0) & (x < lv.w)
    return np.where(inside, q + dy * lv.w + dx, q), inside


def _improve(lv: Level, tg: Target, nnf: np.ndarray, best: np.ndarray, cand: np.ndarray, ok: np.ndarray,
             s: Search) -> None:
    """Take the candidates that cost less than the current matches; only candidates that differ from the
    current match are scored (after propagation about half of them are the same copy)."""
    at = np.flatnonzero(ok & (cand != nnf))
    c = cost(lv, tg, cand[at], s, nnf, at)
    better = c < best[at]
    idx = at[better]
    nnf[idx] = cand[idx]
    best[idx] = c[better]


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
        found = lv.sources(k, m, exclude) or lv.sources(k, None, exclude)
        if found is None:
            raise KeyError(k)
        idx, lo, hi = found
        j = rng.integers(0, idx.size - (hi - lo), where.size)      # uniform over the indices outside [lo, hi)
        out[where] = idx[j + (j >= lo) * (hi - lo)]
    return out


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
    low = np.full((H, W), 2 * INF, np.float32)      # above INF: a pixel no same-class source covers still takes one
    arg = np.zeros((H, W), np.intp)                 # the covering patch that matched best: index into `offsets`
    offsets = sorted(((a, b) for a in range(-radius, radius + 1) for b in range(-radius, radius + 1)),
                     key=lambda o: abs(o[0]) + abs(o[1]))
    for i, (oy, ox) in enumerate(offsets):
        # pixel x takes, from the patch centred at p = x - o, the source pixel q(p) + o
        ys = slice(max(oy, 0), H + min(oy, 0))
        xs = slice(max(ox, 0), W + min(ox, 0))
        ps = (slice(max(-oy, 0), H - max(oy, 0)), slice(max(-ox, 0), W - max(ox, 0)))
        q = grid[ps] + oy * lv.w + ox
        val = np.take(lv.pix, q, axis=1)                 # uint8; promoted to float32 where it is used
        if other != 1:
            same = np.take(lv.label, q) == labels[ys, xs]
            w = weight[ps] * np.where(same, np.float32(1), np.float32(other))
        else:
            w = weight[ps]
        acc[:, ys, xs] += w[None] * val
        wsum[ys, xs] += w
        if sharp:
            c = np.where(same, cgrid[ps], INF) if other < 1 else cgrid[ps]
            better = c < low[ys, xs]
            low[ys, xs] = np.minimum(c, low[ys, xs])
            arg[ys, xs][better] = i
    mean = acc / np.maximum(wsum, 1e-30)[None]
    if sharp:
        off = np.array(offsets)[arg]                     # (H, W, 2): the best covering patch's offset
        Y, X = np.mgrid[0:H, 0:W]
        src = grid[Y - off[..., 0], X - off[..., 1]] + off[..., 0] * lv.w + off[..., 1]
        pick = np.take(lv.pix, src, axis=1)
        seam = np.zeros((H, W), np.float32)
        seam[:, 1:] += src[:, 1:] != src[:, :-1] + 1
        seam[1:, :] += src[1:, :] != src[:-1, :] + lv.w
        a = np.clip(ndimage.gaussian_filter(np.minimum(seam, 1), FEATHER) * 2.0, 0, 1)[None]
        mean = (1 - a) * pick + a * mean
    return np.clip((mean - 1) / 254, 0, 1)


def copy_pixels(lv: Level, tg: Target, nnf: np.ndarray) -> np.ndarray:
    """(C, H, W): every pixel = the source pixel it is matched to (no vote; the starting image of a finer level
    from its upsampled NNF: real fine-scale values at a twentieth of a vote's cost)."""
    val = np.take(lv.pix, nnf, axis=1).reshape(lv.pix.shape[0], tg.H, tg.W)
    return np.clip((val - np.float32(1)) / np.float32(254), 0, 1)


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
