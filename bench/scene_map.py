"""Whole-scene class maps of the demo raster, tile by tile exactly as the pipeline segments them.

`scene_map(raster, segment)` reads every 256 px tile of the demo job's grid through a stretch, hands
(image, valid) to `segment` and mosaics the masks (H, W) (255 = nodata). `legacy_map(raster)` is the
map of the rules before issue 11 (bench/spectral_legacy.py, with the old 2/98 % stretch): the map the
demo reference sample was stratified by. Used by bench/accuracy.py and scripts/reference_sample.py.
"""
from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

Segment = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _prepare(raster: Path, bands=None):
    from groundsynth.cli.demo import demo_spec
    from groundsynth.pipeline.prepare import prepare_job
    from groundsynth.request.spec import StageConfig

    spec = demo_spec(raster, variants=0)
    spec.stages = [StageConfig("segment")]
    if bands is not None:
        spec.bands = bands
    with tempfile.TemporaryDirectory() as ws:
        return prepare_job(spec, ws)


def scene_map(raster: str | Path, segment: Segment, stretch: tuple[list[float], list[float]] | None = None,
              bands=None, on_stretch: Callable[[dict], None] | None = None) -> tuple[np.ndarray, dict]:
    """(mask (H, W) uint8, stretch {"low", "high"}) of the whole demo scene; `stretch` defaults to the job's.
    `on_stretch(stretch dict)` is called once before the first tile (to build an engine with it)."""
    from groundsynth.request.classes import NODATA
    from groundsynth.tiling.source import SourceRaster, Stretch

    prep = _prepare(Path(raster), bands)
    st = Stretch(*stretch) if stretch is not None else prep.stretch
    out = np.full((prep.height, prep.width), NODATA, np.uint8)
    if on_stretch is not None:
        on_stretch(st.to_dict())
    with SourceRaster(prep.source_path, prep.spec.bands) as src:
        for c in prep.grid.cells:
            raw, valid = src.read_window(c.col_off, c.row_off, c.width, c.height)
            img = st.apply(raw)
            img[:, ~valid] = 0
            mask = np.asarray(segment(img, valid), np.uint8).copy()
            mask[~valid] = NODATA
            h, w = min(c.height, prep.height - c.row_off), min(c.width, prep.width - c.col_off)
            out[c.row_off:c.row_off + h, c.col_off:c.col_off + w] = mask[:h, :w]
    return out, st.to_dict()


def raw_sample(raster: str | Path, bands=None) -> tuple[np.ndarray, np.ndarray]:
    """The decimated AOI read the job stretch is computed from (raw DN, valid)."""
    from groundsynth.tiling.source import SourceRaster

    prep = _prepare(Path(raster), bands)
    with SourceRaster(prep.source_path, prep.spec.bands) as src:
        return src.read_sample(prep.grid.pixel_bounds)


def legacy_map(raster: str | Path) -> np.ndarray:
    """The map of the pre-issue-11 rules and stretch (4 bands: R, G, B, NIR)."""
    from spectral_legacy import legacy_classify, legacy_stretch

    from groundsynth.request.spec import BandMapping

    four = BandMapping(1, 2, 3, 4, -1, -1)   # exactly the 4 bands the legacy rules read
    data, valid = raw_sample(raster, four)
    low, high = legacy_stretch(data[:4], valid)
    mask, _ = scene_map(raster, lambda img, v: legacy_classify(img, v, low, high), (low, high), four)
    return mask
