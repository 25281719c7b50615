"""The export's STAC catalogue: out/stac/catalog.json with one Collection per kind and variant
(`real`, `synthetic-v1`, ...), one Item per exported tile whose assets are the exported COGs and
whose `groundsynth:split` property is its split. Items are built by groundsynth.artefacts.stac,
like the job's own collection.
"""
from __future__ import annotations

import datetime as _dt
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from groundsynth.artefacts.records import TileRecord
from groundsynth.artefacts.stac import collection_extent, finite, save_catalog, tile_item
from groundsynth.export.layout import image_rel, kind_dir, mask_rel
from groundsynth.request.classes import CLASS_NAMES


def record_from_entry(entry: Mapping[str, Any], grid_crs: str) -> TileRecord:
    """A TileRecord back from a report.json tile entry (groundsynth.report.json_report.tile_entry)."""
    comp = entry.get("composition") or {}
    return TileRecord(
        tile_id=entry["tile_id"], kind=entry["kind"], row=int(entry.get("row", 0)), col=int(entry.get("col", 0)),
        variant=int(entry.get("variant", 0)), source_tile_id=entry.get("source_tile_id", ""),
        nodata=bool(entry.get("nodata")), crs=entry.get("crs") or grid_crs,
        bounds=tuple(entry.get("bounds") or (0.0, 0.0, 0.0, 0.0)),
        geotransform=tuple(entry.get("geotransform") or ()), width=int(entry.get("width", 0)),
        height=int(entry.get("height", 0)), col_off=int(entry.get("col_off", 0)), row_off=int(entry.get("row_off", 0)),
        artefacts=dict(entry.get("artefacts") or {}),
        composition=[float(comp[n]) for n in CLASS_NAMES] if all(n in comp for n in CLASS_NAMES) else [],
        captions=list(entry.get("captions") or []), metrics=dict(entry.get("metrics") or {}),
        attributes={str(k): str(v) for k, v in (entry.get("attributes") or {}).items()})


def write_dataset_catalog(out_dir: Path, job_id: str, exported: Sequence[tuple[TileRecord, str]], grid_crs: str,
                          n_bands: Mapping[str, int], summary: Mapping[str, Any]) -> Path:
    """out/stac/catalog.json over the exported tiles ((record, split) pairs); returns its path."""
    import pystac

    when = _dt.datetime.now(_dt.UTC).replace(microsecond=0)
    groups: dict[str, list[Any]] = defaultdict(list)
    for rec, split in sorted(exported, key=lambda p: p[0].tile_id):
        hrefs = {"image": str(out_dir / image_rel(rec.kind, rec.variant, rec.tile_id)),
                 "mask": str(out_dir / mask_rel(rec.kind, rec.variant, rec.tile_id))}
        item = tile_item(rec, hrefs, rec.crs or grid_crs, when, n_bands.get(rec.tile_id, 4),
                         {"groundsynth:split": split})
        groups[kind_dir(rec.kind, rec.variant).replace("/", "-")].append(item)
    root = pystac.Catalog(id=f"{job_id or 'job'}-dataset",
                          description=f"GroundSynth training dataset of job {job_id}: real tiles and each synthetic "
                                      "variant in their own collection; the split is the item property "
                                      "groundsynth:split (also out/splits/<split>.txt)",
                          extra_fields={"groundsynth:export": finite(dict(summary))})
    for name in sorted(groups):
        items = groups[name]
        kind = "real tiles" if name == "real" else f"synthetic variant {name.split('-v')[-1]}"
        coll = pystac.Collection(id=name, description=f"{kind} of job {job_id} (image and class-mask COGs)",
                                 extent=collection_extent(items, when), license="other")
        coll.add_items(items)
        root.add_child(coll)
    return save_catalog(root, out_dir / "stac")
