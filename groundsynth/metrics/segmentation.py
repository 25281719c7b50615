"""Segmentation scores, pure numpy (definitions from the ARAS400k work, ../shared/REFERENCE.md).

Pixel-level scores over the WHOLE set (one confusion matrix accumulated over
every tile, not a mean of per-tile scores), macro-averaged over the 7 classes:
F1 (Dice) per class = 2TP / (2TP + FP + FN), IoU per class = TP / (TP + FP + FN),
accuracy = correct pixels / all scored pixels. A class absent from BOTH truth
and prediction (TP + FP + FN = 0) has no defined F1/IoU: its per-class score is
reported as None and it is left out of the macro average (the same rule as
scikit-learn's macro average over the labels seen in truth or prediction). A
class present in either but never matched scores 0 and counts. Pixels that are
NODATA (255) in either mask are not scored.

mIoU between two masks (mask fidelity): the same IoU, macro over the classes
present in either mask.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from groundsynth.request.classes import CLASS_NAMES, NODATA, NUM_CLASSES

# ------------------------------------------------------------------ confusion matrix

def confusion_matrix(truth: np.ndarray, pred: np.ndarray, num_classes: int = NUM_CLASSES,
                     ignore: int = NODATA) -> np.ndarray:
    """(num_classes, num_classes) int64 counts, rows = truth, columns = prediction.

    Pixels equal to `ignore` in either array, or outside 0..num_classes-1, are skipped.
    """
    truth = np.asarray(truth)
    pred = np.asarray(pred)
    if truth.shape != pred.shape:
        raise ValueError(f"truth and prediction shapes differ: {truth.shape} vs {pred.shape}")
    t = truth.ravel().astype(np.int64)
    p = pred.ravel().astype(np.int64)
    keep = (t != ignore) & (p != ignore) & (t >= 0) & (t < num_classes) & (p >= 0) & (p < num_classes)
    idx = t[keep] * num_classes + p[keep]
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


class ConfusionAccumulator:
    """Accumulates one confusion matrix over many tiles (pixel-level over the whole set)."""

    def __init__(self, num_classes: int = NUM_CLASSES):
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)

    def add(self, truth: np.ndarray, pred: np.ndarray) -> None:
        self.matrix += confusion_matrix(truth, pred, self.matrix.shape[0])

    def scores(self) -> dict:
        return segmentation_scores(self.matrix)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.full(num.shape, np.nan, dtype=float)
    np.divide(num, den, out=out, where=den > 0)
    return out


def segmentation_scores(matrix: np.ndarray, class_names: Sequence[str] = CLASS_NAMES) -> dict:
    """Per-class and macro F1 / IoU and overall accuracy from a confusion matrix.

    Returns {"per_class": {name: {"f1", "iou", "support", "predicted"}}, "macro_f1",
    "miou", "accuracy", "pixels", "classes_scored"}; undefined values are None
    (see module doc for classes absent from both truth and prediction).
    """
    m = np.asarray(matrix, dtype=np.int64)
    tp = np.diag(m).astype(float)
    fp = m.sum(axis=0) - tp
    fn = m.sum(axis=1) - tp
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    iou = _ratio(tp, tp + fp + fn)
    total = int(m.sum())
    defined = ~np.isnan(iou)
    per_class = {
        name: {"f1": None if np.isnan(f1[i]) else float(f1[i]),
               "iou": None if np.isnan(iou[i]) else float(iou[i]),
               "support": int(m[i].sum()), "predicted": int(m[:, i].sum())}
        for i, name in enumerate(class_names)
    }
    return {
        "per_class": per_class,
        "macro_f1": float(np.mean(f1[defined])) if defined.any() else None,
        "miou": float(np.mean(iou[defined])) if defined.any() else None,
        "accuracy": float(tp.sum() / total) if total else None,
        "pixels": total,
        "classes_scored": [class_names[i] for i in np.flatnonzero(defined)],
    }


# ------------------------------------------------------------------ mask agreement

def per_class_iou(a: np.ndarray, b: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """IoU per class between two masks (NaN for classes in neither); 255 in either is skipped."""
    m = confusion_matrix(a, b, num_classes)
    tp = np.diag(m).astype(float)
    return _ratio(tp, m.sum(axis=0) + m.sum(axis=1) - tp)


def mean_iou(a: np.ndarray, b: np.ndarray, num_classes: int = NUM_CLASSES) -> float:
    """mIoU between two masks, macro over the classes present in either; NaN if no valid pixel."""
    iou = per_class_iou(a, b, num_classes)
    defined = ~np.isnan(iou)
    return float(np.mean(iou[defined])) if defined.any() else float("nan")


def pixel_accuracy(a: np.ndarray, b: np.ndarray, num_classes: int = NUM_CLASSES) -> float:
    """Share of pixels (valid in both) where the masks agree; NaN if none valid."""
    m = confusion_matrix(a, b, num_classes)
    total = m.sum()
    return float(np.trace(m) / total) if total else float("nan")
