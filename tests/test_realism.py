"""Weight-free realism metrics on constructed sets whose answer is known (groundsynth.metrics.realism,
twosample, copies) and the report's realism section sets (held out = not fitted, not the source)."""
import numpy as np
import pytest

from groundsynth.artefacts.records import TileRecord
from groundsynth.metrics import copies
from groundsynth.metrics.realism import (
    TileSet,
    colour_centres,
    colour_stats,
    compare,
    patches,
    realism_table,
    speckle_rate,
    spectrum_stats,
)
from groundsynth.metrics.twosample import two_sample_accuracy
from groundsynth.report.realism import held_out, realism_section

GRASS, CROP = 2, 3


def smooth_tiles(n: int, seed: int, shift: float = 0.0, size: int = 128) -> TileSet:
    """Smooth random fields (a sum of low-frequency waves) with a Grass / Crop mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    images, masks = [], []
    for _ in range(n):
        img = np.zeros((4, size, size), np.float32)
        for b in range(4):
            for _w in range(4):
                fy, fx, ph = rng.uniform(1, 6), rng.uniform(1, 6), rng.uniform(0, 6.3)
                img[b] += 0.05 * np.sin(2 * np.pi * (fy * yy + fx * xx) + ph)
            img[b] += 0.3 + 0.1 * b + 0.01 * rng.standard_normal((size, size))
        img[0] += shift
        masks.append(np.where(xx < 0.5, GRASS, CROP).astype(np.uint8))
        images.append(np.clip(img, 0, 1))
    return TileSet.from_float(images, masks, [f"s{seed}_{i}" for i in range(n)])


@pytest.fixture(scope="module")
def sets():
    return smooth_tiles(12, 0), smooth_tiles(12, 1), smooth_tiles(12, 2, shift=0.12)


def test_identical_sets_have_w1_zero_spread_one_and_an_indistinguishable_two_sample_test(sets):
    a, _, _ = sets
    c = colour_stats(a, a)
    assert c["w1"] == 0 and all(v["spread_ratio"] == pytest.approx(1) for v in c["per_class"].values())
    pa, ma, ga = patches(a)
    assert 0.35 <= two_sample_accuracy(pa, ma, ga, pa, ma, ga) <= 0.65
    s = spectrum_stats(pa, pa)
    assert s["spectrum_distance"] == 0 and s["fine_power_ratio"] == pytest.approx(1)


def test_two_draws_of_one_distribution_are_close_and_a_colour_shift_is_caught(sets):
    a, b, shifted = sets
    same, moved = compare(a, b), compare(shifted, b)
    assert same["two_sample"] <= 0.7 and moved["two_sample"] >= 0.95
    assert same["w1"] < 3
    # red moved by 0.12 (about 30 uint8 levels): a quarter of the bands, so the band mean moves about 7.6
    assert moved["per_class"]["Grass"]["w1_bands"][0] == pytest.approx(30.5, abs=1.5)
    assert moved["w1"] > 5 * same["w1"]


def test_realism_table_puts_every_number_beside_real_vs_real(sets):
    a, b, shifted = sets
    t = realism_table(shifted, b, a)
    assert t["synthetic"]["w1"] > t["real"]["w1"]
    assert t["ratio"]["w1"] == pytest.approx(t["synthetic"]["w1"] / t["real"]["w1"])
    assert set(t["ratio"]["per_class_w1"]) == {"Grass", "Crop"}
    with pytest.raises(ValueError):
        realism_table(TileSet([], []), b, a)


def test_speckle_and_fine_scale_power_see_salt_and_pepper(sets):
    a, b, _ = sets
    rng = np.random.default_rng(3)
    noisy = TileSet([im.copy() for im in a.images], a.masks)
    for im in noisy.images:
        salt = rng.random(im.shape[1:]) < 0.1
        im[:, salt] = rng.integers(1, 256, (im.shape[0], int(salt.sum())))
    centres = colour_centres(b)
    assert np.mean(speckle_rate(noisy, centres)) > 4 * max(np.mean(speckle_rate(a, centres)), 1e-3)
    pn, _, _ = patches(noisy)
    pb, _, _ = patches(b)
    assert spectrum_stats(pn, pb)["fine_power_ratio"] > 3 * spectrum_stats(patches(a)[0], pb)["fine_power_ratio"]


def test_a_verbatim_copy_is_counted_and_flat_blocks_are_not():
    rng = np.random.default_rng(4)
    ref = rng.integers(1, 256, (4, 64, 64)).astype(np.uint8)
    syn = rng.integers(1, 256, (4, 64, 64)).astype(np.uint8)
    syn[:, 10:26, 30:46] = ref[:, 40:56, 5:21]                # a 16 x 16 piece, moved
    valid = np.ones((64, 64), bool)
    h = copies.hash_set([ref], [valid])
    assert copies.copied_share(syn, valid, h) == pytest.approx(256 / 4096)
    assert copies.copied_share(ref, valid, h) == 1.0
    assert copies.copied_share(rng.integers(1, 256, (4, 64, 64)).astype(np.uint8), valid, h) == 0
    flat = np.full((4, 64, 64), 120, np.uint8)
    assert copies.copied_share(flat, valid, copies.hash_set([flat], [valid])) == 0     # saturated / empty areas


def test_copied_shares_checks_one_tile_against_several_references_at_once():
    rng = np.random.default_rng(5)
    a, b = (rng.integers(1, 256, (3, 64, 64)).astype(np.uint8) for _ in range(2))
    syn = rng.integers(1, 256, (3, 64, 64)).astype(np.uint8)
    syn[:, 0:16, 0:16] = a[:, 8:24, 8:24]                     # 256 px from a
    syn[:, 40:64, 40:64] = b[:, 0:24, 0:24]                   # 576 px from b
    valid = np.ones((64, 64), bool)
    refs = [copies.hash_set([a], [valid]), copies.hash_set([b], [valid]), copies.EMPTY]
    got = copies.copied_shares(syn, valid, refs)
    assert got == pytest.approx([256 / 4096, 576 / 4096, 0.0])
    assert got == [copies.copied_share(syn, valid, r) for r in refs]
    assert copies.copied_shares(syn, np.zeros((64, 64), bool), refs) == [0.0, 0.0, 0.0]


def test_variant_and_real_pair_distances():
    a = np.full((3, 8, 8), 100, np.uint8)
    b = np.full((3, 8, 8), 110, np.uint8)
    assert copies.variant_distance([a, b, a], np.ones((8, 8), bool)) == pytest.approx((10 + 0 + 10) / 3)
    masks = [np.zeros((40, 40), np.uint8)] * 2
    assert copies.real_pair_distance([np.full((3, 40, 40), 50, np.uint8), np.full((3, 40, 40), 80, np.uint8)],
                                     masks) == pytest.approx(30)


def _rec(tid, kind="real", split="train", source=""):
    return TileRecord(tile_id=tid, kind=kind, row=0, col=0, attributes={"split": split}, source_tile_id=source,
                      artefacts={"image": "x", "mask": "y", "cond_mask": "z"})


def test_held_out_tiles_are_the_test_split_not_fitted_else_validation():
    recs = [_rec("a"), _rec("b", split="val"), _rec("c", split="test"), _rec("d", split="test")]
    assert [r.tile_id for r in held_out(recs, {"a", "d"})[0]] == ["c"]
    assert held_out(recs, {"a", "c", "d"}) == ([recs[1]], "val")
    assert held_out(recs, {"a", "b", "c", "d"}) == ([], "")


def test_the_report_says_why_realism_is_not_measured(tmp_path):
    recs = [_rec("a"), _rec("a_v1", kind="synthetic", source="a")]
    assert realism_section(tmp_path, recs[:1], None) is None                      # no synthetic tile
    assert "no fitted tiles" in realism_section(tmp_path, recs, None)["reason"]
    fitted_all = realism_section(tmp_path, recs, {"tiles": ["a"], "warning": ""})
    assert fitted_all["available"] is False and "held out" in fitted_all["reason"]
    warned = realism_section(tmp_path, recs, {"tiles": ["a"], "warning": "no train-split tile"})
    assert warned == {"available": False, "reason": "no train-split tile"}


# ------------------------------------------------------------------ bounded memory, same numbers

def test_bounded_memory_versions_give_the_numbers_of_the_whole_set_at_once(sets):
    """colour_centres samples tile by tile, the spectrum and the two-sample features go in chunks: the same
    numbers as computing over every pixel / patch at once."""
    from groundsynth.metrics import realism as R
    from groundsynth.metrics import twosample as T

    a = sets[0]
    rng = np.random.default_rng(7)
    pix = np.concatenate([a.images[i][:, a.valid(i)].T for i in range(len(a))]).astype(np.float32)
    pix = pix[rng.choice(len(pix), 3000, replace=False)]
    whole = pix[rng.choice(len(pix), 6, replace=False)]
    for _ in range(20):                                     # the Lloyd rounds of colour_centres, on all pixels
        lab = ((pix[:, None, :] - whole[None]) ** 2).sum(-1).argmin(1)
        for j in range(len(whole)):
            if (lab == j).any():
                whole[j] = pix[lab == j].mean(axis=0)
    assert np.array_equal(colour_centres(a, k=6, seed=7, sample=3000), whole)
    p, _, _ = patches(a, size=16)
    assert len(p) > T.FEATURE_CHUNK and len(p) > R.SPECTRUM_CHUNK
    assert np.array_equal(T.patch_features(p), np.concatenate([T._features(p[i:i + 1]) for i in range(len(p))]))
    b = p[:, :3].astype(np.float32).mean(axis=1) / 255.0
    b -= b.mean(axis=(1, 2), keepdims=True)
    h = np.hanning(16).astype(np.float32)
    win = np.outer(h, h)
    power = (np.abs(np.fft.fft2(b * win[None])) ** 2).mean(axis=0)
    f = np.fft.fftfreq(16) * 16
    r = np.rint(np.hypot(f[:, None], f[None, :])).astype(int)
    keep = r <= 8
    expected = np.bincount(r[keep], weights=power[keep], minlength=9) / np.bincount(r[keep], minlength=9)
    assert R.radial_spectrum(p) == pytest.approx(expected, rel=1e-9)


def test_the_report_compares_a_bounded_sample_of_held_out_tiles():
    from groundsynth.report.realism import MAX_TILES, RealismPlan, realism_plan

    real = [TileRecord(tile_id=f"r{i}", kind="real", row=0, col=i, artefacts={"image": "x", "mask": "y"},
                       attributes={"split": "test" if i % 2 else "train"}) for i in range(4 * MAX_TILES)]
    syn = [TileRecord(tile_id=f"r{i}_v1", kind="synthetic", row=0, col=i, variant=1, source_tile_id=f"r{i}",
                      artefacts={"image": "x", "cond_mask": "y"}) for i in range(0, 4 * MAX_TILES, 2)]
    plan = realism_plan(real + syn, {"tiles": [r.tile_id for r in real if r.attributes["split"] == "train"]})
    assert isinstance(plan, RealismPlan)
    assert len(plan.held) == MAX_TILES and len(plan.synth) == MAX_TILES and len(plan.reference) <= MAX_TILES
    assert {r.attributes["split"] for r in plan.held} == {"test"}


def test_hash_set_is_the_sorted_unique_block_hashes_of_every_tile():
    rng = np.random.default_rng(3)
    tiles = [rng.integers(0, 255, (3, 40, 40), dtype=np.uint8) for _ in range(3)]
    tiles.append(tiles[0].copy())                               # duplicate blocks across tiles: kept once
    valids = [np.ones((40, 40), bool) for _ in tiles]
    pairs = [copies.block_hashes(t, v) for t, v in zip(tiles, valids, strict=True)]
    expect = np.unique(np.concatenate([h[u] for h, u in pairs]))
    got = copies.hash_set(tiles, valids)
    assert got.hashes.dtype == np.uint64 and np.array_equal(got.hashes, expect)
    assert copies.hash_set([], []).size == 0


def test_a_block_set_answers_membership_exactly_like_a_search_of_its_sorted_hashes():
    rng = np.random.default_rng(8)
    # crowded buckets: hashes sharing their top bits (a bucket holds several), and an empty set
    for hashes in (np.unique(rng.integers(0, 2**63, 5000, dtype=np.uint64)),
                   np.unique(rng.integers(0, 2**20, 3000, dtype=np.uint64) << np.uint64(40)),
                   np.zeros(0, np.uint64)):
        s = copies.BlockSet.of(hashes)
        queries = np.concatenate([hashes[::3], rng.integers(0, 2**63, 4000, dtype=np.uint64),
                                  hashes[::7] + np.uint64(1)])
        assert np.array_equal(s.contains(queries), np.isin(queries, hashes))
        assert s.size == hashes.size


def test_block_hashes_tell_blocks_apart_exactly_when_their_pixels_differ():
    rng = np.random.default_rng(9)
    img = rng.integers(0, 4, (4, 48, 48)).astype(np.uint8)        # few levels: many equal blocks
    img[:, 20:36, 20:36] = img[:, 0:16, 0:16]
    h, _ = copies.block_hashes(img, np.ones((48, 48), bool))
    blocks = np.lib.stride_tricks.sliding_window_view(img, (8, 8), axis=(1, 2))     # (C, y, x, 8, 8)
    keys = blocks.transpose(1, 2, 0, 3, 4).reshape(h.size, -1)
    _, by_pixels = np.unique(keys, axis=0, return_inverse=True)
    _, by_hash = np.unique(h.ravel(), return_inverse=True)
    pairs = {(int(a), int(b)) for a, b in zip(by_pixels.ravel(), by_hash.ravel(), strict=True)}
    assert len(pairs) == by_pixels.max() + 1 == by_hash.max() + 1       # one hash per distinct block, and back


def test_each_realism_part_holds_the_held_out_set_and_one_other_set_at_most(monkeypatch, tmp_path, sets):
    """The synthetic and the reference comparison are separate parts (separate workers): neither loads the
    other's tiles, and the section assembled from them is realism_table's on the same sets."""
    from groundsynth.report import realism as RR

    a, b, shifted = sets
    loaded: list[str] = []

    def load(job_dir, recs, mask_key, group="tile"):
        which = recs[0].tile_id.split("_")[0]
        s = {"syn": shifted, "held": b, "src": a}[which]
        loaded.append(which)
        return TileSet(list(s.images), list(s.masks), list(s.groups))

    monkeypatch.setattr(RR, "_load", load)
    synth = tuple(_rec(f"syn_{i}", kind="synthetic", source=f"src_{i}") for i in range(len(shifted)))
    plan = RR.RealismPlan(synth, tuple(_rec(f"held_{i}", split="test") for i in range(len(b))),
                          tuple(_rec(f"src_{i}") for i in range(len(a))), (), "test")
    parts = {}
    for name in ("synthetic", "real"):
        loaded.clear()
        parts[name] = RR.realism_part(tmp_path, plan, name, seed=0)
        assert loaded == ["held", "syn" if name == "synthetic" else "src"]
    assert set(parts["synthetic"][1]) == {r.tile_id for r in synth}
    parts["copies"] = ({}, {})
    section = RR.assemble(plan, parts)
    expect = realism_table(shifted, b, a, seed=0)
    for key in ("synthetic", "real", "ratio", "tiles"):
        assert section[key] == expect[key]


def test_block_hashes_refuse_more_bands_than_fit_one_word():
    img = np.ones((9, 16, 16), np.uint8)
    with pytest.raises(ValueError, match="at most 8 bands into a 64-bit word, got 9"):
        copies.block_hashes(img, np.ones((16, 16), bool))
