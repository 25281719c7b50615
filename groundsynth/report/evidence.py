"""Report sections that make the numbers evidence: the grounding control (own vs mismatched tile),
caption diversity (exact and canonical redundancy) and the dataset filters.

report.json gains
    grounding_control   {"families": {prefix: label}, "engine_grounding_is_self_consistency": bool,
                         prefix: groundsynth.metrics.grounding_control.summarise(records, prefix)}
    dataset_filters     groundsynth.metrics.dataset_filters.filter_counts(records, spec.filters)
    tile_grid           {"default_score": the score that colours the tile grid by default (one that varies),
                         "preference", "rule"}
and set_metrics["caption_diversity"] (from summarise_records) is rendered here. Headline numbers
(`evidence_headline`): <prefix>_mean, <prefix>_mismatched_mean, <prefix>_margin_mean per family,
redundancy_canonical, redundancy_kept, redundancy_canonical_kept, tiles_kept_real,
tiles_dropped_real, tiles_kept_synthetic, tiles_dropped_synthetic.
"""
from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from groundsynth.artefacts.records import TileRecord
from groundsynth.metrics import dataset_filters
from groundsynth.metrics import grounding_control as control
from groundsynth.request.classes import CLASS_NAMES
from groundsynth.request.spec import JobSpec

PREFIXES = ("grounding_reference", "grounding_labels", "grounding_mask", "self_consistency")
LABELS = {"self_consistency": "self-consistency (captions vs the mask they were written from)",
          "grounding_mask": "grounding against the segmenter's mask",
          "grounding_labels": "grounding against the label raster",
          "grounding_reference": "grounding against the reference samples"}
# The tile grid's default colouring, best first: a margin against reference data, then any margin, then the
# engine's scores; the first that varies over the tiles wins (a score that is 100 everywhere shows nothing).
TILE_SCORE_PREFERENCE = (*(f"{p}_margin" for p in PREFIXES), "grounding", "fidelity_miou", "resegment_agreement")


def evidence_sections(records: Sequence[TileRecord], spec: JobSpec, context: dict) -> dict[str, Any]:
    """The report.json sections of this module."""
    given = context.get("grounding_control") or {}
    found = [p for p in PREFIXES if any(f"{p}_margin" in r.metrics for r in records)]
    gc: dict[str, Any] = {"families": {p: LABELS[p] for p in found},
                          "engine_grounding_is_self_consistency": bool(given.get("engine_grounding_is_self_consistency")),
                          "definition": "own = mean claim score of a tile's captions against its own reference; "
                                        "mismatched = the same captions against the reference of the tile a seeded "
                                        "derangement pairs it with (same kind); margin = own - mismatched (points)"}
    for p in found:
        gc[p] = control.summarise(records, p)
    return {"grounding_control": gc,
            "dataset_filters": dataset_filters.filter_counts(records, spec.filters) if records else {},
            "tile_grid": {"default_score": default_tile_score(records),
                          "preference": list(TILE_SCORE_PREFERENCE),
                          "rule": "the first score of `preference` that takes more than one value over the tiles "
                                  "(else the first present)"}}


def default_tile_score(records: Sequence[TileRecord]) -> str | None:
    """The score that colours the tile grid by default: the first of TILE_SCORE_PREFERENCE that varies over
    the tiles, else the first present, else None."""
    present = []
    for key in TILE_SCORE_PREFERENCE:
        values = {round(float(r.metrics[key]), 6) for r in records if key in r.metrics}
        if len(values) > 1:
            return key
        if values:
            present.append(key)
    return present[0] if present else None


def evidence_headline(doc: dict) -> dict[str, float | None]:
    gc = doc.get("grounding_control") or {}
    out: dict[str, float | None] = {}
    for p in gc.get("families") or {}:
        block = (gc.get(p) or {}).get("by_kind", {}).get("all") or {}
        for name, key in (("own", p), ("mismatched", f"{p}_mismatched"), ("margin", f"{p}_margin")):
            out[f"{key}_mean"] = (block.get(name) or {}).get("mean")
    div = (doc.get("set_metrics") or {}).get("caption_diversity") or {}
    out["redundancy_canonical"] = (div.get("all") or {}).get("canonical")
    out["redundancy_kept"] = (div.get("kept") or {}).get("exact")
    out["redundancy_canonical_kept"] = (div.get("kept") or {}).get("canonical")
    for kind, counts in (doc.get("dataset_filters") or {}).items():
        if kind in ("real", "synthetic"):
            out[f"tiles_kept_{kind}"] = float(counts["kept"])
            out[f"tiles_dropped_{kind}"] = float(counts["dropped"])
    return out


# ------------------------------------------------------------------ html

def _n(v: Any, digits: int = 1) -> str:
    return "–" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else html.escape(str(v))


def _rows(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f'<td class="num">{_n(c)}</td>' if not isinstance(c, str) else
                                    f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _control_rows(block: dict) -> list[tuple]:
    return [(block["own"]["mean"], block["mismatched"]["mean"], block["margin"]["mean"], block["margin"]["p10"],
             100 * block["share_mismatched_high"] if block.get("share_mismatched_high") is not None else None,
             block["n"])]


def control_html(doc: dict) -> str:
    gc = doc.get("grounding_control") or {}
    families = gc.get("families") or {}
    if not families:
        return ""
    parts = ["<h2>Grounding with a control</h2><p>" + html.escape(gc.get("definition", "")) + ". A caption that "
             "says little scores high on every tile; only the margin shows it is about its own tile.</p>"]
    if gc.get("engine_grounding_is_self_consistency"):
        parts.append("<p class='warn'>The ground engine's reference is the very mask the captioner read (the same "
                     "segmenter with the same parameters): its <b>grounding</b> score is <b>self-consistency</b>, not "
                     "agreement with the ground. Give a label raster (or reference samples) for grounding against "
                     "reference data.</p>")
    header = ["group", "own", "mismatched", "margin", "margin p10", "mismatched ≥ 80 (%)", "tiles"]
    for prefix, label in families.items():
        s = gc.get(prefix) or {}
        high = s.get("high_score", control.HIGH_SCORE)
        rows = [(kind, *_control_rows(b)[0]) for kind, b in (s.get("by_kind") or {}).items()]
        rows += [(f"dominant {name}", *_control_rows(b)[0]) for name, b in (s.get("by_dominant_class") or {}).items()
                 if name in CLASS_NAMES]
        parts.append(f"<h3>{html.escape(label)}</h3><p>Per-tile metrics <code>{prefix}</code>, "
                     f"<code>{prefix}_mismatched</code>, <code>{prefix}_margin</code>; the partner tile is "
                     f"<code>attributes.control_partner</code>.</p>"
                     + _rows(rows, [h.replace("80", f"{high:g}") for h in header]))
    return "\n".join(parts)


def diversity_html(doc: dict) -> str:
    div = (doc.get("set_metrics") or {}).get("caption_diversity") or {}
    rows = [(name, 100 * d["exact"] if d.get("exact") is not None else None,
             100 * d["canonical"] if d.get("canonical") is not None else None, d["captions"], d["unique_canonical"])
            for name, d in div.items() if d and d.get("captions")]
    if not rows:
        return ""
    return ("<h2>Caption diversity</h2><p>Exact redundancy = 1 − unique/total captions (the original's "
            "definition). Canonical redundancy: the same over what the captions <i>say</i> — each caption "
            "reduced to the sorted set of claims the parser reads (synonyms to their class, places, amounts, "
            "patch counts ... to their slot), so rewording cannot lower it. <i>kept</i> = the tiles the "
            "dataset filters keep (the exported set); <i>mixed</i> = the tiles of more than one class (a tile of one "
            "class, e.g. open sea, has only a handful of true things to say, so its captions repeat those of every "
            "other such tile). Reference: ARAS400k real 8.01 % exact; its text-only "
            "LLM captions 46.45 %.</p>"
            + _rows(rows, ["tiles", "exact (%)", "canonical (%)", "captions", "distinct claim sets"]))


def filters_html(doc: dict) -> str:
    f = doc.get("dataset_filters") or {}
    rules = f.get("rules") or {}
    kinds = [(k, v) for k, v in f.items() if k in ("real", "synthetic")]
    if not kinds:
        return ""
    rule_text = ("any nodata pixel" if not rules.get("keep_nodata") else "nodata kept") + \
        f"; more than {100 * rules.get('max_water_share', 0.9):g} % water" + \
        ("; dropped tiles are synthesised too" if rules.get("synthesise_dropped") else
         "; dropped real tiles are not synthesised")
    rows = [(k, v["tiles"], v["kept"], v["dropped"], v["by_filter"]["nodata"], v["by_filter"]["water"],
             None if v["water_share_all"] is None else 100 * v["water_share_all"],
             None if v["water_share_kept"] is None else 100 * v["water_share_kept"]) for k, v in kinds]
    return ("<h2>Dataset filters</h2><p>Rules (the original's): drop a tile with " + html.escape(rule_text)
            + ". Each tile records the rules that drop it in <code>attributes.dropped_by</code>; the export "
              "leaves those tiles out.</p>"
            + _rows(rows, ["tiles", "total", "kept", "dropped", "by nodata", "by water", "water % (all)",
                           "water % (kept)"]))


def evidence_html(doc: dict) -> str:
    return "\n".join(p for p in (control_html(doc), diversity_html(doc), filters_html(doc)) if p)
