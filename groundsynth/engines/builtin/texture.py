"""synthesise/texture: label-guided multi-scale texture optimisation with PatchMatch (no model, CPU).

"Texture by numbers" (image analogies, Hertzmann et al. 2001): given exemplars A (real tiles
of the AOI) with their label maps A', and a new label map B (the conditioning mask), make B'
whose every patch looks like a patch of A with the same labels around it. Solved by texture
optimisation (Kwatra et al. 2005), coarse to fine over `levels` pyramid levels: E-step =
PatchMatch nearest-neighbour search (Barnes et al. 2009) over the whole pool, M-step = a
weighted vote of the overlapping matched patches. Vectorised numpy (_patchmatch,
_texture_pool); see docs/synthesis.md.

- Appearance modes: every connected region of the mask asks for one appearance mode of its
  class (k-means of the AOI's local class colours: green vs bare crop, sea vs estuary), drawn
  in proportion to the mode's share of the class raised to 1 / `diversity`.
- Class edges come from real edges between the same classes (label guidance), with their
  real mixed pixels; small regions (roads, single buildings) take real patches of their class
  in a similar context, never random pixels.
- No leaks, no copies of the source: `fit` is given the train split only (the pipeline's
  choice); `synthesise(..., source_ids)` never matches a patch in the synthetic tile's own
  source tile. A class found only in the source tile takes the texture of the pool class
  nearest in mean colour (it cannot be made without copying).
- A class with too few usable pixels in the AOI (`min_class_pixels`) takes tiles of the
  optional `exemplar_raster` (segmented with segment/spectral, job stretch), which give only
  such classes.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from groundsynth.engines import register
from groundsynth.engines.base import Param, Synthesiser
from groundsynth.engines.builtin import _patchmatch as pm
from groundsynth.engines.builtin import _texture_pool as tp
from groundsynth.request.classes import CLASS_NAMES, NODATA, NUM_CLASSES
from groundsynth.request.errors import FailedPrecondition, InvalidArgument


@register
class Texture(Synthesiser):
    name = "texture"
    is_default = True
    description = ("Label-guided multi-scale texture optimisation with PatchMatch over real train-split tiles of "
                   "the AOI (image analogies): per-region appearance modes, real class edges, never the source "
                   "tile. CPU only, no model.")
    params = (
        Param("pool_tiles", "int", 32, "at most this many real tiles form the exemplar pool (rare classes first)",
              1, 512),
        Param("patch", "int", 5, "patch side in pixels (odd)", 3, 11),
        Param("levels", "int", 4, "pyramid levels, coarse to fine (fewer on tiles too small for them: the coarsest "
              "level holds at least a patch and a pixel)", 1, 5),
        Param("iterations", "int", 8, "EM iterations at the coarsest level; halved per finer level (at least 1)",
              1, 16),
        Param("modes", "int", 4, "appearance modes per class (k-means of local class colour)", 1, 8),
        Param("diversity", "float", 2.0, "how freely regions pick their appearance mode: 0 = always the class's "
              "most common look, 1 = in proportion to the AOI's shares, > 1 = rarer looks more often", 0.0, 4.0),
        Param("mode_weight", "float", 2.0, "cost of a source patch from another appearance mode than the region "
              "asked for (0 = modes ignored)", 0.0, 100.0),
        Param("guide_weight", "float", 16.0, "weight of the label-map guidance against appearance in matching",
              0.0, 100.0),
        Param("coherence", "float", 3.0, "cost of breaking a copy: added for each of a pixel's 4 neighbours whose "
              "match does not continue the pixel's (larger = bigger real pieces, fewer seams)", 0.0, 100.0),
        Param("occurrence", "float", 1.0, "cost of copying a source block more than once (spreads the copies "
              "over the pool: no repeated motifs)", 0.0, 100.0),
        Param("other_class_vote", "float", 1.0, "weight, in the vote, of a copied pixel whose source class is not "
              "the target pixel's (1 = plain texture-optimisation vote; small = no colour bleeds over class edges)",
              0.0, 1.0),
        Param("sharp", "bool", True, "the last vote takes each pixel from the best-matching patch covering it "
              "(real pixel values) instead of the weighted mean of all (smoother)"),
        Param("exemplar_raster", "path", "", "optional raster (same bands and radiometry as the job's) whose "
              "tiles give appearances of classes the AOI has too little of (e.g. a boosted class)"),
        Param("min_class_pixels", "int", 2000, "a class with fewer usable pixels in the AOI's pool takes tiles of "
              "exemplar_raster", 0, 10_000_000),
    )

    @classmethod
    def check_job(cls, spec) -> None:
        """At Submit: an odd patch, tiles large enough for the pyramid, an existing exemplar raster."""
        import os

        p = cls.job_params(spec)
        field = "stages[synthesise].params"
        if p["patch"] % 2 == 0:
            raise InvalidArgument(f"expected an odd patch side, got {p['patch']}", f"{field}.patch")
        from groundsynth.engines.builtin._texture_fit import usable_levels

        if usable_levels(spec.tile_size, p["levels"], p["patch"]) == 0:
            raise InvalidArgument(f"tiles of {spec.tile_size} px are too small for {p['patch']} px patches; "
                                  "lower patch", f"{field}.patch")
        if p["exemplar_raster"] and not os.path.isfile(p["exemplar_raster"]):
            raise InvalidArgument(f"no such exemplar raster: {p['exemplar_raster']}", f"{field}.exemplar_raster")

    def __init__(self, params=None, ctx=None):
        super().__init__(params, ctx)
        if self.p["patch"] % 2 == 0:
            raise InvalidArgument(f"expected an odd patch side, got {self.p['patch']}",
                                  "synthesise.texture.params.patch")

    # ------------------------------------------------------------------ fit
    def fit(self, images: Sequence[np.ndarray], masks: Sequence[np.ndarray], valids: Sequence[np.ndarray],
            tile_ids: Sequence[str] | None = None) -> tp.TextureState:
        from groundsynth.engines.builtin._texture_fit import build_state

        return build_state(self, images, masks, valids, tile_ids)

    def prepare(self, state: tp.TextureState) -> None:
        """Derive this process's search arrays for `state` now (synthesise does it on first use). The fit does
        not: in a process pool every worker derives its own, side by side after the fit, instead of the
        fitting worker alone while the others wait."""
        tp.levels(state)

    # ------------------------------------------------------------------ synthesise
    def synthesise(self, masks: Sequence[np.ndarray], seeds: Sequence[int], state: tp.TextureState | None = None,
                   source_ids: Sequence[str] | None = None) -> list[np.ndarray]:
        if len(masks) != len(seeds):
            raise InvalidArgument(f"got {len(masks)} masks and {len(seeds)} seeds", "synthesise")
        if source_ids is not None and len(source_ids) != len(masks):
            raise InvalidArgument(f"got {len(masks)} masks and {len(source_ids)} source ids", "synthesise")
        if state is None:
            raise FailedPrecondition("synthesise/texture needs the state its fit() returned", "synthesise.texture")
        sources = list(source_ids) if source_ids is not None else [None] * len(masks)
        return [self.synthesise_one(m, s, state, src) for m, s, src in zip(masks, seeds, sources, strict=True)]

    def synthesise_one(self, mask: np.ndarray, seed: int, st: tp.TextureState, source_id: str | None = None
                       ) -> np.ndarray:
        mask = np.asarray(mask, dtype=np.uint8)
        if mask.ndim != 2:
            raise InvalidArgument(f"expected a 2-D mask, got shape {mask.shape}", "mask")
        H, W = mask.shape
        valid = mask != NODATA
        if not valid.any():
            return np.zeros((st.channels, H, W), np.float32)
        exclude = st.tile_ids.index(source_id) if source_id is not None and source_id in st.tile_ids else -1
        rng = np.random.default_rng(int(seed))
        full = self._full_labels(mask, valid, st, exclude)
        f = 2 ** (st.levels - 1)
        ph, pw = -H % f, -W % f
        full = np.pad(full, ((0, ph), (0, pw)), mode="edge")
        modes = self._region_modes(full, st, exclude, rng)
        img = self._optimise(full, modes, st, exclude, rng)[:, :H, :W]
        img[:, ~valid] = 0
        return img.astype(np.float32)

    def _full_labels(self, mask: np.ndarray, valid: np.ndarray, st: tp.TextureState, exclude: int) -> np.ndarray:
        """The mask with nodata filled from the nearest class and classes the pool lacks substituted."""
        from scipy import ndimage

        if not valid.all():
            _, (iy, ix) = ndimage.distance_transform_edt(~valid, return_indices=True)
            mask = mask[iy, ix]
        else:
            mask = mask.copy()
        total = st.counts.sum(axis=(0, 2))
        left = total - (st.counts[exclude].sum(axis=1) if exclude >= 0 else 0)
        present = np.unique(mask)
        missing = [CLASS_NAMES[k] for k in present if total[k] == 0]
        if missing:
            raise FailedPrecondition(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} absent from the "
                                     "texture pool (the AOI's train tiles and the exemplar raster); texture synthesis "
                                     f"has no real texture for {'it' if len(missing) == 1 else 'them'}",
                                     "synthesise.texture")
        for k in present:
            if left[k] == 0:            # only in the source tile: the nearest class in mean colour stands in
                others = [j for j in range(NUM_CLASSES) if left[j] > 0]
                d = [float(np.nansum((st.class_means[j] - st.class_means[k]) ** 2)) for j in others]
                mask[mask == k] = others[int(np.argmin(d))]
        return mask

    def _region_modes(self, full: np.ndarray, st: tp.TextureState, exclude: int, rng: np.random.Generator
                      ) -> np.ndarray:
        """An appearance mode per parcel: connected regions, split into Voronoi cells of the class's parcel
        size where the AOI's regions of the class hold several parcels (fields); each parcel draws a mode
        among those available without the source tile (_texture_pool.mode_probabilities: the mode's share
        of the class, flattened by `diversity`, times how typical a patch of the parcel's size and
        thickness is of the mode: open sea is not drawn from marsh creeks)."""
        out = np.zeros(full.shape, np.uint8)
        for k in np.unique(full):
            stats, share = st.mode_areas.get(int(k)), st.mode_share.get(int(k))
            if stats is None or share is None:
                continue
            cells, areas = _parcels(full == k, float(st.cell_area[k]), rng)
            M = len(share)
            have = st.counts[:, k, :M].sum(axis=0) - (st.counts[exclude, k, :M] if exclude >= 0 else 0)
            p = tp.mode_probabilities(stats, share, have, areas, tp.thickness(cells, len(areas)),
                                      self.p["diversity"])
            picks = (rng.random(len(p))[:, None] > np.cumsum(p, axis=1)).sum(axis=1).clip(0, M - 1)
            sel = cells > 0
            out[sel] = picks[cells[sel] - 1].astype(np.uint8)
        return out

    def _optimise(self, full: np.ndarray, modes: np.ndarray, st: tp.TextureState, exclude: int,
                  rng: np.random.Generator) -> np.ndarray:
        """Coarse-to-fine EM: PatchMatch (E) and vote (M) at every level; returns the finest image (C, H, W)."""
        lvs = tp.levels(st)
        pyr = tp.pyramid(np.zeros((1, *full.shape), np.float32), full, modes, st.levels)
        r = st.radius
        search = pm.Search(exclude, self.p["mode_weight"], self.p["coherence"], self.p["occurrence"])
        nnf = img = None
        for li in range(st.levels - 1, -1, -1):
            lv = lvs[li]
            search.usage = None                 # per level (its blocks)
            _, lab, mode = pyr[li]
            lab = _level_labels(lab, lv, st, exclude)
            tg = pm.Target(lab.shape[0], lab.shape[1], lab.ravel(), mode.ravel(), tp.guide(lab, st.guide_weight))
            if nnf is None:                     # coarsest: random matches, their vote
                nnf = pm.draw(lv, tg, rng, exclude)
                img = pm.vote(lv, tg, nnf, np.zeros(nnf.size, np.float32), r, other=self.p["other_class_vote"])
            else:                               # finer: the coarser NNF upsampled, the pixels it points at
                h, w = pyr[li + 1][1].shape     # (real fine-scale values; no vote before the first E step)
                nnf = pm.upsample(lv, lvs[li + 1], nnf, tg.H, tg.W, h, w)
                img = pm.copy_pixels(lv, tg, nnf)
            iters = max(1, self.p["iterations"] // 2 ** (st.levels - 1 - li))
            for it in range(iters):
                search.usage = pm.occurrences(lv, nnf, search.block)
                tg.feat = lv.target_features(np.concatenate([tp.appearance(img, st.bases[li], r), tg.guide], axis=1))
                best = self._repair(lv, tg, nnf, rng, search)
                steps = (8, 4, 2, 1) if it == 0 and li == st.levels - 1 else (2, 1)
                pm.propagate(lv, tg, nnf, best, steps, search)
                radii = tuple(x for x in (max(lv.h, lv.w) // 4, 8, 2) if x >= 1)
                pm.random_search(lv, tg, nnf, best, rng, radii, 1, search)
                img = pm.vote(lv, tg, nnf, best, r, sharp=li == 0 and it == iters - 1 and self.p["sharp"],
                              other=self.p["other_class_vote"])
        assert img is not None
        return img

    @staticmethod
    def _repair(lv: pm.Level, tg: pm.Target, nnf: np.ndarray, rng: np.random.Generator, search: pm.Search
                ) -> np.ndarray:
        """Costs of the NNF; matches that became impossible (wrong class, not allowed) are redrawn."""
        best = pm.cost(lv, tg, nnf, search, nnf)
        bad = best >= pm.INF
        if bad.any():
            nnf[bad] = pm.draw(lv, tg, rng, search.exclude)[bad]
            best = pm.cost(lv, tg, nnf, search, nnf)
        return best


def _level_labels(lab: np.ndarray, lv: pm.Level, st: tp.TextureState, exclude: int) -> np.ndarray:
    """The target labels at one pyramid level, a class without a usable source patch AT THIS LEVEL (a thin
    class that the coarse levels' majority vote or patch erosion lost) replaced by the class nearest in mean
    colour that has one; the finest level always has every class (_full_labels checked that)."""
    have = [k for k in lv.by_class if lv.sources(k, None, exclude) is not None]
    missing = [int(k) for k in np.unique(lab) if k not in have]
    if not missing or not have:
        return lab
    lab = lab.copy()
    for k in missing:
        d = [float(np.nansum((st.class_means[j] - st.class_means[k]) ** 2)) for j in have]
        lab[lab == k] = have[int(np.argmin(d))]
    return lab


def _parcels(region: np.ndarray, cell: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(cell id per pixel, 1..n, 0 outside; area per cell): connected regions, those larger than twice
    `cell` split into Voronoi cells (straight borders, like field boundaries) of about `cell` px."""
    from scipy import ndimage

    lab, n = ndimage.label(region)
    areas = np.bincount(lab.ravel())[1:]
    if cell <= 0 or not (areas > 2 * cell).any():
        return lab, areas.astype(float)
    seeds = np.zeros(region.shape, bool)
    for r in np.flatnonzero(areas > 2 * cell):
        px = np.flatnonzero(lab.ravel() == r + 1)
        seeds.ravel()[rng.choice(px, int(round(areas[r] / cell)), replace=False)] = True
    _, (iy, ix) = ndimage.distance_transform_edt(~seeds, return_indices=True)
    seed_id = np.zeros(region.shape, np.int64)
    seed_id[seeds] = np.arange(1, int(seeds.sum()) + 1)
    big = np.isin(lab, np.flatnonzero(areas > 2 * cell) + 1)
    cells = lab.astype(np.int64)
    cells[big] = n + seed_id[iy, ix][big]
    _, inv = np.unique(cells, return_inverse=True)
    cells = inv.reshape(region.shape) + (0 if (lab == 0).any() else 1)   # 0 stays 0 (outside)
    return cells, np.bincount(cells.ravel())[1:].astype(float)
