"""The exemplar pool of synthesise/texture: real tiles with their labels, appearance modes, pyramids,
patch descriptors and label guidance (numpy/scipy).

`build_state` (fit) keeps the pool compact and picklable (`TextureState`: uint8 tiles, class and
mode maps, PCA bases, ~0.3 MB per 256 px RGB-NIR tile). `levels(state)` derives, once per process,
the arrays PatchMatch works on (`_patchmatch.Level`, int16 descriptors) and caches them by the
state's token.

Appearance modes: for each class, every pixel's local class-mean colour (class pixels within
`MODE_WINDOW` px) is clustered by k-means into up to `modes` centres: green vs bare crop, open sea
vs estuary, dark vs light woods. Each target region later asks for one mode, so parcels of one
class differ the way the AOI's do.

Guidance (image analogies, Hertzmann et al. 2001): per pixel, the one-hot class map blurred at
`GUIDE_SIGMA` px (7 values: which classes are near) and the gradient of the pixel's own class
indicator (2 values: on which side its edge lies), times `guide_weight`. Matching it makes a
patch at a Grass/Water edge come from a real Grass/Water edge, with its real mixed pixels.
"""
from __future__ import annotations

import threading
import uuid
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from groundsynth.engines.builtin._patchmatch import Level
from groundsynth.request.classes import NODATA, NUM_CLASSES

MODE_WINDOW = 15
GUIDE_SIGMA = 1.5
PCA_DIMS = 8
PCA_SAMPLE = 20000
MIN_PATCH_AREA = 20         # px: smaller (class, mode) patches are edge slivers, not parcels
SPLIT_RATIO = 3.0
MIN_CELL = 600              # px: the smallest parcel a large region is split into
SHAPE_BANDWIDTH = 1.5       # kernel width in log area and log thickness (mode probabilities)


@dataclass
class LevelBasis:
    mean: np.ndarray                # (C * p * p,)
    basis: np.ndarray               # (C * p * p, PCA_DIMS), scaled so within-class spread is ~1 per dim


@dataclass
class TextureState:
    """What synthesise/texture's fit keeps (picklable)."""

    tile_ids: list[str]
    images: np.ndarray              # uint8 (T, C, H, W): 1 + round(254 v), 0 = not valid
    labels: np.ndarray              # uint8 (T, H, W), 255 = not valid
    tile_classes: np.ndarray        # bool (T, 7): classes a tile may give (an exemplar raster's tiles only
                                    # give the classes the AOI has too little of)
    modes: np.ndarray               # uint8 (T, H, W) appearance mode of the pixel within its class
    mode_share: dict[int, np.ndarray]       # class -> (M,) share of the class's pixels in each mode
    counts: np.ndarray              # int64 (T, 7, M_max): usable pixels per tile, class, mode
    class_means: np.ndarray         # float32 (7, C) mean colour per class (NaN where absent)
    mode_areas: dict[int, np.ndarray]   # class -> (n, 3) [mode, area px, thickness px] per (class, mode) patch
    cell_area: np.ndarray           # (7,) parcel size: regions larger than twice this are split (0 = never)
    bases: list[LevelBasis]
    radius: int
    guide_weight: float
    levels: int
    token: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])


# ------------------------------------------------------------------ pyramids

def decode(codes: np.ndarray) -> np.ndarray:
    """float32 values in [0, 1] of uint8 pixel codes 1 + round(254 v) (0, not valid, decodes to 0)."""
    return np.clip((codes.astype(np.float32) - 1) / 254, 0, 1)


def down_image(img: np.ndarray) -> np.ndarray:
    """2 x 2 box mean of (..., H, W) (H, W even)."""
    return 0.25 * (img[..., ::2, ::2] + img[..., 1::2, ::2] + img[..., ::2, 1::2] + img[..., 1::2, 1::2])


def down_labels(lab: np.ndarray) -> np.ndarray:
    """Majority of each 2 x 2 block of a (H, W) class map (255 = none); ties go to the top-left pixel."""
    parts = [lab[::2, ::2], lab[1::2, ::2], lab[::2, 1::2], lab[1::2, 1::2]]
    best = parts[0].copy()
    score = np.zeros(best.shape, np.float32)
    for k in np.unique(lab):
        if k == NODATA:
            continue
        n = sum((p == k).astype(np.float32) for p in parts) + 0.5 * (parts[0] == k)
        better = n > score
        best[better], score[better] = k, n[better]
    best[np.any([q == NODATA for q in parts], axis=0)] = NODATA
    return best


def pyramid(img: np.ndarray, lab: np.ndarray, mode: np.ndarray, n: int) -> list[tuple[np.ndarray, ...]]:
    out: list[tuple[np.ndarray, ...]] = [(img, lab, mode)]
    for _ in range(n - 1):
        img, lab, mode = down_image(img), down_labels(lab), mode[::2, ::2]
        out.append((img, lab, mode))
    return out


# ------------------------------------------------------------------ descriptors and guidance

def patch_vectors(img: np.ndarray, r: int, at: np.ndarray) -> np.ndarray:
    """(len(at), C * p * p) patches, centred at the flat pixel indices `at`, of a (C, H, W) float image, edges
    replicated; the columns run over (band, row, column) of the patch, as `appearance`'s basis expects."""
    from numpy.lib.stride_tricks import sliding_window_view

    C, H, W = img.shape
    pad = np.pad(img, ((0, 0), (r, r), (r, r)), mode="edge")
    win = sliding_window_view(pad, (2 * r + 1, 2 * r + 1), axis=(1, 2))  # type: ignore[call-overload]  # (C, H, W, p, p)
    return win[:, at // W, at % W].transpose(1, 0, 2, 3).reshape(len(at), -1)


def appearance(img: np.ndarray, b: LevelBasis, r: int) -> np.ndarray:
    """(H * W, PCA_DIMS) PCA descriptors of every patch of a (C, H, W) image (edges replicated): the same as
    (patch_vectors of every pixel - mean) @ basis, summed one patch row at a time, so the (H * W, C * p * p)
    matrix is never built (half the time at 256 px)."""
    C, H, W = img.shape
    p = 2 * r + 1
    pad = np.pad(img.astype(np.float32, copy=False), ((0, 0), (r, r), (r, r)), mode="edge")
    basis = b.basis.reshape(C, p, p, -1)
    out = np.zeros((H * W, basis.shape[-1]), np.float32)
    for dy in range(p):
        rows = np.stack([pad[:, dy:dy + H, dx:dx + W] for dx in range(p)], axis=1).reshape(C * p, H * W)
        out += rows.T @ basis[:, dy].reshape(C * p, -1)
    return out - b.mean @ b.basis


def guide(lab: np.ndarray, weight: float) -> np.ndarray:
    """(H * W, 9) label guidance of a class map (see module doc)."""
    from scipy import ndimage

    H, W = lab.shape
    out = np.zeros((H * W, NUM_CLASSES + 2), np.float32)
    own = np.zeros((H, W), np.float32)
    gy = np.zeros((H, W), np.float32)
    gx = np.zeros((H, W), np.float32)
    for k in np.unique(lab):
        if k >= NUM_CLASSES:
            continue
        blur = ndimage.gaussian_filter((lab == k).astype(np.float32), GUIDE_SIGMA, mode="nearest", truncate=2.5)
        out[:, k] = blur.ravel()
        sel = lab == k
        own[sel] = blur[sel]
        dy, dx = np.gradient(blur)
        gy[sel], gx[sel] = dy[sel], dx[sel]
    out[:, NUM_CLASSES] = 2 * gy.ravel()
    out[:, NUM_CLASSES + 1] = 2 * gx.ravel()
    return out * np.float32(weight)


def fit_basis(samples: np.ndarray, classes: np.ndarray) -> LevelBasis:
    """PCA of patch vectors; each axis scaled so that the mean within-class variance over axes is 1."""
    mean = samples.mean(axis=0)
    x = (samples - mean).astype(np.float64)
    evals, evecs = np.linalg.eigh(x.T @ x)          # the covariance's eigenvectors: PCA without an n x D SVD
    basis = evecs[:, np.argsort(evals)[::-1][:PCA_DIMS]]
    proj = (samples - mean) @ basis
    within = [proj[classes == k].var(axis=0).sum() for k in np.unique(classes) if (classes == k).sum() > 10]
    scale = np.sqrt(max(float(np.mean(within)) if within else 1.0, 1e-8))
    return LevelBasis(mean.astype(np.float32), (basis / scale).astype(np.float32))


# ------------------------------------------------------------------ appearance modes

def kmeans(x: np.ndarray, k: int, rng: np.random.Generator, rounds: int = 15) -> np.ndarray:
    """k-means centres (k, D) of x (n, D), k-means++ start."""
    centres = [x[int(rng.integers(len(x)))]]
    for _ in range(1, k):
        d = np.min([((x - c) ** 2).sum(1) for c in centres], axis=0)
        if d.sum() <= 0:
            break
        centres.append(x[int(rng.choice(len(x), p=d / d.sum()))])
    c = np.array(centres)
    for _ in range(rounds):
        lab = ((x[:, None] - c[None]) ** 2).sum(-1).argmin(1)
        c = np.array([x[lab == j].mean(0) if (lab == j).any() else c[j] for j in range(len(c))])
    return c


def local_class_colour(img: np.ndarray, lab: np.ndarray, k: int) -> np.ndarray:
    """(C, H, W): at every pixel of class k, the mean colour of the class-k pixels within MODE_WINDOW px (zero
    elsewhere far from the class). Computed on the class's bounding box plus half a window only: a class
    covering a corner of the tile costs a corner."""
    from scipy import ndimage

    out = np.zeros(img.shape, np.float32)
    ys, xs = np.nonzero(lab == k)
    if ys.size == 0:
        return out
    r = MODE_WINDOW // 2
    box = (slice(max(int(ys.min()) - r, 0), int(ys.max()) + r + 1), slice(max(int(xs.min()) - r, 0), int(xs.max()) + r + 1))
    own = (lab[box] == k).astype(np.float32)
    n = np.maximum(ndimage.uniform_filter(own, MODE_WINDOW, mode="constant"), 1e-6)
    for c, b in enumerate(img):
        out[c][box] = ndimage.uniform_filter(b[box] * own, MODE_WINDOW, mode="constant") / n
    return out


def mode_maps(imgs: np.ndarray, labs: np.ndarray, max_modes: int, rng: np.random.Generator
              ) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """(T, H, W) mode per pixel and class -> share of each mode (k-means on local class colour)."""
    T = len(imgs)
    modes = np.zeros(labs.shape, np.uint8)
    shares: dict[int, np.ndarray] = {}
    for k in range(NUM_CLASSES):
        cols = {t: local_class_colour(imgs[t], labs[t], k) for t in range(T) if (labs[t] == k).any()}
        pix = [c[:, labs[t] == k].T for t, c in cols.items()]
        if not pix:
            continue
        allpix = np.concatenate(pix)
        m = int(np.clip(len(allpix) // 4000, 1, max_modes))
        sample = allpix[rng.choice(len(allpix), min(len(allpix), 8000), replace=False)]
        centres = kmeans(sample, m, rng) if m > 1 else sample.mean(0, keepdims=True)
        counts = np.zeros(len(centres))
        for t, c in cols.items():
            sel = labs[t] == k
            lab = ((c[:, sel].T[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
            modes[t][sel] = lab
            counts += np.bincount(lab, minlength=len(centres))
        shares[k] = counts / counts.sum()
    return modes, shares


def thickness(cells: np.ndarray, n: int) -> np.ndarray:
    """(n,) radius of the largest disc inside each cell 1..n of a label map (distance to the cell's edge)."""
    from scipy import ndimage

    edge = np.zeros(cells.shape, bool)
    edge[:, 1:] |= cells[:, 1:] != cells[:, :-1]
    edge[:, :-1] |= cells[:, 1:] != cells[:, :-1]
    edge[1:, :] |= cells[1:, :] != cells[:-1, :]
    edge[:-1, :] |= cells[1:, :] != cells[:-1, :]
    dist = ndimage.distance_transform_edt(~edge)
    out = np.zeros(n + 1)
    np.maximum.at(out, cells.ravel(), (dist + 1).ravel())      # the largest per cell (35x faster than ndimage.maximum)
    return out[1:]


def region_stats(labs: np.ndarray, modes: np.ndarray) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """Connected patches of one class and mode in the pool: class -> (n, 3) [mode, area px, thickness px],
    and each class's parcel size: the area-weighted median patch area, kept only where the class's
    connected regions are typically much larger (several parcels of different looks side by side:
    fields; not open water)."""
    from scipy import ndimage

    stats: dict[int, np.ndarray] = {}
    cell = np.zeros(NUM_CLASSES)

    def wmedian(a: np.ndarray) -> float:
        o = np.sort(a)
        return float(o[np.searchsorted(np.cumsum(o) / o.sum(), 0.5)]) if o.size else 0.0

    rows: dict[int, list[np.ndarray]] = {k: [] for k in range(NUM_CLASSES)}
    whole: dict[int, list[int]] = {k: [] for k in range(NUM_CLASSES)}
    for t in range(len(labs)):
        # every (class, mode) patch of the tile in one id map: one distance transform per tile for all of them
        ids = np.zeros(labs[t].shape, np.int64)
        parts, total = [], 0
        for k in range(NUM_CLASSES):
            own = labs[t] == k
            if not own.any():
                continue
            whole[k].extend(np.bincount(ndimage.label(own)[0].ravel())[1:].tolist())
            for m in np.unique(modes[t][own]):
                lab, n = ndimage.label(own & (modes[t] == m))
                ids[lab > 0] = lab[lab > 0] + total
                parts.append((k, int(m), total, np.bincount(lab.ravel(), minlength=n + 1)[1:]))
                total += n
        th = thickness(ids, total) if total else np.zeros(0)
        for k, m, first, a in parts:
            keep = a >= MIN_PATCH_AREA
            if keep.any():
                rows[k].append(np.stack([np.full(int(keep.sum()), m), a[keep], th[first:first + len(a)][keep]], axis=1))
    for k in range(NUM_CLASSES):
        if not rows[k]:
            continue
        stats[k] = np.concatenate(rows[k]).astype(np.float64)
        part, region = wmedian(stats[k][:, 1]), wmedian(np.array(whole[k], np.float64))
        if region > SPLIT_RATIO * part:
            cell[k] = max(part, MIN_CELL)
    return stats, cell


def mode_probabilities(stats: np.ndarray, share: np.ndarray, have: np.ndarray, areas: np.ndarray,
                       thick: np.ndarray, diversity: float) -> np.ndarray:
    """(cells, M) probability of each appearance mode for target cells of the given areas and thicknesses:
    share_m ** (1 / diversity) x how typical such a cell is of the mode's patches (an area-weighted kernel
    density in log area and log thickness); modes without pixels (`have` 0) get none."""
    M = len(share)
    ms, a, th = stats[:, 0].astype(int), stats[:, 1], stats[:, 2]
    d = ((np.log(areas)[:, None] - np.log(a)[None]) ** 2 + (np.log(thick)[:, None] - np.log(th)[None]) ** 2)
    kern = a[None] * np.exp(-0.5 * d / SHAPE_BANDWIDTH ** 2)
    like = np.stack([kern[:, ms == m].sum(1) / max(a[ms == m].sum(), 1e-9) for m in range(M)], axis=1) + 1e-9
    if diversity <= 1e-6:
        prior = (share == share[have > 0].max()).astype(float)
    else:
        prior = share ** (1.0 / diversity)
    p = like * np.where(have > 0, prior, 0.0)[None]
    if diversity <= 1e-6:
        p = (p == p.max(axis=1, keepdims=True)).astype(float)
    return p / p.sum(axis=1, keepdims=True)


# ------------------------------------------------------------------ runtime levels (cached per process)

_CACHE: OrderedDict[str, list[Level]] = OrderedDict()
_LOCK = threading.Lock()


def usable(valid: np.ndarray, r: int) -> np.ndarray:
    """Patch centres whose whole (2r + 1)^2 patch is valid and inside the tile."""
    from scipy import ndimage

    ok = ndimage.binary_erosion(valid, np.ones((2 * r + 1, 2 * r + 1), bool), border_value=0)
    return ok


def levels(st: TextureState) -> list[Level]:
    """The search arrays of `st` in this process, derived on first use and cached by its token (a pickled
    copy of the state finds them too) for as long as the state object they were derived from lives: a
    worker that lets a job's state go (pipeline.worker.forget_job_memory) lets go of them too."""
    with _LOCK:
        if st.token in _CACHE:
            _CACHE.move_to_end(st.token)
            return _CACHE[st.token]
    built = _build_levels(st)
    with _LOCK:
        _CACHE[st.token] = built
        while len(_CACHE) > 2:
            _CACHE.popitem(last=False)
    weakref.finalize(st, _forget, st.token)
    return built


def _forget(token: str) -> None:
    with _LOCK:
        _CACHE.pop(token, None)


def _build_levels(st: TextureState) -> list[Level]:
    """Every pyramid level of the pool, one pass over its tiles (each tile's pyramid built once); the
    descriptors go straight into a preallocated int16 array per level (no float copy of the whole pool)."""
    T, C = st.images.shape[:2]
    H, W = st.images.shape[2:]
    shapes = [(H >> li, W >> li) for li in range(st.levels)]
    F = PCA_DIMS + NUM_CLASSES + 2
    scales = [feature_scale(st.bases[li], st.guide_weight) for li in range(st.levels)]
    pix = [np.zeros((C, T * h * w), np.uint8) for h, w in shapes]
    feat = [np.zeros((T * h * w, F), np.int16) for h, w in shapes]
    labs = [np.zeros(T * h * w, np.uint8) for h, w in shapes]
    mods = [np.zeros(T * h * w, np.uint8) for h, w in shapes]
    allowed = [np.zeros(T * h * w, bool) for h, w in shapes]
    for t in range(T):
        img = decode(st.images[t])
        for li, (img_l, lab, mode) in enumerate(pyramid(img, st.labels[t], st.modes[t], st.levels)):
            n = lab.size
            sl = slice(t * n, (t + 1) * n)
            # the tiles' own uint8 code (1 + round(254 v)): level 0 holds the real values exactly
            pix[li][:, sl] = (1 + np.rint(img_l * 254)).astype(np.uint8).reshape(C, -1)
            x = np.concatenate([appearance(img_l, st.bases[li], st.radius), guide(lab, st.guide_weight)], axis=1)
            feat[li][sl] = np.clip(np.rint(x * np.float32(scales[li])), -32767, 32767)
            labs[li][sl] = lab.ravel()
            mods[li][sl] = mode.ravel()
            allowed[li][sl] = (usable(lab != NODATA, st.radius) & st.tile_classes[t][np.minimum(lab, NUM_CLASSES - 1)]
                               ).ravel()
    return [_index(Level(h=h, w=w, pix=pix[li], feat=feat[li], label=labs[li], mode=mods[li], allowed=allowed[li],
                         scale=scales[li])) for li, (h, w) in enumerate(shapes)]


def feature_scale(basis: LevelBasis, guide_weight: float) -> float:
    """int16 steps per descriptor unit: the largest possible |descriptor| maps to 32000. A PCA value is at most
    |patch - mean| |basis column| <= sqrt(D) max |column| (pixel values in [0, 1]); a guidance value at most
    `guide_weight` (blurred one-hot in [0, 1], twice a gradient of it in [-1, 1])."""
    top = np.sqrt(basis.basis.shape[0]) * float(np.linalg.norm(basis.basis, axis=0).max())
    return 32000.0 / max(top, guide_weight, 1e-6)


def _index(lv: Level) -> Level:
    """The allowed source pixels of each class and (class, mode); int32 where the pool allows (half the memory)."""
    index = np.int32 if lv.label.size < 2 ** 31 else np.int64
    for k in np.unique(lv.label[lv.allowed]):
        idx = np.flatnonzero(lv.allowed & (lv.label == k)).astype(index)
        lv.by_class[int(k)] = idx
        for m in np.unique(lv.mode[idx]):
            lv.by_mode[(int(k), int(m))] = idx[lv.mode[idx] == m]
    return lv
