"""Multiclass Dice loss (the original recipe's segmentation loss), nodata-aware."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from groundsynth.request.classes import NODATA


def dice_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = NODATA,
              eps: float = 1e-6) -> torch.Tensor:
    """1 - mean soft Dice over the classes present in `target`.

    logits (N, K, H, W); target long (N, H, W) with class indices, `ignore_index` skipped.
    Like segmentation_models_pytorch's multiclass DiceLoss: classes absent from the
    batch's targets do not count (their Dice is undefined).
    """
    k = logits.shape[1]
    valid = (target != ignore_index)
    probs = logits.float().softmax(1) * valid.unsqueeze(1)
    onehot = F.one_hot(torch.where(valid, target, 0).long(), k).permute(0, 3, 1, 2).float() * valid.unsqueeze(1)
    dims = (0, 2, 3)
    inter = (probs * onehot).sum(dims)
    card = probs.sum(dims) + onehot.sum(dims)
    dice = (2 * inter + eps) / (card + eps)
    present = onehot.sum(dims) > 0
    if not present.any():
        return logits.sum() * 0.0
    return 1 - dice[present].mean()
