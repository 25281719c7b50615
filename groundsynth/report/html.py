"""report.html: one self-contained page (plots and thumbnails embedded as base64 PNG, inline CSS).

Built from the report.json document (`render_html(doc, job_dir)`), so the page
and the JSON never disagree. Sections: headline numbers, engines, class
composition real vs synthetic, score histograms, per-class fidelity, grounding
by dominant class, segmentation vs labels (when labels were given), accuracy against the reference
sample (when one was given: groundsynth.report.accuracy_html), a strip of
the best and worst tiles (real image, mask, synthetic image, its mask and
conditioning mask, caption), and versions/spec for reproduction.
Plots use matplotlib's Agg canvas directly (no pyplot state: safe in server threads).
"""
from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from groundsynth.report.evidence import evidence_html
from groundsynth.report.realism import realism_html
from groundsynth.request.classes import CLASS_NAMES, hex_color

THUMB_PX = 128
STRIP_TILES = 4          # best and worst tiles shown each

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px auto;max-width:1180px;color:#222;
background:#fafafa;padding:0 16px}
h1{font-size:1.6em;margin-bottom:0}h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:32px}
.sub{color:#666;margin-top:4px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:4px 10px;text-align:left;
font-size:0.92em}th{background:#f0f0f0}td.num{text-align:right;font-variant-numeric:tabular-nums}
.cards{display:flex;flex-wrap:wrap;gap:12px}.card{background:#fff;border:1px solid #ddd;border-radius:8px;
padding:10px 16px;min-width:130px}.card .v{font-size:1.5em;font-weight:600}.card .k{color:#666;font-size:0.85em}
img.plot{max-width:100%;background:#fff;border:1px solid #ddd;border-radius:6px}
.strip td{vertical-align:top}.strip img{width:128px;height:128px;image-rendering:pixelated;display:block;
border:1px solid #ccc}.cap{min-width:150px;max-width:300px;font-size:0.85em}.legend span{display:inline-block;margin-right:12px}
.sw{display:inline-block;width:12px;height:12px;border:1px solid #999;margin-right:4px;vertical-align:middle}
.warn{background:#fff4e5;border:1px solid #f0c36d;padding:6px 10px;border-radius:6px}
details pre{background:#fff;border:1px solid #ddd;padding:8px;overflow:auto;max-height:400px;font-size:0.8em}
"""


CARDS = {"tiles_real": ("real tiles", 0), "tiles_synthetic": ("synthetic tiles", 0),
         "grounding_mean": ("grounding (0-100)", 1), "fidelity_miou_mean": ("layout agreement (fidelity mIoU)", 3),
         "redundancy": ("caption redundancy", 4), "composition_js": ("composition JS (bits)", 4),
         "seg_macro_f1": ("segmenter macro F1", 3), "seg_miou": ("segmenter mIoU", 3),
         "seg_accuracy": ("segmenter accuracy", 3),
         "ref_overall_accuracy_test": ("reference OA, test split", 3),
         "ref_macro_f1_test": ("reference macro F1, test split", 3),
         "ref_overall_accuracy": ("reference OA", 3), "ref_macro_f1": ("reference macro F1", 3)}


def _figure(figsize: tuple[float, float], panels: int = 1):
    """A matplotlib Figure (Agg) with fixed margins (no layout engine: one draw per figure keeps the
    report fast). Imported here, quietly (a system/pip matplotlib mix warns about Axes3D)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Unable to import Axes3D")
        from matplotlib.figure import Figure
    fig = Figure(figsize=figsize)
    fig.subplots_adjust(left=0.75 / figsize[0], right=1 - 0.15 / figsize[0], bottom=0.14, top=0.88,
                        wspace=0.3 if panels > 1 else 0.2)
    return fig


def _b64(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _fig_png(fig) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return f'<img class="plot" src="{_b64(buf.getvalue())}" alt="plot">'


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return html.escape(str(v))


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], digits: int = 3) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(
        f'<td class="num">{_fmt(c, digits)}</td>' if isinstance(c, (int, float)) or c is None else f"<td>{_fmt(c)}</td>"
        for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


# ------------------------------------------------------------------ plots

def plot_composition(shift: dict) -> str | None:
    real, synth = shift.get("real"), shift.get("synthetic")
    if not real and not synth:
        return None
    fig = _figure((8, 3.2))
    ax = fig.add_subplot()
    x = np.arange(len(CLASS_NAMES))
    colours = [hex_color(i) for i in range(len(CLASS_NAMES))]
    w = 0.4 if real and synth else 0.7
    if real:
        ax.bar(x - (w / 2 if synth else 0), [100 * real[n] for n in CLASS_NAMES], w, color=colours,
               edgecolor="black", label="real")
    if synth:
        ax.bar(x + (w / 2 if real else 0), [100 * synth[n] for n in CLASS_NAMES], w, color=colours,
               edgecolor="black", hatch="//", label="synthetic")
    ax.set_xticks(x, CLASS_NAMES)
    ax.set_ylabel("mean share of tile (%)")
    js = shift.get("js_divergence")
    ax.set_title(("Class composition, real (plain) vs synthetic (hatched)" if real and synth else
                  "Class composition, " + ("real" if real else "synthetic") + " tiles")
                 + (f" — JS divergence {js:.3f} bits" if js is not None else ""), fontsize=10)
    from matplotlib.patches import Patch

    handles = [Patch(facecolor="#bbbbbb", edgecolor="black", label=k, hatch=h)
               for k, h, side in (("real", "", real), ("synthetic", "//", synth)) if side]
    ax.legend(handles=handles, fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _fig_png(fig)


def plot_histograms(tiles: Sequence[dict], grounding_word: str = "grounding") -> str | None:
    panels = []
    margin = next((f"{p}_margin" for p in ("grounding_reference", "grounding_labels", "grounding_mask",
                                            "self_consistency") if any(f"{p}_margin" in t["metrics"] for t in tiles)),
                  None)
    specs = [("grounding", f"caption {grounding_word} (0-100)", (0, 100))]
    if margin:
        specs.append((margin, f"{margin.replace('_', ' ')} vs mismatched tile", (-100, 100)))
    specs += [("fidelity_miou", "mask fidelity mIoU (synthetic)", (0, 1)),
              ("resegment_agreement", "re-segmentation agreement", (0, 1))]
    for key, label, rng in specs:
        groups = {kind: [t["metrics"][key] for t in tiles if t["kind"] == kind and t["metrics"].get(key) is not None]
                  for kind in ("real", "synthetic")}
        if any(groups.values()):
            panels.append((key, label, rng, groups))
    if not panels:
        return None
    fig = _figure((3.6 * len(panels), 3), len(panels))
    for i, (_key, label, rng, groups) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        bins = np.linspace(rng[0], rng[1], 21)
        for kind, colour in (("real", "#4c72b0"), ("synthetic", "#dd8452")):
            if groups[kind]:
                ax.hist(groups[kind], bins=bins, alpha=0.65, color=colour, label=f"{kind} (n={len(groups[kind])})")
        ax.set_title(label, fontsize=10)
        ax.set_ylabel("tiles")
        ax.legend(fontsize=8)
    return _fig_png(fig)


def plot_per_class(dists: dict, title: str, ylabel: str, scale: float = 1.0) -> str | None:
    """Bars of the per-class mean with p10-p90 whiskers from {class: describe()}."""
    names = [n for n in CLASS_NAMES if dists.get(n, {}).get("n")]
    if not names:
        return None
    fig = _figure((8, 3))
    ax = fig.add_subplot()
    x = np.arange(len(CLASS_NAMES))       # every class on the axis; classes without data stay empty
    idx = [CLASS_NAMES.index(n) for n in names]
    means = np.array([dists[n]["mean"] for n in names]) * scale
    # a skewed distribution can have its mean outside p10-p90: whiskers then start at the mean
    lo = np.clip(means - np.array([dists[n]["p10"] for n in names]) * scale, 0, None)
    hi = np.clip(np.array([dists[n]["p90"] for n in names]) * scale - means, 0, None)
    ax.bar(x[idx], means, 0.6, color=[hex_color(i) for i in idx], edgecolor="black", yerr=[lo, hi], capsize=4)
    top = float(np.max(means + hi)) if len(means) else 1.0
    for i, n in zip(idx, names, strict=True):
        ax.text(i, dists[n]["p90"] * scale + 0.02 * top, f"n={dists[n]['n']}", ha="center", va="bottom", fontsize=7)
    ax.set_ylim(0, top * 1.15 if top > 0 else 1)
    ax.set_xticks(x, CLASS_NAMES)
    ax.set_xlim(-0.6, len(CLASS_NAMES) - 0.4)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    return _fig_png(fig)


# ------------------------------------------------------------------ thumbnails

def _thumb(job_dir: Path, rel: str | None, kind: str) -> str:
    from groundsynth.report.images import colour_mask, png_bytes, read_mask, read_rgb8

    if not rel or not (job_dir / rel).exists():
        return '<span class="cap">–</span>'
    try:
        rgb = read_rgb8(job_dir / rel) if kind == "image" else colour_mask(read_mask(job_dir / rel))
    except Exception as exc:   # a damaged artefact must not sink the report
        return f'<span class="cap">unreadable: {html.escape(str(exc))}</span>'
    return f'<img src="{_b64(png_bytes(rgb, THUMB_PX))}" alt="{html.escape(rel)}">'


def pick_strip(tiles: Sequence[dict]) -> tuple[str, list[dict], list[dict]]:
    """(ranking key, best, worst): synthetic tiles by fidelity when there are any, else tiles by grounding."""
    synth = [t for t in tiles if t["kind"] == "synthetic" and t["metrics"].get("fidelity_miou") is not None]
    if synth:
        key, pool = "fidelity_miou", synth
    else:
        key = "grounding"
        pool = [t for t in tiles if not t["nodata"] and t["metrics"].get(key) is not None]
    ranked = sorted(pool, key=lambda t: (t["metrics"][key], t["metrics"].get("grounding") or 0), reverse=True)
    k = min(STRIP_TILES, len(ranked) // 2) if len(ranked) > 1 else len(ranked)
    best = ranked[:k]
    worst = ranked[::-1][:k] if len(ranked) > 1 else []
    return key, best, worst


def thumbnail_strip(job_dir: Path, tiles: Sequence[dict]) -> str:
    key, best, worst = pick_strip(tiles)
    if not best:
        return "<p>No scored tiles to show.</p>"

    def thumb(rel, kind):
        return _thumb(job_dir, rel, kind)

    by_id = {t["tile_id"]: t for t in tiles}
    with_synth = any(t["kind"] == "synthetic" for t in best + worst)
    header = ["tile", "real image", "real mask"]
    header += ["synthetic image", "synthetic mask", "conditioning mask"] if with_synth else []
    header += ["caption"]
    out = []
    for title, group in (("Best", best), ("Worst", worst)):
        if not group:
            continue
        rows = []
        for t in group:
            real = by_id.get(t["source_tile_id"]) if t["kind"] == "synthetic" else t
            synth = t if t["kind"] == "synthetic" else None
            scores = "".join(f"<br>{html.escape(k)} {_fmt(t['metrics'].get(k), 2)}" for k in
                             ("grounding", "self_consistency_margin", "grounding_labels_margin", "fidelity_miou",
                              "resegment_agreement") if k in t["metrics"])
            cells = [f"<td class='cap'><b>{html.escape(t['tile_id'])}</b><br>largest: "
                     f"{html.escape(str(t.get('dominant_class') or '–'))}{scores}</td>"]
            cells.append(f"<td>{thumb(real and real['artefacts'].get('image'), 'image')}</td>")
            cells.append(f"<td>{thumb(real and real['artefacts'].get('mask'), 'mask')}</td>")
            if with_synth:
                for rel, kind in ((synth and synth["artefacts"].get("image"), "image"),
                                  (synth and synth["artefacts"].get("mask"), "mask"),
                                  (synth and synth["artefacts"].get("cond_mask"), "mask")):
                    cells.append(f"<td>{thumb(rel, kind) if synth else '–'}</td>")
            caption = (t["captions"] or ["(no caption)"])[0]
            cells.append(f'<td class="cap">{html.escape(caption)}</td>')
            rows.append("<tr>" + "".join(cells) + "</tr>")
        head = "".join(f"<th>{h}</th>" for h in header)
        out.append(f"<h3>{title} {len(group)} by {html.escape(key)}</h3>"
                   f'<table class="strip"><tr>{head}</tr>{"".join(rows)}</table>')
    legend = "".join(f'<span><span class="sw" style="background:{hex_color(i)}"></span>{n}</span>'
                     for i, n in enumerate(CLASS_NAMES))
    legend += '<span><span class="sw" style="background:#000"></span>nodata</span>'
    return f'<p class="legend">{legend}</p>' + "".join(out)


# ------------------------------------------------------------------ page

def grounding_word(doc: dict) -> str:
    """"self-consistency" when the ground engine's reference is the mask the captioner read, else "grounding"."""
    gc = doc.get("grounding_control") or {}
    return "self-consistency" if gc.get("engine_grounding_is_self_consistency") else "grounding"


def summary_cards(summary: dict, word: str) -> str:
    cards = []
    labels = {**CARDS, "grounding_mean": (f"{word} (0-100)", 1),
              "self_consistency_margin_mean": ("self-consistency margin vs mismatched tile", 1),
              "grounding_mask_margin_mean": ("grounding margin vs mismatched tile (mask)", 1),
              "grounding_labels_mean": ("grounding vs label raster (0-100)", 1),
              "grounding_labels_margin_mean": ("grounding margin vs mismatched tile (labels)", 1),
              "grounding_reference_mean": ("grounding vs reference samples (0-100)", 1),
              "grounding_reference_margin_mean": ("grounding margin vs mismatched tile (reference)", 1),
              "redundancy_canonical": ("canonical caption redundancy", 4),
              "redundancy_canonical_kept": ("canonical redundancy (kept tiles)", 4)}
    for k, (label, digits) in labels.items():
        if k in summary:
            v = summary[k]
            text = f"{100 * v:.2f} %" if k.startswith("redundancy") else f"{v:.{digits}f}"
            cards.append(f"<div class='card'><div class='v'>{text}</div><div class='k'>{label}</div></div>")
    return "".join(cards)


# The page's slow parts (matplotlib figures, PNG thumbnails), as pieces that can be rendered on different
# workers at the same time and handed to render_html; longest first.
PIECES = ("histograms", "plots", "strip")
PIECE_KEYS = {"histograms": ("histograms",), "plots": ("composition", "fidelity", "grounding_by_class"),
              "strip": ("strip",)}


def render_piece(doc: dict, job_dir: str | Path, piece: str) -> dict[str, str | None]:
    """One piece of the page: {name: HTML fragment or None (nothing to show)}."""
    tiles = doc.get("tiles", [])
    sm = doc.get("set_metrics") or {}
    if piece == "histograms":
        return {"histograms": plot_histograms(tiles, grounding_word(doc))}
    if piece == "plots":
        dists = sm.get("distributions") or {}
        word = grounding_word(doc)
        return {"composition": plot_composition(sm.get("composition_shift") or {}),
                "fidelity": plot_per_class(dists.get("fidelity_iou_by_class") or {}, "Per-class fidelity: IoU of "
                                           "the conditioning mask vs the re-segmented synthetic image (mean, p10-p90)",
                                           "IoU"),
                "grounding_by_class": plot_per_class(dists.get("grounding_by_dominant_class") or {},
                                                     f"Caption {word} by the tile's dominant class (mean, p10-p90)",
                                                     f"{word} (0-100)")}
    if piece == "strip":
        return {"strip": thumbnail_strip(Path(job_dir), tiles)}
    raise ValueError(f"unknown report.html piece {piece!r}; expected one of {', '.join(PIECES)}")


def render_html(doc: dict, job_dir: str | Path, pieces: dict[str, str | None] | None = None) -> str:
    """The page; `pieces`: render_piece's fragments rendered elsewhere (the missing ones are rendered here)."""
    job_dir = Path(job_dir)
    got: dict[str, str | None] = dict(pieces or {})
    for name in PIECES:
        if not all(k in got for k in PIECE_KEYS[name]):
            got.update(render_piece(doc, job_dir, name))
    summary = doc.get("summary", {})
    sm = doc.get("set_metrics") or {}
    spec = doc.get("spec") or {}
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
             f"<title>GroundSynth report {html.escape(str(doc.get('job_id', '')))}</title>"
             f"<style>{CSS}</style></head><body>",
             f"<h1>GroundSynth report</h1><p class='sub'>job {html.escape(str(doc.get('job_id', '')))}"
             f"{(' — ' + html.escape(spec['name'])) if spec.get('name') else ''} · seed {_fmt(doc.get('seed'))}"
             f" · {html.escape(str(doc.get('created', '')))} · {html.escape(str(doc.get('generator', '')))}</p>"]
    for w in doc.get("warnings") or []:
        parts.append(f"<p class='warn'>{html.escape(str(w))}</p>")

    word = grounding_word(doc)
    parts.append("<h2>Summary</h2><div class='cards'>" + summary_cards(summary, word) + "</div>")
    red = sm.get("redundancy") or {}
    if red:
        parts.append("<p>Caption redundancy (1 − unique/total): " + ", ".join(
            f"{k} {100 * v:.2f} %" for k, v in red.items() if v is not None)
            + " (the original ARAS400k real split: 8.01 %).</p>")

    engines = doc.get("engines") or {}
    if engines:
        rows: list[tuple[Any, ...]] = [(stage, e.get("name", ""), json.dumps(e.get("params", {}), sort_keys=True))
                                       for stage, e in engines.items()]
        parts.append("<h2>Engines</h2>" + _table(["stage", "engine", "parameters"], rows))
    timings = doc.get("timings") or {}
    if timings:
        parts.append("<h3>Timings</h3>" + _table(["step", "seconds"], [(k, float(v)) for k, v in timings.items()]))

    parts.append("<h2>Class composition</h2>")
    shift = sm.get("composition_shift") or {}
    parts.append(got["composition"] or "<p>No composition data.</p>")
    if shift.get("real") and shift.get("synthetic"):
        rows = [(n, 100 * shift["real"][n], 100 * shift["synthetic"][n], 100 * shift["difference"][n])
                for n in CLASS_NAMES]
        parts.append(_table(["class", "real %", "synthetic %", "difference (pp)"], rows, digits=1))

    parts.append("<h2>Score distributions</h2>")
    parts.append(got["histograms"] or "<p>No per-tile scores (ground stage not run).</p>")
    parts.append("<h2>Per-class fidelity</h2>" + (got["fidelity"] or "<p>No synthetic tiles with a conditioning "
                                                  "mask.</p>"))
    gdom = got["grounding_by_class"]
    if gdom:
        parts.append(f"<h3>{word.capitalize()} by dominant class</h3>" + gdom)

    lab = doc.get("label_evaluation")
    if lab:
        rows = [(n, lab["per_class"][n]["f1"], lab["per_class"][n]["iou"], lab["per_class"][n]["support"])
                for n in CLASS_NAMES]
        rows.append(("macro", lab["macro_f1"], lab["miou"], lab["pixels"]))
        parts.append(f"<h2>Segmenter vs labels</h2><p>{html.escape(lab['definition'])}; accuracy "
                     f"{_fmt(lab['accuracy'])} over {lab['tiles']} tiles.</p>"
                     + _table(["class", "F1", "IoU", "label pixels"], rows))

    parts.append(evidence_html(doc))           # grounding control, caption diversity, dataset filters
    from groundsynth.report.accuracy_html import accuracy_section

    parts.append(accuracy_section(doc))
    parts.append(realism_html(doc.get("realism"), _fmt, _table))
    parts.append("<h2>Best and worst tiles</h2>" + (got["strip"] or ""))

    versions = doc.get("versions") or {}
    parts.append("<h2>Reproduce</h2><p>" + html.escape((doc.get("reproduce") or {}).get("how", "")) + "</p>")
    parts.append(_table(["package", "version"], [(k, v or "not installed") for k, v in versions.items()]))
    parts.append("<details><summary>Job spec (JSON)</summary><pre>"
                 + html.escape(json.dumps(spec, indent=1, sort_keys=True)) + "</pre></details>")
    parts.append("</body></html>")
    return "\n".join(parts)
