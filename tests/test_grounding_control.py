"""Grounding with a control (seeded derangement, own / mismatched / margin), canonical caption redundancy and
the tile grid's default score: constructed cases with known answers."""
import numpy as np
import pytest

from groundsynth.artefacts.records import TileRecord
from groundsynth.engines.builtin.composition_caption import CompositionCaptioner
from groundsynth.metrics import caption_diversity as div
from groundsynth.metrics import grounding_control as control
from groundsynth.metrics.caption_score import score_caption
from groundsynth.report.evidence import control_html, default_tile_score, diversity_html

TREE, SHRUB, GRASS, CROP, BUILT, BARREN, WATER = range(7)


# ---------------------------------------------------------------- derangement

@pytest.mark.parametrize("n", [2, 3, 4, 5, 7, 16, 64, 131])
def test_derangement_never_pairs_a_tile_with_itself(n):
    for seed in range(25):
        p = control.derangement(n, seed)
        assert sorted(p) == list(range(n))                 # a permutation: every tile is someone's partner once
        assert all(p[i] != i for i in range(n))
    assert control.derangement(n, 3) == control.derangement(n, 3)   # seeded
    if n > 3:
        assert len({tuple(control.derangement(n, s)) for s in range(10)}) > 1


def test_derangement_keeps_siblings_apart_when_it_can():
    # 12 synthetic tiles: 6 sources x 2 variants; a variant is never paired with its sibling
    groups = [f"src{i // 2}" for i in range(12)]
    for seed in range(30):
        p = control.derangement(12, seed, groups)
        assert sorted(p) == list(range(12))
        assert all(groups[p[i]] != groups[i] for i in range(12))
    # one group larger than half: impossible to keep apart, still no fixed point
    groups = ["a"] * 5 + ["b", "c"]
    for seed in range(10):
        p = control.derangement(7, seed, groups)
        assert sorted(p) == list(range(7)) and all(p[i] != i for i in range(7))


def test_derangement_constructive_fallback(monkeypatch):
    # no random draw accepted: the constructive derangement still separates every group
    monkeypatch.setattr(control, "MAX_TRIES", 0)
    groups = [g for g in "aabbbccdde"]
    p = control.derangement(len(groups), 1, groups)
    assert sorted(p) == list(range(len(groups)))
    assert all(groups[p[i]] != groups[i] for i in range(len(groups)))


def test_derangement_of_fewer_than_two_items_is_an_error():
    with pytest.raises(ValueError, match="at least 2"):
        control.derangement(1, 0)
    with pytest.raises(ValueError, match="groups"):
        control.derangement(3, 0, ["a"])


# ---------------------------------------------------------------- scores

def _halves(left, right, size=64):
    m = np.full((size, size), left, np.uint8)
    m[:, size // 2:] = right
    return m


def test_caption_naming_an_absent_class_lowers_its_score():
    mask = _halves(WATER, CROP)
    true = "Water fills the west; cropland lies in the east."
    false = "Water fills the west; cropland lies in the east; buildings line the north."
    s_true, _ = score_caption(true, mask)
    s_false, why = score_caption(false, mask)
    assert s_true == pytest.approx(100.0)
    assert s_false <= s_true - 30 and any("Built-up" in w for w in why)


def test_score_pair_margin_is_high_for_specific_captions_and_zero_for_identical_references():
    own, other = _halves(WATER, CROP), _halves(TREE, BUILT)
    caps = CompositionCaptioner({}).caption_mask(own, 7)
    a, b = control.score_pair(caps, own, other)
    assert a == pytest.approx(100.0) and b is not None and a - b >= 50
    a2, b2 = control.score_pair(caps, own, own.copy())
    assert a2 == b2                                   # same reference: margin 0
    assert control.score_pair([], own, other) == (None, None)
    assert control.score_pair(caps, own, np.full_like(own, 255))[1] is None


def test_score_pair_parses_each_caption_once_and_scores_as_score_caption_does(monkeypatch):
    from groundsynth.metrics import claims

    own, other = _halves(WATER, CROP), _halves(TREE, BUILT)
    caps = CompositionCaptioner({}).caption_mask(own, 7) + ["Buildings fill the tile."]
    want = tuple(float(np.mean([score_caption(c, m)[0] for c in caps])) for m in (own, other))
    calls = []
    real_parse = claims.parse_claims
    monkeypatch.setattr(control, "parse_claims", lambda text: calls.append(text) or real_parse(text))
    assert control.score_pair(caps, own, other) == pytest.approx(want)
    assert calls == caps                            # once per caption, not once per caption and reference


def _rec(tid, kind, own, mis, comp):
    r = TileRecord(tile_id=tid, kind=kind, row=0, col=0, composition=comp)
    r.metrics = {"g": own, "g_mismatched": mis, "g_margin": own - mis}
    return r


def test_summarise_gives_known_means_per_kind_and_dominant_class():
    water, crop = [0, 0, 0, 0, 0, 0, 1.0], [0, 0, 0, 1.0, 0, 0, 0]
    recs = [_rec("a", "real", 100, 20, water), _rec("b", "real", 90, 90, crop),
            _rec("c", "synthetic", 80, 40, water), TileRecord(tile_id="d", kind="real", row=0, col=0)]
    s = control.summarise(recs, "g")
    assert s["by_kind"]["all"]["n"] == 3
    assert s["by_kind"]["all"]["margin"]["mean"] == pytest.approx((80 + 0 + 40) / 3)
    assert s["by_kind"]["real"]["mismatched"]["mean"] == pytest.approx(55)
    assert s["by_kind"]["real"]["share_mismatched_high"] == pytest.approx(0.5)
    assert s["by_dominant_class"]["Water"]["margin"]["mean"] == pytest.approx(60)
    assert s["by_dominant_class"]["Crop"]["own"]["mean"] == pytest.approx(90)
    html = control_html({"grounding_control": {"families": {"g": "test family"}, "g": s,
                                               "engine_grounding_is_self_consistency": True}})
    assert "self-consistency" in html and "dominant Water" in html and "test family" in html


# ---------------------------------------------------------------- caption diversity

def test_rewording_does_not_lower_canonical_redundancy():
    same = ["Mostly water, with some cropland.", "The tile is chiefly surface water, and also has farmland.",
            "Largely open water; crop fields too."]
    d = div.diversity(same)
    assert d["exact"] == 0.0                       # all different strings ...
    assert d["canonical"] == pytest.approx(2 / 3)  # ... that say one thing
    different = ["Mostly water, with some cropland.", "Mostly water, with some cropland in the north.",
                 "Mostly cropland, with some water."]
    assert div.diversity(different)["canonical"] == 0.0
    assert div.canonical_form("woodland lies in the north") == div.canonical_form("In the north there are trees.")
    assert div.diversity([])["canonical"] is None
    html = diversity_html({"set_metrics": {"caption_diversity": {"all": d}}})
    assert "Canonical redundancy" in html and "66.7" in html


def test_captions_of_a_tile_say_different_things():
    m = _halves(WATER, CROP)
    m[:8, :8] = BUILT
    caps = CompositionCaptioner({}).caption_mask(m, 3)
    assert len(caps) == 5 and div.diversity(caps)["canonical"] == 0.0


# ---------------------------------------------------------------- tile grid default score

def test_default_tile_score_is_one_that_varies():
    recs = []
    for i in range(4):
        r = TileRecord(tile_id=f"t{i}", kind="real", row=0, col=i)
        r.metrics = {"grounding": 100.0, "self_consistency": 100.0, "self_consistency_margin": 10.0 * i}
        recs.append(r)
    assert default_tile_score(recs) == "self_consistency_margin"
    for r in recs:
        r.metrics["grounding_labels_margin"] = 5.0 * r.col
    assert default_tile_score(recs) == "grounding_labels_margin"     # reference data first
    for r in recs:
        r.metrics = {"grounding": 100.0}
    assert default_tile_score(recs) == "grounding"                   # nothing varies: the first present
    assert default_tile_score([]) is None


def test_a_main_block_with_outliers_is_not_called_one_contiguous_block():
    from groundsynth.metrics.claim_vocab import STRUCTURES
    from groundsynth.metrics.claims import parse_claims
    from groundsynth.metrics.tile_facts import TileFacts

    m = np.full((64, 64), CROP, np.uint8)
    m[:, :40] = WATER                   # the main water body ...
    m[50:56, 56:62] = WATER             # ... and a sizeable outlier
    f = TileFacts(m)
    assert f.structure(WATER) == "main" and f.patch_count(WATER) == 2
    m[50:56, 56:62] = CROP
    assert TileFacts(m).structure(WATER) == "contiguous"
    m[50:56, 56:62] = WATER
    for seed in range(12):
        for cap in CompositionCaptioner({}).caption_mask(m, seed):
            said = dict(parse_claims(cap).structures)
            assert said.get("Water") in (None, "main"), cap
            assert not any(p in cap for p in STRUCTURES["contiguous"]) or said.get("Crop") == "contiguous"
            assert score_caption(cap, m)[0] == pytest.approx(100.0), cap


def test_small_classes_are_named_as_traces_and_raise_canonical_diversity():
    from groundsynth.metrics.claims import parse_claims

    m = np.full((64, 64), WATER, np.uint8)
    m[:3, :] = CROP                      # 4.7 %: under min_share (5 %), over trace_share (2 %)
    m[60:, :10] = BARREN                 # 1 %: under trace_share, never named
    caps = CompositionCaptioner({}).caption_mask(m, 1)
    said = [parse_claims(c) for c in caps]
    with_crop = [c for c in said if "Crop" in c.named]
    assert len(with_crop) >= 1 and all(("Crop", "all", 0.0, 0.12) in c.amounts for c in with_crop)
    assert not any("Barren" in c.named for c in said)
    assert all(score_caption(c, m)[0] == pytest.approx(100.0) for c in caps)
    plain = CompositionCaptioner({"trace_share": 0.0}).caption_mask(m, 1)
    assert not any("Crop" in parse_claims(c).named for c in plain)
    # the same water tile without the strip of crop says the same as the plain captions, not as the traced ones
    assert div.diversity(caps + plain)["canonical"] < div.diversity(plain + plain)["canonical"]


def test_ranking_captions_have_one_lead_in():
    from groundsynth.engines.builtin import composition_phrases as P

    m = _halves(WATER, CROP)
    m[:20, :20] = TREE
    for seed in range(40):
        for cap in CompositionCaptioner({}).caption_mask(m, seed):
            low = cap.lower()
            if any(r in low for r in P.RANK_LEADS):
                assert any(low.startswith(r) for r in P.RANK_LEADS), cap
