"""segment/spectral: each rule on hand-made reflectances, parameters, RGB fallback, and the demo scene."""

import numpy as np
import pytest
import rasterio

from groundsynth.engines import get_engine
from groundsynth.engines.base import EngineContext, TileInput
from groundsynth.engines.builtin.spectral import Spectral, majority_filter
from groundsynth.request.classes import CLASS_NAMES, NODATA

TREE, SHRUB, GRASS, CROP, BUILT, BARREN, WATER = range(7)
# stretch that maps [0, 1] straight to reflectance (DN 0..10000, auto scale 10000)
IDENTITY = {"low": [0.0] * 4, "high": [10000.0] * 4}


def _patch(r, g, b, n, size=16):
    return np.broadcast_to(np.array([r, g, b, n], np.float32)[:, None, None], (4, size, size)).copy()


# reflectances (R, G, B, NIR) chosen to hit one rule each
CASES = {
    WATER: (0.05, 0.08, 0.10, 0.03),       # NDWI > 0
    TREE: (0.03, 0.06, 0.04, 0.35),        # NDVI 0.84, dark
    CROP: (0.06, 0.10, 0.07, 0.45),        # NDVI 0.76, bright
    GRASS: (0.08, 0.09, 0.07, 0.17),       # NDVI 0.36
    SHRUB: (0.05, 0.06, 0.05, 0.08),       # NDVI 0.23, dark
    BARREN: (0.25, 0.24, 0.22, 0.28),      # NDVI 0.06, bright sand
}


def _engine(**params):
    return Spectral(params, EngineContext(extra={"stretch": IDENTITY}))


@pytest.mark.parametrize("cls", sorted(CASES))
def test_each_rule_classifies_its_reflectance(cls):
    img = _patch(*CASES[cls])
    mask = _engine(smoothing=1).classify(img, np.ones(img.shape[1:], bool))
    assert (mask == cls).all(), f"{CLASS_NAMES[cls]} expected, got {np.bincount(mask.ravel())}"


def test_textured_low_vegetation_is_built_up_and_smooth_is_fallow_crop():
    rng = np.random.default_rng(0)
    smooth = _patch(0.09, 0.09, 0.08, 0.11, size=32)             # NDVI 0.1, mid brightness, smooth
    # roofs, shadows, roads: brightness varies from pixel to pixel while the indices stay put
    textured = smooth * (1 + 0.6 * rng.standard_normal((32, 32)).astype(np.float32))
    valid = np.ones((32, 32), bool)
    eng = _engine(smoothing=1)
    assert (eng.classify(smooth, valid) == CROP).all()
    built = eng.classify(np.clip(textured, 0, 1), valid)
    assert (built == BUILT).mean() > 0.7


def test_thresholds_are_parameters():
    img = _patch(*CASES[WATER])
    valid = np.ones(img.shape[1:], bool)
    assert (_engine(water_ndwi=0.9).classify(img, valid) != WATER).all()
    tree = _patch(*CASES[TREE])
    assert (_engine(tree_brightness=0.01).classify(tree, valid) == CROP).all()


def test_invalid_pixels_are_nodata_and_majority_filter_removes_speckle():
    img = _patch(*CASES[CROP], size=32)
    img[:, 10, 10] = CASES[WATER]                       # one speckle pixel
    valid = np.ones((32, 32), bool)
    valid[:4] = False
    mask = _engine(smoothing=5).classify(img, valid)
    assert (mask[:4] == NODATA).all()
    assert mask[10, 10] == CROP and (mask[4:] == CROP).all()
    raw = np.zeros((9, 9), np.uint8)
    raw[4, 4] = 6
    assert (majority_filter(raw, np.ones_like(raw, bool), 3) == 0).all()


def test_all_nodata_tile_is_all_nodata():
    img = np.zeros((4, 32, 32), np.float32)
    mask = _engine().classify(img, np.zeros((32, 32), bool))
    assert mask.dtype == np.uint8 and (mask == NODATA).all()


def test_rgb_only_fallback_still_separates_water_and_vegetation():
    valid = np.ones((16, 16), bool)
    eng = Spectral({"smoothing": 1}, EngineContext(has_nir=False, extra={"stretch": {"low": [0] * 3, "high": [10000] * 3}}))
    water = eng.classify(_patch(0.05, 0.08, 0.20, 0)[:3], valid)     # clearly bluer than red in the stretch
    land = eng.classify(_patch(0.12, 0.11, 0.13, 0)[:3], valid)      # blue largest, but only slightly (TOA haze)
    veg = eng.classify(_patch(0.04, 0.12, 0.05, 0)[:3], valid)
    assert (water == WATER).all()
    assert not (land == WATER).any()
    assert np.isin(veg, [TREE, CROP, GRASS]).all()


def test_is_the_default_segmenter_and_deterministic():
    assert get_engine("segment", "") is Spectral
    rng = np.random.default_rng(1)
    img = rng.random((4, 64, 64), dtype=np.float32)
    tiles = [TileInput("t", img, np.ones((64, 64), bool))]
    eng = _engine()
    assert (eng.segment(tiles)[0] == eng.segment(tiles)[0]).all()


@pytest.fixture(scope="module")
def demo_crop(tmp_path_factory):
    from groundsynth.demo.scene import demo_raster
    from groundsynth.tiling.source import Stretch

    path = demo_raster(tmp_path_factory.mktemp("demo"))
    with rasterio.open(path) as ds:
        raw = ds.read().astype(np.float32)
    valid = (raw > 0).all(0)
    stretch = Stretch.from_sample(raw[:, ::4, ::4], valid[::4, ::4])
    return raw, stretch.apply(raw), valid, stretch


def test_demo_scene_classes_follow_the_indices(demo_crop):
    raw, img, valid, stretch = demo_crop
    eng = Spectral({}, EngineContext(extra={"stretch": stretch.to_dict()}))
    y, x = slice(0, 1024), slice(512, 1536)          # farmland, marsh, estuary and open water
    mask = eng.classify(img[:, y, x], valid[y, x])
    refl = raw[:, y, x] / 10000
    r, g, b, n = refl
    ndwi = (g - n) / (g + n)
    ndvi = (n - r) / (n + r)
    found = set(np.unique(mask)) - {NODATA}
    assert {WATER, CROP, TREE} <= found                       # coastal farmland with forest and sea
    assert (mask[ndwi > 0.3] == WATER).mean() > 0.97          # clear water is water
    dense_dark = (ndvi > 0.6) & ((r + g + b) / 3 < 0.068)
    assert dense_dark.sum() > 1000 and (mask[dense_dark] == TREE).mean() > 0.9
    assert np.isin(mask[ndvi > 0.55], [WATER, BARREN, BUILT]).mean() < 0.01   # only at smoothed edges


def test_nodata_border_does_not_make_a_built_up_fringe():
    """Texture must be measured over valid pixels only: the step from smooth soil to nodata (AOI polygon or
    raster edge) is not a built-up texture."""
    soil = (0.10, 0.09, 0.08, 0.12)                               # smooth, moderately dark, NDVI 0.09: fallow Crop
    img = _patch(*soil, size=48)
    valid = np.ones((48, 48), bool)
    valid[:, 30:] = False
    valid[36:, :] = False
    img[:, ~valid] = 0.0
    m = Spectral({}, EngineContext(extra={"stretch": IDENTITY})).classify(img, valid)
    assert (m[~valid] == NODATA).all()
    assert (m[valid] == CROP).all(), np.unique(m[valid], return_counts=True)
