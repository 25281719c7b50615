"""Weight-free realism metrics of a set of tiles against held-out real tiles (pure numpy).

Every metric compares a set A (e.g. synthetic tiles) with a set B (held-out real
tiles: not given to the synthesiser's fit and not the source tile) and is always
reported beside the same metric for a reference set R of real tiles against B
(`compare`): a number means nothing without the real-vs-real scale.

Tiles are held in uint8 as the tile files store them (`TileSet.from_float`: 1 + round(254 v),
0 = nodata, the artefacts' encoding), with their class masks (255 = nodata). Definitions:

- **W1** (per class, per band): Wasserstein-1 distance between the pixel-value distributions
  of class k in A and in B, in uint8 levels (sum over levels of |CDF_A - CDF_B|, exact for
  integer data). Classes with fewer than `MIN_CLASS_PX` pixels in either set are skipped.
  `w1` is the mean over classes and bands (classes weighted equally).
- **spread ratio** (per class): std of class k's pixel values in A / in B, mean over bands.
- **power spectrum**: radially averaged power spectrum of brightness (mean of R, G, B) of
  fully valid 64 px patches (mean removed, Hann window), averaged over patches.
  `spectrum_distance` = RMS over radii of log10(P_A / P_B); `fine_power_ratio` =
  power at wavelengths <= 4 px (radius >= 16 of 32) in A / in B.
- **speckle rate**: share of interior valid pixels whose colour label differs from all 8
  neighbours' labels (isolated pixels). The labelling is fixed per comparison: k-means
  (`SPECKLE_K` colours, seeded) fitted on set B's pixels, nearest centre per pixel.
- **two-sample accuracy**: `groundsynth.metrics.twosample` (0.5 = indistinguishable).
- **copied share** and **variant / pair distance**: `groundsynth.metrics.copies`.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from groundsynth.request.classes import CLASS_NAMES, NODATA, NUM_CLASSES

MIN_CLASS_PX = 500
PATCH = 64
SPECKLE_K = 8
FINE_RADIUS = 16          # of PATCH // 2: wavelengths <= 4 px


@dataclass
class TileSet:
    """Tiles as uint8 (C, H, W) (0 = nodata), class masks (255 = nodata) and a group id per tile (its
    source tile for synthetic tiles: variants of one source are never split across CV folds)."""

    images: list[np.ndarray]
    masks: list[np.ndarray]
    groups: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.images) != len(self.masks):
            raise ValueError(f"{len(self.images)} images but {len(self.masks)} masks")
        if not self.groups:
            self.groups = [str(i) for i in range(len(self.images))]

    @classmethod
    def from_float(cls, images: Sequence[np.ndarray], masks: Sequence[np.ndarray], groups: Sequence[str] = (),
                   valids: Sequence[np.ndarray] | None = None) -> TileSet:
        out = []
        for i, (img, m) in enumerate(zip(images, masks, strict=True)):
            ok = np.asarray(m) != NODATA if valids is None else np.asarray(valids[i], bool) & (np.asarray(m) != NODATA)
            u8 = (1 + np.rint(np.clip(np.asarray(img, np.float32), 0, 1) * 254)).astype(np.uint8)
            u8[:, ~ok] = 0
            out.append(u8)
        return cls(out, [np.asarray(m, np.uint8) for m in masks], list(groups))

    def __len__(self) -> int:
        return len(self.images)

    def valid(self, i: int) -> np.ndarray:
        return (self.masks[i] != NODATA) & self.images[i].any(axis=0)

    def subset(self, idx: Sequence[int]) -> TileSet:
        return TileSet([self.images[i] for i in idx], [self.masks[i] for i in idx], [self.groups[i] for i in idx])

    @property
    def channels(self) -> int:
        return int(self.images[0].shape[0]) if self.images else 0


# ------------------------------------------------------------------ colour distributions

def class_histograms(s: TileSet) -> np.ndarray:
    """(7, C, 256) pixel-value histograms per class and band."""
    C = s.channels
    hist = np.zeros((NUM_CLASSES, C, 256), np.int64)
    for i in range(len(s)):
        ok = s.valid(i)
        m = s.masks[i][ok].astype(np.int64)
        for c in range(C):
            hist[:, c] += np.bincount(m * 256 + s.images[i][c][ok], minlength=NUM_CLASSES * 256
                                      )[:NUM_CLASSES * 256].reshape(NUM_CLASSES, 256)
    return hist


def _w1(ha: np.ndarray, hb: np.ndarray) -> np.ndarray:
    ca = np.cumsum(ha, axis=-1) / np.maximum(ha.sum(axis=-1, keepdims=True), 1)
    cb = np.cumsum(hb, axis=-1) / np.maximum(hb.sum(axis=-1, keepdims=True), 1)
    return np.abs(ca - cb).sum(axis=-1)


def _std(h: np.ndarray) -> np.ndarray:
    levels = np.arange(256, dtype=float)
    n = np.maximum(h.sum(axis=-1), 1)
    mean = (h * levels).sum(axis=-1) / n
    return np.sqrt(np.maximum((h * levels ** 2).sum(axis=-1) / n - mean ** 2, 0))


def colour_stats(a: TileSet, b: TileSet) -> dict:
    """Per-class per-band W1 and spread ratio of A against B; means over the classes both sets have."""
    return histogram_stats(class_histograms(a), class_histograms(b))


def histogram_stats(ha: np.ndarray, hb: np.ndarray) -> dict:
    """colour_stats from the two sets' class_histograms."""
    per_class: dict[str, dict] = {}
    for k in range(NUM_CLASSES):
        na, nb = int(ha[k, 0].sum()), int(hb[k, 0].sum())
        if na < MIN_CLASS_PX or nb < MIN_CLASS_PX:
            continue
        w1 = _w1(ha[k], hb[k])
        spread = _std(ha[k]) / np.maximum(_std(hb[k]), 1e-6)
        per_class[CLASS_NAMES[k]] = {"w1": float(w1.mean()), "w1_bands": [float(v) for v in w1],
                                     "spread_ratio": float(spread.mean()), "pixels_a": na, "pixels_b": nb}
    vals = list(per_class.values())
    return {"w1": float(np.mean([v["w1"] for v in vals])) if vals else None,
            "spread_ratio_min": float(min(v["spread_ratio"] for v in vals)) if vals else None,
            "per_class": per_class}


# ------------------------------------------------------------------ patches and spectra

def patches(s: TileSet, size: int = PATCH) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Fully valid non-overlapping patches: (n, C, size, size) uint8, (n, size, size) masks, group per patch."""
    out, masks, groups = [], [], []
    for i in range(len(s)):
        ok = s.valid(i)
        H, W = ok.shape
        for y in range(0, H - size + 1, size):
            for x in range(0, W - size + 1, size):
                if ok[y:y + size, x:x + size].all():
                    out.append(s.images[i][:, y:y + size, x:x + size])
                    masks.append(s.masks[i][y:y + size, x:x + size])
                    groups.append(s.groups[i])
    C = s.channels
    return (np.stack(out) if out else np.zeros((0, C, size, size), np.uint8),
            np.stack(masks) if masks else np.zeros((0, size, size), np.uint8), groups)


SPECTRUM_CHUNK = 64


def radial_spectrum(p: np.ndarray) -> np.ndarray:
    """Mean radially averaged power spectrum (radius 0..size/2) of the brightness of patches (n, C, s, s)."""
    n, _, size, _ = p.shape
    if n == 0:
        return np.full(size // 2 + 1, np.nan)
    win = np.outer(*(2 * [np.hanning(size).astype(np.float32)]))[None]
    total = np.zeros((size, size))
    for i in range(0, n, SPECTRUM_CHUNK):        # in chunks: the FFT's complex arrays stay small
        b = p[i:i + SPECTRUM_CHUNK, :3].astype(np.float32).mean(axis=1) / 255.0
        b -= b.mean(axis=(1, 2), keepdims=True)
        total += (np.abs(np.fft.fft2(b * win)) ** 2).sum(axis=0)
    f = np.fft.fftfreq(size) * size
    r = np.rint(np.hypot(f[:, None], f[None, :])).astype(int)
    keep = r <= size // 2
    sums = np.bincount(r[keep], weights=(total / n)[keep], minlength=size // 2 + 1)
    return sums / np.maximum(np.bincount(r[keep], minlength=size // 2 + 1), 1)


def spectrum_stats(pa: np.ndarray, pb: np.ndarray, spectrum_b: np.ndarray | None = None) -> dict:
    """RMS log10 power ratio over radii 1..size/2 and fine-scale power ratio of patches A vs B
    (`spectrum_b`: radial_spectrum(pb), when known already)."""
    sa = radial_spectrum(pa)[1:]
    sb = (radial_spectrum(pb) if spectrum_b is None else spectrum_b)[1:]
    if not (np.isfinite(sa).all() and np.isfinite(sb).all()):
        return {"spectrum_distance": None, "fine_power_ratio": None}
    lr = np.log10(np.maximum(sa, 1e-12) / np.maximum(sb, 1e-12))
    return {"spectrum_distance": float(np.sqrt(np.mean(lr ** 2))),
            "fine_power_ratio": float(sa[FINE_RADIUS - 1:].sum() / max(sb[FINE_RADIUS - 1:].sum(), 1e-12))}


# ------------------------------------------------------------------ speckle

def colour_centres(s: TileSet, k: int = SPECKLE_K, seed: int = 0, sample: int = 20000) -> np.ndarray:
    """k-means centres (k, C) of a sample of the set's valid pixels (Lloyd, 20 rounds, seeded)."""
    rng = np.random.default_rng(seed)
    counts = np.array([int(s.valid(i).sum()) for i in range(len(s))])
    total = int(counts.sum())
    # the sample drawn over all valid pixels in tile order, gathered tile by tile (never every pixel at once)
    idx = rng.choice(total, sample, replace=False) if total > sample else np.arange(total)
    starts = np.concatenate([[0], np.cumsum(counts)])
    tile_of = np.searchsorted(starts, idx, side="right") - 1
    pix = np.zeros((len(idx), s.channels), np.float32)
    for i in np.unique(tile_of):
        here = tile_of == i
        pix[here] = s.images[i][:, s.valid(i)].T[idx[here] - starts[i]]
    centres = pix[rng.choice(len(pix), min(k, len(pix)), replace=False)]
    for _ in range(20):
        lab = ((pix[:, None, :] - centres[None]) ** 2).sum(-1).argmin(1)
        for j in range(len(centres)):
            if (lab == j).any():
                centres[j] = pix[lab == j].mean(axis=0)
    return centres


def speckle_rate(s: TileSet, centres: np.ndarray) -> list[float]:
    """Per tile: the share of interior valid pixels whose colour label no 8-neighbour shares."""
    out = []
    for i in range(len(s)):
        ok = s.valid(i)
        img = s.images[i].astype(np.float32)
        C, H, W = img.shape
        flat = img.reshape(C, -1).T
        d = (flat ** 2).sum(1)[:, None] - 2 * flat @ centres.T + (centres ** 2).sum(1)[None]
        lab = d.argmin(1).reshape(H, W)
        lab[~ok] = -1
        centre = lab[1:-1, 1:-1]
        alone = np.ones_like(centre, bool)
        inner = ok[1:-1, 1:-1].copy()
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if dy or dx:
                    nb = lab[1 + dy:H - 1 + dy, 1 + dx:W - 1 + dx]
                    alone &= nb != centre
                    inner &= nb >= 0
        out.append(float((alone & inner).sum() / inner.sum()) if inner.any() else float("nan"))
    return out


def _nanmean(v: Sequence[float]) -> float | None:
    a = np.asarray(v, float)
    a = a[np.isfinite(a)]
    return float(a.mean()) if a.size else None


# ------------------------------------------------------------------ one comparison, with its scale

@dataclass
class HeldOut:
    """The held-out set B, prepared once for every set compared with it: its class histograms, patches,
    power spectrum, colour labelling (k-means centres) and speckle rate."""

    n: int                  # tiles (the images themselves are not kept: their histograms are)
    hist: np.ndarray
    patches: tuple[np.ndarray, np.ndarray, list[str]]
    spectrum: np.ndarray
    centres: np.ndarray
    speckle: float | None

    @classmethod
    def prepare(cls, b: TileSet, seed: int = 0) -> HeldOut:
        p = patches(b)
        centres = colour_centres(b, seed=seed)
        return cls(len(b), class_histograms(b), p, radial_spectrum(p[0]), centres,
                   _nanmean(speckle_rate(b, centres)))


def compare_detail(a: TileSet, held: HeldOut, seed: int = 0) -> tuple[dict, list[float]]:
    """compare's numbers for A against a prepared held-out set, and A's speckle rate per tile."""
    from groundsynth.metrics.twosample import two_sample_accuracy

    pa, ma, ga = patches(a)
    pb, mb, gb = held.patches
    out = histogram_stats(class_histograms(a), held.hist)
    out.update(spectrum_stats(pa, pb, held.spectrum))
    speckle = speckle_rate(a, held.centres)
    out["speckle"] = _nanmean(speckle)
    out["speckle_b"] = held.speckle
    out["two_sample"] = two_sample_accuracy(pa, ma, ga, pb, mb, gb, seed=seed)
    return out, speckle


def compare(a: TileSet, b: TileSet, seed: int = 0) -> dict:
    """Realism of A against held-out real B: colour, spectrum, speckle, two-sample accuracy."""
    return compare_detail(a, HeldOut.prepare(b, seed), seed)[0]


RATIO_KEYS = ("w1", "spectrum_distance", "fine_power_ratio", "speckle")


def realism_table(synthetic: TileSet, held_out: TileSet, reference: TileSet, seed: int = 0) -> dict:
    """{"synthetic": compare(synthetic, held_out), "real": compare(reference, held_out), "ratio": ...}:
    every synthetic number beside the same number for real tiles (reference) against the held-out set,
    and their ratio (synthetic / real; for the two-sample test the accuracies are side by side)."""
    if not len(synthetic) or not len(held_out) or not len(reference):
        raise ValueError("realism needs synthetic, held-out and reference tiles")
    held = HeldOut.prepare(held_out, seed)
    return realism_ratio(compare_detail(synthetic, held, seed)[0], compare_detail(reference, held, seed)[0],
                         {"synthetic": len(synthetic), "held_out": len(held_out), "reference": len(reference)})


def realism_ratio(syn: dict, real: dict, tiles: dict[str, int]) -> dict:
    """realism_table's result from the two comparisons (synthetic and reference, each against the held-out
    set) and the three sets' tile counts."""
    ratio: dict = {}
    for key in RATIO_KEYS:
        s, r = syn.get(key), real.get(key)
        ratio[key] = float(s / r) if s is not None and r else None
    ratio["per_class_w1"] = {n: syn["per_class"][n]["w1"] / max(real["per_class"][n]["w1"], 1e-6)
                             for n in syn["per_class"] if n in real["per_class"]}
    ratio["per_class_spread"] = {n: syn["per_class"][n]["spread_ratio"] for n in syn["per_class"]}
    return {"synthetic": syn, "real": real, "ratio": ratio, "tiles": dict(tiles)}
