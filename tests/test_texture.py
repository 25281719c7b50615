"""synthesise/texture on constructed exemplars: right colours in the right places, never its source tile,
seeded bytes, appearance-mode diversity, RGB-only tiles, layout/boost masks, the exemplar raster."""
import pickle

import numpy as np
import pytest

from groundsynth.engines import get_engine
from groundsynth.engines.base import EngineContext
from groundsynth.engines.builtin.texture import Texture
from groundsynth.engines.mask_strategies import AoiStats, condition_mask
from groundsynth.metrics import copies
from groundsynth.metrics.realism import TileSet
from groundsynth.request.classes import NODATA
from groundsynth.request.errors import FailedPrecondition, InvalidArgument

T = 64
GRASS, WATER, BUILT = 2, 6, 4
GREEN = np.array([0.25, 0.60, 0.20, 0.70], np.float32)
BLUE = np.array([0.10, 0.20, 0.50, 0.05], np.float32)


def stripes(vertical: bool = True, width: int = 8) -> np.ndarray:
    yy, xx = np.mgrid[0:T, 0:T]
    return np.where(((xx if vertical else yy) // width) % 2 == 0, GRASS, WATER).astype(np.uint8)


def paint(mask: np.ndarray, rng: np.random.Generator, colours: dict, channels: int = 4) -> np.ndarray:
    img = np.zeros((channels, T, T), np.float32)
    for k, c in colours.items():
        img[:, mask == k] = np.asarray(c, np.float32)[:channels, None]
    return np.clip(img + 0.03 * rng.standard_normal(img.shape), 0, 1).astype(np.float32)


def fitted(images, masks, params=None, ids=None):
    eng = Texture(params or {}, EngineContext(seed=0))
    valids = [np.ones(m.shape, bool) for m in masks]
    return eng, eng.fit(images, masks, valids, ids if ids is not None else [f"t{i}" for i in range(len(images))])


@pytest.fixture(scope="module")
def stripe_pool():
    rng = np.random.default_rng(0)
    masks = [stripes() for _ in range(4)]
    images = [paint(m, rng, {GRASS: GREEN, WATER: BLUE}) for m in masks]
    return (*fitted(images, masks), images, masks)


def _interior(mask: np.ndarray, k: int) -> np.ndarray:
    from scipy import ndimage

    return ndimage.binary_erosion(mask == k, iterations=2)


def test_is_registered_selectable_and_the_default_synthesiser():
    assert get_engine("synthesise", "texture") is Texture
    assert get_engine("synthesise", "") is Texture


def test_a_stripe_exemplar_gives_stripes_of_the_right_colours(stripe_pool):
    eng, state, _, _ = stripe_pool
    target = stripes(vertical=False, width=16)             # another layout: horizontal, wider stripes
    out = eng.synthesise([target], [3], state, ["t0"])[0]
    assert out.shape == (4, T, T) and out.dtype == np.float32
    for k, colour in ((GRASS, GREEN), (WATER, BLUE)):
        inner = out[:, _interior(target, k)]
        assert np.abs(inner.mean(axis=1) - colour).max() < 0.02            # the class's colour...
        assert 0.01 < inner.std(axis=1).mean() < 0.06                       # ...with its real texture, not flat
        other = BLUE if k == GRASS else GREEN
        assert (np.abs(inner - colour[:, None]).sum(0) < np.abs(inner - other[:, None]).sum(0)).mean() > 0.99


def test_same_seed_same_bytes_other_seeds_differ_and_the_state_pickles(stripe_pool):
    eng, state, _, masks = stripe_pool
    a = eng.synthesise([masks[0]], [7], state, ["t1"])[0]
    again = eng.synthesise([masks[0]], [7], pickle.loads(pickle.dumps(state)), ["t1"])[0]
    assert a.tobytes() == again.tobytes()
    b = eng.synthesise([masks[0]], [8], state, ["t1"])[0]
    assert (a != b).mean() > 0.5


def test_the_source_tile_is_never_copied():
    """Tile t0 has a red band (~0.9) no other tile has: with t0 as the source, nothing of it appears;
    without the exclusion it does (so the check can see copies)."""
    rng = np.random.default_rng(1)
    masks = [stripes() for _ in range(4)]
    images = [paint(m, rng, {GRASS: GREEN, WATER: BLUE}) for m in masks]
    images[0][0] = 0.9 + 0.02 * rng.random((T, T))
    eng, state = fitted(images, masks)
    ref = TileSet.from_float(images[:1], masks[:1])
    own = copies.hash_set(ref.images, [ref.valid(0)])
    seen = []
    for seed in range(3):
        out = eng.synthesise([masks[0]], [seed], state, ["t0"])[0]
        assert out[0].max() < 0.5                                    # not one pixel of t0 (no blend of it either)
        S = TileSet.from_float([out], masks[:1])
        assert copies.copied_share(S.images[0], S.valid(0), own) == 0
        free = eng.synthesise([masks[0]], [seed], state)[0]          # no source given: t0 is in the pool
        seen.append(float((free[0] > 0.8).mean()))
    assert max(seen) > 0.05


def test_a_class_only_in_the_source_tile_takes_the_nearest_class_and_an_absent_class_is_refused():
    rng = np.random.default_rng(2)
    masks = [stripes() for _ in range(3)]
    masks[0][:, :8] = BUILT                                       # Built-up only in t0
    images = [paint(m, rng, {GRASS: GREEN, WATER: BLUE, BUILT: [0.4, 0.35, 0.3, 0.3]}) for m in masks]
    eng, state = fitted(images, masks)
    out = eng.synthesise([masks[0]], [0], state, ["t0"])[0]
    assert np.isfinite(out).all() and out[:, masks[0] == BUILT].std() > 0
    no_built = [np.where(m == BUILT, GRASS, m).astype(np.uint8) for m in masks]
    eng2, state2 = fitted(images, no_built)
    with pytest.raises(FailedPrecondition, match="Built-up is absent from the texture pool"):
        eng2.synthesise([masks[0]], [0], state2)


def _squares() -> np.ndarray:
    m = np.full((T, T), WATER, np.uint8)
    for y in range(2, T, 16):
        for x in range(2, T, 16):
            m[y:y + 11, x:x + 11] = GRASS
    return m


def test_diversity_zero_keeps_the_common_look_and_higher_diversity_mixes_looks():
    """Grass has two appearance modes in the pool (dark in three tiles, light in one): with diversity 0
    every field takes the common dark look; with diversity 4 some fields are light."""
    from scipy import ndimage

    rng = np.random.default_rng(3)
    masks = [stripes() for _ in range(4)]
    dark, light = [0.15, 0.35, 0.10, 0.5], [0.55, 0.75, 0.45, 0.8]
    images = [paint(m, rng, {GRASS: dark if t < 3 else light, WATER: BLUE}) for t, m in enumerate(masks)]
    target = _squares()
    lab, n = ndimage.label(target == GRASS)

    def field_greens(params, seed):
        eng, state = fitted(images, masks, params)
        out = eng.synthesise([target], [seed], state)[0]
        return np.array([out[1][lab == i].mean() for i in range(1, n + 1)])

    for seed in range(2):
        assert (field_greens({"diversity": 0.0}, seed) < 0.5).all()
    mixed = np.concatenate([field_greens({"diversity": 4.0}, seed) for seed in range(3)])
    assert (mixed > 0.6).any() and (mixed < 0.5).any()


def test_rgb_only_tiles_and_layout_and_boost_masks():
    rng = np.random.default_rng(4)
    masks = [stripes() for _ in range(4)]
    images = [paint(m, rng, {GRASS: GREEN, WATER: BLUE}, channels=3) for m in masks]
    eng, state = fitted(images, masks)
    stats = AoiStats.from_masks(masks)
    layout = condition_mask("layout", masks[0], {}, stats, 5)
    boost = condition_mask("boost", masks[0], {"Water": 0.8}, stats, 5)
    with_nodata = masks[0].copy()
    with_nodata[:10] = NODATA
    outs = eng.synthesise([layout, boost, with_nodata], [1, 2, 3], state, ["t0"] * 3)
    for out, m in zip(outs, (layout, boost, with_nodata), strict=True):
        assert out.shape == (3, T, T)
        inner = out[:, _interior(m, WATER)]
        assert np.abs(inner.mean(axis=1) - BLUE[:3]).max() < 0.03
    assert (outs[2][:, :10] == 0).all()                        # nodata stays 0


def test_bad_arguments_name_the_problem(stripe_pool):
    eng, state, _, masks = stripe_pool
    with pytest.raises(InvalidArgument, match="odd"):
        Texture({"patch": "4"}, EngineContext())
    with pytest.raises(InvalidArgument, match="source ids"):
        eng.synthesise(masks[:2], [1, 2], state, ["t0"])
    with pytest.raises(FailedPrecondition, match="state"):
        eng.synthesise(masks[:1], [1])
    with pytest.raises(InvalidArgument, match="too small"):
        fitted([np.zeros((4, 5, 5), np.float32)], [np.full((5, 5), GRASS, np.uint8)])     # no 5 px patch and a pixel


def test_a_user_exemplar_raster_gives_a_class_the_aoi_lacks(tmp_path):
    """The AOI has no Water; the exemplar raster (a crop of the demo scene, mostly sea) gives it."""
    import rasterio

    from groundsynth.demo.scene import demo_raster

    with rasterio.open(demo_raster(tmp_path / "data")) as ds:
        window = rasterio.windows.Window(1024, 1024, 256, 256)
        data = ds.read(window=window)
        profile = ds.profile | {"width": 256, "height": 256, "transform": ds.window_transform(window)}
    path = tmp_path / "exemplar.tif"
    with rasterio.open(path, "w", **profile) as out:
        out.write(data)
    rng = np.random.default_rng(5)
    land = [np.where(stripes() == WATER, BUILT, GRASS).astype(np.uint8) for _ in range(3)]
    images = [paint(m, rng, {GRASS: GREEN, BUILT: [0.4, 0.35, 0.3, 0.3]}) for m in land]
    target = stripes()
    eng, state = fitted(images, land)
    with pytest.raises(FailedPrecondition, match="Water is absent"):
        eng.synthesise([target], [0], state)
    eng, state = fitted(images, land, {"exemplar_raster": str(path)})
    assert any(i.startswith("exemplar_raster#") for i in state.tile_ids)
    out = eng.synthesise([target], [0], state, ["t0"])[0]
    water = out[:, _interior(target, WATER)]
    assert water[3].mean() < water[1].mean() + 0.05 and np.abs(water.mean(axis=1) - GREEN).max() > 0.1
    with pytest.raises(Exception, match="no such exemplar raster"):
        fitted(images, land, {"exemplar_raster": str(tmp_path / "missing.tif")})


def test_a_class_the_coarse_levels_of_the_pool_lack_still_gets_its_real_pixels():
    """In the pool Built-up is only a 1 px road, which the coarse pyramid levels lose; the target has a wide
    Built-up band: those levels match it as the nearest class, the finest level takes real road pixels."""
    rng = np.random.default_rng(6)
    masks = [stripes() for _ in range(3)]
    for m in masks:
        m[31, :] = BUILT
    road = [0.6, 0.55, 0.5, 0.45]
    images = [paint(m, rng, {GRASS: GREEN, WATER: BLUE, BUILT: road}) for m in masks]
    # the class-consistent vote: the band's pixels take only copied road pixels (the plain vote would mix
    # in the grass and water that surround every road patch of the pool)
    eng, state = fitted(images, masks, {"other_class_vote": 0.001})
    target = stripes(vertical=False, width=16)
    target[40:48, :] = BUILT
    out = eng.synthesise([target], [0], state, ["t1"])[0]
    assert np.abs(out[:, 41:47].mean(axis=(1, 2)) - road).max() < 0.05


def test_check_job_refuses_what_the_engine_cannot_serve_at_submit(tmp_path):
    from groundsynth.request.spec import Aoi, JobSpec, StageConfig

    def spec(tile_size=256, **params):
        return JobSpec(aoi=Aoi(bbox=(0, 0, 1, 1)), raster_path="/x.tif", tile_size=tile_size,
                       stages=[StageConfig("synthesise", "texture", {k: str(v) for k, v in params.items()})])

    Texture.check_job(spec())                                       # the defaults serve 256 px tiles
    Texture.check_job(spec(tile_size=32))                           # and small ones, with fewer levels
    for s, field in ((spec(patch=4), "patch"), (spec(tile_size=8, patch=9), "patch"),
                     (spec(exemplar_raster=tmp_path / "none.tif"), "exemplar_raster")):
        with pytest.raises(InvalidArgument) as err:
            Texture.check_job(s)
        assert err.value.field == f"stages[synthesise].params.{field}"


def test_tiles_too_small_for_the_levels_get_fewer_levels_not_an_error():
    """32 px tiles cannot hold 4 levels of 5 px patches (the coarsest would be 4 px): the fit keeps 3, and
    synthesis on such tiles works; the levels a tile size allows are what usable_levels says."""
    from groundsynth.engines.builtin._texture_fit import usable_levels

    assert [usable_levels(s, 4, 5) for s in (256, 64, 48, 32, 16, 8, 5)] == [4, 4, 4, 3, 2, 1, 0]
    rng = np.random.default_rng(3)
    masks = [np.where(np.arange(32)[None, :] < 12 + i, 2, 6).repeat(32, 0).astype(np.uint8) for i in range(4)]
    imgs = [np.where(m == 2, 0.3, 0.1)[None].repeat(4, 0) + rng.random((4, 32, 32)) * 0.05 for m in masks]
    eng = Texture({}, EngineContext(seed=0))
    st = eng.fit(imgs, masks, [np.ones((32, 32), bool)] * 4, ["a", "b", "c", "d"])
    assert st.levels == 3
    out = eng.synthesise([masks[0]], [1], st, ["a"])[0]
    assert out.shape == (4, 32, 32)
    assert abs(float(out[:, masks[0] == 2].mean()) - 0.325) < 0.03 and abs(float(out[:, masks[0] == 6].mean()) - 0.125) < 0.03


def test_source_draws_skip_the_excluded_tile_without_a_copy_of_the_pool(stripe_pool):
    """Draws of source pixels never land in the excluded tile and cover every other tile; the allowed pixels
    are kept once per level (int32 where the pool allows), not filtered into a copy per source tile (which a
    worker meeting every tile of a 64-tile job held at over 1 GB)."""
    from groundsynth.engines.builtin import _patchmatch as pm
    from groundsynth.engines.builtin import _texture_pool as tp

    _, state, _, _ = stripe_pool
    lv = tp.levels(state)[0]
    assert all(v.dtype == np.int32 for v in lv.by_class.values())
    tg = pm.Target(8, 8, np.full(64, GRASS, np.uint8), np.zeros(64, np.uint8), np.zeros((64, 1), np.float32))
    rng = np.random.default_rng(0)
    for exclude in range(len(state.tile_ids)):
        tiles = np.concatenate([pm.draw(lv, tg, rng, exclude) for _ in range(20)]) // lv.hw
        assert exclude not in tiles and set(tiles) == set(range(len(state.tile_ids))) - {exclude}
    assert not hasattr(lv, "_sources")


def test_the_fit_leaves_the_search_arrays_to_each_process_and_prepare_builds_them():
    """fit returns the state without deriving the search arrays (in a process pool each worker derives its own
    after the fit, side by side); prepare derives them now, and synthesise would on first use."""
    from groundsynth.engines.builtin import _texture_pool as tp

    rng = np.random.default_rng(5)
    masks = [stripes() for _ in range(2)]
    images = [paint(m, rng, {GRASS: GREEN, WATER: BLUE}) for m in masks]
    eng, state = fitted(images, masks)
    assert state.token not in tp._CACHE
    eng.prepare(state)
    assert state.token in tp._CACHE and len(tp._CACHE[state.token]) == state.levels


def test_a_finer_level_starts_from_the_pixels_its_upsampled_field_points_at_not_a_vote(stripe_pool, monkeypatch):
    from groundsynth.engines.builtin import _patchmatch as pm

    eng, state, _, masks = stripe_pool
    votes, starts = [], []
    real_vote, real_copy = pm.vote, pm.copy_pixels
    monkeypatch.setattr(pm, "vote", lambda lv, tg, *a, **k: votes.append(tg.H) or real_vote(lv, tg, *a, **k))

    def copy(lv, tg, nnf):
        out = real_copy(lv, tg, nnf)
        # every pixel is the source pixel it is matched to, on the vote's 0..1 scale
        assert np.allclose(out.reshape(out.shape[0], -1), (lv.pix[:, nnf].astype(np.float32) - 1) / 254)
        starts.append(tg.H)
        return out

    monkeypatch.setattr(pm, "copy_pixels", copy)
    eng.synthesise([masks[0]], [5], state, ["t1"])
    sizes = [T >> li for li in range(state.levels - 1, -1, -1)]
    iters = [max(1, eng.p["iterations"] // 2 ** (state.levels - 1 - li)) for li in range(state.levels - 1, -1, -1)]
    assert starts == sizes[1:]                                  # every finer level, once
    assert votes == [sizes[0]] + [s for s, n in zip(sizes, iters, strict=True) for _ in range(n)]  # one per E step
