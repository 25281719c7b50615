"""Train the SegFormer segmenter on an exported dataset (the original recipe).

Multiclass Dice loss, AdamW (lr 1e-3), flips/rot90/brightness-contrast
augmentation, early stopping on validation macro-F1 (patience), best model
saved with save_pretrained (config carries the input normalisation), then
per-class and macro F1 / IoU and accuracy on the test split (real rows only,
pixel-level over the whole split; groundsynth.metrics definitions).

`selection` runs one arm of the original comparison: "real" (real rows only)
or "real+synthetic" (synthetic rows added to the training split only).
"""
from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from groundsynth.request.classes import CLASS_NAMES, NUM_CLASSES
from groundsynth.request.errors import InvalidArgument
from groundsynth.train.datasets import ExportDataset

# SegFormer-B0 (mit-b0) shape; override with a config JSON for other sizes.
B0 = dict(num_encoder_blocks=4, depths=[2, 2, 2, 2], sr_ratios=[8, 4, 2, 1], hidden_sizes=[32, 64, 160, 256],
          num_attention_heads=[1, 2, 5, 8], decoder_hidden_size=256)


@dataclass
class SegmenterTrainConfig:
    data: str
    out: str
    epochs: int = 20
    batch_size: int = 24
    lr: float = 1e-3
    weight_decay: float = 1e-2
    patience: int = 5
    selection: str = "real"          # "real", "real+synthetic", "all"
    channels: int | None = None      # None = 4 when geotiff/ exists, else 3
    device: str = "auto"
    max_steps: int = 0               # 0 = no limit (for smoke runs)
    seed: int = 0
    model_config: str | None = None  # JSON file of SegformerConfig fields (default: B0 shape)
    init: str | None = None          # local SegFormer directory to start from (e.g. pretrained mit-b0)
    augment: bool = True


@dataclass
class TrainResult:
    out: Path
    losses: list[float] = field(default_factory=list)       # training loss per step
    start_loss: float = math.nan     # Dice loss on the (unaugmented) training split before training
    end_loss: float = math.nan       # ... and after the last step
    val_f1: list[float] = field(default_factory=list)        # per epoch
    best_epoch: int = 0
    test: dict[str, Any] = field(default_factory=dict)       # groundsynth.metrics.segmentation.segmentation_scores


def build_model(cfg: SegmenterTrainConfig, channels: int):
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    from groundsynth.models.segformer import normalisation

    labels = dict(id2label=dict(enumerate(CLASS_NAMES)), label2id={n: i for i, n in enumerate(CLASS_NAMES)},
                  num_labels=NUM_CLASSES)
    if cfg.init:
        model = init_from(Path(cfg.init).absolute(), channels, labels)
    else:
        extra = dict(B0)
        if cfg.model_config:
            try:
                extra = json.loads(Path(cfg.model_config).read_text())
            except (OSError, ValueError) as exc:
                raise InvalidArgument(f"cannot read {cfg.model_config}: {exc}", "--model-config") from None
        model = SegformerForSemanticSegmentation(SegformerConfig(num_channels=channels, **{**extra, **labels}))
    mean, std = normalisation(Path(cfg.init) if cfg.init else None, model.config, channels)
    model.config.image_mean, model.config.image_std = mean, std
    return model, mean, std


def init_from(path: Path, channels: int, labels: dict, log: Callable[[str], None] = print):
    """A 7-class SegFormer with `channels` inputs, initialised from a local SegFormer checkpoint
    (e.g. ImageNet mit-b0 or an ADE20k model). Matching tensors are copied; the first patch
    embedding is adapted when the channel count differs (RGB kernels kept, an extra NIR kernel =
    mean of the RGB kernels); tensors that cannot match (the classifier of another label set)
    keep their fresh initialisation."""
    import copy

    import torch
    from transformers import SegformerForSemanticSegmentation

    from groundsynth.models.weights import check_hf_dir, load_or_fail, require

    require(check_hf_dir(path))
    src = load_or_fail(path, "SegFormer --init", lambda: SegformerForSemanticSegmentation.from_pretrained(  # nosec B615 # local files only (local_files_only=True): nothing is downloaded
        str(path), local_files_only=True))
    conf = copy.deepcopy(src.config)
    conf.num_channels = channels
    for k, v in labels.items():
        setattr(conf, k, v)
    model = SegformerForSemanticSegmentation(conf)
    src_sd = src.state_dict()
    new_sd = model.state_dict()
    first_embed = next(k for k in new_sd if "patch_embeddings" in k and k.endswith("proj.weight"))
    fresh = []
    with torch.no_grad():
        for key, dst in new_sd.items():
            old = src_sd.get(key)
            if old is not None and old.shape == dst.shape:
                dst.copy_(old)
            elif old is not None and key == first_embed:
                n = min(old.shape[1], dst.shape[1])
                dst[:, :n] = old[:, :n]
                if dst.shape[1] > n:
                    dst[:, n:] = old.mean(1, keepdim=True)
                log(f"--init: {key} adapted from {old.shape[1]} to {dst.shape[1]} input channels")
            else:
                fresh.append(key)
    model.load_state_dict(new_sd)
    if fresh:
        log(f"--init: {len(fresh)} tensors start fresh (no match in {path}): {', '.join(fresh[:4])}"
            f"{' ...' if len(fresh) > 4 else ''}")
    return model


def evaluate(model, images: np.ndarray, masks: np.ndarray, mean, std, device, batch_size: int) -> dict:
    import torch

    from groundsynth.metrics.segmentation import ConfusionAccumulator

    acc = ConfusionAccumulator()
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    model.eval()
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            x = (torch.from_numpy(images[i:i + batch_size]) - m) / s
            logits = model(pixel_values=x.to(device)).logits
            logits = torch.nn.functional.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
            pred = logits.argmax(1).cpu().numpy()
            for t, p in zip(masks[i:i + batch_size], pred, strict=True):
                acc.add(t, p)
    return acc.scores()


def dataset_loss(model, images: np.ndarray, masks: np.ndarray, mean, std, device, batch_size: int) -> float:
    """Mean Dice loss over a split, no augmentation (eval mode)."""
    import torch

    from groundsynth.train.dice import dice_loss

    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    model.eval()
    losses, weights = [], []
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            x = ((torch.from_numpy(images[i:i + batch_size]) - m) / s).to(device)
            logits = model(pixel_values=x).logits
            logits = torch.nn.functional.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
            losses.append(float(dice_loss(logits, torch.from_numpy(masks[i:i + batch_size]).long().to(device))))
            weights.append(len(x))
    return float(np.average(losses, weights=weights))


def format_scores(title: str, scores: dict) -> str:
    def pct(v):
        return "   n/a" if v is None else f"{100 * v:6.2f}"

    lines = [title, f"{'class':<10} {'F1':>6} {'IoU':>6} {'pixels':>9}"]
    for name, sc in scores["per_class"].items():
        lines.append(f"{name:<10} {pct(sc['f1'])} {pct(sc['iou'])} {sc['support']:>9}")
    lines.append(f"{'macro':<10} {pct(scores['macro_f1'])} {pct(scores['miou'])}   accuracy {pct(scores['accuracy'])}")
    return "\n".join(lines)


def train_segmenter(cfg: SegmenterTrainConfig, log: Callable[[str], None] = print) -> TrainResult:
    import torch

    from groundsynth.models.device import resolve_device
    from groundsynth.train.augment import augment
    from groundsynth.train.dice import dice_loss

    device = resolve_device(cfg.device, "--device")
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    ds = ExportDataset(cfg.data, cfg.channels)
    train_rows = ds.select("train", cfg.selection)
    val_rows = ds.select("val", "real")
    test_rows = ds.select("test", "real")
    if not train_rows:
        raise InvalidArgument(f"no training rows for selection {cfg.selection!r} in {ds.root}", "--data")
    log(f"training SegFormer on {len(train_rows)} tiles ({cfg.selection}, {ds.channels} channels), "
        f"{len(val_rows)} val, {len(test_rows)} test, device {device}")
    x_train, y_train = ds.arrays(train_rows)
    x_val, y_val = ds.arrays(val_rows) if val_rows else (x_train, y_train)
    if not val_rows:
        log("warning: no val rows; early stopping watches the training split")
    model, mean, std = build_model(cfg, ds.channels)
    model.to(device)
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    out = Path(cfg.out).absolute()
    result = TrainResult(out)
    result.start_loss = dataset_loss(model, x_train, y_train, mean, std, device, cfg.batch_size)
    best, bad_epochs, step = -math.inf, 0, 0
    n = len(x_train)
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        t0 = time.time()
        order = torch.randperm(n, generator=gen)
        epoch_losses = []
        for i in range(0, n, cfg.batch_size):
            idx = order[i:i + cfg.batch_size].numpy()
            xb, yb = torch.from_numpy(x_train[idx]), torch.from_numpy(y_train[idx]).long()
            if cfg.augment:
                xb, yb = augment(xb, yb, gen)
            xb = ((xb - m) / s).to(device)
            logits = model(pixel_values=xb).logits
            logits = torch.nn.functional.interpolate(logits, size=yb.shape[-2:], mode="bilinear", align_corners=False)
            loss = dice_loss(logits, yb.to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            result.losses.append(loss.item())
            epoch_losses.append(loss.item())
            if cfg.max_steps and step >= cfg.max_steps:
                break
        val = evaluate(model, x_val, y_val, mean, std, device, cfg.batch_size)
        f1 = val["macro_f1"] or 0.0
        result.val_f1.append(f1)
        log(f"epoch {epoch}: dice loss {np.mean(epoch_losses):.4f}, val macro-F1 {100 * f1:.2f} "
            f"({time.time() - t0:.1f}s)")
        if f1 > best:
            best, bad_epochs, result.best_epoch = f1, 0, epoch
            model.save_pretrained(str(out))
        else:
            bad_epochs += 1
            if bad_epochs >= cfg.patience:
                log(f"early stop: no val macro-F1 gain for {cfg.patience} epochs (best epoch {result.best_epoch})")
                break
        if cfg.max_steps and step >= cfg.max_steps:
            break
    result.end_loss = dataset_loss(model, x_train, y_train, mean, std, device, cfg.batch_size)
    log(f"training-split Dice loss {result.start_loss:.4f} -> {result.end_loss:.4f}")
    from groundsynth.models.segformer import load_segformer

    best_model, mean, std = load_segformer(out, device, "float32")
    if test_rows:
        x_test, y_test = ds.arrays(test_rows)
        result.test = evaluate(best_model, x_test, y_test, mean, std, device, cfg.batch_size)
        log(format_scores(f"test split ({len(test_rows)} real tiles), best epoch {result.best_epoch}:", result.test))
    else:
        log("no test rows: test scores skipped")
    (out / "training.json").write_text(json.dumps({
        "selection": cfg.selection, "channels": ds.channels, "epochs_run": len(result.val_f1),
        "best_epoch": result.best_epoch, "val_macro_f1": result.val_f1, "test": result.test,
        "train_tiles": len(train_rows)}, indent=2))
    return result
