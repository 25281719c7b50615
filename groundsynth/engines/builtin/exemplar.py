"""synthesise/exemplar: mask-conditioned synthesis by per-class patch quilting of the AOI's own pixels.

No model, no download; numpy/scipy only. Algorithm (docs/engines-builtin.md):

fit (once per job, on the AOI's real tiles):
  For every class k and every tile that has k, the tile's pixels that are not
  k (or not valid) are filled from the nearest pixel of k (Euclidean distance
  transform), giving a "pure" texture of k around its real regions. Square
  patches (patch_size) whose centre area is mostly k (purity >= min_purity of
  the original pixels, relaxed for rare classes) are cut on a grid and a
  random sample of at most `pool_size` per class is kept (bounded memory).

synthesise (per target mask, per seed):
  For every class in the mask a texture layer is quilted on a jittered grid
  from the class's typical look: the `style_share` of its pool closest in
  mean colour to the class median (so regions and neighbouring tiles are
  coherent, not a mix of e.g. bright sea and dark estuary water)
  (random phase, steps drawn from stride +- overlap/2): patches overlap by about `overlap` px; each new patch is the best
  of `candidates` random pool patches by squared difference on the overlap
  with what is already placed (image quilting, Efros & Freeman 2001, without
  the min-cut) and is painted over its left/top neighbours along an irregular
  seam curve (smoothed random walk inside the overlap, ~1 px soft edge), so
  there are no straight seams and no visible grid. Cells away from the class
  are skipped. Connected regions smaller than `small_region` px (roads, single
  buildings) are filled with real pixels of the class drawn at random. Classes
  are composited with soft edges (one-hot mask blurred by `edge_sigma`; small
  regions keep hard edges).

Source exclusion: with tile ids given to fit and `source_ids` to synthesise, a synthetic tile never
takes patches or pixels from its own source tile; a class whose only texture lies there gets its
AOI mean colour.

Fallbacks: a class in the target mask with no pixels in the AOI raises
FailedPrecondition naming the class (the AOI has no real texture for it; boost
refuses such classes earlier). An all-nodata mask gives an all-zero image
(nothing to synthesise; the pipeline marks such tiles nodata). Deterministic
per seed; different seeds give different patch choices and grid offsets.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from groundsynth.engines import register
from groundsynth.engines.base import Param, Synthesiser
from groundsynth.engines.builtin._reservoir import Reservoir
from groundsynth.request.classes import CLASS_NAMES, NODATA, NUM_CLASSES
from groundsynth.request.errors import FailedPrecondition, InvalidArgument


@dataclass
class ExemplarState:
    """What `fit` learns from the AOI (picklable; stored with the job and sent to workers)."""

    pools: dict[int, np.ndarray] = field(default_factory=dict)       # class -> (n, C, P, P) float32 patches
    means: dict[int, np.ndarray] = field(default_factory=dict)       # class -> (C,) mean of its real pixels
    pool_means: dict[int, np.ndarray] = field(default_factory=dict)  # class -> (n, C) mean colour per patch
    pixels: dict[int, np.ndarray] = field(default_factory=dict)      # class -> (m, C) sample of its real pixels
    channels: int | None = None
    pool_tiles: dict[int, np.ndarray] = field(default_factory=dict)  # class -> (n,) index of each patch's tile
    pixel_tiles: dict[int, np.ndarray] = field(default_factory=dict)  # class -> (m,) index of each pixel's tile
    tile_ids: list[str] = field(default_factory=list)                 # fit's tile ids (index -> id)


@register
class Exemplar(Synthesiser):
    name = "exemplar"
    description = ("Mask-conditioned synthesis by patch quilting of real pixels of each class from the job's AOI, "
                   "with matched, feathered, variance-preserving seams and soft class edges. CPU only, no model.")
    params = (
        Param("patch_size", "int", 32, "side of the square texture patches in pixels", 8, 128),
        Param("overlap", "int", 10, "overlap between neighbouring patches in pixels (blended)", 2, 64),
        Param("candidates", "int", 8, "random pool patches compared per placement (best overlap match wins)",
              1, 64),
        Param("pool_size", "int", 256, "at most this many patches kept per class (memory bound)", 8, 4096),
        Param("min_purity", "float", 0.6, "share of a patch's own pixels that must be the class to enter the pool",
              0.05, 1.0),
        Param("small_region", "int", 150, "connected regions smaller than this (px) are filled with real pixels "
              "of the class drawn at random instead of quilted patches (roads, single buildings)", 0, 100000),
        Param("edge_sigma", "float", 0.5, "Gaussian sigma (px) softening the edges between classes", 0.0, 8.0),
        Param("style_share", "float", 0.4, "each class layer draws its patches from this share of the class's "
              "pool, the patches closest in mean colour to the class's median: regions and neighbouring tiles look "
              "coherent (no dark blocks of estuary water in open sea); 1 = the whole pool, outliers included",
              0.01, 1.0),
    )

    @classmethod
    def check_job(cls, spec) -> None:
        """At Submit: patches must fit the tiles and overlap less than half a patch (the quilting's rule)."""
        p = cls.job_params(spec)
        if p["patch_size"] > spec.tile_size:
            raise InvalidArgument(f"expected a patch_size no larger than the tile size ({spec.tile_size} px), got "
                                  f"{p['patch_size']}", "stages[synthesise].params.patch_size")
        if p["overlap"] * 2 >= p["patch_size"]:
            raise InvalidArgument(f"expected an overlap below half of patch_size ({p['patch_size']}), i.e. at most "
                                  f"{(p['patch_size'] - 1) // 2}, got {p['overlap']}",
                                  "stages[synthesise].params.overlap")

    def __init__(self, params=None, ctx=None):
        super().__init__(params, ctx)
        if self.p["overlap"] * 2 >= self.p["patch_size"]:
            raise InvalidArgument(f"overlap ({self.p['overlap']}) must be less than half of patch_size "
                                  f"({self.p['patch_size']})", "synthesise.exemplar.params.overlap")

    # ------------------------------------------------------------------ fit
    def fit(self, images: Sequence[np.ndarray], masks: Sequence[np.ndarray],
            valids: Sequence[np.ndarray], tile_ids: Sequence[str] | None = None) -> ExemplarState:
        from scipy import ndimage

        if not (len(images) == len(masks) == len(valids)) or (tile_ids is not None and len(tile_ids) != len(images)):
            raise InvalidArgument(f"got {len(images)} images, {len(masks)} masks and {len(valids)} valid maps",
                                  "synthesise.fit")
        P = self.p["patch_size"]
        rng = np.random.default_rng(int(self.ctx.seed) ^ 0x5EED)
        # Bounded memory, whatever the sample size: per class, a uniform random sample of the pure
        # candidate patches (the `pool_size` with the smallest random keys), the 8 purest candidates
        # (a rare class's pool) and a uniform sample of its real pixels. Patches are copied out of the
        # tile's class-filled image, so no tile outlives its turn.
        pure = {k: Reservoir(self.p["pool_size"]) for k in range(NUM_CLASSES)}
        purest = {k: Reservoir(8) for k in range(NUM_CLASSES)}
        pix = {k: Reservoir(16384) for k in range(NUM_CLASSES)}
        order = 0                               # candidate index across the sample: the pool's order
        sums = np.zeros((NUM_CLASSES, 8), np.float64)
        counts = np.zeros(NUM_CLASSES, np.int64)
        st = ExemplarState(tile_ids=[str(t) for t in tile_ids] if tile_ids is not None else [])
        sized, smallest = 0, None
        for t, (img, mask, valid) in enumerate(zip(images, masks, valids, strict=True)):
            img = np.asarray(img, dtype=np.float32)
            if img.ndim != 3 or img.shape[0] not in (3, 4):
                raise InvalidArgument(f"expected an image of shape (3 or 4, H, W), got {img.shape}", "image")
            if st.channels is None:
                st.channels = img.shape[0]
            elif img.shape[0] != st.channels:
                raise InvalidArgument(f"images mix {st.channels} and {img.shape[0]} bands", "image")
            mask = np.asarray(mask, dtype=np.uint8)
            ok = (mask != NODATA) & np.asarray(valid, dtype=bool)
            C, H, W = img.shape
            if H < P or W < P:
                smallest = (H, W)
                continue
            sized += 1
            for k in np.flatnonzero(np.bincount(mask[ok].ravel(), minlength=256)[:NUM_CLASSES]):
                own = ok & (mask == k)
                # the core of the class's regions: edge pixels are often mixed (and smoothed into k)
                core = ndimage.binary_erosion(own, iterations=2)
                if core.sum() >= max(64, own.sum() // 4):
                    own = core
                vals = img[:, own]
                take = rng.choice(vals.shape[1], size=min(vals.shape[1], 4096), replace=False)
                pix[k].offer(rng.random(take.size), vals[:, take].T, np.full(take.size, t, np.int32))
                sums[k, :C] += vals.sum(axis=1)
                counts[k] += int(own.sum())
                order = self._offer_patches(img, own, t, order, rng, pure[k], purest[k])
        if sized == 0 and smallest is not None:
            raise InvalidArgument(f"patch_size {P} is larger than the tiles ({smallest[0]} x {smallest[1]} px); "
                                  "choose a patch_size no larger than the tile size",
                                  "synthesise.exemplar.params.patch_size")
        for k in range(NUM_CLASSES):
            if not purest[k].size:
                continue
            chosen = pure[k] if pure[k].size >= 8 else purest[k]      # rare class: its purest patches
            items, tiles_of, _ = chosen.items()                          # in the sample's order
            st.pools[k] = np.ascontiguousarray(items, dtype=np.float32)
            st.pool_tiles[k] = tiles_of.astype(np.int32)
            st.pool_means[k] = st.pools[k].mean(axis=(2, 3))
            st.means[k] = (sums[k, :st.channels] / max(counts[k], 1)).astype(np.float32)
            allpix, alltiles, _ = pix[k].items()
            st.pixels[k] = np.asarray(allpix, dtype=np.float32)
            st.pixel_tiles[k] = np.asarray(alltiles, dtype=np.int32)
        return st

    def _offer_patches(self, img: np.ndarray, own: np.ndarray, t: int, order: int, rng: np.random.Generator,
                       pure: Reservoir, purest: Reservoir) -> int:
        """Offer tile t's candidate patches of one class (cut on a grid from the tile with every other pixel
        filled from the class's nearest pixel: a pure texture of it) to the class's reservoirs; returns the
        next candidate index."""
        from scipy import ndimage

        P, (_, H, W) = self.p["patch_size"], img.shape
        stride = max(4, P // 4)
        _, (iy, ix) = ndimage.distance_transform_edt(~own, return_indices=True)
        filled = img[:, iy, ix]
        purity = ndimage.uniform_filter(own.astype(np.float32), size=P, mode="constant")
        ys = np.arange(0, H - P + 1, stride)
        xs = np.arange(0, W - P + 1, stride)
        pur = purity[ys[:, None] + P // 2, xs[None, :] + P // 2]
        gy, gx = np.nonzero(pur > 0)
        if gy.size == 0:
            return order
        y0, x0 = ys[gy], xs[gx]
        cand_pur = pur[gy, gx].astype(np.float64)
        index = np.arange(order, order + gy.size)

        def patches(sel: np.ndarray) -> np.ndarray:
            return np.stack([filled[:, y0[i]:y0[i] + P, x0[i]:x0[i] + P] for i in sel])

        tiles = np.full(gy.size, t, np.int32)
        is_pure = np.flatnonzero(cand_pur >= self.p["min_purity"])
        pure.offer_lazy(rng.random(is_pure.size), is_pure, patches, tiles[is_pure], index[is_pure])
        purest.offer_lazy(-cand_pur, np.arange(gy.size), patches, tiles, index)   # purest first; ties: earlier
        return order + gy.size

    # ------------------------------------------------------------------ synthesise
    def synthesise(self, masks: Sequence[np.ndarray], seeds: Sequence[int],
                   state: ExemplarState | None = None, source_ids: Sequence[str] | None = None) -> list[np.ndarray]:
        if len(masks) != len(seeds) or (source_ids is not None and len(source_ids) != len(masks)):
            raise InvalidArgument(f"got {len(masks)} masks and {len(seeds)} seeds"
                                  + (f" and {len(source_ids)} source ids" if source_ids is not None else ""),
                                  "synthesise")
        st = state if state is not None else ExemplarState()
        sources = list(source_ids) if source_ids is not None else [None] * len(masks)
        return [self.synthesise_one(m, s, st, src) for m, s, src in zip(masks, seeds, sources, strict=True)]

    def synthesise_one(self, mask: np.ndarray, seed: int, st: ExemplarState, source_id: str | None = None
                       ) -> np.ndarray:
        """One image; texture from the source tile `source_id` (a fit tile id) is never used: a class whose
        only texture lies there is filled with its AOI mean colour."""
        from scipy import ndimage

        mask = np.asarray(mask, dtype=np.uint8)
        if mask.ndim != 2:
            raise InvalidArgument(f"expected a 2-D mask, got shape {mask.shape}", "mask")
        C = st.channels or (4 if self.ctx.has_nir else 3)
        H, W = mask.shape
        out = np.zeros((C, H, W), np.float32)
        present = np.flatnonzero(np.bincount(mask[mask != NODATA].ravel(), minlength=256)[:NUM_CLASSES])
        if present.size == 0:
            return out                                   # all nodata: nothing to synthesise
        if not st.pools:
            raise FailedPrecondition("synthesise/exemplar has no texture: fit() saw no valid pixels of any class",
                                     "synthesise.exemplar")
        missing = [CLASS_NAMES[k] for k in present if k not in st.pools]
        if missing:
            raise FailedPrecondition(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} absent from the "
                                     "AOI; exemplar synthesis has no real texture for "
                                     f"{'it' if len(missing) == 1 else 'them'}", "synthesise.exemplar")
        rng = np.random.default_rng(int(seed))
        sigma = self.p["edge_sigma"]
        weights = np.zeros((present.size, H, W), np.float32)
        for i, k in enumerate(present):
            onehot = (mask == k).astype(np.float32)
            weights[i] = ndimage.gaussian_filter(onehot, sigma, mode="nearest", truncate=3.0) if sigma > 0 else onehot
        total = weights.sum(axis=0)
        np.divide(weights, total, out=weights, where=total > 0)
        # small regions keep hard edges (blurring would dissolve them into their surroundings)
        small_any = np.zeros((H, W), bool)
        smalls = {}
        for k in present:
            lab, _ = ndimage.label(mask == k)
            sizes = np.bincount(lab.ravel())
            sizes[0] = 0
            smalls[k] = (sizes[lab] < self.p["small_region"]) & (lab > 0)
            small_any |= smalls[k]
        if small_any.any():
            grown = ndimage.binary_dilation(small_any, iterations=1) & (mask != NODATA)
            weights[:, grown] = (mask[grown][None, :] == present[:, None]).astype(np.float32)
        reach = int(np.ceil(3 * sigma)) + 1
        seams = self._seams(rng)
        exclude = st.tile_ids.index(source_id) if source_id is not None and source_id in st.tile_ids else -1
        for i, k in enumerate(present):
            patches, pix = self._without_source(st, int(k), exclude)
            region = weights[i] > 1e-4
            if reach:
                region = ndimage.binary_dilation(mask == k, iterations=reach) | region
            small = smalls[k]
            if not (region & ~small).any() or patches is None:   # no quilted layer needed (or no texture left)
                tex = np.broadcast_to(st.means[k][:, None, None], (C, H, W)).copy()
            else:
                tex = self._quilt(region, rng, seams, *patches)
            if small.any() and len(pix):   # small regions (roads, single buildings, specks): real pixels of the class
                tex[:, small] = pix[rng.integers(0, len(pix), int(small.sum()))].T
            out += weights[i][None] * tex
        out[:, mask == NODATA] = 0.0
        return np.clip(out, 0.0, 1.0)

    def _seams(self, rng: np.random.Generator, n: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """n paint-over weights (P, P) for a patch laid over its left and top neighbours: 0 on the far side
        of an irregular seam curve inside the overlap, 1 past it, with a ~1 px soft transition."""
        from scipy import ndimage

        P, OV = self.p["patch_size"], self.p["overlap"]
        t = np.arange(P, dtype=np.float32)
        walk = ndimage.gaussian_filter1d(rng.standard_normal((2 * n, P)), 3.0, axis=1, mode="wrap")
        walk /= np.abs(walk).max(axis=1, keepdims=True) + 1e-9
        curves = (OV / 2 + (OV / 2 - 1.5) * walk).astype(np.float32)        # seam position per row / column
        left = 1 / (1 + np.exp(-(t[None, None, :] - curves[:n, :, None]) / 0.6))      # (n, y, x)
        top = 1 / (1 + np.exp(-(t[None, :, None] - curves[n:, None, :]) / 0.6))       # (n, y, x)
        return (left * top).astype(np.float32), left.astype(np.float32), top.astype(np.float32)

    @staticmethod
    def _without_source(st: ExemplarState, k: int, exclude: int
                        ) -> tuple[tuple[np.ndarray, np.ndarray] | None, np.ndarray]:
        """((patches, patch means) or None, pixels) of class k, without those of pool tile `exclude`."""
        pool, means, pix = st.pools[k], st.pool_means[k], st.pixels[k]
        if exclude >= 0 and k in st.pool_tiles:
            keep = st.pool_tiles[k] != exclude
            if not keep.all():
                pool, means = pool[keep], means[keep]
            pix = pix[st.pixel_tiles[k] != exclude]
        return ((pool, means) if len(pool) else None), pix

    def _quilt(self, region: np.ndarray, rng: np.random.Generator, seams, pool: np.ndarray, pm: np.ndarray
               ) -> np.ndarray:
        """A texture layer from `pool` (patches of one class, mean colours `pm`) covering `region`."""
        n, C, P, _ = pool.shape
        # the typical look of the class: the pool patches nearest in mean colour to the class median
        near = np.argsort(((pm - np.median(pm, axis=0)) ** 2).sum(axis=1), kind="stable")
        style = near[:max(min(n, 2 * self.p["candidates"]), int(round(n * self.p["style_share"])))]
        mu = pm[style].mean(axis=0)
        OV = self.p["overlap"]
        S = P - OV
        H, W = region.shape
        both, left, top = seams
        ns = both.shape[0]
        oy, ox = (int(v) for v in rng.integers(0, S, 2))         # random grid phase per layer
        # canvas with a margin of P on every side so that shifted patches fit
        canvas = np.empty((C, H + 2 * P, W + 2 * P), np.float32)
        canvas[:] = mu[:, None, None]
        filled = np.zeros((H + 2 * P, W + 2 * P), bool)
        padded = np.zeros((H + 2 * P, W + 2 * P), bool)
        padded[P:P + H, P:P + W] = region
        K = min(self.p["candidates"], style.size)
        jit = max(1, OV // 2)      # jittered steps: seams are not periodic (no grid line spectrum)

        def positions(start: int, stop: int) -> list[int]:
            out = [start]
            while True:
                nxt = out[-1] + int(rng.integers(S - jit, S + jit + 1))
                if nxt >= stop:
                    return out
                out.append(nxt)

        for y0 in positions(P - oy - S, P + H):
            for x0 in positions(P - ox - S, P + W):
                if not padded[y0:y0 + P, x0:x0 + P].any():
                    continue
                idx = style[rng.integers(0, style.size, K)]
                seen = filled[y0:y0 + P, x0:x0 + P]
                cur = canvas[:, y0:y0 + P, x0:x0 + P]
                if K > 1 and seen.any():
                    cand = pool[idx]
                    err = (((cand - cur[None]) ** 2).sum(axis=1) * seen[None]).sum(axis=(1, 2))
                    j = idx[int(np.argmin(err))]
                else:
                    j = idx[0]
                s = int(rng.integers(ns))
                has_left = seen[:, 0].any()
                has_top = seen[0, :].any()
                w = both[s] if has_left and has_top else left[s] if has_left else top[s] if has_top else None
                if w is None:
                    cur[:] = pool[j]
                else:
                    w = np.where(seen, w, 1.0)
                    cur += w * (pool[j] - cur)
                seen[:] = True
        return canvas[:, P:P + H, P:P + W]
