"""segment/labels: each tile's mask is the user's label raster (ESA WorldCover) on the tile grid.

The pipeline reads the label raster for every tile with groundsynth.tiling.labels.read_labels
(nearest-neighbour reprojection, WorldCover remap) and hands it over as
TileInput.labels. This engine returns those labels, with pixels that are not
valid in the image set to 255. Synthetic tiles have no labels of their own:
they are re-segmented by segment/spectral with default parameters (documented
fallback, so grounding can still compare them with their conditioning mask).
A real tile without labels is an error.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from groundsynth.engines import register
from groundsynth.engines.base import Segmenter, TileInput
from groundsynth.request.classes import NODATA
from groundsynth.request.errors import FailedPrecondition

NEEDS = "segment/labels needs label_raster_path (an ESA WorldCover raster)"


@register
class Labels(Segmenter):
    name = "labels"
    description = ("Uses a label raster you provide (ESA WorldCover codes, any CRS; reprojected by nearest "
                   "neighbour onto each tile) as the tile's mask.")
    params = ()

    @classmethod
    def check_job(cls, spec) -> None:
        if not spec.label_raster_path:
            raise FailedPrecondition(NEEDS, "label_raster_path")

    def __init__(self, params=None, ctx=None):
        super().__init__(params, ctx)
        if not (self.ctx.extra or {}).get("label_raster_path"):
            raise FailedPrecondition(NEEDS, "label_raster_path")

    def _fallback(self) -> Segmenter:
        if getattr(self, "_spectral", None) is None:
            from groundsynth.engines.builtin.spectral import Spectral

            self._spectral = Spectral({}, self.ctx)
        return self._spectral

    def segment(self, tiles: Sequence[TileInput]) -> list[np.ndarray]:
        out = []
        for t in tiles:
            if t.labels is None and t.kind == "synthetic":
                out.append(self._fallback().segment([t])[0])
                continue
            if t.labels is None:
                raise FailedPrecondition(f"{NEEDS}; tile {t.tile_id} ({t.kind}) has no labels", "label_raster_path")
            m = np.asarray(t.labels, dtype=np.uint8).copy()
            if m.shape != t.valid.shape:
                raise FailedPrecondition(f"labels of tile {t.tile_id} have shape {m.shape}, the tile "
                                         f"{t.valid.shape}", "label_raster_path")
            m[~np.asarray(t.valid, dtype=bool)] = NODATA
            out.append(m)
        return out
