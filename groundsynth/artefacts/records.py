"""TileRecord: what the pipeline knows about one finished tile.

One record per real or synthetic tile. The journal stores records as JSON,
the TileResult event (groundsynth.api.v1.convert), tiles.gpkg and report.json are
all built from them.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

from groundsynth.request.classes import CLASS_NAMES


def real_tile_id(row: int, col: int) -> str:
    return f"r{row:04d}_c{col:04d}"


def synthetic_tile_id(row: int, col: int, variant: int) -> str:
    return f"{real_tile_id(row, col)}_v{variant}"


@dataclass
class TileRecord:
    tile_id: str
    kind: str                          # "real" or "synthetic"
    row: int
    col: int
    variant: int = 0                   # 0 real, 1..N synthetic
    source_tile_id: str = ""           # synthetic: the real tile it derives from
    nodata: bool = False               # real tile flagged nodata (no synthesis)
    crs: str = ""                      # WKT of the tile grid CRS
    bounds: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)   # minx, miny, maxx, maxy
    geotransform: tuple[float, ...] = ()   # GDAL order x0, dx, rx, y0, ry, dy
    width: int = 0
    height: int = 0
    col_off: int = 0                   # pixel window in the source raster
    row_off: int = 0
    artefacts: dict[str, str] = field(default_factory=dict)    # kind -> path relative to the job dir
    composition: list[float] = field(default_factory=list)     # 7 shares in [0, 1] (class order of palette)
    captions: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)    # e.g. grounding, fidelity_miou
    attributes: dict[str, str] = field(default_factory=dict)

    def composition_by_name(self) -> dict[str, float]:
        return {n: float(v) for n, v in zip(CLASS_NAMES, self.composition, strict=False)}  # empty without a mask

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TileRecord:
        d = json.loads(text)
        d["bounds"] = tuple(d["bounds"])
        d["geotransform"] = tuple(d["geotransform"])
        return cls(**d)
