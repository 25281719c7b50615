"""Train the segmenter on an exported dataset with Lightning (TorchGeo's SemanticSegmentationTask).

The original recipe (groundsynth.train.seg_task): multiclass Dice loss, AdamW (lr 1e-3),
flips/rot90/brightness-contrast augmentation, early stopping on validation macro-F1 (patience),
the best epoch kept. Lightning adds mixed precision on a GPU, DDP over `devices`, checkpoints
(OUT/checkpoints/last.ckpt, best.ckpt) with `resume`, and a CSV log (OUT/logs). The best model is
exported with save_pretrained into OUT (config carries the input normalisation and class names), so
the segment/segformer engine loads it; OUT/mlm.json describes it (STAC MLM). Then per-class and
macro F1 / IoU and accuracy on the test split's real tiles (pixel level over the whole split,
groundsynth.metrics definitions), or against a label raster (`labels`, ESA WorldCover codes) over
the test tiles' footprints.

`selection` picks the training rows of one arm: "real", "real+synthetic" (synthetic rows added to
the training split only) or "synthetic"; validation and test are always real.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from groundsynth.request.errors import InvalidArgument
from groundsynth.train.datasets import ExportDataset

# SegFormer-B0 (mit-b0) shape; override with a config JSON for other sizes (same as seg_task.B0).
B0 = dict(num_encoder_blocks=4, depths=[2, 2, 2, 2], sr_ratios=[8, 4, 2, 1], hidden_sizes=[32, 64, 160, 256],
          num_attention_heads=[1, 2, 5, 8], decoder_hidden_size=256)
HF = "hf-segformer"


@dataclass
class SegmenterTrainConfig:
    data: str
    out: str
    epochs: int = 20
    batch_size: int = 24
    lr: float = 1e-3
    weight_decay: float = 1e-2
    patience: int = 5
    selection: str = "real"          # "real", "real+synthetic", "synthetic", "all"
    channels: int | None = None      # None = 4 when the RGB-NIR GeoTIFFs exist, else 3
    device: str = "auto"             # auto, cpu, cuda, mps
    max_steps: int = 0               # 0 = no limit (for smoke runs)
    seed: int = 0
    model_config: str | None = None  # JSON file of SegformerConfig fields (default: B0 shape)
    init: str | None = None          # local SegFormer directory to start from (e.g. pretrained mit-b0)
    augment: bool = True
    arch: str = HF                   # "hf-segformer", or a TorchGeo/smp model: "unet", "deeplabv3+", "fpn" ...
    backbone: str = "resnet18"       # smp encoder of a TorchGeo model (weights=None: nothing downloads)
    devices: int = 1                 # > 1: DDP
    precision: str = "auto"          # auto (mixed on a GPU), 32-true, 16-mixed, bf16-mixed
    resume: str | None = None        # "last" or a checkpoint path
    labels: str | None = None        # label raster (WorldCover codes) to evaluate against instead of test masks
    workers: int = 0                 # DataLoader worker processes


@dataclass
class TrainResult:
    out: Path
    losses: list[float] = field(default_factory=list)       # training loss per step
    start_loss: float = math.nan     # Dice loss on the (unaugmented) training split before training
    end_loss: float = math.nan       # ... and after the last step
    val_f1: list[float] = field(default_factory=list)        # per epoch
    best_epoch: int = 0
    test: dict[str, Any] = field(default_factory=dict)       # groundsynth.metrics.segmentation.segmentation_scores
    checkpoint: str = ""             # the best (or last) Lightning checkpoint
    rank: int = 0                    # DDP: only rank 0 exports, evaluates and returns a full result


def init_from(path: Path, channels: int, labels: dict, log: Callable[[str], None] = print):
    """A 7-class SegFormer initialised from a local SegFormer checkpoint (groundsynth.train.seg_task)."""
    from groundsynth.train.seg_task import init_from as _init_from

    return _init_from(path, channels, labels, log)


def format_scores(title: str, scores: dict) -> str:
    def pct(v):
        return "   n/a" if v is None else f"{100 * v:6.2f}"

    lines = [title, f"{'class':<10} {'F1':>6} {'IoU':>6} {'pixels':>9}"]
    for name, sc in scores["per_class"].items():
        lines.append(f"{name:<10} {pct(sc['f1'])} {pct(sc['iou'])} {sc['support']:>9}")
    lines.append(f"{'macro':<10} {pct(scores['macro_f1'])} {pct(scores['miou'])}   accuracy {pct(scores['accuracy'])}")
    return "\n".join(lines)


def _loader(images: np.ndarray, masks: np.ndarray, batch_size: int, shuffle: bool, seed: int, workers: int):
    import torch
    from torch.utils.data import DataLoader, Dataset

    class Tiles(Dataset):
        def __len__(self) -> int:
            return len(images)

        def __getitem__(self, i: int) -> dict[str, Any]:
            return {"image": torch.from_numpy(images[i]), "mask": torch.from_numpy(masks[i].astype(np.int64))}

    return DataLoader(Tiles(), batch_size=batch_size, shuffle=shuffle, num_workers=workers,
                      generator=torch.Generator().manual_seed(seed), persistent_workers=workers > 0)


def predict(task, images: np.ndarray, batch_size: int) -> list[np.ndarray]:
    import torch

    task.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            x = torch.from_numpy(images[i:i + batch_size]).to(task.device)
            out += list(task(x).argmax(1).cpu().numpy().astype(np.uint8))
    return out


def split_loss(task, images: np.ndarray, masks: np.ndarray, batch_size: int) -> float:
    """Mean Dice loss over a split, no augmentation (eval mode)."""
    import torch

    task.eval()
    losses, weights = [], []
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            x = torch.from_numpy(images[i:i + batch_size]).to(task.device)
            y = torch.from_numpy(masks[i:i + batch_size]).long().to(task.device)
            losses.append(float(task.criterion(task(x), y)))
            weights.append(len(x))
    return float(np.average(losses, weights=weights))


def build_task(cfg: SegmenterTrainConfig, channels: int):
    from groundsynth.models.segformer import normalisation
    from groundsynth.train.seg_task import SegmenterTask, read_model_config

    init_cfg = None
    if cfg.init and cfg.arch == HF and (Path(cfg.init) / "config.json").is_file():
        from transformers import SegformerConfig

        init_cfg = SegformerConfig.from_pretrained(cfg.init, local_files_only=True)  # nosec B615 - local only; image_mean/std
    mean, std = normalisation(Path(cfg.init) if cfg.init else None, init_cfg, channels)
    return SegmenterTask(model=cfg.arch, backbone=cfg.backbone, in_channels=channels, lr=cfg.lr,
                         weight_decay=cfg.weight_decay, segformer_config=read_model_config(cfg.model_config),
                         init=str(Path(cfg.init).absolute()) if cfg.init else None, mean=mean, std=std,
                         augment=cfg.augment, seed=cfg.seed)


def train_segmenter(cfg: SegmenterTrainConfig, log: Callable[[str], None] = print) -> TrainResult:
    from groundsynth.train.lightning_run import lightning, make_trainer, resume_path

    lightning(with_torchgeo=True)
    from groundsynth.train.seg_finish import epoch_scores_callback, finish_segmenter

    ds = ExportDataset(cfg.data, cfg.channels)
    train_rows, val_rows = ds.select("train", cfg.selection), ds.select("val", "real")
    if not train_rows:
        raise InvalidArgument(f"no training rows for selection {cfg.selection!r} in {ds.root}", "--data")
    out = Path(cfg.out).absolute()
    resume = resume_path(out, cfg.resume)
    x_train, y_train = ds.arrays(train_rows)
    x_val, y_val = ds.arrays(val_rows) if val_rows else (x_train, y_train)
    if not val_rows:
        log("warning: no val rows; early stopping watches the training split")
    task = build_task(cfg, ds.channels)
    result = TrainResult(out)
    scores = epoch_scores_callback(result)
    trainer, ckpt = make_trainer(out, "segmenter", cfg.device, cfg.devices, cfg.precision, cfg.epochs, cfg.max_steps,
                                 "val_macro_f1", cfg.patience, [scores], cfg.seed)
    result.rank = trainer.global_rank
    if trainer.is_global_zero:
        log(f"training {cfg.arch} on {len(train_rows)} tiles ({cfg.selection}, {ds.channels} channels), "
            f"{len(val_rows)} val, {len(ds.select('test', 'real'))} test; {trainer.num_devices} x "
            f"{type(trainer.accelerator).__name__.replace('Accelerator', '')}, precision {trainer.precision}")
        result.start_loss = split_loss(task, x_train, y_train, cfg.batch_size)
        task.train()                     # split_loss left it in eval mode; Lightning does not switch back
    trainer.fit(task, _loader(x_train, y_train, cfg.batch_size, True, cfg.seed, cfg.workers),
                _loader(x_val, y_val, cfg.batch_size, False, cfg.seed, cfg.workers), ckpt_path=resume)
    if not trainer.is_global_zero:
        return result
    result.losses = list(task.step_losses)
    result.end_loss = split_loss(task.to("cpu"), x_train, y_train, cfg.batch_size)
    log(f"training-split Dice loss {result.start_loss:.4f} -> {result.end_loss:.4f}")
    result.checkpoint = ckpt.best_model_path or ckpt.last_model_path
    finish_segmenter(cfg, ds, task, result, len(train_rows), log)
    (out / "training.json").write_text(json.dumps({
        "selection": cfg.selection, "channels": ds.channels, "epochs_run": len(result.val_f1),
        "best_epoch": result.best_epoch, "val_macro_f1": result.val_f1, "test": result.test,
        "train_tiles": len(train_rows), "checkpoint": result.checkpoint, "precision": str(trainer.precision),
        "devices": trainer.num_devices, "config": asdict(cfg)}, indent=2))
    return result
