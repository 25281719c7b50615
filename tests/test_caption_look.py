"""The water's look (tone, brightness gradient) and where a tile has no data: measured by
groundsynth.metrics.tile_facts, written by caption/composition, read back by the claim parser and checked by
the claim score, on constructed tiles where the answer is known."""
import numpy as np
import pytest

from groundsynth.engines.builtin.composition_caption import CompositionCaptioner
from groundsynth.metrics.caption_diversity import canonical_form
from groundsynth.metrics.caption_score import score_caption, score_captions
from groundsynth.metrics.claims import parse_claims
from groundsynth.metrics.tile_facts import TileFacts, water_look
from groundsynth.request.classes import NODATA

TREE, CROP, WATER = 0, 3, 6
SIZE = 64


def water_image(base: float, toward: tuple[float, float] = (0.0, 0.0), size: int = SIZE) -> np.ndarray:
    """A 4-band float image: RGB brightness `base` plus a ramp of (east, north) change per tile side."""
    ys, xs = np.mgrid[0:size, 0:size]
    b = base + toward[0] * (xs / size - 0.5) + toward[1] * (0.5 - ys / size)
    return np.stack([b, b, b, np.full_like(b, 0.02)]).astype(np.float32)


def all_water(size: int = SIZE) -> np.ndarray:
    return np.full((size, size), WATER, np.uint8)


def test_water_look_reads_tone_and_the_direction_it_grows_paler():
    dark = water_look(water_image(0.12), all_water())
    assert dark.tone == "dark" and dark.paler_toward is None and dark.change == pytest.approx(0.0, abs=1e-6)
    assert water_look(water_image(0.26), all_water()).tone == "pale"
    assert water_look(water_image(0.2), all_water()).tone is None
    nw = water_look(water_image(0.2, (-0.06, 0.06)), all_water())
    assert nw.paler_toward == "north-west" and nw.change == pytest.approx(0.06 * 2 ** 0.5, rel=0.02)
    assert water_look(water_image(0.2, (0.0, -0.05)), all_water()).paler_toward == "south"
    assert water_look(water_image(0.2, (0.03, 0.0)), all_water()).paler_toward is None      # below 0.04
    # only water pixels count: bright land does not make the water pale
    mask = all_water()
    mask[:, : SIZE // 2] = CROP
    image = water_image(0.12)
    image[:3, :, : SIZE // 2] = 0.9
    assert water_look(image, mask).tone == "dark"
    # too little water, no image, an RGB-less image: nothing to say
    small = np.full((SIZE, SIZE), CROP, np.uint8)
    small[:5, :5] = WATER
    assert water_look(water_image(0.12), small) is None
    assert water_look(None, all_water()) is None and water_look(water_image(0.1)[:2], all_water()) is None


@pytest.mark.parametrize("text, tone, toward", [
    ("The water looks dark; the water grows paler toward the north-west.", ["dark"], ["north-west"]),
    ("Dark-toned water brightens towards the south.", ["dark"], ["south"]),
    ("The sea is darker toward the west.", [], ["east"]),
    ("Pale water in the north-west.", ["pale"], []),
    ("The forest is dark and grows paler toward the east.", [], []),       # not about water
])
def test_the_parser_reads_water_look_claims_only_of_water(text, tone, toward):
    c = parse_claims(text)
    assert c.water_tone == tone and c.water_paler_toward == toward


def test_a_gradient_phrase_is_no_position_claim():
    c = parse_claims("Open water; the water grows paler toward the north-west.")
    assert c.water_paler_toward == ["north-west"] and c.positions == []


def test_look_claims_are_checked_against_the_image():
    mask = all_water()
    nw = water_image(0.25, (-0.06, 0.06))
    ok = "Open water throughout; the water looks pale; the water grows paler toward the north-west."
    assert score_caption(ok, mask, image=nw)[0] == 100.0
    se = water_image(0.25, (0.06, -0.06))
    score, why = score_caption(ok, mask, image=se)
    assert score == 90.0 and "grows paler toward the north-west" in why[0]
    score, why = score_caption(ok, mask, image=water_image(0.12, (-0.06, 0.06)))
    assert score == 90.0 and "says the water is pale" in why[0]
    flat = score_caption(ok, mask, image=water_image(0.25))
    assert flat[0] == 90.0                                  # no gradient to speak of
    assert score_caption(ok, mask)[0] == 100.0               # no image: look claims are not checked


def test_the_captioner_says_what_the_water_looks_like_and_it_grounds():
    cap = CompositionCaptioner()
    mask = all_water()
    image = water_image(0.12, (0.0, 0.08))                  # dark, paler toward the north
    caps = cap.caption([image], [mask], [4])[0]
    claims = [parse_claims(c) for c in caps]
    assert any(c.water_tone == ["dark"] for c in claims) and any(c.water_paler_toward == ["north"] for c in claims)
    assert score_captions(caps, mask, image) == [100.0] * 5
    wrong = water_image(0.26, (0.0, -0.08))                  # pale, paler toward the south
    assert np.mean(score_captions(caps, mask, wrong)) < 95.0
    plain = cap.caption_mask(mask, 4)                       # no image: nothing about the look
    assert not any(parse_claims(c).water_tone or parse_claims(c).water_paler_toward for c in plain)
    # two open-sea tiles that look different no longer say the same things
    other = cap.caption([water_image(0.26, (0.08, 0.0))], [mask], [4])[0]
    assert {canonical_form(c) for c in caps}.isdisjoint(canonical_form(c) for c in other)


def test_nodata_side_is_stated_and_checked():
    mask = all_water()
    mask[:, -12:] = NODATA                                   # the tile runs past the scene's eastern edge
    assert TileFacts(mask).nodata_side == "east"
    corner = all_water()
    corner[-20:, :20] = NODATA
    assert TileFacts(corner).nodata_side == "south-west"
    assert TileFacts(all_water()).nodata_side is None
    caps = CompositionCaptioner().caption_mask(mask, 1)
    assert any(parse_claims(c).nodata_at == ["east"] for c in caps)
    assert score_captions(caps, mask) == [100.0] * 5
    west = np.fliplr(mask).copy()
    said = next(c for c in caps if parse_claims(c).nodata_at)
    score, why = score_caption(said, west)
    assert score < 100.0 and any("no data in the east" in w for w in why)
    assert score_caption(said, all_water())[0] < 100.0       # a tile without nodata
    assert parse_claims("No valid data in this tile.").nodata_at == []


def test_every_look_and_nodata_phrase_parses_back():
    from groundsynth.engines.builtin import composition_phrases as P
    from groundsynth.metrics.tile_facts import COMPASS

    for tone, phrases in P.WATER_TONE_PHRASES.items():
        assert all(parse_claims(p).water_tone == [tone] for p in phrases), tone
    for toward in COMPASS:
        for p in P.WATER_GRADIENT_PHRASES:
            c = parse_claims(p.format(toward=toward))
            assert c.water_paler_toward == [toward] and c.positions == [], p
    for side in COMPASS:
        for p in P.NODATA_CORNER_PHRASES if "-" in side else P.NODATA_SIDE_PHRASES + P.NODATA_WIDE_PHRASES:
            c = parse_claims(p.format(d=side))
            assert c.nodata_at == [side] and not c.negated and not c.positions, p


def test_wide_nodata_is_a_part_not_an_edge_and_articles_agree():
    mask = all_water()
    mask[:, SIZE // 2 + 4:] = NODATA                          # 44 % of the tile
    caps = CompositionCaptioner().caption_mask(mask, 2)
    said = [c for c in caps if parse_claims(c).nodata_at == ["east"]]
    assert said and not any("edge" in c or "strip" in c for c in said)
    shore = np.full((SIZE, SIZE), CROP, np.uint8)
    for y in range(SIZE):                                       # a zig-zag (indented) shoreline
        shore[y, : 20 + (16 if (y // 6) % 2 else 0)] = WATER
    assert TileFacts(shore).shoreline.shape == "indented"
    caps = [c.lower() for seed in range(12) for c in CompositionCaptioner().caption_mask(shore, seed)]
    assert any("an indented" in c for c in caps)
    assert not any(" a indented" in c or c.startswith("a indented") for c in caps)
