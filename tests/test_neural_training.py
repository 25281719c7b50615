"""Training the segmenter and the generator on a tiny exported dataset, and `groundsynth train`."""
from __future__ import annotations

import json

import neural_fixtures as nf
import numpy as np
import pytest

from groundsynth.engines import get_engine
from groundsynth.engines.base import EngineContext
from groundsynth.models.cache import clear_shared_models
from groundsynth.request.errors import InvalidArgument


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    return nf.tiny_export(tmp_path_factory.mktemp("export") / "data")


@pytest.fixture(scope="module")
def model_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "segformer.json"
    path.write_text(json.dumps(nf.TINY_SEGFORMER_CONFIG))
    return str(path)


def test_export_dataset_reader(export_dir):
    from groundsynth.train.datasets import ExportDataset

    ds = ExportDataset(export_dir)
    assert ds.channels == 4                            # geotiff/ present -> RGB-NIR
    assert len(ds.select("train", "real")) == 8
    assert len(ds.select("train", "real+synthetic")) == 12
    assert all(s.kind == "synthetic" for s in ds.select("train", "synthetic"))
    image, mask = ds.load(ds.select("train", "synthetic")[0])
    assert image.shape == (4, 32, 32) and 0 <= image.min() and image.max() <= 1
    assert mask.dtype == np.uint8 and (mask[:4, :4] == 255).all()
    png = ExportDataset(export_dir, channels=3)
    assert png.load(png.samples[0])[0].shape == (3, 32, 32)
    with pytest.raises(InvalidArgument, match="dataset.csv"):
        ExportDataset(export_dir / "images")


def test_dice_loss():
    import torch

    from groundsynth.train.dice import dice_loss

    target = torch.tensor([[[0, 0], [6, 255]]])
    perfect = torch.full((1, 7, 2, 2), -20.0)
    perfect[0, 0, 0, :] = 20
    perfect[0, 6, 1, :] = 20
    assert float(dice_loss(perfect, target)) < 1e-4
    wrong = perfect.flip(1)
    assert float(dice_loss(wrong, target)) > 0.99


def test_segmenter_training_lowers_loss_and_reloads(export_dir, model_config, tmp_path, capsys):
    from groundsynth.train.segmenter import SegmenterTrainConfig, train_segmenter

    out = tmp_path / "segformer"
    res = train_segmenter(SegmenterTrainConfig(str(export_dir), str(out), epochs=8, batch_size=2, patience=100,
                                               model_config=model_config, device="cpu"))
    assert res.end_loss < res.start_loss - 1e-3       # Dice loss on the training split went down
    assert res.val_f1[-1] > res.val_f1[0]
    printed = capsys.readouterr().out
    for name in ("Tree", "Built-up", "Water", "macro"):
        assert name in printed                         # per-class and macro F1 / IoU
    assert 0 <= res.test["macro_f1"] <= 1 and 0 <= res.test["miou"] <= 1
    # the saved best model loads in the engine and reproduces the trainer's test scores
    from groundsynth.metrics.segmentation import ConfusionAccumulator
    from groundsynth.train.datasets import ExportDataset

    clear_shared_models()
    ds = ExportDataset(export_dir)
    rows = ds.select("test", "real")
    x, y = ds.arrays(rows)
    from groundsynth.engines.base import TileInput

    eng = get_engine("segment", "segformer")({"weights": str(out)}, EngineContext())
    preds = eng.segment([TileInput(r.tile_id, im, np.ones(im.shape[1:], bool)) for r, im in zip(rows, x, strict=True)])
    acc = ConfusionAccumulator()
    for t, p in zip(y, preds, strict=True):
        acc.add(t, p)
    assert acc.scores()["macro_f1"] == pytest.approx(res.test["macro_f1"], abs=1e-6)


def test_generator_training_lowers_loss_and_engine_loads_it(export_dir, tmp_path):
    from groundsynth.train.generator import GeneratorTrainConfig, train_generator

    out = tmp_path / "spade"
    res = train_generator(GeneratorTrainConfig(str(export_dir), str(out), epochs=2, batch_size=4, ngf=8, ndf=8,
                                               z_dim=8, spade_hidden=16, device="cpu"), log=lambda s: None)
    assert len(res.g_losses) == 4 and all(np.isfinite(res.d_losses))
    assert res.recon_l1[-1] < res.recon_l1[0] - 0.05   # generated tiles moved towards the real ones
    assert (out / "config.json").is_file() and (out / "generator.safetensors").is_file()
    eng = get_engine("synthesise", "spade")({"weights": str(out)}, EngineContext())
    masks = nf.random_masks(2)
    a = eng.synthesise(masks, [5, 6])
    clear_shared_models()
    b = get_engine("synthesise", "spade")({"weights": str(out)}, EngineContext()).synthesise(masks, [5, 6])
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True)) and a[0].shape == (4, 32, 32)


def test_train_command_compares_real_and_synthetic(export_dir, model_config, tmp_path, capsys):
    from groundsynth.cli.main import main

    """(--compare now runs three arms over --seeds into OUT/<arm>/seed<k>; was two arms into OUT/<arm>)"""
    out = tmp_path / "cmp"
    rc = main(["train", "segmenter", "--data", str(export_dir), "--out", str(out), "--epochs", "1",
               "--batch-size", "4", "--compare", "--seeds", "0,1", "--model-config", model_config, "--device", "cpu",
               "--max-steps", "2"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "real+synthetic" in printed and "macro F1" in printed and "95% CI" in printed
    for arm, n in (("real", 8), ("real+synthetic", 12), ("synthetic", 4)):
        for seed in (0, 1):
            meta = json.loads((out / arm / f"seed{seed}" / "training.json").read_text())
            assert meta["train_tiles"] == n and meta["config"]["seed"] == seed
            assert (out / arm / f"seed{seed}" / "config.json").is_file()
    comparison = json.loads((out / "comparison.json").read_text())
    assert set(comparison) == {"real", "real+synthetic", "synthetic"}
    for arm in comparison.values():
        f1 = arm["macro_f1"]
        assert f1["n"] == 2 and f1["ci_low"] <= f1["mean"] <= f1["ci_high"]
        assert f1["mean"] == pytest.approx(np.mean([r["macro_f1"] for r in arm["runs"]]))
    rc = main(["train", "generator", "--data", str(export_dir), "--out", str(tmp_path / "g"), "--epochs", "1",
               "--batch-size", "4", "--ngf", "4", "--ndf", "4", "--z-dim", "4", "--spade-hidden", "8",
               "--channels", "3", "--max-steps", "1"])
    assert rc == 0 and json.loads((tmp_path / "g" / "config.json").read_text())["out_channels"] == 3


def test_train_command_reports_bad_data_dir(tmp_path, capsys):
    from groundsynth.cli.main import main

    rc = main(["train", "segmenter", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert rc == 2
    assert "--data" in capsys.readouterr().err


def test_generator_training_with_a_local_vgg19_perceptual_loss(export_dir, tmp_path):
    import torch
    from torchvision.models import vgg19

    from groundsynth.models.spade import VGGLoss
    from groundsynth.train.generator import GeneratorTrainConfig, train_generator

    vgg_path = tmp_path / "vgg19_features.pth"
    torch.manual_seed(0)
    torch.save(vgg19(weights=None).features.state_dict(), vgg_path)
    loss = VGGLoss(str(vgg_path))
    a, b = torch.rand(2, 4, 32, 32) * 2 - 1, torch.rand(2, 4, 32, 32) * 2 - 1
    assert float(loss(a, a)) == 0.0 and float(loss(a, b)) > 0
    res = train_generator(GeneratorTrainConfig(str(export_dir), str(tmp_path / "g"), epochs=1, batch_size=4, ngf=4,
                                               ndf=4, z_dim=4, spade_hidden=8, vgg19=str(vgg_path), max_steps=2,
                                               device="cpu"), log=lambda s: None)
    assert len(res.perceptual) == 2 and all(np.isfinite(res.perceptual))
    meta = json.loads((tmp_path / "g" / "config.json").read_text())
    assert meta["training"]["perceptual"] == "vgg19"
    with pytest.raises(InvalidArgument, match="VGG19 weights not found"):
        train_generator(GeneratorTrainConfig(str(export_dir), str(tmp_path / "g2"), vgg19=str(tmp_path / "none.pth"),
                                             ngf=4, ndf=4, z_dim=4, device="cpu"), log=lambda s: None)


def test_segmenter_init_adapts_an_rgb_checkpoint_to_rgb_nir(tmp_path):
    import torch
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    from groundsynth.train.segmenter import init_from

    torch.manual_seed(0)
    src = SegformerForSemanticSegmentation(SegformerConfig(num_channels=3, num_labels=5,
                                                           **nf.TINY_SEGFORMER_CONFIG))
    src.save_pretrained(str(tmp_path / "rgb5"))
    labels = dict(id2label=dict(enumerate(nf.CLASS_NAMES)), num_labels=7)
    model = init_from(tmp_path / "rgb5", 4, labels, log=lambda s: None)
    assert model.config.num_channels == 4 and model.config.num_labels == 7
    s, d = src.state_dict(), model.state_dict()
    first = next(k for k in d if "patch_embeddings" in k and k.endswith("proj.weight"))
    assert torch.equal(d[first][:, :3], s[first])                       # RGB kernels kept
    assert torch.allclose(d[first][:, 3], s[first].mean(1))             # NIR kernel = mean of RGB
    shared = [k for k in d if k in s and s[k].shape == d[k].shape]
    assert len(shared) > 20 and all(torch.equal(d[k], s[k]) for k in shared)
    assert d["decode_head.classifier.weight"].shape[0] == 7             # new 7-class head


def test_trainers_read_a_real_export_of_a_neural_job(tmp_path, model_config, monkeypatch):
    """pipeline (segformer + spade + composition captions + clip) -> groundsynth.export -> both trainers."""
    from groundsynth.export.dataset import export_dataset
    from groundsynth.pipeline.prepare import RunOptions, job_dir, new_job_id
    from groundsynth.pipeline.runner import run_job
    from groundsynth.request.spec import Aoi, JobSpec, SplitOptions, StageConfig, SynthesisOptions
    from groundsynth.service.journal import Journal
    from groundsynth.train.generator import GeneratorTrainConfig, train_generator
    from groundsynth.train.segmenter import SegmenterTrainConfig, train_segmenter
    from tests.server_fixture import make_test_raster, raster_bbox

    monkeypatch.delenv("GROUNDSYNTH_MODELS", raising=False)
    ws = tmp_path / "ws"
    raster = make_test_raster(ws / "data" / "src.tif", size=128)
    nf.tiny_segformer(ws / "models" / "segformer")
    nf.tiny_spade(ws / "models" / "spade")
    nf.tiny_clip_local_dir(ws / "models" / "clip")
    stages = [StageConfig("segment", "segformer"), StageConfig("synthesise", "spade"),
              StageConfig("caption", "composition"),
              StageConfig("ground", "clip", {"reference_segmenter": "segformer"})]
    spec = JobSpec(aoi=Aoi(bbox=raster_bbox(128)), raster_path=str(raster), tile_size=32, stages=stages,
                   synthesis=SynthesisOptions(variants=1), split=SplitOptions(0.6, 0.2, 0.2, block_tiles=1))
    journal = Journal(ws / "journal.sqlite")
    job = new_job_id()
    assert run_job(job, spec, ws, journal, lambda event: None, options=RunOptions(batch_size=8)) == "SUCCEEDED"
    journal.close()
    info = export_dataset(job_dir(ws, job), tmp_path / "export")      # the job's own split (0.6, 0.2, 0.2)
    assert info["real"] == 16 and info["synthetic"] == 16

    res = train_segmenter(SegmenterTrainConfig(str(tmp_path / "export"), str(tmp_path / "seg"), epochs=1,
                                               batch_size=8, selection="real+synthetic", model_config=model_config,
                                               device="cpu"), log=lambda s: None)
    meta = json.loads((tmp_path / "seg" / "training.json").read_text())
    assert meta["channels"] == 4 and meta["train_tiles"] == info["splits"]["train"]
    assert res.test and 0 <= res.test["macro_f1"] <= 1
    gen = train_generator(GeneratorTrainConfig(str(tmp_path / "export"), str(tmp_path / "gen"), epochs=1,
                                               batch_size=8, ngf=4, ndf=4, z_dim=4, spade_hidden=8, device="cpu"),
                          log=lambda s: None)
    assert len(gen.g_losses) >= 1 and (tmp_path / "gen" / "generator.safetensors").is_file()
