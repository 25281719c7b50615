"""synthesise/spade: the SPADE generator through its checkpoint load path."""
from __future__ import annotations

import neural_fixtures as nf
import numpy as np
import pytest

from groundsynth.engines import get_engine
from groundsynth.engines.base import EngineContext
from groundsynth.models.cache import clear_shared_models
from groundsynth.request.errors import FailedPrecondition


@pytest.fixture(scope="module")
def spade_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("spade")
    return {4: nf.tiny_spade(root / "rgbn", 4), 3: nf.tiny_spade(root / "rgb", 3, seed=1)}


def test_spade_generator_shapes_and_architecture():
    import torch

    from groundsynth.models.spade import PatchDiscriminator, SpadeConfig, SpadeGenerator, one_hot

    cfg = SpadeConfig(out_channels=4, ngf=4, ndf=4, z_dim=4, spade_hidden=8)
    g = SpadeGenerator(cfg)
    # 4 SPADE residual blocks, channels 16*ngf -> ngf (1024 -> 64 at the original ngf 64)
    assert len(g.blocks) == 4
    assert [b.conv_0.in_channels for b in g.blocks] == [64, 32, 16, 8] and g.conv_img.in_channels == 4
    masks = torch.from_numpy(np.stack(nf.random_masks(2, 32)))
    seg = one_hot(masks)
    assert seg.shape == (2, 8, 32, 32) and (seg.sum(1) == 1).all()
    z = g.noise(2, (32, 32), seeds=[1, 2])
    assert z.shape == (2, 4, 2, 2)                      # noise at tile/16
    img = g(seg, z)
    assert img.shape == (2, 4, 32, 32) and img.abs().max() <= 1      # tanh output at tile size
    feats = PatchDiscriminator(cfg)(seg, img)
    assert feats[-1].shape[1] == 1 and len(feats) == 4


@pytest.mark.parametrize("channels", [4, 3])
def test_spade_engine_variants_differ_and_seeds_reproduce(spade_dirs, channels):
    ctx = EngineContext(has_nir=channels == 4)
    eng = get_engine("synthesise", "spade")({"weights": str(spade_dirs[channels]), "batch_size": "2"}, ctx)
    masks = nf.random_masks(3)
    out = eng.synthesise(masks, [11, 12, 13])
    assert len(out) == 3
    for im in out:
        assert im.shape == (channels, 32, 32) and im.dtype == np.float32 and 0 <= im.min() and im.max() <= 1
    v1, v2 = eng.synthesise([masks[0], masks[0]], [1, 2])
    assert np.abs(v1 - v2).mean() > 1e-3                 # the noise makes variants of one mask differ
    # same seed after a reload from disk: identical output
    clear_shared_models()
    again = get_engine("synthesise", "spade")({"weights": str(spade_dirs[channels]), "batch_size": "2"},
                                              ctx).synthesise(masks, [11, 12, 13])
    assert all(np.array_equal(a, b) for a, b in zip(out, again, strict=True))
    # another batch size only changes float rounding
    one_batch = get_engine("synthesise", "spade")({"weights": str(spade_dirs[channels]), "batch_size": "8"},
                                                  ctx).synthesise(masks, [11, 12, 13])
    assert all(np.allclose(a, b, atol=1e-3) for a, b in zip(out, one_batch, strict=True))


def test_spade_four_band_model_serves_rgb_job_but_not_reverse(spade_dirs):
    rgb = get_engine("synthesise", "spade")({"weights": str(spade_dirs[4])}, EngineContext(has_nir=False))
    assert rgb.synthesise(nf.random_masks(1), [0])[0].shape[0] == 3
    nir = get_engine("synthesise", "spade")({"weights": str(spade_dirs[3])}, EngineContext(has_nir=True))
    with pytest.raises(FailedPrecondition, match="3 bands"):
        nir.synthesise(nf.random_masks(1), [0])


def test_spade_missing_and_corrupt_checkpoints(tmp_path, spade_dirs):
    E = get_engine("synthesise", "spade")
    with pytest.raises(FailedPrecondition, match=str(tmp_path / "none")):
        E({"weights": str(tmp_path / "none")}).synthesise(nf.random_masks(1), [0])
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text('{"arch": "spade", "out_channels": 4, "ngf": 8}')
    (bad / "generator.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(FailedPrecondition, match=str(bad)):
        E({"weights": str(bad)}).synthesise(nf.random_masks(1), [0])
    ok, reason = E.availability(str(tmp_path))
    assert not ok and str(tmp_path / "spade") in reason

def test_spade_handles_mixed_and_odd_tile_sizes(spade_dirs):
    eng = get_engine("synthesise", "spade")({"weights": str(spade_dirs[4]), "batch_size": "4"}, EngineContext())
    m32, m40 = nf.random_masks(1, 32)[0], nf.random_masks(1, 48)[0][:40, :36]
    out = eng.synthesise([m32, m40, m32], [1, 2, 1])
    assert [o.shape for o in out] == [(4, 32, 32), (4, 40, 36), (4, 32, 32)]
    assert np.array_equal(out[0], out[2])              # same mask and seed, same image
