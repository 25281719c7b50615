"""ground/composition: caption claim scores, fidelity, set metrics; quality on the demo scene."""
import numpy as np
import pytest

from groundsynth.artefacts.records import TileRecord
from groundsynth.engines import get_engine, register, unregister
from groundsynth.engines.base import GroundInput, Segmenter
from groundsynth.engines.builtin.composition_caption import CompositionCaptioner
from groundsynth.engines.builtin.composition_ground import CompositionGrounder, score_caption, summarise_records
from groundsynth.metrics.claims import parse_claims
from groundsynth.metrics.sets import js_divergence
from groundsynth.request.classes import NODATA
from groundsynth.request.errors import InvalidArgument

TREE, SHRUB, GRASS, CROP, BUILT, BARREN, WATER = range(7)
DECODE = "test-decode"


class DecodeSegmenter(Segmenter):
    """Test reference segmenter: class = round(10 x band 1), so a test writes the mask into the image."""
    __test__ = False
    name = DECODE

    def segment(self, tiles):
        self.calls = getattr(self, "calls", 0) + 1
        out = []
        for t in tiles:
            m = np.rint(t.image[0] * 10).astype(np.int64)
            m = np.where((m >= 0) & (m <= 6) & t.valid, m, NODATA)
            out.append(m.astype(np.uint8))
        return out


@pytest.fixture(scope="module", autouse=True)
def decode_segmenter():
    register(DecodeSegmenter)
    yield DecodeSegmenter
    unregister("segment", DECODE)


def image_of(mask):
    img = np.zeros((4,) + mask.shape, dtype=np.float32)
    img[0] = mask.astype(np.float32) / 10
    return img


def layout_mask(size=64):
    m = np.full((size, size), CROP, dtype=np.uint8)
    m[: size * 5 // 16, : size * 5 // 16] = TREE
    m[size * 5 // 8:, :] = WATER
    return m


def grounder(**params):
    return CompositionGrounder({"reference_segmenter": DECODE, **params})


def item(mask, captions, kind="real", cond=None, image_mask=None):
    img_mask = mask if image_mask is None else image_mask
    return GroundInput("r0000_c0000", kind, image_of(img_mask), img_mask != NODATA, mask, captions, cond)


# ------------------------------------------------------------------ claim scores

def test_default_engine_and_params():
    cls = get_engine("ground", "")
    assert cls is CompositionGrounder
    assert {p.name for p in cls.params} >= {"reference_segmenter", "present_share", "major_share"}
    assert CompositionGrounder().p["reference_segmenter"] == "spectral"


def test_own_captions_score_full_marks():
    m = layout_mask()
    caps = CompositionCaptioner().caption_mask(m, 4)
    [out] = grounder().ground([item(m, caps)])
    assert out["grounding"] == 100.0 and out["grounding_min"] == 100.0
    assert out["resegment_agreement"] == 1.0
    assert "fidelity_miou" not in out


def test_caption_naming_an_absent_class_scores_clearly_lower():
    m = layout_mask()           # crop, water, trees; no built-up
    good, _ = score_caption("Farmland with water in the south and a wood in the north-west.", m)
    bad, why = score_caption("Farmland with water in the south and a town in the north-west.", m)
    assert good == 100.0
    assert good - bad >= 35 and any("Built-up" in w for w in why)


@pytest.mark.parametrize("caption, penalty, reason", [
    ("The tile is dominated by water, with cropland and trees.", 30, "dominates"),      # crop is largest
    ("Cropland in the north, water in the north, trees in the north-west.", 10, "Water"),  # water is south
    ("Cropland, trees and open water, but no buildings.", 0, None),                    # true negation
    ("Cropland and trees, without any water.", 25 + 10, "no Water"),                    # false negation + unnamed
    ("Mostly cropland with some trees.", 10, "never names Water"),                     # unnamed major class
])
def test_claim_checks(caption, penalty, reason):
    m = layout_mask()
    score, why = score_caption(caption, m)
    assert score == pytest.approx(100 - penalty)
    if reason:
        assert any(reason in w for w in why), why


def test_caption_without_any_class_loses_only_the_unnamed_major_penalty():
    m = layout_mask()     # crop 53 %, water 37.5 %: two major classes unnamed
    assert score_caption("A satellite image.", m)[0] == 80.0


def test_score_caption_rejects_empty_mask():
    with pytest.raises(ValueError, match="no valid pixel"):
        score_caption("Water.", np.full((4, 4), NODATA, np.uint8))


# ------------------------------------------------------------------ per-tile metrics

def test_fidelity_miou_hand_computed():
    cond = np.zeros((4, 4), dtype=np.uint8)
    cond[:, 2:] = WATER                     # left Tree, right Water
    synth = np.zeros((4, 4), dtype=np.uint8)
    synth[:, 3:] = WATER                    # the synthetic image re-segments with a narrower water strip
    [out] = grounder().ground([item(synth, ["Trees and water."], "synthetic", cond=cond, image_mask=synth)])
    # Tree: inter 8, union 12 -> 2/3; Water: inter 4, union 8 -> 1/2
    assert out["fidelity_miou"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert out["fidelity_iou_tree"] == pytest.approx(2 / 3)
    assert out["fidelity_iou_water"] == pytest.approx(0.5)
    assert "fidelity_iou_crop" not in out


def test_resegment_agreement_compares_mask_and_reseg():
    m = layout_mask(8)
    other = m.copy()
    other[0, :] = GRASS                       # the image says grass on the first row
    [out] = grounder().ground([item(m, [], image_mask=other)])
    assert out["resegment_agreement"] == pytest.approx(56 / 64)
    assert "grounding" not in out             # no captions, no grounding score


def test_nodata_tile_gets_only_valid_share():
    empty = np.full((8, 8), NODATA, dtype=np.uint8)
    [out] = grounder().ground([item(empty, ["No valid data in this tile."])])
    assert out == {"valid_share": 0.0}


def test_batch_is_segmented_in_one_call():
    g = grounder()
    m = layout_mask(16)
    outs = g.ground([item(m, ["Cropland."]), item(m, ["Water."], "synthetic", cond=m)])
    assert len(outs) == 2 and g.reference().calls == 1
    assert outs[1]["fidelity_miou"] == 1.0


@pytest.mark.parametrize("bad, field", [
    (dict(image=np.zeros((64, 64), np.float32)), "image"),
    (dict(mask=np.zeros((5, 5), np.uint8)), "mask"),
    (dict(cond_mask=np.zeros((5, 5), np.uint8)), "cond_mask"),
    (dict(kind="fake"), "kind"),
])
def test_bad_inputs_name_the_field(bad, field):
    it = item(layout_mask(), ["Crops."], cond=layout_mask())
    for k, v in bad.items():
        setattr(it, k, v)
    with pytest.raises(InvalidArgument) as err:
        grounder().ground([it])
    assert err.value.field == f"ground.items[0].{field}"


def test_unknown_reference_segmenter_is_an_error():
    with pytest.raises(InvalidArgument, match="unknown engine"):
        grounder(reference_segmenter="no-such").ground([item(layout_mask(), ["Crops."])])


# ------------------------------------------------------------------ set metrics

def rec(tile_id, kind, comp, captions, **metrics):
    return TileRecord(tile_id=tile_id, kind=kind, row=0, col=0, composition=comp, captions=captions, metrics=metrics)


def test_summarise_hand_computed():
    t = [1, 0, 0, 0, 0, 0, 0]
    w = [0, 0, 0, 0, 0, 0, 1]
    records = [
        rec("a", "real", t, ["x", "y"], grounding=100.0),
        rec("b", "real", w, ["x", "z"], grounding=80.0),
        rec("a_v1", "synthetic", w, ["q", "q"], grounding=60.0, fidelity_miou=0.5, fidelity_iou_water=0.5),
        TileRecord(tile_id="n", kind="real", row=1, col=0, nodata=True, captions=["x"]),
    ]
    s = summarise_records(records)
    assert s["counts"] == {"tiles_real": 2, "tiles_synthetic": 1, "tiles_nodata": 1, "captions": 6}
    assert s["redundancy"]["real"] == pytest.approx(0.25)          # x, y, x, z
    assert s["redundancy"]["synthetic"] == pytest.approx(0.5)      # q, q
    assert s["redundancy"]["all"] == pytest.approx(1 - 4 / 6)      # x y z q
    shift = s["composition_shift"]
    assert shift["real"]["Tree"] == 0.5 and shift["synthetic"]["Water"] == 1.0
    assert shift["js_divergence"] == pytest.approx(js_divergence([0.5, 0.5], [0, 1]))
    d = s["distributions"]
    assert d["grounding"]["all"]["mean"] == pytest.approx(80.0)
    assert d["grounding_by_dominant_class"]["Water"]["mean"] == pytest.approx(70.0)
    assert d["grounding_by_dominant_class"]["Tree"]["n"] == 1
    assert d["fidelity_miou"]["mean"] == 0.5
    assert list(d["fidelity_iou_by_class"]) == ["Water"]
    assert CompositionGrounder().summarise(records) == s


# ------------------------------------------------------------------ quality on the demo scene

class IndexSegmenter(Segmenter):
    """Fallback reference for the demo-scene tests while no spectral engine is registered:
    a fixed NDWI / NDVI / brightness rule set (deterministic, no fitting)."""
    __test__ = False
    name = "test-index"

    def segment(self, tiles):
        out = []
        for t in tiles:
            r, g, b, nir = t.image[:4]
            ndvi = (nir - r) / (nir + r + 1e-6)
            ndwi = (g - nir) / (g + nir + 1e-6)
            bright = (r + g + b) / 3
            m = np.full(r.shape, BARREN, np.uint8)
            m[bright > 0.55] = BUILT
            m[ndvi > 0.15] = GRASS
            m[ndvi > 0.35] = CROP
            m[(ndvi > 0.35) & (bright < 0.25)] = TREE
            m[ndwi > 0.05] = WATER
            m[~t.valid] = NODATA
            out.append(m)
        return out


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The demo scene in 256 px tiles, segmented, captioned with caption/composition and grounded."""
    from groundsynth.demo.scene import demo_raster
    from groundsynth.engines import engines
    from groundsynth.engines.base import EngineContext, TileInput
    from groundsynth.request.seeds import derive_seed
    from groundsynth.request.spec import BandMapping
    from groundsynth.tiling.source import SourceRaster, Stretch

    reference = "spectral" if "spectral" in engines("segment") else IndexSegmenter.name
    register(IndexSegmenter)
    try:
        path = demo_raster(tmp_path_factory.mktemp("demo"))
        tiles = []
        with SourceRaster(path, BandMapping()) as src:
            stretch = Stretch.from_sample(*src.read_sample((0, 0, src.width, src.height)))
            for row in range(0, src.height, 256):
                for col in range(0, src.width, 256):
                    data, valid = src.read_window(col, row, 256, 256)
                    if valid.mean() >= 0.5:
                        tiles.append(TileInput(f"r{row // 256:04d}_c{col // 256:04d}", stretch.apply(data), valid))
        ctx = EngineContext(seed=0, extra={"stretch": stretch.to_dict()})   # as the pipeline passes it
        masks = get_engine("segment", reference)({}, ctx).segment(tiles)
        seeds = [derive_seed(0, t.tile_id, "caption") for t in tiles]
        caps = CompositionCaptioner({}, ctx).caption([t.image for t in tiles], masks, seeds)
        g = CompositionGrounder({"reference_segmenter": reference}, ctx)
        items = [GroundInput(t.tile_id, "real", t.image, t.valid, m, c) for t, m, c in zip(tiles, masks, caps, strict=True)]
        yield {"reference": reference, "tiles": tiles, "masks": masks, "captions": caps, "items": items,
               "grounder": g, "scores": g.ground(items)}
    finally:
        unregister("segment", IndexSegmenter.name)


def test_demo_scene_own_captions_ground_at_least_90(demo_run):
    scores = [s["grounding"] for s in demo_run["scores"]]
    assert len(scores) >= 30
    assert np.mean(scores) >= 90, (demo_run["reference"], np.mean(scores))
    assert np.mean(np.array(scores) >= 80) >= 0.9
    assert np.mean([s["resegment_agreement"] for s in demo_run["scores"]]) >= 0.99


def test_demo_scene_caption_redundancy_below_the_original(demo_run):
    from groundsynth.metrics.sets import caption_redundancy

    caps = [c for cs in demo_run["captions"] for c in cs]
    assert len(caps) == 5 * len(demo_run["tiles"])
    assert caption_redundancy(caps) < 0.0801
    classes = {name for cs in demo_run["captions"] for c in cs for name in parse_claims(c).named}
    assert len(classes) >= 3                          # the scene is varied: water, crops, trees, ...


def test_demo_scene_caption_naming_an_absent_class_scores_clearly_lower(demo_run):
    from groundsynth.engines.builtin.composition_caption import NOUNS
    from groundsynth.request.classes import CLASS_NAMES, composition

    lying = []
    for it in demo_run["items"]:
        shares = composition(it.mask)
        absent = [i for i in range(7) if shares[i] == 0]
        if not absent:
            continue
        noun = NOUNS[CLASS_NAMES[absent[0]]][0][0]
        lying.append(GroundInput(it.tile_id, it.kind, it.image, it.valid, it.mask,
                                 [f"{c[:-1]}, and there is also {noun}." for c in it.captions]))
    assert len(lying) >= 10
    honest = {s_it.tile_id: s["grounding"] for s_it, s in zip(demo_run["items"], demo_run["scores"], strict=True)}
    lied = demo_run["grounder"].ground(lying)
    drops = [honest[it.tile_id] - s["grounding"] for it, s in zip(lying, lied, strict=True)]
    assert np.mean(drops) >= 30 and min(drops) > 0


def test_regional_dominance_is_checked_inside_the_region():
    m = np.full((40, 40), GRASS, dtype=np.uint8)
    m[:20, :] = TREE                                  # trees fill the north, grass the south: a tie overall
    m[:20, :10] = GRASS                               # grass is 62.5 % of the tile, trees 37.5 %
    right = "Tree cover dominates the northern half while the southern half is mostly grassland."
    wrong = "Grassland dominates the northern half while the southern half is mostly tree cover."
    assert parse_claims(right).regional_dominant == [("Tree", "north"), ("Grass", "south")]
    assert parse_claims(right).dominant == []
    assert score_caption(right, m)[0] == 100.0
    score, why = score_caption(wrong, m)
    assert score <= 100 - 2 * 30 and any("dominates the north" in w for w in why)
