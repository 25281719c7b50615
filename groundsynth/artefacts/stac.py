"""STAC metadata (pystac) of a job's tiles: one Collection per job, one Item per tile.

    write_job_collection(job_dir, job_id, records, spec, summary) -> <job_dir>/stac/collection.json

Each Item (id = tile id) has the tile's footprint (geometry and bbox in WGS 84, as STAC wants;
the native grid in the projection extension: proj:code or proj:wkt2, proj:shape, proj:transform,
proj:bbox), its image and mask as Cloud-Optimised GeoTIFF assets (plus the label tile and the
conditioning mask where the job wrote them), the label extension for the class mask (raster
labels, segmentation task, classes 0..6) and the classification extension on every mask asset
(class values, names and palette colours; 255 = nodata). Properties carry what the tile record
knows: kind, variant, source tile, split, nodata flag, dataset-filter flags (dropped_by), class
shares, captions, metrics and the other attributes, prefixed `groundsynth:`. The Collection carries
the job's spec and the report's summary metrics (`groundsynth:spec`, `groundsynth:summary`).

`datetime` is the time the job wrote the catalogue: GroundSynth does not know when the source
imagery was acquired. Links and asset hrefs are relative (a self-contained catalogue: the job
directory moves as a whole). Every JSON file is written through groundsynth.artefacts.atomic.
The dataset export builds its catalogue from the same `tile_item`.
"""
from __future__ import annotations

import datetime as _dt
import functools
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from groundsynth.artefacts.atomic import write_text
from groundsynth.artefacts.records import TileRecord
from groundsynth.request.classes import CLASS_COLORS, CLASS_NAMES, NODATA

STAC_DIR = "stac"
COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
LABEL_SCHEMA = "https://stac-extensions.github.io/label/v1.0.1/schema.json"
CLASSIFICATION_SCHEMA = "https://stac-extensions.github.io/classification/v1.1.0/schema.json"
PROJECTION_SCHEMA = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
IMAGE_BANDS = ("red", "green", "blue", "nir")
MASK_KINDS = ("mask", "cond_mask", "labels")       # artefacts holding class indices
ASSET_TITLES = {"image": "image (uint8 R, G, B, NIR; 0 = nodata, the job's stretch)",
                "mask": "class mask (0..6, 255 = nodata)", "cond_mask": "mask the synthetic image was made from",
                "labels": "reference labels on the tile grid"}


def classification_classes() -> list[dict[str, Any]]:
    """classification:classes of a mask: the 7 classes with their palette colours (color_hint)."""
    out: list[dict[str, Any]] = [
        {"value": i, "name": name.lower().replace("-", "_"), "description": name,
         "color_hint": "{:02X}{:02X}{:02X}".format(*CLASS_COLORS[i])} for i, name in enumerate(CLASS_NAMES)]
    out.append({"value": NODATA, "name": "nodata", "description": "no data (not scored)"})
    return out


@functools.lru_cache(maxsize=8)
def _to_wgs84(crs_wkt: str):
    from pyproj import CRS, Transformer

    return Transformer.from_crs(CRS.from_user_input(crs_wkt), CRS.from_epsg(4326), always_xy=True)


@functools.lru_cache(maxsize=8)
def _epsg(crs_wkt: str) -> int | None:
    from pyproj import CRS

    return CRS.from_user_input(crs_wkt).to_epsg()


def _wgs84(rec: TileRecord, crs_wkt: str) -> tuple[dict[str, Any], list[float]]:
    minx, miny, maxx, maxy = rec.bounds
    ring = [(minx, miny), (maxx, miny), (maxx, maxy), (minx, maxy)]
    to_ll = _to_wgs84(crs_wkt)
    pts = [tuple(round(v, 9) for v in to_ll.transform(x, y)) for x, y in ring]
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return {"type": "Polygon", "coordinates": [[list(p) for p in [*pts, pts[0]]]]}, [min(xs), min(ys), max(xs), max(ys)]


def _projection(rec: TileRecord, crs_wkt: str) -> dict[str, Any]:
    epsg = _epsg(crs_wkt)
    x0, dx, rx, y0, ry, dy = rec.geotransform
    out: dict[str, Any] = {"proj:code": f"EPSG:{epsg}" if epsg else None, "proj:shape": [rec.height, rec.width],
                           "proj:transform": [dx, rx, x0, ry, dy, y0], "proj:bbox": list(rec.bounds)}
    if not epsg:
        out["proj:wkt2"] = crs_wkt
    return out


def _properties(rec: TileRecord) -> dict[str, Any]:
    attrs = dict(rec.attributes)
    props: dict[str, Any] = {
        "groundsynth:kind": rec.kind, "groundsynth:variant": rec.variant, "groundsynth:nodata": rec.nodata,
        "groundsynth:row": rec.row, "groundsynth:col": rec.col,
    }
    if rec.source_tile_id:
        props["groundsynth:source_tile"] = rec.source_tile_id
    if "split" in attrs:
        props["groundsynth:split"] = attrs.pop("split")
    if attrs.get("dropped_by"):
        props["groundsynth:dropped_by"] = [s for s in attrs.pop("dropped_by").split(",") if s]
    if len(rec.composition) == len(CLASS_NAMES):
        props["groundsynth:composition"] = {n: round(float(v), 6) for n, v in zip(CLASS_NAMES, rec.composition,
                                                                                  strict=True)}
    if rec.captions:
        props["groundsynth:captions"] = list(rec.captions)
    if rec.metrics:
        props["groundsynth:metrics"] = finite({k: float(v) for k, v in rec.metrics.items()})
    if attrs:
        props["groundsynth:attributes"] = attrs
    return props


def _asset(kind: str, href: str, width: int, n_image_bands: int):
    import pystac

    extra: dict[str, Any] = {}
    if kind == "image":
        roles = ["data"]
        extra["bands"] = [{"name": n, "nodata": 0, "data_type": "uint8"} for n in IMAGE_BANDS[:n_image_bands]]
    else:
        roles = ["labels", "labels-raster"] if kind == "mask" else ["metadata"] if kind == "cond_mask" else ["labels"]
        extra["bands"] = [{"name": "class", "nodata": NODATA, "data_type": "uint8"}]
        extra["classification:classes"] = classification_classes()
    return pystac.Asset(href=href, media_type=COG_MEDIA_TYPE, roles=roles, title=ASSET_TITLES.get(kind, kind),
                        extra_fields=extra)


def tile_item(rec: TileRecord, hrefs: Mapping[str, str], crs_wkt: str, when: _dt.datetime,
              n_image_bands: int = 4, extra_properties: Mapping[str, Any] | None = None):
    """A pystac.Item for one tile; `hrefs` maps artefact kinds (image, mask, ...) to asset hrefs."""
    import pystac

    geometry, bbox = _wgs84(rec, crs_wkt)
    props = {**_projection(rec, crs_wkt), **_properties(rec), **(extra_properties or {})}
    item = pystac.Item(id=rec.tile_id, geometry=geometry, bbox=bbox, datetime=when, properties=props,
                       stac_extensions=[PROJECTION_SCHEMA])
    for kind in ("image", *MASK_KINDS):
        if kind in hrefs:
            item.add_asset(kind, _asset(kind, hrefs[kind], rec.width, n_image_bands))
    if any(k in hrefs for k in MASK_KINDS):
        item.stac_extensions.append(CLASSIFICATION_SCHEMA)
    if "mask" in hrefs:
        item.stac_extensions.append(LABEL_SCHEMA)
        item.properties.update({
            "label:description": "land-cover class per pixel (0..6, 255 = nodata)" +
                                 (" predicted by the segmenter" if rec.kind == "real" else
                                  " of the synthetic image (re-segmentation)"),
            "label:type": "raster", "label:properties": None,
            "label:classes": [{"name": None, "classes": list(range(len(CLASS_NAMES)))}],
            "label:tasks": ["segmentation"], "label:methods": ["automated"]})
    return item


def finite(value: Any) -> Any:
    """JSON-safe copy: non-finite floats become None (STAC JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):      # numpy scalars
        return finite(value.item())
    return value


def atomic_stac_io():
    """A pystac StacIO that writes every file through groundsynth.artefacts.atomic."""
    from pystac.stac_io import DefaultStacIO

    class AtomicStacIO(DefaultStacIO):
        def write_text_to_href(self, href: Any, txt: str) -> None:
            write_text(os.fspath(href), txt)

    return AtomicStacIO()


def collection_extent(items: Sequence[Any], when: _dt.datetime):
    import pystac

    boxes = [i.bbox for i in items] or [[-180.0, -90.0, 180.0, 90.0]]
    bbox = [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]
    return pystac.Extent(pystac.SpatialExtent([bbox]), pystac.TemporalExtent([[when, when]]))


def save_catalog(root: Any, folder: Path) -> Path:
    """Lay the catalogue out under `folder` (<item id>/<item id>.json) with relative links and hrefs."""
    import pystac

    root.normalize_hrefs(str(folder))
    root.make_all_asset_hrefs_relative()
    root.save(catalog_type=pystac.CatalogType.SELF_CONTAINED, stac_io=atomic_stac_io())
    return folder / ("collection.json" if isinstance(root, pystac.Collection) else "catalog.json")


def write_job_collection(job_dir: str | Path, job_id: str, records: Sequence[TileRecord], spec: Mapping[str, Any],
                         summary: Mapping[str, Any], crs_wkt: str, n_image_bands: int = 4,
                         when: _dt.datetime | None = None) -> Path:
    """<job_dir>/stac/collection.json + one item per tile; returns the collection's path."""
    import pystac

    job_dir = Path(job_dir).absolute()
    when = when or _dt.datetime.now(_dt.UTC).replace(microsecond=0)
    items = [tile_item(r, {k: str(job_dir / rel) for k, rel in r.artefacts.items()}, r.crs or crs_wkt, when,
                       n_image_bands) for r in sorted(records, key=lambda r: r.tile_id)]
    coll = pystac.Collection(
        id=job_id or "job", title=str(spec.get("name") or job_id),
        description=f"GroundSynth job {job_id}: {sum(r.kind == 'real' for r in records)} real and "
                    f"{sum(r.kind == 'synthetic' for r in records)} synthetic tiles (image and class-mask COGs)",
        extent=collection_extent(items, when), license="other",
        extra_fields={"groundsynth:spec": finite(dict(spec)), "groundsynth:summary": finite(dict(summary))})
    coll.add_items(items)
    return save_catalog(coll, job_dir / STAC_DIR)
