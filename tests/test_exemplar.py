"""synthesise/exemplar: fidelity under the spectral segmenter on the demo scene, seeds, seams, bad inputs."""
import numpy as np
import pytest
import rasterio

from groundsynth.engines import get_engine
from groundsynth.engines.base import EngineContext
from groundsynth.engines.builtin.exemplar import Exemplar
from groundsynth.engines.builtin.spectral import Spectral
from groundsynth.request.classes import NODATA
from groundsynth.request.errors import FailedPrecondition, InvalidArgument

TREE, SHRUB, GRASS, CROP, BUILT, BARREN, WATER = range(7)
T = 256
MIXED = [3, 8, 17, 22, 30]          # farmland, villages, river, coast (indices into the 7 x 7 tile grid)


def miou(a, b):
    ok = (a != NODATA) & (b != NODATA)
    ious = []
    for c in range(7):
        A, B = (a == c) & ok, (b == c) & ok
        if A.any() or B.any():
            ious.append((A & B).sum() / (A | B).sum())
    return float(np.mean(ious))


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from groundsynth.demo.scene import demo_raster
    from groundsynth.tiling.source import Stretch, land_pixels

    with rasterio.open(demo_raster(tmp_path_factory.mktemp("demo"))) as ds:
        raw = ds.read().astype(np.float32)
    valid = (raw > 0).all(0)
    sample, sample_valid = raw[:, ::4, ::4], valid[::4, ::4]
    # the job stretch as the pipeline computes it for an RGB-NIR job (high from land pixels, issue 11)
    stretch = Stretch.from_sample(sample, sample_valid, land=land_pixels(sample, sample_valid, True))
    img = stretch.apply(raw)
    ctx = EngineContext(seed=7, extra={"stretch": stretch.to_dict()})
    seg = Spectral({}, ctx)
    pos = [(y, x) for y in range(0, 7 * T, T) for x in range(0, 7 * T, T)]
    images = [img[:, y:y + T, x:x + T] for y, x in pos]
    valids = [valid[y:y + T, x:x + T] for y, x in pos]
    masks = [seg.classify(i, v) for i, v in zip(images, valids, strict=True)]
    ex = Exemplar({}, ctx)
    return seg, Fitted(ex, ex.fit(images, masks, valids)), images, masks


class Fitted:
    """An Exemplar together with the state its `fit` returned (shorthand for the tests)."""

    def __init__(self, engine, state):
        self.engine, self.state = engine, state
        self.p, self.ctx, self.pools = engine.p, engine.ctx, state.pools

    def synthesise(self, masks, seeds):
        return self.engine.synthesise(masks, seeds, self.state)


def test_fit_returns_a_state_and_leaves_the_engine_unchanged(demo):
    import pickle

    _, fitted, images, masks = demo
    before = dict(vars(fitted.engine))
    again = fitted.engine.fit(images[:6], masks[:6], [np.ones((T, T), bool)] * 6)
    assert vars(fitted.engine) == before                        # fit mutates nothing of the engine
    assert set(again.pools) and set(again.pools) <= set(fitted.state.pools)
    restored = pickle.loads(pickle.dumps(fitted.state))         # shippable to workers, storable with the job
    a = fitted.engine.synthesise([masks[8]], [5], fitted.state)[0]
    assert (fitted.engine.synthesise([masks[8]], [5], restored)[0] == a).all()


def test_stays_selectable_by_name_beside_the_default():
    assert get_engine("synthesise", "exemplar") is Exemplar
    assert get_engine("synthesise", "") is not Exemplar       # texture is the default (tests/test_texture.py)


def test_demo_fidelity_under_spectral_segmenter(demo):
    seg, ex, images, masks = demo
    conds = [masks[i] for i in MIXED]
    syn = ex.synthesise(conds, [11] * len(conds))
    ones = np.ones((T, T), bool)
    scores = [miou(c, seg.classify(s, ones)) for c, s in zip(conds, syn, strict=True)]
    assert np.mean(scores) >= 0.6, scores
    for s in syn:
        assert s.shape == (4, T, T) and s.dtype == np.float32 and 0 <= s.min() and s.max() <= 1


def test_seeds_reproducible_and_visibly_different(demo):
    _, ex, _, masks = demo
    a, b = ex.synthesise([masks[8], masks[8]], [1, 2])
    assert (ex.synthesise([masks[8]], [1])[0] == a).all()
    assert np.abs(a - b).mean() > 0.04


def test_synthetic_texture_comes_from_the_class(demo):
    """A mask of one class gives an image whose pixels look like that class's real pixels."""
    seg, ex, _, _ = demo
    for k in (TREE, CROP, WATER):
        img = ex.synthesise([np.full((T, T), k, np.uint8)], [3])[0]
        patch_means = ex.pools[k].mean(axis=(2, 3))        # (n, C): real patches of class k
        mean = img.mean(axis=(1, 2))
        assert ((mean >= patch_means.min(0)) & (mean <= patch_means.max(0))).all()
        assert (seg.classify(img, np.ones((T, T), bool)) == k).mean() > 0.8


def _grid_spike(img, stride):
    """Power of the column / row mean-gradient profile at the patch stride, relative to nearby frequencies."""
    ratios = []
    for axis in (1, 2):
        prof = np.abs(np.diff(img.mean(axis=0), axis=axis - 1)).mean(axis=2 - axis)
        spec = np.abs(np.fft.rfft(prof - prof.mean()))
        f = len(prof) / stride
        lo, hi = int(np.floor(f)), int(np.ceil(f))
        peak = spec[lo:hi + 1].max()
        around = np.r_[spec[max(1, lo - 8):lo - 1], spec[hi + 2:hi + 10]]
        ratios.append(peak / np.median(around))
    return max(ratios)


def test_no_visible_patch_grid(demo):
    _, ex, _, _ = demo
    stride = ex.p["patch_size"] - ex.p["overlap"]
    for k in (CROP, WATER, TREE):
        imgs = ex.synthesise([np.full((T, T), k, np.uint8)] * 4, [0, 1, 2, 3])
        assert np.mean([_grid_spike(img, stride) for img in imgs]) < 3.0, k
    # the check does catch a grid: the same pool, naively tiled one patch per cell with hard seams
    rng = np.random.default_rng(0)
    pool = ex.pools[CROP]
    spikes = []
    for _ in range(4):
        naive = np.zeros((4, T, T), np.float32)
        for y in range(0, T, stride):
            for x in range(0, T, stride):
                p = pool[rng.integers(len(pool))]
                naive[:, y:y + stride, x:x + stride] = p[:, :min(stride, T - y), :min(stride, T - x)]
        spikes.append(_grid_spike(naive, stride))
    assert np.mean(spikes) > 5.0


def test_class_absent_from_aoi_fails_naming_it():
    probe = Exemplar({}, EngineContext())
    st = probe.fit([np.random.default_rng(0).random((4, 64, 64), dtype=np.float32)],
                   [np.full((64, 64), CROP, np.uint8)], [np.ones((64, 64), bool)])
    with pytest.raises(FailedPrecondition, match="Water is absent from the AOI"):
        probe.synthesise([np.full((64, 64), WATER, np.uint8)], [1], st)


def test_empty_mask_gives_all_nodata_zero_image(demo):
    _, ex, _, _ = demo
    out = ex.synthesise([np.full((T, T), NODATA, np.uint8)], [1])[0]
    assert out.shape == (4, T, T) and not out.any()


def test_nodata_pixels_of_the_mask_stay_zero(demo):
    _, ex, _, masks = demo
    m = masks[3].copy()
    m[:, :50] = NODATA
    out = ex.synthesise([m], [1])[0]
    assert not out[:, :, :50].any() and out[:, :, 60:].mean() > 0.05


def test_all_nodata_aoi_has_no_texture():
    ex = Exemplar({}, EngineContext())
    st = ex.fit([np.zeros((4, 64, 64), np.float32)], [np.full((64, 64), NODATA, np.uint8)],
                [np.zeros((64, 64), bool)])
    with pytest.raises(FailedPrecondition, match="no texture"):
        ex.synthesise([np.full((64, 64), CROP, np.uint8)], [1], st)


def test_three_band_rgb_job(demo):
    _, _, images, masks = demo
    ex = Exemplar({}, EngineContext(has_nir=False))
    st = ex.fit([i[:3] for i in images[:10]], masks[:10], [np.ones((T, T), bool)] * 10)
    out = ex.synthesise([masks[3]], [1], st)[0]
    assert out.shape == (3, T, T)
    with pytest.raises(InvalidArgument, match="3 or 4"):
        ex.fit([images[0][:2]], [masks[0]], [np.ones((T, T), bool)])


def test_bad_params_are_invalid():
    with pytest.raises(InvalidArgument, match="overlap"):
        Exemplar({"patch_size": 16, "overlap": 8})
    with pytest.raises(InvalidArgument, match="masks and"):
        Exemplar().synthesise([np.zeros((8, 8), np.uint8)], [1, 2])


def _darkest_block(img, block=32):
    """How much darker than the tile's median block its darkest block x block area is (relative)."""
    b = img[:3].mean(0)
    n = b.shape[0] // block
    means = b[:n * block, :n * block].reshape(n, block, n, block).mean(axis=(1, 3))
    return float((np.median(means) - means.min()) / np.median(means))


def test_open_water_has_no_dark_blocks_from_outlier_patches(demo):
    """The AOI's water pool mixes bright sea and dark estuary channels; a whole-pool draw lets a dark patch
    seed a block that its neighbours then match. Drawing from the class's typical look keeps sea tiles even."""
    seg, ex, images, masks = demo
    water = [np.full((T, T), WATER, np.uint8)] * 16       # 16 seeds: dark patches are about 1 in 5 of the pool
    assert max(_darkest_block(i) for i in ex.synthesise(water, list(range(16)))) < 0.15
    whole_pool = Exemplar({"style_share": 1.0}, ex.ctx)
    st = whole_pool.fit(images, masks, [np.ones((T, T), bool)] * len(images))
    assert max(_darkest_block(i) for i in whole_pool.synthesise(water, list(range(16)), st)) > 0.3   # the check bites


def test_tiles_smaller_than_patch_size_fail_naming_patch_size():
    """32 px tiles with patch_size 64: fit() cannot cut a single patch. The error must say so (it claimed that
    the AOI had no valid pixels)."""
    e = Exemplar({"patch_size": 64}, EngineContext(seed=0))
    img = np.random.default_rng(0).random((4, 32, 32)).astype(np.float32)
    mask = np.zeros((32, 32), np.uint8)
    with pytest.raises(InvalidArgument, match="patch_size"):
        e.fit([img], [mask], [np.ones((32, 32), bool)])


def test_the_source_tile_is_never_copied():
    """Tile t0's red band (~0.9) is unlike every other tile's: with t0 as the source nothing of it appears
    (neither patches nor small-region pixels). With all tiles alike, no 8 x 8 block of t0 appears when it is
    the source, and some do when no source is given (the check sees copies)."""
    from groundsynth.metrics import copies
    from groundsynth.metrics.realism import TileSet

    rng = np.random.default_rng(0)
    S = 64
    xx = np.mgrid[0:S, 0:S][1]
    masks = [np.where((xx // 16) % 2 == 0, GRASS, WATER).astype(np.uint8) for _ in range(4)]
    for m in masks:
        m[30:33, 40:43] = BUILT                                   # a small region: filled with real pixels
    images = [np.where(m[None] == GRASS, 0.4, 0.2).astype(np.float32) + 0.1 * rng.random((4, S, S), np.float32)
              for m in masks]
    valids, ids = [np.ones((S, S), bool)] * 4, [f"t{i}" for i in range(4)]
    ex = Exemplar({"patch_size": "16", "overlap": "4"}, EngineContext(seed=0))
    marked = [im.copy() for im in images]
    marked[0][0] = 0.9 + 0.02 * rng.random((S, S))
    state = ex.fit(marked, masks, valids, ids)
    for seed in range(3):
        assert ex.synthesise([masks[0]], [seed], state, ["t0"])[0][0].max() < 0.6
    state = ex.fit(images, masks, valids, ids)
    ref = TileSet.from_float(images[:1], masks[:1])
    own = copies.hash_set(ref.images, [ref.valid(0)])

    def copied(source):
        out = [ex.synthesise([masks[0]], [seed], state, source)[0] for seed in range(3)]
        return [copies.copied_share(TileSet.from_float([o], masks[:1]).images[0], ref.valid(0), own) for o in out]

    assert copied(["t0"]) == [0, 0, 0]
    assert max(copied(None)) > 0.02


def test_fit_memory_does_not_grow_with_its_sample(demo):
    """The fit keeps a bounded sample per class (pool_size patches, 16,384 pixels), not every candidate patch:
    before, each fit tile added about 5.8 MiB until the pool was drawn at the end (docs/scale-out.md)."""
    import tracemalloc

    _, _, images, masks = demo
    ex = Exemplar({}, EngineContext(seed=3))
    peaks = {}
    for n in (6, 24):
        tracemalloc.start()
        try:
            st = ex.fit(images[:n], masks[:n], [np.ones((T, T), bool)] * n)
            peaks[n] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert all(len(p) <= 256 for p in st.pools.values())
    assert peaks[24] < 1.3 * peaks[6], peaks
