"""segment/segformer and ground/clip through their real load paths with tiny models."""
from __future__ import annotations

import neural_fixtures as nf
import numpy as np
import pytest

from groundsynth.artefacts.records import TileRecord
from groundsynth.engines import get_engine
from groundsynth.engines.base import EngineContext, GroundInput
from groundsynth.models.cache import clear_shared_models
from groundsynth.request.errors import FailedPrecondition


@pytest.fixture(scope="module")
def seg_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("segformer")
    return {4: nf.tiny_segformer(root / "rgbn", channels=4), 3: nf.tiny_segformer(root / "rgb", channels=3, seed=1)}


@pytest.mark.parametrize("channels", [4, 3])
def test_segformer_segments_tiles_and_marks_nodata(seg_dirs, channels):
    eng = get_engine("segment", "segformer")({"weights": str(seg_dirs[channels]), "batch_size": "2"},
                                             EngineContext(has_nir=channels == 4))
    tiles = nf.random_tiles(3, size=32, channels=channels)
    masks = eng.segment(tiles)
    assert len(masks) == 3
    for m in masks:
        assert m.shape == (32, 32) and m.dtype == np.uint8
        assert (m[:2] == 255).all()                     # invalid rows -> nodata
        assert m[2:].max() <= 6                         # 7 classes
    # the same model reloaded from disk in a fresh cache gives the same masks
    clear_shared_models()
    again = get_engine("segment", "segformer")({"weights": str(seg_dirs[channels])}, EngineContext()).segment(tiles)
    assert all((a == b).all() for a, b in zip(masks, again, strict=True))


def test_segformer_batches_mixed_tile_sizes(seg_dirs):
    eng = get_engine("segment", "segformer")({"weights": str(seg_dirs[4]), "batch_size": "4"}, EngineContext())
    small = nf.random_tiles(1, size=24, seed=2)[0]
    tiles = nf.random_tiles(2, size=32) + [small]
    masks = eng.segment(tiles)
    assert [m.shape for m in masks] == [(32, 32), (32, 32), (24, 24)]
    assert np.array_equal(masks[2], eng.segment([small])[0])


def test_segformer_4band_model_refuses_rgb_tiles(seg_dirs):
    eng = get_engine("segment", "segformer")({"weights": str(seg_dirs[4])}, EngineContext(has_nir=False))
    with pytest.raises(FailedPrecondition, match="expects 4 bands"):
        eng.segment(nf.random_tiles(1, channels=3))


def test_segformer_missing_and_corrupt_weights_name_the_path(tmp_path):
    E = get_engine("segment", "segformer")
    missing = tmp_path / "nowhere"
    with pytest.raises(FailedPrecondition) as err:
        E({"weights": str(missing)}).segment(nf.random_tiles(1))
    assert str(missing) in err.value.message and err.value.code.name == "FAILED_PRECONDITION"
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "config.json").write_text("{not json")
    (corrupt / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(FailedPrecondition) as err:
        E({"weights": str(corrupt)}).segment(nf.random_tiles(1))
    assert str(corrupt) in err.value.message
    ok, reason = E.availability(str(tmp_path))
    assert not ok and str(tmp_path / "segformer") in reason


def test_segformer_default_location_under_models_dir(tmp_path):
    E = get_engine("segment", "segformer")
    nf.tiny_segformer(tmp_path / "segformer")
    assert E.availability(str(tmp_path)) == (True, "")
    masks = E({}, EngineContext(models_dir=str(tmp_path))).segment(nf.random_tiles(1))
    assert masks[0].shape == (32, 32)


# ------------------------------------------------------------------ CLIP

def _items(n=6, size=40, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        kind = "real" if i % 2 else "synthetic"
        img = rng.random((4, size, size), dtype=np.float32)
        if kind == "synthetic":
            img[0] = 0.9     # synthetic tiles look different: a red cast
        out.append(GroundInput(f"t{i}", kind, img, np.ones((size, size), bool), np.zeros((size, size), np.uint8),
                               ["a field of crops near the river", "trees and water", "built-up village"]))
    return out


@pytest.fixture(scope="module")
def clip_weights(tmp_path_factory):
    root = tmp_path_factory.mktemp("clip")
    path, arch = nf.tiny_clip_checkpoint(root / "openclip_ckpt.pt")
    return {
        "openai": {"weights": str(nf.tiny_clip_openai(root / "openai.pt"))},
        "open_clip": {"weights": str(path), "model": arch},
        "local_dir": {"weights": str(nf.tiny_clip_local_dir(root / "local"))},
        "hf": {"weights": str(nf.tiny_clip_hf(root / "hf"))},
    }


@pytest.mark.parametrize("fmt", ["openai", "open_clip", "local_dir", "hf"])
def test_clip_scores_captions_in_every_weight_format(clip_weights, fmt):
    eng = get_engine("ground", "clip")(clip_weights[fmt], EngineContext())
    items = _items()
    res = eng.ground(items)
    assert len(res) == len(items)
    enc = eng._encoder()
    img = enc.encode_images([it.image for it in items[:1]])[0]
    txt = enc.encode_texts(items[0].captions)
    expected = 100 * np.maximum(txt @ img, 0)
    assert res[0]["clipscore"] == pytest.approx(expected.mean(), abs=1e-3)
    assert res[0]["clipscore_max"] == pytest.approx(expected.max(), abs=1e-3)
    assert len(set(np.round(expected, 4))) > 1          # captions are told apart
    for r in res:
        assert 0 <= r["clipscore_min"] <= r["clipscore"] <= r["clipscore_max"] <= 100
    recs = [TileRecord(it.tile_id, it.kind, 0, i, metrics=m) for i, (it, m) in enumerate(zip(items, res, strict=True))]
    summary = eng.summarise(recs)
    assert summary["clipscore_mean_real"] == pytest.approx(np.mean([r["clipscore"] for r, it in zip(res, items, strict=True)
                                                                     if it.kind == "real"]))
    assert -1 <= summary["separability_silhouette"] <= 1


def test_clip_same_weights_in_open_clip_formats_agree(clip_weights):
    items = _items(2)
    a = get_engine("ground", "clip")(clip_weights["open_clip"]).ground(items)
    b = get_engine("ground", "clip")(clip_weights["local_dir"]).ground(items)
    assert a[0]["clipscore"] == pytest.approx(b[0]["clipscore"], abs=1e-4)


def test_clip_uses_rgb_bands_only(clip_weights):
    eng = get_engine("ground", "clip")(clip_weights["local_dir"])
    it = _items(1)[0]
    rgb = GroundInput(it.tile_id, it.kind, it.image[:3].copy(), it.valid, it.mask, it.captions)
    it.image[3] = 0.0   # NIR must not matter
    assert eng.ground([it])[0]["clipscore"] == pytest.approx(eng.ground([rgb])[0]["clipscore"], abs=1e-5)


def test_silhouette_matches_definition():
    from groundsynth.engines.neural.clip import silhouette

    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(0, 1, (5, 3)), rng.normal(4, 1, (4, 3))])
    labels = ["real"] * 5 + ["synthetic"] * 4
    d = np.linalg.norm(x[:, None] - x[None], axis=-1)
    s = []
    for i in range(len(x)):
        same = [j for j in range(len(x)) if labels[j] == labels[i] and j != i]
        other = [j for j in range(len(x)) if labels[j] != labels[i]]
        a, b = d[i, same].mean(), d[i, other].mean()
        s.append((b - a) / max(a, b))
    assert silhouette(x, labels) == pytest.approx(np.mean(s))
    assert silhouette(x, labels) > 0.5                  # well-separated groups
    assert np.isnan(silhouette(x, ["real"] * len(x)))
    # three groups, one a singleton (scores 0), against the brute-force definition
    labels3 = ["a"] * 4 + ["b"] * 4 + ["c"]
    s3 = []
    for i in range(len(x)):
        same = [j for j in range(len(x)) if labels3[j] == labels3[i] and j != i]
        if not same:
            s3.append(0.0)
            continue
        a = d[i, same].mean()
        b = min(d[i, [j for j in range(len(x)) if labels3[j] == o]].mean() for o in "abc" if o != labels3[i])
        s3.append((b - a) / max(a, b))
    assert silhouette(x, labels3) == pytest.approx(np.mean(s3))
    sub = silhouette(x, labels, max_samples=6, seed=1)
    assert -1 <= sub <= 1 and sub == silhouette(x, labels, max_samples=6, seed=1)


def test_clip_missing_and_corrupt_weights(tmp_path):
    E = get_engine("ground", "clip")
    with pytest.raises(FailedPrecondition, match=str(tmp_path / "none.pt")):
        E({"weights": str(tmp_path / "none.pt")}).ground(_items(1))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(FailedPrecondition, match=str(bad)):
        E({"weights": str(bad)}).ground(_items(1))
    ok, reason = E.availability(str(tmp_path))
    assert not ok and str(tmp_path / "clip") in reason


def test_clip_summary_embeds_the_tiles_another_worker_grounded(clip_weights, tmp_path):
    """With several workers each grounds a share of the tiles; the set metrics run on one of them, which reads
    the tiles it did not ground from the job folder (ctx.extra["job_dir"]) and so sees every tile."""
    from affine import Affine

    from groundsynth.artefacts.tiles import from_uint8, to_uint8, write_image_tile

    items = _items()
    for it in items:                                   # the images as the pipeline keeps them: their file values
        it.image, _ = from_uint8(to_uint8(it.image, it.valid))
    ctx = EngineContext(extra={"job_dir": str(tmp_path)})
    worker_a = get_engine("ground", "clip")(clip_weights["openai"], ctx)
    res = worker_a.ground(items[:3]) + get_engine("ground", "clip")(clip_weights["openai"], ctx).ground(items[3:])
    recs = []
    for i, (it, m) in enumerate(zip(items, res, strict=True)):
        write_image_tile(tmp_path / f"{it.tile_id}.tif", it.image, it.valid, Affine.identity(), None)
        recs.append(TileRecord(it.tile_id, it.kind, 0, i, metrics=m, artefacts={"image": f"{it.tile_id}.tif"}))
    everything = get_engine("ground", "clip")(clip_weights["openai"], EngineContext())
    everything.ground(items)
    expected = everything.summarise(recs)["separability_silhouette"]
    assert worker_a.summarise(recs)["separability_silhouette"] == pytest.approx(expected, abs=1e-5)
    assert set(worker_a._embeddings) == {it.tile_id for it in items}
