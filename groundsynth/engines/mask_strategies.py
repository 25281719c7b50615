"""Mask strategies: which mask a synthetic tile is generated from.

Area-focused augmentation happens here, on masks, before any image exists:

- "real": the real tile's own mask (a copy).
- "boost": the tile's mask edited so that each class in `targets` reaches its
  target share of the tile's valid pixels. A class already in the tile grows
  out of its own regions; a class absent from the tile but present in the AOI
  is first transplanted (connected regions of that class taken from other AOI
  masks, pasted at random places) and then grown or trimmed. Growth follows
  the level sets of a noisy signed distance to the seed regions, so new land
  has organic, rounded-irregular outlines (never rectangles), and the count is
  exact. Boost never shrinks a class that is already above its target, and
  pixels of other target classes are never overwritten. A land class never
  takes Water pixels (no town in open sea; a transplanted region ends at the
  shore), so a tile with too little land gets less than its target; Water may
  grow over land.
- "layout": a new mask drawn from the AOI's statistics (`AoiStats`): a class
  composition taken from a random real AOI tile, realised as smooth random
  fields whose spatial scale follows the size of that class's regions in the
  AOI. On average the composition matches the AOI's.

Nodata pixels (255) of the real mask stay 255 under every strategy; an
all-nodata mask is returned unchanged. Everything random derives from `seed`.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from groundsynth.request.classes import CLASS_NAMES, NODATA, NUM_CLASSES, class_index
from groundsynth.request.errors import FailedPrecondition, InvalidArgument

WATER = CLASS_NAMES.index("Water")

STRATEGIES: tuple[str, ...] = ("real", "boost", "layout")
MAX_EXAMPLES = 64          # example masks kept for transplanting (evenly sampled)


@dataclass
class AoiStats:
    """Class statistics of the AOI's real masks."""

    shares: np.ndarray                      # (7,) share of each class among all valid AOI pixels
    tile_shares: np.ndarray                 # (n, 7) composition of each tile with valid pixels
    region_size: np.ndarray                 # (7,) median area (px) of the class's connected regions, 0 if absent
    examples: list[np.ndarray] = field(default_factory=list)   # sample of the real masks

    @classmethod
    def from_masks(cls, masks: Sequence[np.ndarray]) -> AoiStats:
        from scipy import ndimage

        counts = np.zeros(NUM_CLASSES, np.int64)
        tile_shares: list[np.ndarray] = []
        sizes: list[list[int]] = [[] for _ in range(NUM_CLASSES)]
        valid_masks = []
        for m in masks:
            m = np.asarray(m, dtype=np.uint8)
            c = np.bincount(m[m != NODATA].ravel(), minlength=256)[:NUM_CLASSES]
            if c.sum() == 0:
                continue
            counts += c
            tile_shares.append(c / c.sum())
            valid_masks.append(m)
        step = max(1, len(valid_masks) // MAX_EXAMPLES)
        examples = valid_masks[::step][:MAX_EXAMPLES]
        for m in examples:
            for k in np.flatnonzero(np.bincount(m[m != NODATA].ravel(), minlength=256)[:NUM_CLASSES]):
                lab, n = ndimage.label(m == k)
                sizes[k].extend(np.bincount(lab.ravel())[1:].tolist())
        total = counts.sum()
        return cls(shares=counts / total if total else np.zeros(NUM_CLASSES),
                   tile_shares=np.array(tile_shares, dtype=float).reshape(-1, NUM_CLASSES),
                   region_size=np.array([float(np.median(s)) if s else 0.0 for s in sizes]),
                   examples=examples)

    @property
    def present(self) -> np.ndarray:
        """Bool (7,): classes with at least one valid pixel in the AOI."""
        return self.shares > 0


def condition_mask(strategy: str, real_mask: np.ndarray, targets: dict[str, float], stats: AoiStats | None,
                   seed: int) -> np.ndarray:
    """The conditioning mask for one synthetic tile (uint8 (H, W), 255 where `real_mask` is 255)."""
    real_mask = np.asarray(real_mask, dtype=np.uint8)
    if real_mask.ndim != 2:
        raise InvalidArgument(f"expected a 2-D mask, got shape {real_mask.shape}", "mask")
    if strategy not in STRATEGIES:
        raise InvalidArgument(f"expected one of {', '.join(STRATEGIES)}, got {strategy!r}", "synthesis.mask_strategy")
    valid = real_mask != NODATA
    if strategy == "real" or not valid.any():
        return real_mask.copy()
    rng = np.random.default_rng(seed)
    if strategy == "boost":
        return _boost(real_mask, valid, _parse_targets(targets), stats, rng)
    return _layout(real_mask, valid, stats, rng)


# ------------------------------------------------------------------ boost

def _parse_targets(targets: dict[str, float]) -> dict[int, float]:
    out: dict[int, float] = {}
    for name, share in (targets or {}).items():
        try:
            k = class_index(str(name))
        except KeyError:
            raise InvalidArgument(f"unknown class {name!r}; expected one of {', '.join(CLASS_NAMES)}",
                                  "synthesis.boost_targets") from None
        share = float(share)
        if not 0 < share <= 1:
            raise InvalidArgument(f"expected a share in (0, 1] for {name}, got {share}", "synthesis.boost_targets")
        out[k] = share
    if not out:
        raise InvalidArgument("mask_strategy 'boost' needs at least one class target", "synthesis.boost_targets")
    if sum(out.values()) > 1 + 1e-9:
        raise InvalidArgument(f"target shares add up to {sum(out.values()):.2f}, expected <= 1",
                              "synthesis.boost_targets")
    return out


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """A smooth random field (about unit variance) with features about `scale` pixels across."""
    from scipy import ndimage

    h, w = shape
    scale = max(2.0, float(scale))
    gh, gw = int(np.ceil(h / scale)) + 3, int(np.ceil(w / scale)) + 3
    coarse = ndimage.gaussian_filter(rng.standard_normal((gh, gw)), 0.7, mode="wrap")
    coarse /= coarse.std() + 1e-9
    oy, ox = rng.uniform(0, 1, 2)
    yy = (np.arange(h) / scale + oy)[:, None]
    xx = (np.arange(w) / scale + ox)[None, :]
    return ndimage.map_coordinates(coarse, np.broadcast_arrays(yy, xx), order=1, mode="nearest")


def _grow_to(seed_region: np.ndarray, forced: np.ndarray, eligible: np.ndarray, n: int,
             rng: np.random.Generator) -> np.ndarray:
    """The n pixels (bool mask) closest to `seed_region` in a noisy signed distance, always holding `forced`
    and only taking pixels from `eligible | forced`. Grows or trims `seed_region` to exactly n pixels
    (fewer if not enough pixels are eligible)."""
    from scipy import ndimage

    outside = ndimage.distance_transform_edt(~seed_region)
    inside = ndimage.distance_transform_edt(seed_region)
    h, w = seed_region.shape
    # irregular front: noise amplitude of a few pixels plus a broader undulation
    score = outside - inside + 4.0 * smooth_noise(rng, (h, w), 6) + 8.0 * smooth_noise(rng, (h, w), 24)
    score[forced] = -np.inf
    candidates = eligible | forced
    score[~candidates] = np.inf
    n = int(min(max(n, int(forced.sum())), int(candidates.sum())))
    out = np.zeros_like(seed_region)
    if n <= 0:
        return out
    flat = score.ravel()
    idx = np.argpartition(flat, n - 1)[:n] if n < flat.size else np.arange(flat.size)
    out.ravel()[idx] = True
    return out


def _transplant(k: int, need: int, free: np.ndarray, stats: AoiStats | None,
                rng: np.random.Generator) -> np.ndarray:
    """Paste connected regions of class k from AOI example masks onto `free` pixels until about `need`
    pixels are covered (or attempts run out)."""
    from scipy import ndimage

    out = np.zeros_like(free)
    sources = [m for m in (stats.examples if stats else []) if (m == k).any()]
    if not sources:
        return out
    h, w = free.shape
    got = 0
    for _ in range(24):
        if got >= need:
            break
        src = sources[int(rng.integers(len(sources)))]
        lab, n = ndimage.label(src == k)
        sizes = np.bincount(lab.ravel())[1:]
        j = int(rng.choice(n, p=sizes / sizes.sum())) + 1          # larger regions more often
        sl = ndimage.find_objects(lab, max_label=j)[j - 1]
        piece = lab[sl] == j
        if int(rng.integers(2)):
            piece = piece[:, ::-1]
        piece = np.rot90(piece, int(rng.integers(4)))
        ph, pw = min(piece.shape[0], h), min(piece.shape[1], w)
        piece = piece[:ph, :pw]
        y, x = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
        window = out[y:y + ph, x:x + pw]
        window |= piece & free[y:y + ph, x:x + pw]
        got = int(out.sum())
    return out


def _boost(real_mask: np.ndarray, valid: np.ndarray, targets: dict[int, float], stats: AoiStats | None,
           rng: np.random.Generator) -> np.ndarray:
    out = real_mask.copy()
    n_valid = int(valid.sum())
    protected = np.zeros_like(valid)
    for k in sorted(targets):
        protected |= out == k
    for k in sorted(targets):
        want = int(round(targets[k] * n_valid))
        region = out == k
        have = int(region.sum())
        if have >= want:
            continue
        eligible = valid & ~protected
        if k != WATER:
            eligible &= out != WATER    # a land class grows over land: no town or field in open water
        if have == 0:
            if stats is None or not stats.present[k]:
                raise FailedPrecondition(
                    f"{CLASS_NAMES[k]} is absent from the AOI; boost cannot add it (there are no real regions "
                    f"to take its shapes or its texture from); choose classes present in the AOI",
                    "synthesis.boost_targets")
            if not eligible.any():      # every valid pixel holds another target class: no room for k
                continue
            seed_region = _transplant(k, want, eligible, stats, rng)
            if not seed_region.any():       # nothing fitted: start from one random eligible pixel
                cand = np.flatnonzero(eligible.ravel())
                seed_region.ravel()[cand[int(rng.integers(cand.size))]] = True
            grown = _grow_to(seed_region, np.zeros_like(region), eligible, want, rng)
        else:
            grown = _grow_to(region, region, eligible, want, rng)
        out[grown] = k
        protected |= grown
    return out


# ------------------------------------------------------------------ layout

def _layout(real_mask: np.ndarray, valid: np.ndarray, stats: AoiStats | None, rng: np.random.Generator) -> np.ndarray:
    if stats is None or len(stats.tile_shares) == 0:
        raise FailedPrecondition("mask strategy 'layout' needs the AOI's real masks, and none had valid pixels",
                                 "synthesis.mask_strategy")
    shares = stats.tile_shares[int(rng.integers(len(stats.tile_shares)))]
    n_valid = int(valid.sum())
    counts = np.floor(shares * n_valid).astype(int)
    rest = n_valid - counts.sum()                       # hand the rounding remainder to the largest fractions
    if rest > 0:
        counts[np.argsort(-(shares * n_valid - counts))[:rest]] += 1
    h, w = real_mask.shape
    out = np.full(real_mask.shape, NODATA, np.uint8)
    free = valid.copy()
    order = [k for k in np.argsort(counts, kind="stable") if counts[k] > 0]
    for i, k in enumerate(order):
        if i == len(order) - 1:                         # the largest class takes what is left
            out[free] = k
            break
        scale = np.clip(np.sqrt(max(stats.region_size[k], 1.0)) / 2, 4, max(h, w) / 2)
        field_k = smooth_noise(rng, (h, w), scale)
        field_k[~free] = -np.inf
        flat = field_k.ravel()
        idx = np.argpartition(-flat, counts[k] - 1)[:counts[k]]
        out.ravel()[idx] = k
        free.ravel()[idx] = False
    return out
