"""The segmenter's LightningModule: TorchGeo's SemanticSegmentationTask with the original's recipe.

- model "hf-segformer" (default): a transformers SegFormer (B0 shape, or the given config, or
  initialised from a local SegFormer with `init`), exported with save_pretrained so the
  segment/segformer engine loads it; any other name ("unet", "deeplabv3+", "fpn" ... with an
  smp `backbone`) is built by TorchGeo (segmentation_models_pytorch, weights=None: no download).
- loss: multiclass Dice (groundsynth.train.dice, 255 ignored); optimiser AdamW (lr 1e-3, weight
  decay 1e-2), no scheduler.
- inputs: images in [0, 1]; the module normalises them (z-score with `mean`/`std`, which the
  exported SegFormer config carries as image_mean/image_std, so the engine does the same).
- training: flips / rot90 / brightness-contrast per sample (groundsynth.train.augment).
- validation: one confusion matrix over the whole split (torchmetrics, synced across DDP
  processes), scored with groundsynth.metrics.segmentation: `val_macro_f1` (watched by early
  stopping and the best checkpoint) and `val_miou`.
"""
from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torchgeo.trainers import SemanticSegmentationTask

from groundsynth.request.classes import CLASS_NAMES, NODATA, NUM_CLASSES
from groundsynth.request.errors import InvalidArgument

HF = "hf-segformer"
# SegFormer-B0 (mit-b0) shape; override with a config JSON for other sizes.
B0 = dict(num_encoder_blocks=4, depths=[2, 2, 2, 2], sr_ratios=[8, 4, 2, 1], hidden_sizes=[32, 64, 160, 256],
          num_attention_heads=[1, 2, 5, 8], decoder_hidden_size=256)
LABELS = dict(id2label=dict(enumerate(CLASS_NAMES)), label2id={n: i for i, n in enumerate(CLASS_NAMES)},
              num_labels=NUM_CLASSES)


def read_model_config(path: str | None) -> dict:
    if not path:
        return dict(B0)
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InvalidArgument(f"cannot read {path}: {exc}", "--model-config") from None


def init_from(path: Path, channels: int, labels: dict, log: Callable[[str], None] = print):
    """A 7-class SegFormer with `channels` inputs, initialised from a local SegFormer checkpoint
    (e.g. ImageNet mit-b0 or an ADE20k model). Matching tensors are copied; the first patch
    embedding is adapted when the channel count differs (RGB kernels kept, an extra NIR kernel =
    mean of the RGB kernels); tensors that cannot match (the classifier of another label set)
    keep their fresh initialisation."""
    from transformers import SegformerForSemanticSegmentation

    from groundsynth.models.weights import check_hf_dir, load_or_fail, require

    require(check_hf_dir(path))
    src = load_or_fail(path, "SegFormer --init", lambda: SegformerForSemanticSegmentation.from_pretrained(  # nosec B615
        str(path), local_files_only=True))     # local files only: nothing is downloaded
    conf = copy.deepcopy(src.config)
    conf.num_channels = channels
    for k, v in labels.items():
        setattr(conf, k, v)
    model = SegformerForSemanticSegmentation(conf)
    src_sd, new_sd = src.state_dict(), model.state_dict()
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


def build_segformer(channels: int, config: dict, init: str | None):
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    if init:
        return init_from(Path(init).absolute(), channels, LABELS)
    return SegformerForSemanticSegmentation(SegformerConfig(num_channels=channels, **{**config, **LABELS}))


class DiceLoss(torch.nn.Module):
    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        from groundsynth.train.dice import dice_loss

        return dice_loss(logits, target, NODATA)


class SegmenterTask(SemanticSegmentationTask):
    monitor = "val_macro_f1"
    mode = "max"

    def __init__(self, model: str = HF, backbone: str = "resnet18", in_channels: int = 4,
                 num_classes: int = NUM_CLASSES, lr: float = 1e-3, weight_decay: float = 1e-2,
                 segformer_config: dict | None = None, init: str | None = None, mean: list[float] | None = None,
                 std: list[float] | None = None, augment: bool = True, seed: int = 0) -> None:
        super().__init__(model=model, backbone=backbone, weights=None, in_channels=in_channels,
                         num_classes=num_classes, ignore_index=NODATA, lr=lr)
        self.register_buffer("mean", torch.tensor(mean or [0.5] * in_channels).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std or [0.25] * in_channels).view(1, -1, 1, 1), persistent=False)
        self.step_losses: list[float] = []

    def configure_models(self) -> None:
        h = self.hparams
        if h["model"] == HF:
            self.model = build_segformer(h["in_channels"], h["segformer_config"] or dict(B0), h["init"])
        else:
            super().configure_models()

    def configure_losses(self) -> None:
        self.criterion = DiceLoss()

    def configure_metrics(self) -> None:
        from torchmetrics.classification import MulticlassConfusionMatrix

        super().configure_metrics()
        self.val_cm = MulticlassConfusionMatrix(NUM_CLASSES, ignore_index=NODATA)
        self.test_cm = MulticlassConfusionMatrix(NUM_CLASSES, ignore_index=NODATA)

    def configure_optimizers(self) -> Any:
        return torch.optim.AdamW(self.parameters(), lr=self.hparams["lr"], weight_decay=self.hparams["weight_decay"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        if self.hparams["model"] != HF:
            return self.model(x)
        logits = self.model(pixel_values=x).logits
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)

    def training_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        if self.hparams["augment"]:
            from groundsynth.train.augment import augment

            gen = torch.Generator().manual_seed(self.hparams["seed"] * 1_000_003 + self.global_step * 97 + self.global_rank)
            image, mask = augment(batch["image"].cpu(), batch["mask"].cpu(), gen)
            batch = {**batch, "image": image.to(self.device), "mask": mask.to(self.device)}
        loss = super().training_step(batch, batch_idx, dataloader_idx)
        self.step_losses.append(float(loss.detach()))
        return loss

    def _eval_step(self, batch: Any, cm: Any, prefix: str) -> None:
        y_hat = self(batch["image"])
        cm.update(y_hat.argmax(1), batch["mask"])
        self.log(f"{prefix}_loss", self.criterion(y_hat, batch["mask"]), batch_size=len(y_hat), sync_dist=True)

    def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._eval_step(batch, self.val_cm, "val")

    def test_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._eval_step(batch, self.test_cm, "test")

    def _log_scores(self, cm: Any, prefix: str) -> dict:
        from groundsynth.metrics.segmentation import segmentation_scores

        scores = segmentation_scores(cm.compute().cpu().numpy())
        cm.reset()
        self.log(f"{prefix}_macro_f1", float(scores["macro_f1"] or 0.0))
        self.log(f"{prefix}_miou", float(scores["miou"] or 0.0))
        return scores

    def on_validation_epoch_end(self) -> None:
        self._log_scores(self.val_cm, "val")

    def on_test_epoch_end(self) -> None:
        self._log_scores(self.test_cm, "test")
