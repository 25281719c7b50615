"""The grounding-control pass: after every tile is recorded and before the report, score each tile's
captions against its own reference and against a mismatched tile's (groundsynth.metrics.grounding_control).

References come from the tile files, by family (the metric prefix says which):
- `self_consistency`: the tile's mask (`mask` artefact) when the captioner wrote its captions from
  that very mask (a captioner with `reads_mask = True`, e.g. caption/composition): the score then
  says whether the captions are consistent with what they were written from, not whether they are
  true of the ground;
- `grounding_mask`: the tile's mask, for a captioner that reads the image (a VLM);
- `grounding_labels`: the label tile (`labels` artefact: real tiles of a job with a label raster):
  grounding against reference data.
Per tile and family: `<prefix>` (own), `<prefix>_mismatched`, `<prefix>_margin` (own minus
mismatched, points) in TileRecord.metrics, and the partner in attributes["control_partner"].
Partners: a derangement per kind (real with real, synthetic with synthetic; no synthetic tile with a
sibling of the same source), seeded by (job seed, "grounding-control", kind).

One pass over the records, in batches of pairs that read their masks from the tile files: nothing
job-wide is held in memory but the records, so an executor can hand the batches out.
The pass also tells the report whether the ground engine's own `grounding` is self-consistency
(its reference re-segmentation equals the mask the captioner read on every tile).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from groundsynth.artefacts.records import TileRecord
from groundsynth.artefacts.tiles import read_mask_tile
from groundsynth.metrics import grounding_control as control
from groundsynth.pipeline.job_run import JobRun
from groundsynth.request.seeds import derive_seed

BATCH = 32
LABELS = {"self_consistency": "self-consistency (captions vs the mask they were written from)",
          "grounding_mask": "grounding against the segmenter's mask",
          "grounding_labels": "grounding against the label raster"}


def families(run: JobRun) -> list[tuple[str, str]]:
    """[(metric prefix, artefact kind)] the pass computes for this job."""
    captioner = run.engines.get("caption")
    mask_family = "self_consistency" if getattr(captioner, "reads_mask", False) else "grounding_mask"
    out = [(mask_family, "mask")]
    if run.spec.label_raster_path:
        out.append(("grounding_labels", "labels"))
    return out


def _score_params(run: JobRun) -> dict[str, float]:
    grounder = run.engines.get("ground")
    fn = getattr(grounder, "score_params", None)
    return dict(fn()) if callable(fn) else {}


def pairs_for(records: Sequence[TileRecord], kind: str, artefact: str, seed: int) -> list[tuple[TileRecord, TileRecord]]:
    """(tile, mismatched partner) of every scorable tile of one kind (sorted by tile id)."""
    live = sorted((r for r in records if r.kind == kind and not r.nodata and r.captions and artefact in r.artefacts),
                  key=lambda r: r.tile_id)
    if len(live) < 2:
        return []
    groups = [r.source_tile_id or r.tile_id for r in live]
    partner = control.derangement(len(live), derive_seed(seed, "grounding-control", kind), groups)
    return [(r, live[p]) for r, p in zip(live, partner, strict=True)]


def apply_grounding_control(run: JobRun) -> dict[str, Any]:
    """Score every tile's captions against its own and its partner's reference; update the records."""
    if "ground" not in run.engines or "caption" not in run.engines:
        return {}
    records = run.journal.tiles(run.job_id)
    params = _score_params(run)
    changed: dict[str, TileRecord] = {}
    done: list[str] = []
    with run.timer("grounding_control"):
        for prefix, artefact in families(run):
            n = 0
            for kind in ("real", "synthetic"):
                pairs = pairs_for(records, kind, artefact, run.spec.seed)
                for i in range(0, len(pairs), BATCH):
                    for rec, partner in pairs[i:i + BATCH]:
                        n += _score_one(run, rec, partner, prefix, artefact, params)
                        changed[rec.tile_id] = rec
            if n:
                done.append(prefix)
        for rec in changed.values():
            run.journal.update_tile(run.job_id, rec)
    return {"families": {p: LABELS[p] for p in done},
            "engine_grounding_is_self_consistency": engine_grounding_is_self_consistency(run, records)}


def _score_one(run: JobRun, rec: TileRecord, partner: TileRecord, prefix: str, artefact: str,
               params: dict[str, float]) -> int:
    own_mask = read_mask_tile(run.dir / rec.artefacts[artefact])
    partner_mask = read_mask_tile(run.dir / partner.artefacts[artefact])
    own, mismatched = control.score_pair(rec.captions, own_mask, partner_mask, **params)
    for key in (prefix, f"{prefix}_mismatched", f"{prefix}_margin"):
        rec.metrics.pop(key, None)
    if own is None or mismatched is None:
        return 0
    rec.metrics.update({prefix: own, f"{prefix}_mismatched": mismatched, f"{prefix}_margin": own - mismatched})
    rec.attributes["control_partner"] = partner.tile_id
    return 1


def engine_grounding_is_self_consistency(run: JobRun, records: Sequence[TileRecord]) -> bool:
    """The ground engine's `grounding` scored the captions against the very mask they were written from."""
    if not getattr(run.engines.get("caption"), "reads_mask", False):
        return False
    agreement = [r.metrics.get("resegment_agreement") for r in records if not r.nodata and "grounding" in r.metrics]
    return bool(agreement) and all(a is not None and a >= 0.999 for a in agreement)
