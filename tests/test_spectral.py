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


# reflectances (R, G, B, NIR) chosen to hit one rule each (the rules of issue 11, see spectral.py)
CASES = {
    WATER: (0.05, 0.08, 0.10, 0.03),       # NDWI 0.45 > 0.1
    TREE: (0.03, 0.06, 0.04, 0.35),        # NDVI 0.84, dark
    CROP: (0.08, 0.12, 0.09, 0.50),        # NDVI 0.72, brightness 0.097: a vigorous field, too bright for Tree
    GRASS: (0.07, 0.08, 0.07, 0.085),      # NDVI 0.1, NDWI -0.03: wet low vegetation = herbaceous wetland
    SHRUB: (0.08, 0.09, 0.085, 0.166),     # NDVI 0.35, brightness 0.085, smooth: sparse woody regrowth
    BARREN: (0.25, 0.24, 0.22, 0.28),      # NDVI 0.06, NDWI -0.08 (dry), bright sand
}
SWIR_STRETCH = {"low": [0.0] * 6, "high": [10000.0] * 6}


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
    from groundsynth.tiling.source import Stretch, land_pixels

    path = demo_raster(tmp_path_factory.mktemp("demo"))
    with rasterio.open(path) as ds:
        raw = ds.read().astype(np.float32)
    valid = (raw > 0).all(0)
    sample, sample_valid = raw[:, ::4, ::4], valid[::4, ::4]
    stretch = Stretch.from_sample(sample, sample_valid, land=land_pixels(sample, sample_valid, True))
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


# ------------------------------------------------------------------ issue 11: the rules fixed against the reference

def _swir_engine(**params):
    return Spectral(params, EngineContext(extra={"stretch": SWIR_STRETCH, "swir_roles": ["swir1", "swir2"]}))


def _with_swir(rgbn, s1, size=16):
    return _patch(*rgbn, size=size), np.full((2, size, size), s1, np.float32)


def test_sea_foam_is_water_not_barren_with_and_without_swir():
    foam = (0.26, 0.28, 0.27, 0.24)                 # bright like sand, but NDWI 0.08 and SWIR-dark
    valid = np.ones((16, 16), bool)
    assert (_engine(smoothing=1).classify(_patch(*foam), valid) == WATER).all()
    img, swir = _with_swir(foam, 0.06)              # MNDWI 0.65
    assert (_swir_engine(smoothing=1).classify(img, valid, swir) == WATER).all()
    img, swir = _with_swir(CASES[BARREN], 0.30)     # dry sand stays Barren with SWIR
    assert (_swir_engine(smoothing=1).classify(img, valid, swir) == BARREN).all()


def test_marsh_is_grass_with_swir_where_ndwi_alone_calls_it_water():
    marsh = (0.05, 0.07, 0.06, 0.047)               # NDWI 0.2, but SWIR1 0.04 -> MNDWI 0.27 < 0.45
    valid = np.ones((16, 16), bool)
    assert (_engine(smoothing=1).classify(_patch(*marsh), valid) == WATER).all()
    img, swir = _with_swir(marsh, 0.04)
    assert (_swir_engine(smoothing=1).classify(img, valid, swir) == GRASS).all()
    img, swir = _with_swir(CASES[WATER], 0.01)      # open water: MNDWI 0.78
    assert (_swir_engine(smoothing=1).classify(img, valid, swir) == WATER).all()


def test_crop_fallback_is_guarded_dark_woods_are_tree_and_swir_finds_leafless_forest():
    valid = np.ones((16, 16), bool)
    dark = (0.05, 0.06, 0.05, 0.075)                # NDVI 0.2, brightness 0.053, dry: shaded woods, not fallow
    assert (_engine(smoothing=1).classify(_patch(*dark), valid) == TREE).all()
    leafless = (0.06, 0.07, 0.06, 0.13)             # NDVI 0.37: a field by NDVI alone ...
    assert (_engine(smoothing=1).classify(_patch(*leafless), valid) == CROP).all()
    img, swir = _with_swir(leafless, 0.09)          # ... but moist canopy absorbs SWIR1
    assert (_swir_engine(smoothing=1).classify(img, valid, swir) == TREE).all()
    img, swir = _with_swir(CASES[CROP], 0.23)       # a field reflects SWIR1: stays Crop
    assert (_swir_engine(smoothing=1).classify(img, valid, swir) == CROP).all()


def test_bright_textured_sand_is_barren_and_darker_texture_built_up():
    rng = np.random.default_rng(4)
    noise = (1 + 0.35 * rng.standard_normal((32, 32))).astype(np.float32)
    valid = np.ones((32, 32), bool)
    sand = np.clip(_patch(0.22, 0.21, 0.19, 0.24, size=32) * noise, 0, 1)      # rippled dunes, brightness ~0.2
    town = np.clip(_patch(0.10, 0.10, 0.09, 0.11, size=32) * noise, 0, 1)      # roofs and streets, ~0.1
    eng = _engine(smoothing=1)
    assert (eng.classify(sand, valid) == BARREN).mean() > 0.6
    assert (eng.classify(town, valid) == BUILT).mean() > 0.6


def test_swir_channels_without_a_swir1_role_are_ignored():
    img, swir = _with_swir((0.05, 0.07, 0.06, 0.047), 0.04)
    eng = Spectral({"smoothing": 1}, EngineContext(extra={"stretch": SWIR_STRETCH, "swir_roles": []}))
    assert (eng.classify(img, np.ones((16, 16), bool), swir) == WATER).all()     # NDWI rule, as without SWIR


def test_the_job_stretch_does_not_clip_bright_land_on_a_mostly_water_scene():
    from groundsynth.tiling.source import Stretch, land_pixels

    rng = np.random.default_rng(0)
    n = 20000
    water = rng.random(n) < 0.9                                   # 90 % water, as the demo's estuary
    green = np.where(water, rng.normal(800, 40, n), rng.normal(1000, 150, n))
    nir = np.where(water, rng.normal(300, 30, n), rng.normal(2500, 400, n))
    sand = ~water & (rng.random(n) < 0.1)                         # bright bare ground: 1 % of the scene
    red = np.where(water, rng.normal(600, 30, n), np.where(sand, rng.normal(2400, 100, n), rng.normal(900, 100, n)))
    data = np.stack([red, green, red * 0.9, nir])[:, None, :].astype(np.float32)
    valid = np.ones((1, n), bool)
    old = Stretch.from_sample(data, valid, pct=(2.0, 98.0))       # the stretch before issue 11
    new = Stretch.from_sample(data, valid, land=land_pixels(data, valid, True))
    clipped_old = np.mean(old.apply(data)[0, 0, sand] >= 1.0)
    clipped_new = np.mean(new.apply(data)[0, 0, sand] >= 1.0)
    assert clipped_old > 0.9 and clipped_new < 0.05
    assert new.low[0] <= np.percentile(red[water], 5)             # water is not crushed at the bottom either
    assert land_pixels(data, valid, False) is None                # no NIR: no land mask, all valid pixels


def test_swir_bands_are_found_by_description_or_index_and_checked(tmp_path):
    from groundsynth.request.errors import InvalidArgument
    from groundsynth.request.spec import BandMapping
    from groundsynth.tiling.source import SourceRaster
    from tests.helpers_rasters import write_raster

    path = write_raster(tmp_path / "six.tif", width=32, height=32, count=6)
    with rasterio.open(path, "r+") as ds:
        for i, d in enumerate(("red", "green", "blue", "nir", "B11", "swir2"), start=1):
            ds.set_band_description(i, d)
    with SourceRaster(path, BandMapping()) as src:
        assert src.indexes == [1, 2, 3, 4, 5, 6] and src.swir_roles == ["swir1", "swir2"] and src.n_main == 4
        raw, _ = src.read_window(0, 0, 8, 8)
        assert raw.shape == (6, 8, 8)
    with SourceRaster(path, BandMapping(swir1=6, swir2=-1)) as src:
        assert src.indexes == [1, 2, 3, 4, 6] and src.swir_roles == ["swir1"]
    with SourceRaster(write_raster(tmp_path / "four.tif", width=32, height=32), BandMapping()) as src:
        assert src.swir_indexes == [] and src.indexes == [1, 2, 3, 4]
    with pytest.raises(InvalidArgument) as e:
        SourceRaster(path, BandMapping(swir1=9))
    assert e.value.field == "bands.swir1"
