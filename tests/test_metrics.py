"""groundsynth.metrics against hand-computed cases."""
import math

import numpy as np
import pytest

from groundsynth.metrics import segmentation
from groundsynth.metrics import sets as metrics
from groundsynth.request.classes import CLASS_NAMES, NODATA


def test_confusion_matrix_counts_and_skips_nodata():
    truth = np.array([[0, 0, 1], [1, 6, NODATA]], dtype=np.uint8)
    pred = np.array([[0, 1, 1], [NODATA, 6, 0]], dtype=np.uint8)
    cm = segmentation.confusion_matrix(truth, pred)
    assert cm.shape == (7, 7)
    assert cm.sum() == 4                      # two pixels have 255 in one of the masks
    assert cm[0, 0] == 1 and cm[0, 1] == 1 and cm[1, 1] == 1 and cm[6, 6] == 1


def test_confusion_matrix_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shapes differ"):
        segmentation.confusion_matrix(np.zeros((2, 2)), np.zeros((3, 3)))


def test_segmentation_scores_hand_computed():
    # Accumulated over two "tiles" (pixel level over the whole set).
    acc = segmentation.ConfusionAccumulator()
    acc.add(np.array([[0, 0, 0, 0]]), np.array([[0, 0, 0, 1]]))     # Tree: 3 TP, 1 FN; Shrub: 1 FP
    acc.add(np.array([[1, 1, 6, 6]]), np.array([[1, 0, 6, 6]]))     # Shrub 1 TP 1 FN; Tree 1 FP; Water 2 TP
    s = acc.scores()
    # Tree: TP 3, FP 1, FN 1 -> F1 6/8, IoU 3/5. Shrub: TP 1, FP 1, FN 1 -> F1 2/4, IoU 1/3. Water: 1, 1.
    assert s["per_class"]["Tree"]["f1"] == pytest.approx(0.75)
    assert s["per_class"]["Tree"]["iou"] == pytest.approx(0.6)
    assert s["per_class"]["Shrub"]["f1"] == pytest.approx(0.5)
    assert s["per_class"]["Shrub"]["iou"] == pytest.approx(1 / 3)
    assert s["per_class"]["Water"]["f1"] == pytest.approx(1.0)
    # Grass..Barren appear in neither truth nor prediction: undefined, left out of the macro mean.
    assert s["per_class"]["Grass"]["f1"] is None and s["per_class"]["Barren"]["iou"] is None
    assert s["classes_scored"] == ["Tree", "Shrub", "Water"]
    assert s["macro_f1"] == pytest.approx((0.75 + 0.5 + 1.0) / 3)
    assert s["miou"] == pytest.approx((0.6 + 1 / 3 + 1.0) / 3)
    assert s["accuracy"] == pytest.approx(6 / 8)
    assert s["pixels"] == 8


def test_class_in_truth_never_predicted_scores_zero_and_counts():
    s = segmentation.segmentation_scores(segmentation.confusion_matrix(np.array([0, 2]), np.array([0, 0])))
    assert s["per_class"]["Grass"]["f1"] == 0.0
    # Tree: TP 1, FP 1 -> F1 2/3; Grass 0 -> macro 1/3
    assert s["macro_f1"] == pytest.approx(1 / 3)


def test_empty_confusion_matrix_gives_none():
    s = segmentation.segmentation_scores(np.zeros((7, 7), dtype=np.int64))
    assert s["macro_f1"] is None and s["accuracy"] is None and s["pixels"] == 0


def test_mean_iou_over_classes_present_in_either():
    a = np.array([[0, 0, 3, 3]], dtype=np.uint8)
    b = np.array([[0, 3, 3, 6]], dtype=np.uint8)
    # Tree 1/2, Crop 1/3, Water 0/1 -> mean over three classes
    assert segmentation.mean_iou(a, b) == pytest.approx((0.5 + 1 / 3 + 0) / 3)
    iou = segmentation.per_class_iou(a, b)
    assert np.isnan(iou[1]) and iou[6] == 0.0
    assert segmentation.pixel_accuracy(a, b) == pytest.approx(0.5)
    assert segmentation.mean_iou(a, a) == 1.0


def test_mean_iou_all_nodata_is_nan():
    empty = np.full((3, 3), NODATA, dtype=np.uint8)
    assert math.isnan(segmentation.mean_iou(empty, empty))
    assert math.isnan(segmentation.pixel_accuracy(empty, empty))


def test_caption_redundancy_is_one_minus_unique_over_total():
    assert metrics.caption_redundancy(["a", "b", "a", "c"]) == pytest.approx(0.25)
    assert metrics.caption_redundancy(["a", "a", "a", "a"]) == pytest.approx(0.75)
    assert metrics.caption_redundancy(["a", "A"]) == 0.0    # exact duplicates only
    assert metrics.caption_redundancy([]) == 0.0


def test_clip_score_scale():
    assert metrics.clip_score(0.3) == pytest.approx(30.0)
    assert metrics.clip_score(-0.2) == 0.0
    assert list(metrics.clip_score(np.array([0.5, -1.0]))) == [50.0, 0.0]


def test_js_divergence_hand_computed():
    assert metrics.js_divergence([1, 0], [0, 1]) == pytest.approx(1.0)       # disjoint: 1 bit
    assert metrics.js_divergence([0.5, 0.5], [0.5, 0.5]) == pytest.approx(0.0)
    # p = (1, 0), q = (1/2, 1/2): m = (3/4, 1/4); KL(p||m) = log2(4/3), KL(q||m) = 1/2 log2(2/3) + 1/2 log2(2)
    expected = 0.5 * math.log2(4 / 3) + 0.5 * (0.5 * math.log2(2 / 3) + 0.5 * 1)
    assert metrics.js_divergence([1, 0], [1, 1]) == pytest.approx(expected)
    with pytest.raises(ValueError):
        metrics.js_divergence([0, 0], [1, 0])


def test_composition_shift():
    real = [[1, 0, 0, 0, 0, 0, 0], [0.5, 0, 0, 0, 0, 0, 0.5]]
    synth = [[0, 0, 0, 0, 0, 0, 1]]
    out = metrics.composition_shift(real, synth)
    assert out["real"]["Tree"] == pytest.approx(0.75) and out["real"]["Water"] == pytest.approx(0.25)
    assert out["synthetic"]["Water"] == 1.0
    assert out["difference"]["Tree"] == pytest.approx(-0.75)
    assert out["js_divergence"] == pytest.approx(metrics.js_divergence([0.75, 0.25], [0, 1]))
    assert out["tiles_real"] == 2 and out["tiles_synthetic"] == 1
    none = metrics.composition_shift(real, [])
    assert none["js_divergence"] is None and none["synthetic"] is None
    with pytest.raises(ValueError, match="7 shares"):
        metrics.composition_shift([[1, 0]], synth)


def test_describe():
    d = metrics.describe([1.0, 2.0, 3.0, None, float("nan")])
    assert d["n"] == 3 and d["mean"] == 2.0 and d["median"] == 2.0 and d["min"] == 1.0 and d["max"] == 3.0
    assert d["p10"] == pytest.approx(1.2) and d["p90"] == pytest.approx(2.8)
    assert metrics.describe([])["mean"] is None
    assert len(CLASS_NAMES) == 7
