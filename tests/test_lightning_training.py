"""The Lightning trainers: 2-process DDP on the CPU (gloo), resume from a checkpoint, STAC MLM metadata,
a TorchGeo/smp model, evaluation against a label raster, precision checks."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import neural_fixtures as nf
import numpy as np
import pytest

from groundsynth.request.errors import InvalidArgument
from tests.stac_offline import offline_validation

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    return nf.tiny_export(tmp_path_factory.mktemp("export") / "data")


@pytest.fixture(scope="module")
def model_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "segformer.json"
    path.write_text(json.dumps(nf.TINY_SEGFORMER_CONFIG))
    return str(path)


def metrics_rows(out: Path) -> list[dict]:
    files = sorted(out.glob("logs/*/version_*/metrics.csv"))
    assert files, f"no CSV log under {out}/logs"
    with open(files[-1], newline="") as fh:
        return list(csv.DictReader(fh))


def test_segmenter_ddp_on_two_cpu_processes(export_dir, model_config, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "groundsynth", "train", "segmenter", "--data", str(export_dir),
                          "--out", str(out), "--devices", "2", "--device", "cpu", "--epochs", "2", "--batch-size", "2",
                          "--model-config", model_config, "--patience", "10"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "2 x CPU" in run.stdout
    meta = json.loads((out / "training.json").read_text())
    assert meta["devices"] == 2 and meta["epochs_run"] == 2
    steps = [r for r in metrics_rows(out) if r.get("train_loss")]
    assert len(steps) == 2 * 2          # 8 train tiles / 2 processes / batch 2 = 2 steps per epoch (4 on one)
    assert (out / "config.json").is_file() and (out / "checkpoints" / "last.ckpt").is_file()
    assert "test split" in run.stdout


def test_segmenter_resumes_from_its_last_checkpoint(export_dir, model_config, tmp_path):
    import torch

    from groundsynth.train.segmenter import SegmenterTrainConfig, train_segmenter

    out = tmp_path / "seg"
    cfg = SegmenterTrainConfig(str(export_dir), str(out), epochs=2, batch_size=4, patience=10,
                               model_config=model_config, device="cpu")
    first = train_segmenter(cfg, log=lambda s: None)
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    epochs = ckpt["loops"]["fit_loop"]["epoch_progress"]["current"]
    assert epochs["processed"] == 2 and ckpt["global_step"] == 4 and len(first.val_f1) == 2
    resumed = train_segmenter(SegmenterTrainConfig(**{**cfg.__dict__, "epochs": 4, "resume": "last"}),
                              log=lambda s: None)
    assert len(resumed.val_f1) == 2 and len(resumed.losses) == 4        # only epochs 3 and 4 ran
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    epochs = ckpt["loops"]["fit_loop"]["epoch_progress"]["current"]
    assert epochs["processed"] == 4 and ckpt["global_step"] == 8
    assert resumed.test and (out / "model.safetensors").is_file()
    with pytest.raises(InvalidArgument, match="no checkpoint to resume") as err:
        train_segmenter(SegmenterTrainConfig(str(export_dir), str(tmp_path / "new"), resume="last", device="cpu"))
    assert err.value.field == "--resume"


def test_generator_gets_checkpoints_resume_and_a_csv_log(export_dir, tmp_path):
    import torch

    from groundsynth.train.generator import GeneratorTrainConfig, train_generator

    out = tmp_path / "gen"
    cfg = GeneratorTrainConfig(str(export_dir), str(out), epochs=1, batch_size=4, ngf=4, ndf=4, z_dim=4,
                               spade_hidden=8, device="cpu")
    first = train_generator(cfg, log=lambda s: None)
    assert len(first.g_losses) == 2 and len(first.recon_l1) == 2
    resumed = train_generator(GeneratorTrainConfig(**{**cfg.__dict__, "epochs": 2, "resume": "last"}),
                              log=lambda s: None)
    assert len(resumed.g_losses) == 2                                   # epoch 2 only
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"] == 2
    assert len(ckpt["optimizer_states"]) == 2 and ckpt["global_step"] == 2 * 4     # 2 optimisers x 2 batches x 2
    assert json.loads((out / "config.json").read_text())["training"]["epochs"] == 2
    assert any(r.get("g_loss") for r in metrics_rows(out))
    with pytest.raises(InvalidArgument, match="needs a GPU") as err:
        train_generator(GeneratorTrainConfig(**{**cfg.__dict__, "precision": "16-mixed", "out": str(tmp_path / "x")}),
                        log=lambda s: None)
    assert err.value.field == "--precision"


def test_trained_models_carry_valid_stac_mlm_metadata(export_dir, model_config, tmp_path):
    import pystac

    from groundsynth.train.segmenter import SegmenterTrainConfig, train_segmenter

    out = tmp_path / "seg"
    train_segmenter(SegmenterTrainConfig(str(export_dir), str(out), epochs=1, batch_size=4,
                                         model_config=model_config, device="cpu"), log=lambda s: None)
    item = pystac.read_file(str(out / "mlm.json"))
    with offline_validation():
        assert any("mlm" in uri for uri in item.validate())
    p = item.properties
    assert p["mlm:framework"] == "pytorch" and p["mlm:tasks"] == ["semantic-segmentation"]
    inp = p["mlm:input"][0]
    assert inp["bands"] == ["red", "green", "blue", "nir"] and inp["input"]["shape"] == [-1, 4, 32, 32]
    config = json.loads((out / "config.json").read_text())
    assert [s["mean"] for s in inp["value_scaling"]] == pytest.approx(config["image_mean"])
    classes = p["mlm:output"][0]["classification:classes"]
    assert [c["description"] for c in classes] == list(nf.CLASS_NAMES) and classes[6]["color_hint"] == "0000FF"
    model = item.assets["model"]
    assert "mlm:model" in model.roles and model.extra_fields["mlm:artifact_type"] == "safetensors"
    assert Path(model.get_absolute_href()).resolve() == (out / "model.safetensors").resolve()


def test_a_torchgeo_smp_model_trains_and_is_described(export_dir, tmp_path):
    import pystac

    from groundsynth.train.segmenter import SegmenterTrainConfig, train_segmenter

    out = tmp_path / "unet"
    res = train_segmenter(SegmenterTrainConfig(str(export_dir), str(out), epochs=1, batch_size=4, arch="unet",
                                               backbone="resnet18", device="cpu"), log=lambda s: None)
    assert res.test and 0 <= res.test["macro_f1"] <= 1 and res.checkpoint.endswith(".ckpt")
    assert not (out / "config.json").exists()                       # not a SegFormer: no engine directory
    item = pystac.read_file(str(out / "mlm.json"))
    with offline_validation():
        item.validate()
    assert item.properties["mlm:architecture"] == "unet"
    assert item.assets["checkpoint"].extra_fields["mlm:artifact_type"] == "torch.save"


def test_evaluation_against_a_label_raster(export_dir, model_config, tmp_path):
    import rasterio
    from rasterio.transform import from_origin

    from groundsynth.train.segmenter import SegmenterTrainConfig, train_segmenter

    labels = tmp_path / "worldcover.tif"
    with rasterio.open(labels, "w", driver="GTiff", width=64, height=64, count=1, dtype="uint8", crs="EPSG:32618",
                       transform=from_origin(500000 - 160, 4000000 + 160, 10, 10), nodata=0) as dst:
        dst.write(np.full((1, 64, 64), 80, np.uint8))                # WorldCover 80 = permanent water
    res = train_segmenter(SegmenterTrainConfig(str(export_dir), str(tmp_path / "seg"), epochs=1, batch_size=4,
                                               model_config=model_config, device="cpu", labels=str(labels)),
                          log=lambda s: None)
    support = {k: v["support"] for k, v in res.test["per_class"].items()}
    assert support["Water"] == 3 * 32 * 32 and sum(support.values()) == 3 * 32 * 32   # the label raster, not masks
