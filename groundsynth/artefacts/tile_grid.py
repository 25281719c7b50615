"""tiles.gpkg: the job's tile grid as a polygon layer, one row per tile (real and synthetic).

Layer "tiles", polygons in the raster CRS (a synthetic tile has its source
tile's footprint). Columns: tile_id, kind, row, col, variant, source_tile,
nodata (0/1), the 7 class shares pct_tree .. pct_water (0..100), caption_1..5,
one float column per metric found in the records, one text column per record
attribute (engine names, ...) and one per artefact (art_image, art_mask, ...).
Column names are lower-case and safe for every GIS (letters, digits, "_").
The file is rewritten atomically (temp file, then rename) each time.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from groundsynth.artefacts.atomic import atomic_path
from groundsynth.artefacts.records import TileRecord
from groundsynth.request.classes import CLASS_NAMES

LAYER = "tiles"
N_CAPTIONS = 5


def safe_name(name: str) -> str:
    out = re.sub(r"[^0-9a-zA-Z_]+", "_", name.strip()).strip("_").lower()
    return out if out and not out[0].isdigit() else f"f_{out}"


def class_column(name: str) -> str:
    return f"pct_{safe_name(name)}"


CLASS_COLUMNS = tuple(class_column(n) for n in CLASS_NAMES)   # pct_tree, ..., pct_built_up, ...


def _schema(records: Sequence[TileRecord]) -> tuple[dict, dict[str, str], dict[str, str], dict[str, str]]:
    props: dict[str, str] = {"tile_id": "str", "kind": "str", "row": "int", "col": "int", "variant": "int",
                             "source_tile": "str", "nodata": "int"}
    for c in CLASS_COLUMNS:
        props[c] = "float"
    for i in range(1, N_CAPTIONS + 1):
        props[f"caption_{i}"] = "str"
    metric_cols: dict[str, str] = {}
    attr_cols: dict[str, str] = {}
    art_cols: dict[str, str] = {}
    for rec in records:
        for k in rec.metrics:
            metric_cols.setdefault(k, safe_name(k))
        for k in rec.attributes:
            attr_cols.setdefault(k, safe_name(k))
        for k in rec.artefacts:
            art_cols.setdefault(k, "art_" + safe_name(k))
    for col in metric_cols.values():
        props.setdefault(col, "float")
    for col in attr_cols.values():
        props.setdefault(col, "str")
    for col in art_cols.values():
        props.setdefault(col, "str")
    return {"geometry": "Polygon", "properties": props}, metric_cols, attr_cols, art_cols


def write_tiles_gpkg(path: str | Path, records: Sequence[TileRecord], crs_wkt: str) -> int:
    """Write (atomically) the tile layer; returns the number of rows."""
    import fiona
    from fiona.crs import CRS

    schema, metric_cols, attr_cols, art_cols = _schema(records)
    ordered = sorted(records, key=lambda r: (r.variant, r.row, r.col))
    with atomic_path(path) as tmp:
        with fiona.open(tmp, "w", driver="GPKG", layer=LAYER, schema=schema, crs=CRS.from_wkt(crs_wkt)) as dst:
            rows = []
            for rec in ordered:
                minx, miny, maxx, maxy = rec.bounds
                props: dict[str, Any] = {k: None for k in schema["properties"]}
                props.update(tile_id=rec.tile_id, kind=rec.kind, row=rec.row, col=rec.col, variant=rec.variant,
                             source_tile=rec.source_tile_id, nodata=int(rec.nodata))
                if rec.composition:
                    for col, share in zip(CLASS_COLUMNS, rec.composition, strict=True):
                        props[col] = round(100.0 * float(share), 3)
                for i, cap in enumerate(rec.captions[:N_CAPTIONS], start=1):
                    props[f"caption_{i}"] = cap
                for k, score in rec.metrics.items():
                    props[metric_cols[k]] = float(score)
                for k, attr in rec.attributes.items():
                    props[attr_cols[k]] = str(attr)
                for k, rel in rec.artefacts.items():
                    props[art_cols[k]] = rel
                geom = {"type": "Polygon", "coordinates": [[(minx, miny), (maxx, miny), (maxx, maxy), (minx, maxy),
                                                            (minx, miny)]]}
                rows.append({"geometry": geom, "properties": props})
            dst.writerecords(rows)
    return len(ordered)
