"""Mask strategies: real, boost (grow / transplant, exact shares, organic shapes), layout, bad inputs."""
import numpy as np
import pytest
from scipy import ndimage

from groundsynth.engines.mask_strategies import AoiStats, condition_mask
from groundsynth.request.classes import NODATA, composition
from groundsynth.request.errors import FailedPrecondition, InvalidArgument

TREE, SHRUB, GRASS, CROP, BUILT, BARREN, WATER = range(7)


def _blobby_mask(seed, classes=(TREE, CROP, WATER, BUILT), size=128):
    """A plausible mask: the argmax of smooth random fields per class."""
    rng = np.random.default_rng(seed)
    fields = np.stack([ndimage.gaussian_filter(rng.standard_normal((size, size)), 8) for _ in classes])
    return np.asarray(classes, np.uint8)[fields.argmax(0)]


@pytest.fixture(scope="module")
def aoi():
    masks = [_blobby_mask(s) for s in range(6)]
    masks.append(_blobby_mask(99, classes=(CROP, GRASS, BARREN)))   # Grass/Barren only in this tile
    return masks, AoiStats.from_masks(masks)


def test_aoi_stats_shares_and_region_sizes(aoi):
    masks, stats = aoi
    expected = np.mean([composition(m) for m in masks], axis=0)      # equal-size tiles
    assert np.allclose(stats.shares, expected)
    assert stats.present[GRASS] and not stats.present[SHRUB]
    assert stats.region_size[TREE] > 10 and stats.region_size[SHRUB] == 0


def test_real_is_a_copy(aoi):
    masks, stats = aoi
    out = condition_mask("real", masks[0], {}, stats, 1)
    assert (out == masks[0]).all() and out is not masks[0]


def _is_rectangle(region):
    lab, n = ndimage.label(region)
    for sl in ndimage.find_objects(lab):
        if sl is not None and region[sl].all() and region[sl].size > 50:
            return True
    return False


def test_boost_grows_present_class_to_target_with_organic_shapes(aoi):
    masks, stats = aoi
    real = masks[0].copy()
    real[:10, :10] = NODATA
    out = condition_mask("boost", real, {"Water": 0.5}, stats, 3)
    assert abs(composition(out)[WATER] - 0.5) < 0.01
    assert (out[:10, :10] == NODATA).all() and (out[real == NODATA] == NODATA).all()
    assert (out[real == WATER] == WATER).all()                      # grows, keeps the old water
    added = (out == WATER) & (real != WATER)
    assert added.sum() > 1000 and not _is_rectangle(added)
    # the new water touches the old (grown from it), and its outline is irregular
    assert (ndimage.binary_dilation(real == WATER) & added).any()
    assert not (condition_mask("boost", real, {"Water": 0.5}, stats, 4) == out).all()   # seed matters
    assert (condition_mask("boost", real, {"Water": 0.5}, stats, 3) == out).all()       # reproducible


def test_boost_transplants_class_absent_from_tile_but_in_aoi(aoi):
    masks, stats = aoi
    real = masks[0]
    assert not (real == GRASS).any()
    out = condition_mask("boost", real, {"grass": 0.2, "Tree": 0.3}, stats, 5)
    comp = composition(out)
    assert abs(comp[GRASS] - 0.2) < 0.01 and comp[TREE] >= 0.3 - 0.01
    assert not _is_rectangle(out == GRASS)


def test_boost_class_absent_from_aoi_fails_naming_it(aoi):
    masks, stats = aoi
    with pytest.raises(FailedPrecondition, match="Shrub is absent from the AOI") as err:
        condition_mask("boost", masks[0], {"Shrub": 0.2}, stats, 1)
    assert err.value.field == "synthesis.boost_targets"


def test_boost_bad_targets_are_invalid(aoi):
    masks, stats = aoi
    with pytest.raises(InvalidArgument, match="Lava"):
        condition_mask("boost", masks[0], {"Lava": 0.2}, stats, 1)
    with pytest.raises(InvalidArgument, match="at least one"):
        condition_mask("boost", masks[0], {}, stats, 1)
    with pytest.raises(InvalidArgument, match="add up"):
        condition_mask("boost", masks[0], {"Tree": 0.7, "Water": 0.6}, stats, 1)
    with pytest.raises(InvalidArgument, match="one of real, boost, layout"):
        condition_mask("paint", masks[0], {}, stats, 1)


def test_layout_draws_new_masks_close_to_aoi_stats(aoi):
    masks, stats = aoi
    real = masks[0].copy()
    real[-20:, :] = NODATA
    outs = [condition_mask("layout", real, {}, stats, s) for s in range(30)]
    for o in outs:
        assert (o[real == NODATA] == NODATA).all() and (o[real != NODATA] != NODATA).all()
    mean_comp = np.mean([composition(o) for o in outs], axis=0)
    assert np.abs(mean_comp - stats.shares).max() < 0.08
    assert not (outs[0] == outs[1]).all() and not (outs[0] == real).all()
    # regions, not noise: most pixels share their class with their right neighbour
    o = outs[0]
    assert (o[:, 1:] == o[:, :-1]).mean() > 0.9


def test_empty_mask_stays_empty_and_empty_aoi_layout_fails():
    empty = np.full((32, 32), NODATA, np.uint8)
    stats = AoiStats.from_masks([empty])
    for strategy in ("real", "boost", "layout"):
        assert (condition_mask(strategy, empty, {"Tree": 0.5}, stats, 1) == NODATA).all()
    with pytest.raises(FailedPrecondition, match="layout"):
        condition_mask("layout", np.zeros((32, 32), np.uint8), {}, stats, 1)


def test_boost_with_no_free_pixel_left_adds_nothing_instead_of_crashing():
    """All valid pixels belong to another target class (never overwritten): an absent class cannot be
    placed anywhere, so the mask keeps its classes (it used to raise ValueError from rng.integers(0))."""
    from groundsynth.engines.mask_strategies import AoiStats, condition_mask

    water = np.full((64, 64), 6, np.uint8)
    other = np.full((64, 64), 2, np.uint8)
    other[10:30, 10:30] = 1                                    # Shrub exists in the AOI
    stats = AoiStats.from_masks([water, other])
    out = condition_mask("boost", water, {"Water": 0.6, "Shrub": 0.3}, stats, 1)
    assert (out == water).all()


def test_boost_never_puts_a_land_class_in_open_water_but_water_may_flood_land(aoi):
    """A boosted land class takes no Water pixel: in a tile that is mostly sea, Built-up stays on the land
    (less than its target where the land cannot hold it); boosting Water itself may cover land."""
    masks, stats = aoi
    sea = np.full((128, 128), WATER, np.uint8)
    sea[:, :20] = CROP                                          # a strip of coast
    out = condition_mask("boost", sea, {"Built-up": 0.3}, stats, 2)
    assert (out[sea == WATER] == WATER).all()
    assert 0 < (out == BUILT).sum() <= (sea == CROP).sum()
    real = masks[0]
    flooded = condition_mask("boost", real, {"Water": 0.6}, stats, 2)
    assert abs(composition(flooded)[WATER] - 0.6) < 0.01 and (flooded[real != WATER] == WATER).any()
    # a land class boosted in a tile with water reaches its target on land alone when the land can hold it
    assert composition(real)[BUILT] < 0.4 and composition(real)[WATER] > 0.1
    out = condition_mask("boost", real, {"Built-up": 0.45}, stats, 2)
    assert abs(composition(out)[BUILT] - 0.45) < 0.01 and (out[real == WATER] == WATER).all()
