"""Grounding with a control, caption diversity and dataset filters on the demo scene, over several seeds.

    PYTHONPATH=$PWD .venv/bin/python bench/grounding_control.py [--seeds 0,1,2] [--variants 2] [--workers 2]

Runs the demo job (the default engines: spectral, exemplar, composition captioner and grounder) once per
seed and prints, per seed and as median [min, max] over the seeds:
- the composition captions' claim score against their own tile's mask (own), against the mask of the
  tile the seeded derangement pairs it with (mismatched) and the margin (own - mismatched), all tiles;
- beside it, on the same tiles and the same pairs, two trivial captioners: "constant" (one caption for
  every tile: margin 0 by construction, the floor) and "dominant" (names only the tile's largest class);
- caption diversity: exact redundancy (1 - unique/total) and canonical redundancy (what the captions
  say: groundsynth.metrics.caption_diversity) over all tiles and over the tiles the dataset filters keep,
  with the "dominant" captioner's canonical redundancy as the trivial reference, and over the tiles with
  more than one class (a tile of one class, e.g. open sea, has only a handful of true things to say);
- the dataset filter counts (real tiles kept / dropped by nodata and by water).
The margin here is self-consistency (the captioner read the same mask), not grounding against data.
The machine is shared: the numbers do not depend on timing, only on the seed.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def dominant_caption(comp: list[float]) -> str:
    from groundsynth.metrics.claim_vocab import CLASS_TERMS
    from groundsynth.request.classes import CLASS_NAMES

    return f"The tile is mostly {CLASS_TERMS[CLASS_NAMES[int(np.argmax(comp))]][0]}."


def one_seed(seed: int, variants: int, workers: int, work: Path) -> dict[str, float]:
    from groundsynth.artefacts.tiles import read_mask_tile
    from groundsynth.cli.demo import demo_spec
    from groundsynth.cli.run import run_in_process
    from groundsynth.demo.scene import demo_raster
    from groundsynth.metrics import caption_diversity as div
    from groundsynth.metrics import dataset_filters
    from groundsynth.metrics import grounding_control as control
    from groundsynth.service.journal import Journal

    ws = work / f"seed{seed}"
    raster = demo_raster(work / "data")
    job = run_in_process(demo_spec(raster, variants, seed), ws, None, True, executor="process", workers=workers)
    doc = json.loads((job / "report.json").read_text())
    journal = Journal(ws / "journal.sqlite")
    records = journal.tiles(job.name)
    journal.close()
    by_id = {r.tile_id: r for r in records}
    scored = [r for r in records if "self_consistency_margin" in r.metrics]
    out: dict[str, float] = {}
    for name in ("own", "mismatched", "margin"):
        key = "self_consistency" + ("" if name == "own" else f"_{name}")
        out[f"composition_{name}"] = float(np.mean([r.metrics[key] for r in scored]))
    masks = {r.tile_id: read_mask_tile(job / r.artefacts["mask"]) for r in scored}
    for base in ("constant", "dominant"):
        own, mis = [], []
        for r in scored:
            partner = by_id[r.attributes["control_partner"]]
            if partner.tile_id not in masks:
                masks[partner.tile_id] = read_mask_tile(job / partner.artefacts["mask"])
            cap = "A satellite image of the coast with water." if base == "constant" else dominant_caption(r.composition)
            a, b = control.score_pair([cap], masks[r.tile_id], masks[partner.tile_id])
            if a is not None and b is not None:
                own.append(a)
                mis.append(b)
        out[f"{base}_own"], out[f"{base}_mismatched"] = float(np.mean(own)), float(np.mean(mis))
        out[f"{base}_margin"] = out[f"{base}_own"] - out[f"{base}_mismatched"]
    d = doc["set_metrics"]["caption_diversity"]
    out["exact_all"], out["canonical_all"] = d["all"]["exact"], d["all"]["canonical"]
    out["exact_kept"], out["canonical_kept"] = d["kept"]["exact"], d["kept"]["canonical"]
    live = [r for r in records if r.captions]
    kept = [r for r in live if dataset_filters.is_kept(r)]
    mixed = [r for r in live if len(r.composition) == 7 and max(r.composition) < 0.999]
    # what single-class tiles (all water: nothing else is true of them in 7 classes) add to the canonical figure
    out["canonical_mixed_tiles"] = div.canonical_redundancy([c for r in mixed for c in r.captions])
    out["single_class_tiles"] = float(len(live) - len(mixed))
    for name, rs in (("all", live), ("kept", kept)):
        # the trivial reference: one dominant-class caption per caption slot of the tile
        out[f"dominant_canonical_{name}"] = div.canonical_redundancy(
            [dominant_caption(r.composition) for r in rs for _ in r.captions])
    f = doc["dataset_filters"]["real"]
    out.update({"real_tiles": f["tiles"], "real_kept": f["kept"], "dropped_nodata": f["by_filter"]["nodata"],
                "dropped_water": f["by_filter"]["water"], "water_share_all": f["water_share_all"],
                "water_share_kept": f["water_share_kept"]})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--variants", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    if len(seeds) < 3:
        print("note: fewer than 3 seeds; the spread means little", file=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix="gs-bench-control-"))
    rows = []
    for seed in seeds:
        r = one_seed(seed, args.variants, args.workers, work)
        rows.append(r)
        print(f"seed {seed}: " + ", ".join(f"{k}={v:.4g}" for k, v in r.items()), flush=True)
    print(f"\n{len(seeds)} seeds, median [min, max]:")
    for k in rows[0]:
        vals = [r[k] for r in rows]
        pct = k.startswith(("exact", "canonical", "dominant_canonical", "water_share"))
        scale, unit = (100.0, " %") if pct else (1.0, "")
        print(f"  {k:26s} {scale * statistics.median(vals):8.2f}{unit}  "
              f"[{scale * min(vals):.2f}, {scale * max(vals):.2f}]")


if __name__ == "__main__":
    main()
