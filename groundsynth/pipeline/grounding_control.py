"""The grounding-control pass: after every tile is recorded and before the report, score each tile's
captions against its own reference and against a mismatched tile's (groundsynth.metrics.grounding_control).

References are tile files, by family (the metric prefix says which):
- `self_consistency`: the tile's mask (`mask` artefact) when the captioner wrote its captions from
  that very mask (a captioner class with `reads_mask = True`, e.g. caption/composition): the score
  then says whether the captions are consistent with what they were written from, not whether they
  are true of the ground;
- `grounding_mask`: the tile's mask, for a captioner that reads the image (a VLM);
- `grounding_labels`: the label tile (`labels` artefact: real tiles of a job with a label raster):
  grounding against reference data;
- `grounding_reference`: a per-tile reference raster (`reference` artefact, 255 where unlabelled).
  Hook for reference samples (points/polygons, issue 11 item 1): whoever rasterises them to the
  tiles records the artefact under that name and the pass scores against it unchanged.
Per tile and family: `<prefix>` (own), `<prefix>_mismatched`, `<prefix>_margin` (own minus
mismatched, points) in TileRecord.metrics, and the partner in attributes["control_partner"].
Partners: a derangement per kind and family (real with real, synthetic with synthetic; no synthetic
tile with a sibling of the same source while that can be avoided), seeded by (job seed,
"grounding-control", kind); the same partners for every family whose tiles are the same.

The head pairs the records (`plan_control`) and hands batches of pairs (`ControlTask`: tile ids,
captions and artefact paths, no pixels) to the job's executor; a worker (`compute_control`) reads
the two references of each pair from the tile files and scores them with the job's grounder's
claim-score parameters; the head writes the scores into the records (journal) in task order.
The real tiles are scored beside the synthesis fit (`early_real_pass`: real tiles pair with real tiles
only, and all of them are recorded by then, so the workers the fit leaves idle do it; journal meta
`grounding_control_done` says so), the synthetic ones (or all, in a job without a fit) at the end.

The pass also tells the report whether the ground engine's own `grounding` is self-consistency:
the captioner reads the mask and the grounder's reference is the job's own segmenter with the same
parameters (the grounder then reuses the pipeline's mask: GroundInput.mask_source), or the
re-segmentation agreed with the mask on every tile.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from groundsynth.artefacts.records import TileRecord
from groundsynth.artefacts.tiles import read_mask_tile
from groundsynth.metrics import grounding_control as control
from groundsynth.pipeline.context import ControlPair, ControlTask, TaskResult
from groundsynth.pipeline.job_run import JobRun
from groundsynth.pipeline.worker_job import WorkerJob
from groundsynth.request.seeds import derive_seed

BATCH = 16               # pairs per ControlTask: small tasks fill the report phase's last gaps on every worker
LABELS = {"self_consistency": "self-consistency (captions vs the mask they were written from)",
          "grounding_mask": "grounding against the segmenter's mask",
          "grounding_labels": "grounding against the label raster",
          "grounding_reference": "grounding against the reference samples"}
REFERENCE_ARTEFACTS = (("labels", "grounding_labels"), ("reference", "grounding_reference"))
SCORE_PARAMS = ("present_share", "major_share", "absent_penalty", "dominance_tolerance")


# ---------------------------------------------------------------- head

def families(run: JobRun, records: Sequence[TileRecord]) -> list[tuple[str, str]]:
    """[(metric prefix, artefact kind)] the pass computes for this job."""
    reads_mask = bool(getattr(run.engine_class("caption"), "reads_mask", False))
    out = [("self_consistency" if reads_mask else "grounding_mask", "mask")]
    for artefact, prefix in REFERENCE_ARTEFACTS:
        if any(artefact in r.artefacts for r in records):
            out.append((prefix, artefact))
    return out


def pairs_for(records: Sequence[TileRecord], kind: str, artefact: str, seed: int) -> list[tuple[TileRecord, TileRecord]]:
    """(tile, mismatched partner) of every scorable tile of one kind (sorted by tile id)."""
    live = sorted((r for r in records if r.kind == kind and not r.nodata and r.captions and artefact in r.artefacts),
                  key=lambda r: r.tile_id)
    if len(live) < 2:
        return []
    groups = [r.source_tile_id or r.tile_id for r in live]
    partner = control.derangement(len(live), derive_seed(seed, "grounding-control", kind), groups)
    return [(r, live[p]) for r, p in zip(live, partner, strict=True)]


def plan_control(run: JobRun, records: Sequence[TileRecord]) -> list[ControlPair]:
    out: list[ControlPair] = []
    for prefix, artefact in families(run, records):
        for kind in ("real", "synthetic"):
            out += [ControlPair(r.tile_id, p.tile_id, prefix, tuple(r.captions), r.artefacts[artefact],
                                p.artefacts[artefact])
                    for r, p in pairs_for(records, kind, artefact, run.spec.seed)]
    return out


EARLY_META = "grounding_control_done"      # journal meta: the kinds whose control scores are in the records


class ControlPass:
    """The control scores of the tiles of some kinds: `tasks` for the executor, `commit` per result (in task
    order), `save` writes the updated records to the journal."""

    def __init__(self, run: JobRun, records: Sequence[TileRecord], kinds: Sequence[str]):
        self.run = run
        self.by_id = {r.tile_id: r for r in records}
        prefixes = [p for p, _ in families(run, records)]
        pairs = [p for p in plan_control(run, records) if self.by_id[p.tile_id].kind in kinds]
        for rec in records:                      # a rerun (resume) starts from clean metrics
            if rec.kind in kinds:
                for prefix in prefixes:
                    for key in (prefix, f"{prefix}_mismatched", f"{prefix}_margin"):
                        rec.metrics.pop(key, None)
        self.tasks = [ControlTask(tuple(pairs[i:i + BATCH])) for i in range(0, len(pairs), BATCH)]
        self.changed: dict[str, TileRecord] = {}

    def commit(self, task: ControlTask, result: TaskResult) -> None:
        for pair, scores in zip(task.pairs, result.value, strict=True):
            rec = self.by_id[pair.tile_id]
            self.changed[rec.tile_id] = rec
            if scores is None:
                continue
            own, mismatched = scores
            rec.metrics.update({pair.prefix: own, f"{pair.prefix}_mismatched": mismatched,
                                f"{pair.prefix}_margin": own - mismatched})
            rec.attributes["control_partner"] = pair.partner_id

    def save(self) -> None:
        for rec in self.changed.values():
            self.run.journal.update_tile(self.run.job_id, rec)


def has_control(run: JobRun) -> bool:
    return "ground" in run.stages and "caption" in run.stages


def early_real_pass(run: JobRun) -> ControlPass | None:
    """The real tiles' control, to run beside the synthesis fit (the workers would idle otherwise): real tiles
    are paired with real tiles only, and every real tile is recorded by then. None when there is none to do."""
    if not has_control(run) or "real" in (run.journal.get_meta(run.job_id, EARLY_META) or []):
        return None
    cp = ControlPass(run, run.journal.tiles(run.job_id, "real"), ("real",))
    return cp if cp.tasks else None


def finish_early_pass(run: JobRun, cp: ControlPass, results: Sequence[TaskResult]) -> None:
    for task, result in zip(cp.tasks, results, strict=True):
        cp.commit(task, result)
    cp.save()
    run.journal.set_meta(run.job_id, EARLY_META, ["real"])


def final_control_pass(run: JobRun, records: Sequence[TileRecord]) -> ControlPass | None:
    """The pass over the tiles not scored yet (all, or the synthetic ones when the real tiles were scored
    beside the fit: `early_real_pass`); None when the job has no caption or ground stage."""
    if not has_control(run):
        return None
    done_early = set(run.journal.get_meta(run.job_id, EARLY_META) or [])
    return ControlPass(run, records, [k for k in ("real", "synthetic") if k not in done_early])


def summarise_control(run: JobRun, cp: ControlPass | None) -> dict[str, Any]:
    """Save the pass's scores; the report's families and whether the engine's grounding is self-consistency
    ({} without a pass)."""
    if cp is None:
        return {}
    cp.save()
    records = run.journal.tiles(run.job_id)
    prefixes = [p for p, _ in families(run, records)]
    done = {p for p in prefixes if any(f"{p}_margin" in r.metrics for r in records)}
    return {"families": {p: LABELS[p] for p in prefixes if p in done},
            "engine_grounding_is_self_consistency": engine_grounding_is_self_consistency(run, records)}


def engine_grounding_is_self_consistency(run: JobRun, records: Sequence[TileRecord]) -> bool:
    """The ground engine's `grounding` scored the captions against the very mask they were written from."""
    if "caption" not in run.stages or not getattr(run.engine_class("caption"), "reads_mask", False):
        return False
    if _grounder_reuses_mask(run):
        return True
    agreement = [r.metrics.get("resegment_agreement") for r in records if not r.nodata and "grounding" in r.metrics]
    return bool(agreement) and all(a is not None and a >= 0.999 for a in agreement)


def _grounder_reuses_mask(run: JobRun) -> bool:
    """The grounder's reference segmenter is the job's segmenter with the same parameters."""
    from groundsynth.engines import get_engine
    from groundsynth.engines.base import engine_key

    ground, seg = run.prep.plans.get("ground"), run.prep.plans.get("segment")
    name = ground.params.get("reference_segmenter") if ground is not None else None
    if seg is None or not name or run.spec.label_raster_path:
        return False         # with a label raster the pipeline's real masks are not the segmenter's alone
    try:
        ref = get_engine("segment", str(name))
    except Exception:  # noqa: BLE001 - an unknown name: the grounder fails on it, not this check
        return False
    return engine_key(ref, ref.parse_params({})) == engine_key(seg.cls, seg.params)


# ---------------------------------------------------------------- worker

def compute_control(w: WorkerJob, task: ControlTask) -> list[tuple[float, float] | None]:
    """(own, mismatched) per pair, None where a reference has no valid pixel."""
    grounder = w.engines.get("ground")
    params = {k: float(v) for k, v in (getattr(grounder, "p", None) or {}).items() if k in SCORE_PARAMS}
    out: list[tuple[float, float] | None] = []
    with w.timer("grounding_control"):
        for pair in task.pairs:
            own_ref = read_mask_tile(f"{w.ctx.job_dir}/{pair.own}")
            partner_ref = read_mask_tile(f"{w.ctx.job_dir}/{pair.partner}")
            own, mismatched = control.score_pair(pair.captions, own_ref, partner_ref, **params)
            out.append(None if own is None or mismatched is None else (own, mismatched))
    return out
