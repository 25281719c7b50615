"""Caption claim parsing (groundsynth.metrics.claims) and the caption/composition engine."""
import re

import numpy as np
import pytest

from groundsynth.engines import get_engine
from groundsynth.engines.builtin.composition_caption import EDGE_PHRASES, NOUNS, REGION_PHRASES, CompositionCaptioner
from groundsynth.metrics import claims as claims_mod
from groundsynth.metrics.sets import caption_redundancy
from groundsynth.request.classes import CLASS_NAMES, NODATA
from groundsynth.request.errors import InvalidArgument

TREE, SHRUB, GRASS, CROP, BUILT, BARREN, WATER = range(7)


def layout_mask(size=64):
    """Crop over the top, water across the bottom, a tree block in the north-west corner."""
    m = np.full((size, size), CROP, dtype=np.uint8)
    m[: size * 5 // 16, : size * 5 // 16] = TREE
    m[size * 5 // 8:, :] = WATER
    return m


# ------------------------------------------------------------------ parsing

@pytest.mark.parametrize("text, named, dominant", [
    ("The tile is dominated by woodland, with some farmland.", ["Tree", "Crop"], ["Tree"]),
    ("Mostly open water with a small village.", ["Water", "Built-up"], ["Water"]),
    ("Cropland covers most of the scene; grass lies in the south.", ["Crop", "Grass"], ["Crop"]),
    ("The dominant class is bare soil.", ["Barren"], ["Barren"]),
    ("Shrubs and scrub appear with no dominant cover.", ["Shrub"], []),
    ("An aerial view of a river, a lake and urban buildings (23%).", ["Water", "Built-up"], []),
    ("Sparse vegetation and snow fields.", ["Barren", "Crop"], []),
])
def test_parse_classes_and_dominance(text, named, dominant):
    c = claims_mod.parse_claims(text)
    assert c.named == named
    assert c.dominant == dominant


def test_parse_negation_is_not_a_mention():
    c = claims_mod.parse_claims("Farmland everywhere, without any water or buildings.")
    assert c.named == ["Crop"]
    assert c.negated == ["Water", "Built-up"]
    # A class named as present elsewhere is not "negated".
    c = claims_mod.parse_claims("Water in the west. No water in the east.")
    assert c.named == ["Water"] and c.negated == []


def test_parse_positions_tie_to_nearest_class():
    c = claims_mod.parse_claims("Trees lie in the north-west, while water runs along the southern edge; "
                                "in the centre there is a town.")
    assert ("Tree", "north-west") in c.positions
    assert ("Water", "south") in c.positions
    assert ("Built-up", "centre") in c.positions
    c = claims_mod.parse_claims("Grass in the upper-right part and crops on the left side.")
    assert c.positions == [("Grass", "north-east"), ("Crop", "west")]


def test_parse_rejects_non_text():
    with pytest.raises(TypeError):
        claims_mod.parse_claims(None)


def test_every_caption_noun_and_place_phrase_parses_back():
    for cls, nouns in NOUNS.items():
        for text, _ in nouns:
            assert claims_mod.parse_claims(f"Some {text} here.").named == [cls], text
    for region, phrases in list(REGION_PHRASES.items()) + list(EDGE_PHRASES.items()):
        for p in phrases:
            assert claims_mod.parse_claims(f"Water {p}.").positions == [("Water", region)], p


def test_region_geometry_and_enrichment():
    m = layout_mask(64)
    assert claims_mod.region_mask("north-west", 4, 4).sum() == 4
    assert claims_mod.region_mask("centre", 8, 8)[2:6, 2:6].all() and claims_mod.region_mask("centre", 8, 8).sum() == 16
    assert claims_mod.enrichment(m, WATER, "south") == pytest.approx(2.0)       # all water in the south half
    assert claims_mod.enrichment(m, WATER, "north") == 0.0
    assert claims_mod.enrichment(m, TREE, "north-west") == pytest.approx(4.0)
    assert np.isnan(claims_mod.enrichment(m, SHRUB, "north"))
    assert claims_mod.centroid_region(m, TREE) == "north-west"
    assert claims_mod.centroid_region(m, WATER) == "south"
    assert claims_mod.centroid_region(m, SHRUB) is None
    with pytest.raises(ValueError, match="unknown region"):
        claims_mod.region_mask("up", 4, 4)


# ------------------------------------------------------------------ captioner

def test_registered_as_default_with_declared_params():
    cls = get_engine("caption", "")
    assert cls is CompositionCaptioner and cls.is_default
    assert {p.name for p in cls.params} >= {"n_captions", "percentages", "min_share"}
    with pytest.raises(InvalidArgument, match="n_captions"):
        CompositionCaptioner({"n_captions": 0})


def test_five_distinct_captions_that_say_what_the_mask_holds():
    m = layout_mask()
    [caps] = CompositionCaptioner().caption([np.zeros((4, 64, 64), np.float32)], [m], [11])
    assert len(caps) == 5 and len(set(caps)) == 5
    assert not any(re.search(r"\d", c) for c in caps)            # no percentages by default
    for c in caps:
        parsed = claims_mod.parse_claims(c)
        assert set(parsed.named) == {"Crop", "Water", "Tree"}, c
        assert set(parsed.dominant) <= {"Crop"}, c
        for cls, region in parsed.positions:
            if region != "all":
                assert claims_mod.enrichment(m, CLASS_NAMES.index(cls), region) >= 1.2, c
    text = " ".join(caps)
    # the layout caption places the tree block in the north-west and water in the south
    layout = claims_mod.parse_claims(caps[1]).positions
    assert ("Tree", "north-west") in layout and ("Water", "south") in layout
    # the structure caption calls the blocks contiguous
    assert any(p in caps[2] for p in ("contiguous", "continuous", "unbroken", "connected")), text


def test_fragmented_class_is_called_scattered():
    m = np.full((64, 64), GRASS, dtype=np.uint8)
    m[2::8, 2::8] = BUILT          # 64 isolated specks of Built-up
    m[3::8, 2::8] = BUILT
    m[2::8, 3::8] = BUILT
    m[3::8, 3::8] = BUILT
    cap = CompositionCaptioner({"min_share": 0.01})
    structure = cap.caption_mask(m, 3)[2]
    assert any(w in structure for w in ("scattered", "fragments", "fragmented", "scatter", "patchwork")), structure


def test_deterministic_per_seed_and_varies_with_seed():
    m = layout_mask()
    cap = CompositionCaptioner()
    assert cap.caption_mask(m, 5) == cap.caption_mask(m, 5)
    assert cap.caption_mask(m, 5) != cap.caption_mask(m, 6)


def test_percentages_only_when_asked():
    m = layout_mask()
    caps = CompositionCaptioner({"percentages": True}).caption_mask(m, 1)
    assert all("%" in c for c in caps)
    crop = round(100 * np.mean(m == CROP))
    assert crop == 53                                            # 2160 of 4096 pixels
    assert any(f"{crop}%" in c for c in caps)


def test_min_share_hides_small_classes_and_n_captions():
    m = layout_mask()
    m[30:33, 30:33] = BUILT                                      # 9 px = 0.2 %
    caps = CompositionCaptioner({"n_captions": 8}).caption_mask(m, 2)
    assert len(caps) == 8 and len(set(caps)) == 8
    assert all("Built-up" not in claims_mod.parse_claims(c).named for c in caps)
    caps = CompositionCaptioner({"min_share": 0.0, "max_classes": 7}).caption_mask(m, 2)
    assert all("Built-up" in claims_mod.parse_claims(c).named for c in caps)


def test_mixed_tile_states_no_dominance():
    m = np.zeros((60, 60), dtype=np.uint8)
    m[:, 20:40] = GRASS
    m[:, 40:] = CROP                                             # three equal thirds
    for c in CompositionCaptioner().caption_mask(m, 9):
        assert claims_mod.parse_claims(c).dominant in ([], ["Tree"]), c   # ranking may call the first largest


def test_empty_mask_gets_no_data_captions():
    empty = np.full((16, 16), NODATA, dtype=np.uint8)
    caps = CompositionCaptioner().caption_mask(empty, 0)
    assert len(caps) == 5 and len(set(caps)) == 5
    assert all(claims_mod.parse_claims(c).named == [] for c in caps)
    assert "No valid data in this tile." in CompositionCaptioner({"n_captions": 10}).caption_mask(empty, 0)


@pytest.mark.parametrize("mask, match", [
    (np.zeros((4,), np.uint8), "2-D"),
    (np.zeros((4, 4), np.float32), "integer"),
    (np.full((4, 4), 9, np.uint8), "class indices"),
])
def test_bad_masks_are_rejected(mask, match):
    with pytest.raises(InvalidArgument, match=match):
        CompositionCaptioner().caption([None], [mask], [0])


def test_mismatched_inputs_are_rejected():
    with pytest.raises(InvalidArgument, match="one of each"):
        CompositionCaptioner().caption([None, None], [layout_mask()], [0])


def test_redundancy_over_a_set_stays_below_the_original():
    """Worst case: many identical single-class tiles (open sea) plus varied layouts."""
    rng = np.random.default_rng(0)
    masks = [np.full((32, 32), WATER, np.uint8) for _ in range(60)]
    for _ in range(60):
        m = np.full((32, 32), rng.integers(0, 7), np.uint8)
        y, x = rng.integers(0, 24, size=2)
        m[y:y + 10, x:x + 12] = rng.integers(0, 7)
        masks.append(m)
    cap = CompositionCaptioner()
    caps = [c for i, m in enumerate(masks) for c in cap.caption_mask(m, 1000 + i)]
    assert len(caps) == 600
    assert caption_redundancy(caps) < 0.0801


def test_ranking_verb_agrees_with_plural_nouns():
    """'Trees covers the largest share' was written for plural nouns (trees, shrubs, crop fields, buildings)."""
    m = layout_mask()
    m[m == CROP] = TREE                                          # trees largest, so "trees" can lead a ranking
    cap = CompositionCaptioner()
    plural = [t for nouns in NOUNS.values() for t, p in nouns if p]
    caps = [c for s in range(300) for c in cap.caption_mask(m, s)]
    assert any("covers the largest share" in c or "cover the largest share" in c for c in caps)
    for c in caps:
        for noun in plural:
            assert not re.search(rf"\b{noun} covers the largest share", c, re.I), c


def test_percentages_do_not_hide_claims_from_the_parser():
    """'trees (31%) are found in the north-west': the parenthesised number must not cut the clause, or the
    position/dominance claim is lost and the grounder cannot check it."""
    m = layout_mask()
    plain, pct = CompositionCaptioner(), CompositionCaptioner({"percentages": True})
    for seed in range(40):
        for a, b in zip(plain.caption_mask(m, seed), pct.caption_mask(m, seed), strict=True):
            ca, cb = claims_mod.parse_claims(a), claims_mod.parse_claims(b)
            assert (cb.named, cb.dominant, cb.positions) == (ca.named, ca.dominant, ca.positions), (a, b)


def test_dominance_needs_a_lead_over_the_second_class_even_when_it_is_not_named():
    """max_classes=1 names only the largest class, but 'dominated by' still needs a 5-point lead over the
    second largest (36 % crop vs 34 % grass is a mix, not dominance)."""
    m = np.full((100, 100), CROP, np.uint8)
    m[:34] = GRASS
    m[34:64] = WATER                                             # crop 36 %, grass 34 %, water 30 %
    for seed in range(10):
        for c in CompositionCaptioner({"max_classes": 1}).caption_mask(m, seed)[:1]:
            assert claims_mod.parse_claims(c).dominant == [], c


def test_a_long_alternation_led_by_its_first_words_matches_exactly_what_the_plain_one_matches():
    """claims._alternation puts a first-word lookahead before a long phrase list (speed); the matches must
    be the same spans and groups as the plain alternation's, on every phrase, its variants and near misses."""
    import re

    from groundsynth.metrics import claim_vocab as V
    from groundsynth.metrics.claims import LEAD_MIN, _alternation

    phrases = list(V.NUMBER_WORDS) + [w.replace("-", " ") for w in V.NUMBER_WORDS if "-" in w] + list(V.COUNT_RANGES)
    assert len(phrases) > LEAD_MIN
    led = re.compile(rf"\b(?P<n>{_alternation(phrases)}|\d+)\s+patches\b", re.I)
    plain = re.compile(r"\b(?P<n>" + "|".join(re.escape(p).replace(r"\ ", r"\s+") for p in
                                             sorted(set(phrases), key=len, reverse=True)) + r"|\d+)\s+patches\b", re.I)
    assert "(?=" in led.pattern
    words = phrases + [p.upper() for p in phrases[::5]] + [p.replace(" ", "  ") for p in phrases if " " in p]
    words += [p[:-1] for p in phrases[::3]] + ["x" + p for p in phrases[::4]] + ["12", "about-twelve"]
    text = " ".join(f"{w} patches, and" for w in words)
    got = [(m.span(), m.group("n")) for m in led.finditer(text)]
    assert got == [(m.span(), m.group("n")) for m in plain.finditer(text)]
    assert len(got) >= len(phrases)
