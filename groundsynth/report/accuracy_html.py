"""report.html section "Accuracy against the reference sample" (from report.json accuracy_assessment).

A heat map of the error matrix (rows = map, columns = reference; cell colour = share of the sample,
counts written in the cells, user's accuracy at the right, producer's accuracy on top), the overall
accuracy and macro F1 with their 95 % intervals per split, per-class UA/PA/F1 with intervals, and
the area-weighted (stratified) estimates when the sample allows them.
"""
from __future__ import annotations

import html
from typing import Any

import numpy as np

from groundsynth.request.classes import CLASS_NAMES

SHORT = ("Tree", "Shrub", "Grass", "Crop", "Built", "Barren", "Water")


def _pct(v: Any) -> str:
    return "–" if v is None else f"{100 * v:.1f}"


def _ci(pair: Any) -> str:
    if not pair or pair[0] is None:
        return ""
    return f" [{100 * pair[0]:.1f}, {100 * pair[1]:.1f}]"


def plot_error_matrix(part: dict, title: str) -> str:
    from groundsynth.report.html import _fig_png, _figure

    m = np.asarray(part["error_matrix"], dtype=float)
    k = m.shape[0]
    fig = _figure((7.2, 6.0))
    fig.subplots_adjust(left=0.16, right=0.86, bottom=0.16, top=0.84)
    ax = fig.add_subplot(1, 1, 1)
    share = m / max(m.sum(), 1.0)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=max(float(share.max()), 1e-9))
    for i in range(k):
        for j in range(k):
            if m[i, j]:
                ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center", fontsize=9,
                        color="white" if share[i, j] > 0.6 * share.max() else "black")
    pc = part["per_class"]
    for i, name in enumerate(CLASS_NAMES[:k]):
        ax.text(k - 0.3, i, _pct(pc[name]["users_accuracy"]), va="center", fontsize=8)
        ax.text(i, -0.7, _pct(pc[name]["producers_accuracy"]), ha="center", va="bottom", fontsize=8)
    ax.text(k - 0.3, -0.7, "UA %", fontsize=8, va="bottom")
    ax.text(-0.6, -0.7, "PA %", fontsize=8, va="bottom", ha="right")
    ax.set_xticks(range(k), SHORT[:k], rotation=45, fontsize=8)
    ax.set_yticks(range(k), SHORT[:k], fontsize=8)
    ax.set_xlabel("reference class")
    ax.set_ylabel("map class")
    ax.set_xlim(-0.5, k - 0.5)
    ax.set_ylim(k - 0.5, -0.5)
    ax.set_title(title, fontsize=10, pad=22)
    return _fig_png(fig)


def _class_rows(part: dict) -> list[tuple[Any, ...]]:
    rows = []
    for name in CLASS_NAMES:
        c = part["per_class"][name]
        if not c["mapped"] and not c["reference"]:
            continue
        rows.append((name, c["reference"], c["mapped"], _pct(c["users_accuracy"]) + _ci(c["users_accuracy_ci95"]),
                     _pct(c["producers_accuracy"]) + _ci(c["producers_accuracy_ci95"]),
                     _pct(c["f1"]) + _ci(c["f1_ci95"])))
    return rows


def _stratified(part: dict) -> str:
    from groundsynth.report.html import _table

    st = part.get("stratified") or {}
    if "unavailable" in st:
        return f"<p>Area-weighted estimates: not given ({html.escape(str(st['unavailable']))}).</p>"
    oa = st["overall_accuracy"]
    rows = [(n, _pct(c["users_accuracy"]["value"]) + _ci(c["users_accuracy"]["ci95"]),
             _pct(c["producers_accuracy"]["value"]) + _ci(c["producers_accuracy"]["ci95"]),
             _pct(c["area_share"]["value"]) + _ci(c["area_share"]["ci95"]), _pct(c["mapped_share"]["value"]))
            for n, c in st["per_class"].items()]
    return (f"<p>Area-weighted (stratified estimators, Stehman 2014 / Olofsson et al. 2014): overall accuracy "
            f"{_pct(oa['value'])} %{_ci(oa['ci95'])}.</p>"
            + _table(["class", "UA %", "PA %", "area share % (reference)", "mapped share %"], rows))


def accuracy_section(doc: dict) -> str:
    """The HTML section, or "" when the job had no reference sample."""
    from groundsynth.report.html import _table

    acc = doc.get("accuracy_assessment")
    if not acc:
        return ""
    parts_by_name = {"all": acc["all"], **acc.get("splits", {})}
    rows = [(name, p["n"], p["not_assessed"], _pct(p["overall_accuracy"]) + _ci(p["overall_accuracy_ci95"]),
             _pct(p["macro_f1"]) + _ci(p["macro_f1_ci95"])) for name, p in parts_by_name.items()]
    shown = "test" if "test" in parts_by_name else "all"
    part = parts_by_name[shown]
    out = [f"<h2>Accuracy against the reference sample</h2><p>{html.escape(acc['source'])}: {acc['pixels']} "
           f"reference pixels ({html.escape(acc['geometry'])} sample). {html.escape(acc['definition'])}. "
           "Accuracies in %, 95 % intervals in brackets.</p>",
           _table(["split", "n", "not assessed", "overall accuracy", "macro F1"], rows),
           plot_error_matrix(part, f"Error matrix, split '{shown}' (n = {part['n']})"),
           f"<h3>Per class, split '{shown}'</h3>",
           _table(["class", "reference n", "mapped n", "user's accuracy", "producer's accuracy", "F1"],
                  _class_rows(part)),
           _stratified(part)]
    return "\n".join(out)
