"""The report's realism section: synthetic tiles against held-out real tiles, beside real vs held-out.

Sets (from the tile records and the fit's tile ids, journal meta "synthesis_fit"):
- held out: real tiles of the test split that the synthesiser's fit never saw; when the job has
  none (a small grid in large split blocks may give no test tile), its validation tiles not fitted;
  at most MAX_TILES of them, evenly sampled (so that the section's memory stays flat with the AOI);
- synthetic: synthetic tiles whose source is not held out (at most MAX_TILES, evenly sampled),
  grouped by source tile; their class masks are the conditioning masks (the layout asked for);
- reference: the real tiles those synthetic tiles came from (same layouts), i.e. what a perfect
  synthesiser would be as close to the held-out tiles as.
Metrics: groundsynth.metrics.realism / twosample / copies. Per synthetic tile: the share of pixels
copied verbatim (8 x 8 blocks) from its source tile and from the held-out tiles, and its speckle
rate. Layout agreement (mean fidelity mIoU of the grounder) is shown beside, labelled as such: it
says whether the layout was followed, not whether the image looks real.
"""
from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from groundsynth.artefacts.records import TileRecord
from groundsynth.metrics import copies
from groundsynth.metrics.realism import HeldOut, TileSet, compare_detail, realism_ratio
from groundsynth.request.classes import NODATA

MAX_TILES = 64
# (label, key in the section's "synthetic"/"real" dicts, target as text)
ROWS = (("two-sample accuracy (0.5 = indistinguishable)", "two_sample", "<= 0.75"),
        ("per-class per-band W1 (uint8 levels)", "w1", "<= 2x real"),
        ("smallest per-class spread ratio", "spread_ratio_min", ">= 0.8"),
        ("power-spectrum distance (RMS log10)", "spectrum_distance", ""),
        ("fine-scale power ratio (<= 4 px)", "fine_power_ratio", "within 1.5x of 1"),
        ("speckle rate", "speckle", "<= 2x real"))


def _even(items: list, n: int) -> list:
    if len(items) <= n:
        return items
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, n).round().astype(int)]


def held_out(records: Sequence[TileRecord], fitted: set[str]) -> tuple[list[TileRecord], str]:
    real = [r for r in records if r.kind == "real" and not r.nodata and r.tile_id not in fitted]
    for split in ("test", "val"):
        chosen = [r for r in real if r.attributes.get("split") == split]
        if chosen:
            return chosen, split
    return [], ""


def _load(job_dir: Path, recs: Sequence[TileRecord], mask_key: str, group: str = "tile") -> TileSet:
    from groundsynth.artefacts.tiles import read_image_data, read_mask_tile

    images, masks, groups = [], [], []
    for r in recs:      # the stored uint8 pixels (TileSet's own form), 0 where the mask is nodata
        data = read_image_data(job_dir / r.artefacts["image"])
        mask = read_mask_tile(job_dir / r.artefacts[mask_key])
        data[:, mask == NODATA] = 0
        images.append(data)
        masks.append(mask)
        groups.append(r.source_tile_id if group == "source" else r.tile_id)
    return TileSet(images, masks, groups)


@dataclass(frozen=True)
class RealismPlan:
    """Which tiles the realism section compares (tile records; picklable, so a worker can compute a part)."""

    synth: tuple[TileRecord, ...]         # synthetic tiles (sources not held out), at most MAX_TILES
    held: tuple[TileRecord, ...]          # held-out real tiles
    reference: tuple[TileRecord, ...]     # the synthetic tiles' sources, at most MAX_TILES
    sources: tuple[TileRecord, ...]       # every source tile of `synth` (for the copy check)
    split: str


# the section's independent parts, longest first: the synthetic and the reference comparison (each against
# the held-out set, prepared on its own worker) and the copy / diversity check
PARTS = ("synthetic", "real", "copies")


def realism_plan(records: Sequence[TileRecord], fit: dict | None) -> RealismPlan | dict[str, Any] | None:
    """The tiles to compare; None without synthetic tiles, or the section itself when it cannot be measured."""
    synth_all = [r for r in records if r.kind == "synthetic" and not r.nodata
                 and r.artefacts.get("image") and r.artefacts.get("cond_mask")]
    if not synth_all:
        return None
    if not fit or not fit.get("tiles"):
        return {"available": False, "reason": "the job recorded no fitted tiles (synthesis_fit)"}
    fitted = set(fit["tiles"])
    held, split = held_out(records, fitted)
    if fit.get("warning") or not held:
        return {"available": False, "reason": fit.get("warning") or "no real tile was held out of the fit "
                "(no test or validation tile outside the fit)"}
    held_ids = {r.tile_id for r in held}
    held = _even(held, MAX_TILES)           # a bounded sample: the section's memory does not grow with the AOI
    synth = _even([r for r in synth_all if r.source_tile_id not in held_ids], MAX_TILES)
    by_id = {r.tile_id: r for r in records}
    sources = sorted({r.source_tile_id for r in synth if r.source_tile_id in by_id})
    if not synth or not sources:
        return {"available": False, "reason": "every synthetic tile comes from a held-out tile"}
    return RealismPlan(tuple(synth), tuple(held), tuple(by_id[i] for i in _even(sources, MAX_TILES)),
                       tuple(by_id[i] for i in sources), split)


def plan_key(plan: RealismPlan) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What the "real" part depends on: the held-out and the reference tiles (ids). The pipeline computes
    that part beside the synthesis fit from the synthetic tiles it is about to make, and reuses it when the
    final plan has the same key."""
    return tuple(r.tile_id for r in plan.held), tuple(r.tile_id for r in plan.reference)


def realism_part(job_dir: str | Path, plan: RealismPlan, part: str, seed: int = 0
                 ) -> tuple[dict[str, Any], dict[str, dict]]:
    """One independent part of the section, (entries, per synthetic tile entries): "synthetic" (the
    synthetic tiles against the held-out ones, and their speckle per tile), "real" (the reference tiles
    against the held-out ones: the scale) or "copies" (verbatim copies per tile, variant and real-pair
    distance). The parts can run on different workers at the same time
    (groundsynth.pipeline.outputs.report_metrics); each holds the held-out set and one other set at most."""
    job_dir = Path(job_dir)
    per_tile: dict[str, dict] = {}
    if part in ("synthetic", "real"):
        held = HeldOut.prepare(_load(job_dir, plan.held, "mask"), seed)
        recs, mask_key, group = (plan.synth, "cond_mask", "source") if part == "synthetic" else (plan.reference, "mask", "tile")
        tiles = _load(job_dir, recs, mask_key, group)
        numbers, speckle = compare_detail(tiles, held, seed)
        if part == "synthetic":
            for r, sp in zip(plan.synth, speckle, strict=True):
                per_tile[r.tile_id] = {"speckle": sp}
        return {part: numbers, "tiles": {part: len(tiles), "held_out": held.n}}, per_tile
    if part == "copies":
        return _copies_and_diversity(job_dir, plan, per_tile), per_tile
    raise ValueError(f"unknown realism part {part!r}; expected one of {', '.join(PARTS)}")


def assemble(plan: RealismPlan, parts: dict[str, tuple[dict[str, Any], dict[str, dict]]],
             per_tile: dict[str, dict] | None = None) -> dict[str, Any]:
    """The section from its parts (a dict part name -> realism_part's result); fills `per_tile`."""
    syn, real = parts["synthetic"][0], parts["real"][0]
    tiles = {"synthetic": syn["tiles"]["synthetic"], "held_out": syn["tiles"]["held_out"],
             "reference": real["tiles"]["real"]}
    out: dict[str, Any] = {"available": True, "held_out_split": plan.split,
                           **realism_ratio(syn["synthetic"], real["real"], tiles)}
    out.update(parts["copies"][0])
    fid = [r.metrics["fidelity_miou"] for r in plan.synth if r.metrics.get("fidelity_miou") is not None]
    out["layout_agreement"] = {"fidelity_miou_mean": float(np.mean(fid)) if fid else None,
                               "note": "layout agreement (the mask was followed), not realism"}
    if per_tile is not None:
        for name in reversed(PARTS):            # copies first, then speckle: the per-tile order of earlier reports
            for tile_id, entries in parts[name][1].items():
                per_tile.setdefault(tile_id, {}).update(entries)
    return out


def realism_section(job_dir: str | Path, records: Sequence[TileRecord], fit: dict | None,
                    per_tile: dict[str, dict] | None = None, seed: int = 0,
                    precomputed: tuple[Any, dict[str, tuple[dict[str, Any], dict[str, dict]]]] | None = None
                    ) -> dict[str, Any] | None:
    """The report's "realism" entry (None without synthetic tiles); fills `per_tile` for synthetic tiles.
    `precomputed`: (realism_plan's result, the parts already computed for it on workers:
    groundsynth.pipeline.outputs.report_metrics); the missing parts are computed here."""
    plan, parts = precomputed if precomputed is not None else (realism_plan(records, fit), {})
    if not isinstance(plan, RealismPlan):
        return plan
    done = dict(parts)
    for name in PARTS:
        if name not in done:
            done[name] = realism_part(job_dir, plan, name, seed)
    return assemble(plan, done, per_tile)


def _copies_and_diversity(job_dir: Path, plan: RealismPlan, per_tile: dict[str, dict]) -> dict[str, Any]:
    # one set in memory at a time: the held-out tiles only as their block hashes, the reference tiles only
    # for their pair distance
    B = _load(job_dir, plan.held, "mask")
    held_hashes = copies.hash_set(B.images, [B.valid(i) for i in range(len(B))])
    del B
    R = _load(job_dir, plan.reference, "mask")
    real_pairs = copies.real_pair_distance(R.images, R.masks)
    del R
    S = _load(job_dir, plan.synth, "cond_mask", "source")
    by_id = {r.tile_id: r for r in plan.sources}
    src_cache: dict[str, copies.BlockSet] = {}
    from_src, from_held = [], []
    variants: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(plan.synth):
        src = r.source_tile_id
        if src not in src_cache and src in by_id:
            src_cache.clear()               # variants of a source are consecutive: keep one source's hashes
            T = _load(job_dir, [by_id[src]], "mask")
            src_cache[src] = copies.hash_set(T.images, [T.valid(0)])
        ok = S.valid(i)
        a, b = copies.copied_shares(S.images[i], ok, [src_cache.get(src, copies.EMPTY), held_hashes])
        from_src.append(a)
        from_held.append(b)
        variants[src].append(i)
        per_tile.setdefault(r.tile_id, {}).update(copied_from_source=a, copied_from_held_out=b)
    dists = [copies.variant_distance([S.images[i] for i in idx], np.logical_and.reduce([S.valid(i) for i in idx]))
             for idx in variants.values() if len(idx) > 1]
    pairs = [p for p in dists if p is not None]
    return {"copied_from_source": {"mean": float(np.mean(from_src)), "max": float(np.max(from_src))},
            "copied_from_held_out": {"mean": float(np.mean(from_held)), "max": float(np.max(from_held))},
            "variant_distance": float(np.mean(pairs)) if pairs else None,
            "real_pair_distance": real_pairs}


def realism_headline(section: dict | None) -> dict[str, float]:
    """Flat numbers for the report summary (ReportReady.summary)."""
    if not section or not section.get("available"):
        return {}
    syn, real = section["synthetic"], section["real"]
    out = {"realism_two_sample": syn.get("two_sample"), "realism_two_sample_real": real.get("two_sample"),
           "realism_w1_ratio": section["ratio"].get("w1"),
           "realism_copied_from_source": section["copied_from_source"]["mean"]}
    return {k: float(v) for k, v in out.items() if v is not None}


def realism_html(section: dict | None, fmt, table) -> str:
    """The report.html "Realism" section (fmt, table: the page's formatting helpers)."""
    if section is None:
        return ""
    head = "<h2>Realism of synthetic tiles</h2>"
    if not section.get("available"):
        return head + f"<p class='warn'>Not measured: {html.escape(str(section.get('reason', '')))}.</p>"
    syn, real, ratio = section["synthetic"], section["real"], section["ratio"]
    n = section["tiles"]
    rows: list[tuple[Any, ...]] = [(label, syn.get(key), real.get(key), ratio.get(key), target)
                                   for label, key, target in ROWS]
    rows.append(("copied verbatim from the source tile (share of pixels)", section["copied_from_source"]["mean"],
                 None, None, "0"))
    rows.append(("copied verbatim from held-out tiles", section["copied_from_held_out"]["mean"], None, None, "0"))
    rows.append(("distance between variants / between real tiles (same class)", section.get("variant_distance"),
                 section.get("real_pair_distance"), None, ""))
    la = section.get("layout_agreement") or {}
    rows.append(("layout agreement (fidelity mIoU; not realism)", la.get("fidelity_miou_mean"), None, None, ">= 0.7"))
    intro = (f"<p>{n['synthetic']} synthetic tiles against {n['held_out']} held-out real tiles "
             f"({html.escape(section['held_out_split'])} split, never given to the synthesiser's fit); the "
             f"reference column is {n['reference']} real tiles (the synthetic tiles' sources) against the same "
             "held-out tiles: the scale every number is read on.</p>")
    per = [(name, c["w1"], (real["per_class"].get(name) or {}).get("w1"), c["spread_ratio"],
            (real["per_class"].get(name) or {}).get("spread_ratio"), c["pixels_a"])
           for name, c in syn["per_class"].items()]
    return (head + intro + table(["metric", "synthetic vs held-out", "real vs held-out", "ratio", "target"], rows)
            + "<h3>Per class</h3>" + table(["class", "W1 synthetic", "W1 real", "spread ratio synthetic",
                                            "spread ratio real", "synthetic pixels"], per))
