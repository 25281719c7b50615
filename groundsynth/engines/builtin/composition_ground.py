"""ground/composition: check captions and synthetic images against a re-segmentation.

For every tile (real and synthetic) the image is re-segmented with a reference
segmenter (`reference_segmenter`, default "spectral"), and:

- grounding (0-100): the mean over the tile's captions of the claim score
  (groundsynth.metrics.caption_score.score_caption: start at 100, subtract per claim the
  re-segmentation does not bear out -- classes named or said absent, dominance, positions,
  amounts, patch structure/counts/parcel sizes, linear features, shoreline, rankings; the
  table of deductions is in that module). `absent_penalty`, `present_share`, `major_share`
  and `dominance_tolerance` are this engine's parameters. Captions from any captioner are
  scored the same way. When the reference segmenter is the one that made the mask the
  captioner read, this is self-consistency, not grounding: the pipeline's grounding-control
  pass (groundsynth.pipeline.grounding_control) says so and adds the mismatched control;
- grounding_min: the lowest caption score of the tile;
- resegment_agreement: pixel accuracy between the tile's mask and the re-segmentation;
- fidelity_miou (synthetic tiles with a conditioning mask): mIoU between the
  conditioning mask and the re-segmented synthetic image, macro over classes
  present in either; fidelity_iou_<class> (class name lower case, "-" -> "_",
  e.g. fidelity_iou_built_up) for each class present in either.

A tile with no valid pixel gets only {"valid_share": 0.0}.

Work done once: when an item's `mask_source` (groundsynth.engines.base.GroundInput) is the
engine_key of the reference segmenter with its default parameters, i.e. the pipeline's segmenter
is that same engine with the same parameters and made `mask` from this very image, `mask` is used
as the re-segmentation instead of segmenting the image again (the result is identical).

`summarise_records` (also `CompositionGrounder.summarise`) computes the set
metrics: caption redundancy (all / real / synthetic; None for a group without
captions), caption diversity (exact and canonical redundancy, also over the tiles the
dataset filters keep and over the tiles of more than one class: groundsynth.metrics.caption_diversity), the real-vs-synthetic
composition shift (per-class mean shares, Jensen-Shannon divergence) and score
distributions (grounding overall and by dominant class, fidelity per class).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from groundsynth.engines import register
from groundsynth.engines.base import EngineContext, Grounder, GroundInput, Param, TileInput, engine_key
from groundsynth.metrics import caption_diversity, dataset_filters, segmentation
from groundsynth.metrics import sets as metrics
from groundsynth.metrics.caption_score import score_caption, score_captions
from groundsynth.request.classes import CLASS_NAMES, NODATA
from groundsynth.request.errors import InvalidArgument

__all__ = ["CompositionGrounder", "metric_key", "score_caption", "summarise_records"]



def metric_key(prefix: str, class_name: str) -> str:
    """e.g. metric_key("fidelity_iou", "Built-up") -> "fidelity_iou_built_up"."""
    return f"{prefix}_{class_name.lower().replace('-', '_')}"


def check_reference_segmenter(name: str) -> None:
    """A ground engine's `reference_segmenter` must name a registered segment engine (checked at Submit)."""
    from groundsynth.engines import engines

    found = engines("segment")
    if name and name not in found:
        raise InvalidArgument(f"unknown segment engine {name!r}; expected one of {', '.join(sorted(found))}",
                              "stages[ground].params.reference_segmenter")


@register
class CompositionGrounder(Grounder):
    name = "composition"
    description = ("Re-segments every tile and checks its captions' claims (classes, dominance, positions) and, "
                   "for synthetic tiles, the fidelity to the conditioning mask (mIoU).")
    is_default = True
    params = (
        Param("reference_segmenter", "str", "spectral", "Segment engine used to re-segment images for checking."),
        Param("present_share", "float", 0.01, "A class a caption names must cover at least this share.",
              min=0.0, max=0.5),
        Param("major_share", "float", 0.2, "Classes covering at least this share should be named.",
              min=0.0, max=1.0),
        Param("absent_penalty", "float", 40.0, "Points lost per named class that is absent.", min=0.0, max=100.0),
        Param("dominance_tolerance", "float", 0.03,
              "A class said to dominate may trail the largest by this share.", min=0.0, max=0.5),
    )

    @classmethod
    def check_job(cls, spec: Any) -> None:
        check_reference_segmenter(cls.job_params(spec)["reference_segmenter"])

    def __init__(self, params: dict[str, Any] | None = None, ctx: EngineContext | None = None):
        super().__init__(params, ctx)
        self._segmenter = None

    # ---------------------------------------------------------------- reference segmenter
    def reference(self):
        """The reference segmenter, built on first use (imported lazily: engines load in any order)."""
        if self._segmenter is None:
            from groundsynth.engines import get_engine

            cls = get_engine("segment", self.p["reference_segmenter"])
            self._segmenter = cls({}, self.ctx)
        return self._segmenter

    def score_params(self) -> dict[str, float]:
        """The claim-score parameters (groundsynth.metrics.caption_score.score_caption keywords)."""
        return {k: self.p[k] for k in ("present_share", "major_share", "absent_penalty", "dominance_tolerance")}

    # ---------------------------------------------------------------- per tile
    def ground(self, items: Sequence[GroundInput]) -> list[dict[str, float]]:
        items = list(items)
        for i, it in enumerate(items):
            self._check(it, i)
        if not items:
            return []
        ref = self.reference()
        key = engine_key(type(ref), ref.p)
        resegs: list[np.ndarray | None] = [np.asarray(it.mask) if it.mask_source == key else None for it in items]
        todo = [i for i, r in enumerate(resegs) if r is None]
        if todo:
            tiles = [TileInput(items[i].tile_id, np.asarray(items[i].image, dtype=np.float32),
                               np.asarray(items[i].valid, dtype=bool), kind=items[i].kind) for i in todo]
            for i, r in zip(todo, ref.segment(tiles), strict=True):
                resegs[i] = r
        return [self._ground_one(it, np.asarray(r)) for it, r in zip(items, resegs, strict=True)]

    def _check(self, it: GroundInput, i: int) -> None:
        field = f"ground.items[{i}]"
        image, mask = np.asarray(it.image), np.asarray(it.mask)
        if image.ndim != 3 or image.shape[0] not in (3, 4):
            raise InvalidArgument(f"expected an image of shape (3 or 4, H, W), got {image.shape}", f"{field}.image")
        if mask.shape != image.shape[1:] or np.asarray(it.valid).shape != image.shape[1:]:
            raise InvalidArgument(f"mask {mask.shape} and valid {np.asarray(it.valid).shape} must match the image's "
                                  f"{image.shape[1:]}", f"{field}.mask")
        if it.cond_mask is not None and np.asarray(it.cond_mask).shape != mask.shape:
            raise InvalidArgument(f"expected shape {mask.shape}, got {np.asarray(it.cond_mask).shape}",
                                  f"{field}.cond_mask")
        if it.kind not in ("real", "synthetic"):
            raise InvalidArgument(f"expected 'real' or 'synthetic', got {it.kind!r}", f"{field}.kind")

    def _ground_one(self, it: GroundInput, reseg: np.ndarray) -> dict[str, float]:
        reseg = np.where(np.asarray(it.valid, dtype=bool), reseg, NODATA).astype(np.uint8)
        valid_share = float((reseg != NODATA).mean())
        if valid_share == 0.0:
            return {"valid_share": 0.0}
        out: dict[str, float] = {}
        if it.captions:
            scores = score_captions(it.captions, reseg, np.asarray(it.image), **self.score_params())
            out["grounding"] = float(np.mean(scores))
            out["grounding_min"] = float(np.min(scores))
        agreement = segmentation.pixel_accuracy(np.asarray(it.mask), reseg)
        if np.isfinite(agreement):
            out["resegment_agreement"] = agreement
        if it.kind == "synthetic" and it.cond_mask is not None:
            iou = segmentation.per_class_iou(np.asarray(it.cond_mask), reseg)
            if (~np.isnan(iou)).any():
                out["fidelity_miou"] = float(np.nanmean(iou))
                for name, v in zip(CLASS_NAMES, iou, strict=True):
                    if not np.isnan(v):
                        out[metric_key("fidelity_iou", name)] = float(v)
        return out

    # ---------------------------------------------------------------- set level
    def summarise(self, records: Sequence[Any]) -> dict[str, Any]:
        return summarise_records(records)


def summarise_records(records: Sequence[Any]) -> dict[str, Any]:
    """Set metrics over TileRecords (nodata tiles left out); see module doc."""
    recs = [r for r in records if not r.nodata]
    real = [r for r in recs if r.kind == "real"]
    synth = [r for r in recs if r.kind == "synthetic"]

    def caps(rs):
        return [c for r in rs for c in r.captions]

    def comps(rs):
        return [list(r.composition) for r in rs if len(r.composition) == len(CLASS_NAMES)]

    def dist(rs, key):
        return metrics.describe(r.metrics.get(key) for r in rs)

    by_dominant: dict[str, dict] = {}
    for name in CLASS_NAMES:
        group = [r for r in recs if len(r.composition) == len(CLASS_NAMES) and sum(r.composition) > 0
                 and CLASS_NAMES[int(np.argmax(r.composition))] == name]
        if group:
            by_dominant[name] = dist(group, "grounding")
    fidelity_by_class = {name: dist(synth, metric_key("fidelity_iou", name)) for name in CLASS_NAMES}
    kept = [r for r in recs if dataset_filters.is_kept(r)]
    # tiles of more than one class: a one-class tile (open sea) has only a handful of true things to say
    mixed = [r for r in recs if len(r.composition) == len(CLASS_NAMES) and 0 < max(r.composition) < 0.999]
    groups = (("all", recs), ("real", real), ("synthetic", synth), ("kept", kept), ("mixed", mixed))
    forms = {r.tile_id: [caption_diversity.canonical_form(c) for c in r.captions] for r in recs}   # parsed once
    return {
        "caption_diversity": {name: caption_diversity.diversity(caps(rs), [f for r in rs for f in forms[r.tile_id]])
                              for name, rs in groups},
        "counts": {"tiles_real": len(real), "tiles_synthetic": len(synth),
                   "tiles_nodata": len(records) - len(recs),
                   "captions": len(caps(recs))},
        "redundancy": {name: metrics.caption_redundancy(caps(rs)) if caps(rs) else None
                       for name, rs in (("all", recs), ("real", real), ("synthetic", synth))},
        "composition_shift": metrics.composition_shift(comps(real), comps(synth)),
        "distributions": {
            "grounding": {"all": dist(recs, "grounding"), "real": dist(real, "grounding"),
                          "synthetic": dist(synth, "grounding")},
            "grounding_by_dominant_class": by_dominant,
            "fidelity_miou": dist(synth, "fidelity_miou"),
            "fidelity_iou_by_class": {k: v for k, v in fidelity_by_class.items() if v["n"]},
            "resegment_agreement": {"real": dist(real, "resegment_agreement"),
                                    "synthetic": dist(synth, "resegment_agreement")},
        },
    }
