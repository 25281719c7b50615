"""metrics/accuracy: error matrix, sample accuracies, bootstrap intervals and area-weighted estimates on cases
whose answer is known (hand computation, the worked example of Olofsson et al. 2014, simulation)."""

import numpy as np
import pytest

from groundsynth.metrics.accuracy import bootstrap_ci, error_matrix, sample_accuracy, stratified_estimates


def _points(matrix):
    """Sample arrays (mapped, reference) reproducing an error matrix (rows = map, columns = reference)."""
    m, r = [], []
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            m += [i] * int(count)
            r += [j] * int(count)
    return np.array(m), np.array(r)


def test_error_matrix_rows_are_the_map_and_columns_the_reference():
    cm = error_matrix(np.array([0, 0, 1, 6]), np.array([0, 1, 1, 255]))
    assert cm.shape == (7, 7) and cm.sum() == 3          # 255 (no reference) is skipped
    assert cm[0, 0] == 1 and cm[0, 1] == 1 and cm[1, 1] == 1   # mapped 0, reference 1 -> row 0, column 1


def test_sample_accuracy_of_a_known_matrix_matches_hand_computation():
    # map Tree/Grass/Water against reference, 3 classes used
    cm = np.zeros((7, 7), int)
    cm[0, 0], cm[0, 2] = 40, 10        # 50 mapped Tree: 40 right, 10 really Grass
    cm[2, 2], cm[2, 0] = 30, 20        # 50 mapped Grass: 30 right, 20 really Tree
    cm[6, 6] = 50
    s = sample_accuracy(cm)
    assert s["n"] == 150 and s["overall_accuracy"] == pytest.approx(120 / 150)
    tree, grass, water = s["per_class"]["Tree"], s["per_class"]["Grass"], s["per_class"]["Water"]
    assert tree["users_accuracy"] == pytest.approx(40 / 50) and tree["producers_accuracy"] == pytest.approx(40 / 60)
    assert grass["users_accuracy"] == pytest.approx(30 / 50) and grass["producers_accuracy"] == pytest.approx(30 / 40)
    ua, pa = 0.8, 40 / 60
    assert tree["f1"] == pytest.approx(2 * ua * pa / (ua + pa))
    assert water["f1"] == 1.0
    assert s["per_class"]["Shrub"]["f1"] is None          # in neither map nor reference: no score
    assert s["macro_f1"] == pytest.approx((tree["f1"] + grass["f1"] + 1.0) / 3)


def test_a_class_mapped_but_never_right_scores_zero_and_counts():
    cm = np.zeros((7, 7), int)
    cm[0, 0] = 10
    cm[4, 0] = 5                        # Built-up mapped, always Tree in reality
    s = sample_accuracy(cm)
    assert s["per_class"]["Built-up"]["users_accuracy"] == 0.0
    assert s["per_class"]["Built-up"]["producers_accuracy"] is None     # no reference Built-up point
    assert s["per_class"]["Built-up"]["f1"] == 0.0
    assert s["macro_f1"] == pytest.approx((2 * 10 / 25 + 0.0) / 2)


# ------------------------------------------------------------------ Olofsson et al. 2014, section 5 example

OLOFSSON_MATRIX = np.array([[66, 0, 5, 4], [0, 55, 8, 12], [1, 0, 153, 11], [2, 1, 9, 313]])
OLOFSSON_MAPPED_PX = np.array([200_000, 150_000, 3_200_000, 6_450_000])   # 30 m pixels (0.09 ha)
NAMES4 = ("deforestation", "gain", "stable forest", "stable non-forest")


def _olofsson_direct(matrix, mapped_px):
    """Olofsson et al. (2014) eqs. 2-10 transcribed directly, with strata = map classes."""
    n = matrix.astype(float)
    ni = n.sum(axis=1)
    W = mapped_px / mapped_px.sum()
    p = W[:, None] * n / ni[:, None]                        # eq. 4
    oa = np.trace(p)                                        # eq. 1
    ua = np.diag(p) / p.sum(axis=1)                         # eq. 2
    pa = np.diag(p) / p.sum(axis=0)                         # eq. 3
    v_oa = np.sum(W ** 2 * ua * (1 - ua) / (ni - 1))        # eq. 5
    v_ua = ua * (1 - ua) / (ni - 1)                         # eq. 6
    Nj = (mapped_px[:, None] / ni[:, None] * n).sum(axis=0)  # estimated reference-class totals N_.j
    v_pa = np.zeros(len(W))
    for j in range(len(W)):                                 # eq. 7
        first = mapped_px[j] ** 2 * (1 - pa[j]) ** 2 * ua[j] * (1 - ua[j]) / (ni[j] - 1)
        others = sum(mapped_px[i] ** 2 * n[i, j] / ni[i] * (1 - n[i, j] / ni[i]) / (ni[i] - 1)
                     for i in range(len(W)) if i != j)
        v_pa[j] = (first + pa[j] ** 2 * others) / Nj[j] ** 2
    se_area = np.sqrt([np.sum(W ** 2 * (n[:, j] / ni) * (1 - n[:, j] / ni) / (ni - 1))   # eq. 10
                       for j in range(len(W))])
    return oa, ua, pa, np.sqrt(v_oa), np.sqrt(v_ua), np.sqrt(v_pa), p.sum(axis=0), se_area


def test_stratified_estimates_reproduce_the_olofsson_2014_worked_example():
    mapped, reference = _points(OLOFSSON_MATRIX)
    est = stratified_estimates(mapped, reference, mapped, dict(enumerate(OLOFSSON_MAPPED_PX)), num_classes=4,
                               class_names=NAMES4)
    oa, ua, pa, se_oa, se_ua, se_pa, area, se_area = _olofsson_direct(OLOFSSON_MATRIX, OLOFSSON_MAPPED_PX)
    assert est["overall_accuracy"]["value"] == pytest.approx(oa) and est["overall_accuracy"]["se"] == pytest.approx(se_oa)
    for i, name in enumerate(NAMES4):
        c = est["per_class"][name]
        assert c["users_accuracy"]["value"] == pytest.approx(ua[i])
        assert c["users_accuracy"]["se"] == pytest.approx(se_ua[i])
        assert c["producers_accuracy"]["value"] == pytest.approx(pa[i])
        assert c["producers_accuracy"]["se"] == pytest.approx(se_pa[i])
        assert c["area_share"]["value"] == pytest.approx(area[i])
        assert c["area_share"]["se"] == pytest.approx(se_area[i])
    # the numbers printed in the paper: OA 0.95 +- 0.02, deforestation UA 0.88 +- 0.07, PA 0.75 +- 0.21,
    # area of deforestation 21,158 +- 6,158 ha, of gain 11,686 +- 3,756 ha (95 % intervals)
    total_ha = OLOFSSON_MAPPED_PX.sum() * 0.09
    d = est["per_class"]["deforestation"]
    assert round(est["overall_accuracy"]["value"], 2) == 0.95
    assert round(1.96 * est["overall_accuracy"]["se"], 2) == 0.02
    assert round(d["users_accuracy"]["value"], 2) == 0.88 and round(1.96 * d["users_accuracy"]["se"], 2) == 0.07
    assert round(d["producers_accuracy"]["value"], 2) == 0.75
    assert round(1.96 * d["producers_accuracy"]["se"], 2) == 0.21
    assert round(d["area_share"]["value"] * total_ha) == 21158
    assert round(1.96 * d["area_share"]["se"] * total_ha) == 6158
    g = est["per_class"]["gain"]
    assert round(g["area_share"]["value"] * total_ha) == 11686 and round(1.96 * g["area_share"]["se"] * total_ha) == 3756
    lo, hi = d["users_accuracy"]["ci95"]
    assert lo == pytest.approx(0.88 - 1.959964 * d["users_accuracy"]["se"]) and hi > 0.88


def test_stratified_estimates_with_strata_that_are_not_the_map_classes_are_unbiased():
    """Stehman (2014): a population with known OA/UA/PA/areas, strata that differ from the map classes;
    the mean estimate over repeated stratified samples is the truth, and the SE matches the spread."""
    rng = np.random.default_rng(3)
    N = 20000
    strata = rng.integers(0, 3, N)                             # e.g. the map of an older classifier
    reference = np.where(strata == 0, rng.choice(3, N, p=[0.7, 0.2, 0.1]),
                         np.where(strata == 1, rng.choice(3, N, p=[0.1, 0.8, 0.1]), rng.choice(3, N, p=[0.05, 0.15, 0.8])))
    flip = rng.random(N) < 0.25
    mapped = np.where(flip, rng.integers(0, 3, N), reference)  # the map under test
    true_oa = np.mean(mapped == reference)
    true_ua1 = np.mean(reference[mapped == 1] == 1)
    true_pa2 = np.mean(mapped[reference == 2] == 2)
    true_area0 = np.mean(reference == 0)
    sizes = {h: int(np.sum(strata == h)) for h in range(3)}
    draws = []
    for _ in range(300):
        idx = np.concatenate([rng.choice(np.flatnonzero(strata == h), n, replace=False)
                              for h, n in ((0, 40), (1, 80), (2, 30))])
        e = stratified_estimates(mapped[idx], reference[idx], strata[idx], sizes, num_classes=3, class_names="abc")
        draws.append((e["overall_accuracy"]["value"], e["overall_accuracy"]["se"],
                      e["per_class"]["b"]["users_accuracy"]["value"], e["per_class"]["c"]["producers_accuracy"]["value"],
                      e["per_class"]["a"]["area_share"]["value"]))
    d = np.array(draws)
    assert d[:, 0].mean() == pytest.approx(true_oa, abs=0.006)
    assert d[:, 2].mean() == pytest.approx(true_ua1, abs=0.01)
    assert d[:, 3].mean() == pytest.approx(true_pa2, abs=0.015)
    assert d[:, 4].mean() == pytest.approx(true_area0, abs=0.006)
    assert d[:, 1].mean() == pytest.approx(d[:, 0].std(), rel=0.15)     # the SE describes the sampling spread


def test_a_weighted_stratum_with_fewer_than_two_units_makes_the_estimates_unavailable():
    out = stratified_estimates(np.array([0, 0, 1]), np.array([0, 0, 1]), np.array([0, 0, 1]), {0: 0.5, 1: 0.5})
    assert "unavailable" in out and "stratum 1" in out["unavailable"]


# ------------------------------------------------------------------ bootstrap

def test_bootstrap_of_a_perfect_sample_is_a_point_interval():
    ref = np.repeat(np.arange(7), 10)
    ci = bootstrap_ci(ref, ref, replicates=300)
    assert ci["oa"] == [1.0, 1.0] and ci["macro_f1"] == [1.0, 1.0]
    assert all(c == [1.0, 1.0] for c in ci["ua"])


def test_bootstrap_interval_of_overall_accuracy_matches_the_binomial_one():
    n, right = 400, 320                                   # OA 0.8: the 95 % interval is 0.8 +- 1.96 sqrt(.8 .2 / 400)
    ref = np.zeros(n, int)
    mapped = np.where(np.arange(n) < right, 0, 1)
    lo, hi = bootstrap_ci(mapped, ref, replicates=4000, seed=1)["oa"]
    half = 1.96 * np.sqrt(0.8 * 0.2 / n)
    assert lo == pytest.approx(0.8 - half, abs=0.008) and hi == pytest.approx(0.8 + half, abs=0.008)
    ua = bootstrap_ci(mapped, ref, replicates=4000, seed=1)["ua"][0]
    assert ua == [1.0, 1.0]                              # every point mapped 0 is 0


def test_bootstrap_resamples_whole_units_and_keeps_strata_sizes():
    # 20 polygons of 10 points each, all points of a polygon agree or disagree together: resampling
    # polygons gives a wider interval than pretending the 200 points are independent
    units = np.repeat(np.arange(20), 10)
    ref = np.zeros(200, int)
    mapped = np.where(units < 14, 0, 1)                   # 14 of 20 polygons right: OA 0.7
    pts = bootstrap_ci(mapped, ref, replicates=2000, seed=2)["oa"]
    clus = bootstrap_ci(mapped, ref, units=units, replicates=2000, seed=2)["oa"]
    assert (clus[1] - clus[0]) > 2.5 * (pts[1] - pts[0])
    # stratified: a stratum whose points are all right keeps its share of the sample, so OA never drops below it
    strata = np.r_[np.zeros(100, int), np.ones(100, int)]
    mapped2 = np.r_[np.zeros(100, int), np.where(np.arange(100) < 50, 0, 1)]
    lo, hi = bootstrap_ci(mapped2, np.zeros(200, int), strata=strata, replicates=1000)["oa"]
    assert lo >= 0.5 + 0.5 * 0.38 and hi <= 0.5 + 0.5 * 0.62


def test_bootstrap_is_reproducible_under_a_seed():
    rng = np.random.default_rng(0)
    ref, mapped = rng.integers(0, 7, 100), rng.integers(0, 7, 100)
    assert bootstrap_ci(mapped, ref, seed=5, replicates=200) == bootstrap_ci(mapped, ref, seed=5, replicates=200)
