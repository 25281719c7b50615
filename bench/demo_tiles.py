"""The demo scene's real tiles as the pipeline sees them (shared by the synthesis bench and scripts).

`demo_tiles(workdir, split)` prepares the demo job (groundsynth.cli.demo.demo_spec, whole scene,
256 px tiles), reads every cell through the job stretch, segments it with segment/spectral and
round-trips the image through the uint8 tile encoding (what synthetic_tiles.compute_fit reads back from
the tile files). Cached as an .npz under `workdir` (delete it to rebuild).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from groundsynth.artefacts.records import real_tile_id
from groundsynth.artefacts.tiles import from_uint8, to_uint8
from groundsynth.request.spec import SplitOptions


@dataclass
class DemoTiles:
    ids: list[str]
    splits: list[str]
    images: list[np.ndarray]        # float32 (4, 256, 256) in [0, 1], 0 where not valid
    valids: list[np.ndarray]
    masks: list[np.ndarray]         # spectral masks, 255 where not valid
    stretch: dict

    def where(self, split: str) -> list[int]:
        return [i for i, s in enumerate(self.splits) if s == split]


def demo_tiles(workdir: str | Path, split: SplitOptions | None = None, min_valid: float = 0.01) -> DemoTiles:
    from groundsynth.cli.demo import demo_spec
    from groundsynth.demo.scene import demo_raster
    from groundsynth.engines.base import EngineContext
    from groundsynth.engines.builtin.spectral import Spectral
    from groundsynth.pipeline.prepare import prepare_job
    from groundsynth.tiling.source import SourceRaster

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    raster = demo_raster(workdir)
    spec = demo_spec(raster)
    if split is not None:
        spec = dataclasses.replace(spec, split=split)
    prep = prepare_job(spec, workdir)
    sp = prep.spec.split
    cache = workdir / f"demo_tiles_{sp.train}_{sp.val}_{sp.test}_{sp.block_tiles}.npz"
    if cache.exists():
        z = np.load(cache, allow_pickle=False)
        images, valids = zip(*(from_uint8(d) for d in z["data"]), strict=True)
        return DemoTiles(list(z["ids"]), list(z["splits"]), list(images), list(valids), list(z["masks"]),
                         prep.stretch.to_dict())
    seg = Spectral({}, EngineContext(extra={"stretch": prep.stretch.to_dict()}))
    ids, splits, data, masks = [], [], [], []
    with SourceRaster(prep.source_path, prep.spec.bands) as src:
        for c in prep.grid.cells:
            raw, valid = src.read_window(c.col_off, c.row_off, c.width, c.height)
            if valid.mean() < min_valid:
                continue
            img = prep.stretch.apply(raw)
            img[:, ~valid] = 0
            u8 = to_uint8(img, valid)
            img, valid = from_uint8(u8)
            ids.append(real_tile_id(c.row, c.col))
            splits.append(prep.splits[(c.row, c.col)])
            data.append(u8)
            masks.append(seg.classify(img, valid))
    np.savez_compressed(cache, ids=np.array(ids), splits=np.array(splits), data=np.stack(data),
                        masks=np.stack(masks))
    return demo_tiles(workdir, split, min_valid)
