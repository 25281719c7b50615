"""fit of synthesise/texture: choose the pool tiles, add exemplar-raster tiles for rare classes, find the
appearance modes and the PCA bases (see _texture_pool for what is kept)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from groundsynth.engines.builtin import _texture_pool as tp
from groundsynth.request.classes import NODATA, NUM_CLASSES
from groundsynth.request.errors import InvalidArgument, NotFound

FIELD = "synthesise.texture.params"
EXEMPLAR_TILES = 8          # at most this many exemplar-raster tiles join the pool
EXEMPLAR_SCAN = 64          # windows of the exemplar raster looked at


def _encode(img: np.ndarray, ok: np.ndarray) -> np.ndarray:
    u8 = (1 + np.rint(np.clip(img, 0, 1) * 254)).astype(np.uint8)
    u8[:, ~ok] = 0
    return u8


def _check_lengths(images: Sequence[np.ndarray], masks: Sequence[np.ndarray], valids: Sequence[np.ndarray],
                   tile_ids: Sequence[str] | None) -> None:
    if not (len(images) == len(masks) == len(valids)) or (tile_ids is not None and len(tile_ids) != len(images)):
        raise InvalidArgument(f"got {len(images)} images, {len(masks)} masks, {len(valids)} valid maps"
                              + (f" and {len(tile_ids)} tile ids" if tile_ids is not None else ""), "synthesise.fit")
    if not len(images):
        raise InvalidArgument("fit() needs at least one real tile", "synthesise.fit")


def _check_image(img: np.ndarray, channels: int | None) -> int:
    shape = np.shape(img)
    if len(shape) != 3 or shape[0] not in (3, 4):
        raise InvalidArgument(f"expected an image of shape (3 or 4, H, W), got {shape}", "image")
    if channels is not None and shape[0] != channels:
        raise InvalidArgument(f"images mix {channels} and {shape[0]} bands", "image")
    return int(shape[0])


def usable_levels(side: int, levels: int, patch: int) -> int:
    """The most pyramid levels, up to `levels`, whose coarsest level still holds a patch and a pixel beside it
    on tiles of `side` px (0: not even the finest does). Small tiles get fewer levels, not an error."""
    n = levels
    while n > 0 and side // 2 ** (n - 1) < patch + 1:
        n -= 1
    return n


def class_counts(mask: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(7,) valid pixels of each class in a tile."""
    m = np.asarray(mask, np.uint8)
    return np.bincount(m[np.asarray(valid, bool) & (m != NODATA)], minlength=256)[:NUM_CLASSES]


def select_tiles(counts: np.ndarray, limit: int) -> list[int]:
    """Up to `limit` of the tiles whose class counts (T, 7) are given: for every class, rarest first, the
    tiles richest in it (until 20k px or 3 tiles), then evenly spaced others."""
    T = len(counts)
    if T <= limit:
        return list(range(T))
    chosen: list[int] = []
    for k in np.argsort(counts.sum(0)):
        if counts[:, k].sum() == 0:
            continue
        got, n = 0, 0
        for t in np.argsort(-counts[:, k], kind="stable"):
            if got >= min(20000, counts[:, k].sum()) or n >= 3 or len(chosen) >= limit or counts[t, k] == 0:
                break
            if t not in chosen:
                chosen.append(int(t))
            got += int(counts[t, k])
            n += 1
    rest = [t for t in range(T) if t not in chosen]
    need = limit - len(chosen)
    if need > 0 and rest:
        chosen += [rest[int(i)] for i in np.unique(np.linspace(0, len(rest) - 1, need).round().astype(int))]
    return sorted(chosen)[:limit]


def exemplar_tiles(engine: Any, path: str, channels: int, size: tuple[int, int], want: set[int]
                   ) -> list[tuple[np.ndarray, np.ndarray]]:
    """(uint8 image, labels) tiles of the exemplar raster that hold classes in `want`."""
    import os

    import rasterio
    from rasterio.windows import Window

    from groundsynth.engines.base import EngineContext
    from groundsynth.engines.builtin.spectral import Spectral
    from groundsynth.tiling.source import Stretch

    if not os.path.isfile(path):
        raise NotFound(f"no such exemplar raster: {path}", f"{FIELD}.exemplar_raster")
    try:
        ds = rasterio.open(path)
    except Exception as exc:
        raise InvalidArgument(f"cannot read {path} as a raster ({exc})", f"{FIELD}.exemplar_raster") from None
    stretch_d = engine.ctx.extra.get("stretch")
    with ds:
        if ds.count < channels:
            raise InvalidArgument(f"{path} has {ds.count} bands; the job needs {channels} (R, G, B{', NIR' if channels == 4 else ''})",
                                  f"{FIELD}.exemplar_raster")
        h, w = size
        spots = [(y, x) for y in range(0, max(ds.height - h, 0) + 1, h) for x in range(0, max(ds.width - w, 0) + 1, w)]
        spots = [spots[int(i)] for i in np.unique(np.linspace(0, len(spots) - 1, min(EXEMPLAR_SCAN, len(spots))).round())]
        stretch = Stretch.from_dict(stretch_d) if stretch_d else None
        seg = Spectral({}, EngineContext(has_nir=channels == 4, extra={"stretch": stretch_d} if stretch_d else {}))
        out = []
        for y, x in spots:
            raw = ds.read(list(range(1, channels + 1)), window=Window(x, y, w, h), boundless=True, fill_value=0)
            raw = raw.astype(np.float32)
            valid = (raw != (ds.nodata if ds.nodata is not None else 0)).all(0)
            img = stretch.apply(raw) if stretch else np.clip(raw / max(float(raw.max()), 1.0), 0, 1)
            lab = seg.classify(img, valid)
            if any((lab == k).sum() >= 200 for k in want):
                out.append((_encode(img, valid), lab))
            if len(out) >= EXEMPLAR_TILES:
                break
    return out


def _bases(st: tp.TextureState, rng: np.random.Generator) -> list[tp.LevelBasis]:
    """A PCA basis per pyramid level, from up to PCA_SAMPLE patches spread over the pool's tiles (each
    tile's pyramid built once; one random stream per level)."""
    rngs = [np.random.default_rng(int(x)) for x in rng.integers(0, 2 ** 63, st.levels)]
    samples: list[list[np.ndarray]] = [[] for _ in range(st.levels)]
    classes: list[list[np.ndarray]] = [[] for _ in range(st.levels)]
    per = max(1, tp.PCA_SAMPLE // len(st.images))
    for t in range(len(st.images)):
        img = tp.decode(st.images[t])
        for li, (img_l, lab, _) in enumerate(tp.pyramid(img, st.labels[t], st.modes[t], st.levels)):
            ok = np.flatnonzero(tp.usable(lab != NODATA, st.radius).ravel())
            if ok.size == 0:
                continue
            pick = ok[rngs[li].choice(ok.size, min(per, ok.size), replace=False)]
            samples[li].append(tp.patch_vectors(img_l, st.radius, pick))
            classes[li].append(lab.ravel()[pick])
    out = []
    for li in range(st.levels):
        if not samples[li]:
            raise InvalidArgument("the tiles are too small or too empty for the texture pool: no whole "
                                  f"{2 * st.radius + 1} px patch at level {li} (lower patch or levels)",
                                  f"{FIELD}.levels")
        out.append(tp.fit_basis(np.concatenate(samples[li]), np.concatenate(classes[li])))
    return out


def build_state(engine: Any, images: Sequence[np.ndarray], masks: Sequence[np.ndarray],
                valids: Sequence[np.ndarray], tile_ids: Sequence[str] | None) -> tp.TextureState:
    _check_lengths(images, masks, valids, tile_ids)
    p = engine.p
    ids = [str(t) for t in tile_ids] if tile_ids is not None else [f"#{i}" for i in range(len(images))]
    r = p["patch"] // 2
    shapes = [np.shape(m) for m in masks]          # the masks' shapes: an image is only read if it joins the pool
    side = min(max(s[0] for s in shapes), max(s[1] for s in shapes))
    n_levels = usable_levels(side, p["levels"], p["patch"])
    if n_levels == 0:
        raise InvalidArgument(f"tiles of {side} px are too small for {p['patch']} px patches; lower patch",
                              f"{FIELD}.patch")
    f = 2 ** (n_levels - 1)
    H = max(s[0] for s in shapes) // f * f
    W = max(s[1] for s in shapes) // f * f
    # the pool is chosen from the masks; only its tiles' images are read, once each (a fit sample of 256 tiles
    # would otherwise be held whole: 64 MiB of uint8 images at 256 px)
    keep = select_tiles(np.stack([class_counts(m, v) for m, v in zip(masks, valids, strict=True)]), p["pool_tiles"])
    channels: int | None = None
    imgs = labs = None
    for j, t in enumerate(keep):
        img = np.asarray(images[t], np.float32)
        channels = _check_image(img, channels)
        if imgs is None:
            imgs = np.zeros((len(keep), channels, H, W), np.uint8)
            labs = np.full((len(keep), H, W), NODATA, np.uint8)
        assert labs is not None
        img = img[:, :H, :W]
        m = np.asarray(masks[t], np.uint8)[:H, :W]
        ok = np.asarray(valids[t], bool)[:H, :W] & (m != NODATA)
        imgs[j, :, :img.shape[1], :img.shape[2]] = _encode(img, ok)
        labs[j, :m.shape[0], :m.shape[1]] = np.where(ok, m, NODATA)
    assert imgs is not None and labs is not None and channels is not None
    ids = [ids[i] for i in keep]
    tile_classes = np.ones((len(ids), NUM_CLASSES), bool)
    if p["exemplar_raster"]:
        have = np.bincount(labs[labs != NODATA].ravel(), minlength=256)[:NUM_CLASSES]
        rare = {k for k in range(NUM_CLASSES) if have[k] < p["min_class_pixels"]}
        extra = exemplar_tiles(engine, p["exemplar_raster"], channels, (H, W), rare) if rare else []
        if extra:
            imgs = np.concatenate([imgs, np.stack([e[0] for e in extra])])
            labs = np.concatenate([labs, np.stack([e[1] for e in extra])])
            ids += [f"exemplar_raster#{i}" for i in range(len(extra))]
            only = np.array([k in rare for k in range(NUM_CLASSES)])
            tile_classes = np.concatenate([tile_classes, np.repeat(only[None], len(extra), axis=0)])
    rng = np.random.default_rng([int(engine.ctx.seed) & 0xFFFFFFFF, 0x7E47])
    fimgs = tp.decode(imgs)
    modes, shares = tp.mode_maps(fimgs, labs, p["modes"], rng)
    st = tp.TextureState(tile_ids=ids, images=imgs, labels=labs, tile_classes=tile_classes, modes=modes,
                         mode_share=shares, counts=np.zeros((len(ids), NUM_CLASSES, p["modes"]), np.int64),
                         class_means=np.full((NUM_CLASSES, channels), np.nan, np.float32), mode_areas={},
                         cell_area=np.zeros(NUM_CLASSES), bases=[],
                         radius=r, guide_weight=p["guide_weight"], levels=n_levels)
    for t in range(len(ids)):
        ok = tp.usable(labs[t] != NODATA, r) & tile_classes[t][np.minimum(labs[t], NUM_CLASSES - 1)]
        np.add.at(st.counts[t], (labs[t][ok], modes[t][ok]), 1)
    for k in range(NUM_CLASSES):
        sel = labs == k
        if sel.any():
            st.class_means[k] = fimgs.transpose(1, 0, 2, 3)[:, sel].mean(axis=1)
    st.mode_areas, st.cell_area = tp.region_stats(labs, modes)
    st.bases = _bases(st, rng)
    return st
