"""Reference samples: points or polygons with a reference class, placed on the raster's pixel grid.

`load_reference(ref, crs_wkt, transform, width, height)` reads a `ReferenceSamples` (a GeoPackage,
GeoJSON, shapefile or CSV path, or inline WKT features), reprojects every feature from its CRS to
the raster's and returns a `ReferenceSample`: one entry per sample PIXEL (a point is one pixel, the
one it falls in; a polygon is every pixel whose centre lies inside it), each with its class index,
its sample unit (the feature it came from: the bootstrap resamples whole units), split and stratum.

Classes by name (Tree .. Water, case-insensitive) or ESA WorldCover code (10 .. 100), from the
attribute `class_field` or the first of class, class_name, label, code, worldcover. CSV files
have x/y, lon/lat (longitude/latitude) or wkt columns, in `ref.crs` (default EPSG:4326).
Features outside the raster are counted and left out. Errors name `reference.*`.

`points_in_tile(sample, cell)` returns the sample pixels a tile owns (tile-relative row/col and
class): the pipeline's per-tile agreement and the grounding controls use it. With overlapping
tiles a pixel belongs to the first tile of the grid (row-major) that holds it, so per-tile counts
add up to the sample.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from groundsynth.request.errors import InvalidArgument, NotFound
from groundsynth.request.spec import ReferenceFeature, ReferenceSamples, reference_class

CLASS_FIELDS = ("class", "class_name", "label", "code", "worldcover")
MAX_PIXELS = 2_000_000         # sample pixels in all (polygons of a whole scene are refused)
VECTOR_SUFFIXES = (".gpkg", ".geojson", ".json", ".shp", ".fgb", ".kml", ".gml")


@dataclass
class ReferenceSample:
    """A reference sample on the raster grid, one entry per sample pixel."""

    row: np.ndarray                     # int64 pixel row in the raster
    col: np.ndarray                     # int64 pixel column in the raster
    cls: np.ndarray                     # uint8 reference class index 0..6
    unit: np.ndarray                    # int64 index of the sample unit (feature) the pixel belongs to
    split: np.ndarray                   # str per pixel ("" when the file has none)
    stratum: np.ndarray                 # str per pixel ("" when unstratified)
    unit_ids: list[str] = field(default_factory=list)           # feature id per unit
    stratum_sizes: dict[str, float] = field(default_factory=dict)   # stratum -> size in the sampling frame
    outside: int = 0                    # features that fall outside the raster
    source: str = ""                    # the file, or "inline"
    geometry: str = "point"             # "point", "polygon" or "mixed"

    def __len__(self) -> int:
        return int(self.row.size)

    def subset(self, keep: np.ndarray) -> ReferenceSample:
        return ReferenceSample(self.row[keep], self.col[keep], self.cls[keep], self.unit[keep], self.split[keep],
                               self.stratum[keep], self.unit_ids, self.stratum_sizes, self.outside, self.source,
                               self.geometry)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Picklable columns for worker tasks (row, col, cls)."""
        return {"row": self.row, "col": self.col, "cls": self.cls}


# ------------------------------------------------------------------ reading

def _field_of(props: dict[str, Any], class_field: str, where: str) -> Any:
    if class_field:
        if class_field not in props:
            raise InvalidArgument(f"{where} has no attribute {class_field!r} (it has: {', '.join(props) or 'none'})",
                                  "reference.class_field")
        return props[class_field]
    lower = {k.lower(): k for k in props}
    for name in CLASS_FIELDS:
        if name in lower:
            return props[lower[name]]
    raise InvalidArgument(f"{where} has none of the attributes {', '.join(CLASS_FIELDS)}; name the class "
                          "attribute with class_field", "reference.class_field")


def _feature(i: int, geometry: Any, props: dict[str, Any], ref: ReferenceSamples, name: str) -> ReferenceFeature:
    from shapely.geometry import shape

    if geometry is None:
        raise InvalidArgument(f"feature {i + 1} of {name} has no geometry", "reference.path")
    value = _field_of(props, ref.class_field, f"feature {i + 1} of {name}")
    try:
        size = float(props.get("stratum_size") or 0.0)
    except (TypeError, ValueError):
        raise InvalidArgument(f"feature {i + 1} of {name}: stratum_size {props.get('stratum_size')!r} is not a "
                              "number", "reference.path") from None
    return ReferenceFeature(wkt=shape(geometry).wkt, class_value="" if value is None else str(value),
                            id=str(props.get("id") or props.get("fid") or i + 1), split=str(props.get("split") or ""),
                            stratum=str(props.get("stratum") or ""), stratum_size=size)


def _read_geojson(path: Path, ref: ReferenceSamples) -> tuple[list[ReferenceFeature], str]:
    """GeoJSON read directly (RFC 7946: EPSG:4326 unless a legacy "crs" member names another)."""
    import json

    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        features = doc["features"] if doc.get("type") == "FeatureCollection" else [doc]
    except (ValueError, KeyError, AttributeError) as exc:
        raise InvalidArgument(f"{path.name} is not a GeoJSON FeatureCollection ({exc})", "reference.path") from None
    crs = ((doc.get("crs") or {}).get("properties") or {}).get("name", "") if isinstance(doc, dict) else ""
    return [_feature(i, f.get("geometry"), dict(f.get("properties") or {}), ref, path.name)
            for i, f in enumerate(features)], str(crs)


def _read_vector(path: Path, ref: ReferenceSamples) -> tuple[list[ReferenceFeature], str]:
    import fiona

    try:
        src = fiona.open(path, layer=ref.layer or None)
    except Exception as exc:          # fiona raises DriverError and others for unreadable files
        raise InvalidArgument(f"cannot read {path} as a vector layer ({exc})", "reference.path") from None
    with src:
        crs = src.crs.to_wkt() if src.crs else ""
        feats = [_feature(i, f["geometry"], dict(f["properties"] or {}), ref, path.name) for i, f in enumerate(src)]
    return feats, crs


def _read_csv(path: Path, ref: ReferenceSamples) -> list[ReferenceFeature]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    feats = []
    for i, r in enumerate(rows):
        low = {k.strip().lower(): v for k, v in r.items() if k}
        where = f"row {i + 2} of {path.name}"
        if low.get("wkt"):
            wkt = low["wkt"]
        else:
            pair = next(((low[a], low[b]) for a, b in (("x", "y"), ("lon", "lat"), ("longitude", "latitude"))
                         if low.get(a) and low.get(b)), None)
            if pair is None:
                raise InvalidArgument(f"{where} has no coordinates; expected x/y, lon/lat or wkt columns",
                                      "reference.path")
            try:
                wkt = f"POINT ({float(pair[0])!r} {float(pair[1])!r})"
            except ValueError:
                raise InvalidArgument(f"{where}: coordinates {pair} are not numbers", "reference.path") from None
        value = _field_of(r, ref.class_field, where) if ref.class_field else _field_of(low, "", where)
        feats.append(ReferenceFeature(wkt=wkt, class_value=str(value), id=low.get("id") or str(i + 1),
                                      split=low.get("split", ""), stratum=low.get("stratum", ""),
                                      stratum_size=float(low.get("stratum_size") or 0.0)))
    return feats


def read_features(ref: ReferenceSamples) -> tuple[list[ReferenceFeature], str, str]:
    """(features, their CRS as given ("" = EPSG:4326), source name) of a ReferenceSamples."""
    if not ref.path:
        return list(ref.features), ref.crs, "inline"
    path = Path(ref.path)
    if not path.is_file():
        raise NotFound(f"no such reference file: {ref.path}", "reference.path")
    if path.suffix.lower() == ".csv":
        return _read_csv(path, ref), ref.crs, path.name
    if path.suffix.lower() not in VECTOR_SUFFIXES:
        raise InvalidArgument(f"expected a GeoPackage, GeoJSON, shapefile or CSV file, got {path.name}",
                              "reference.path")
    feats, crs = (_read_geojson if path.suffix.lower() in (".geojson", ".json") else _read_vector)(path, ref)
    return feats, crs or ref.crs, path.name


# ------------------------------------------------------------------ onto the grid

def _pixels_of(geom: Any, inverse: Any, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Raster (rows, cols) of a geometry already in the raster CRS: the pixel of a point, the pixel centres
    inside a polygon."""
    from shapely import contains_xy
    from shapely.geometry.base import BaseMultipartGeometry

    parts = list(geom.geoms) if isinstance(geom, BaseMultipartGeometry) else [geom]
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    fwd = ~inverse
    for g in parts:
        if g.geom_type == "Point":
            c, r = inverse * (g.x, g.y)
            rows.append(np.array([int(np.floor(r))]))
            cols.append(np.array([int(np.floor(c))]))
            continue
        if g.geom_type != "Polygon":
            raise InvalidArgument(f"expected points or polygons, got a {g.geom_type}", "reference")
        corners = [inverse * xy for xy in ((g.bounds[0], g.bounds[1]), (g.bounds[2], g.bounds[3]),
                                           (g.bounds[0], g.bounds[3]), (g.bounds[2], g.bounds[1]))]
        c0 = max(int(np.floor(min(p[0] for p in corners))), 0)
        c1 = min(int(np.ceil(max(p[0] for p in corners))), width)
        r0 = max(int(np.floor(min(p[1] for p in corners))), 0)
        r1 = min(int(np.ceil(max(p[1] for p in corners))), height)
        if c1 <= c0 or r1 <= r0:
            continue
        if (c1 - c0) * (r1 - r0) > MAX_PIXELS:
            raise InvalidArgument(f"a reference polygon covers more than {MAX_PIXELS} pixels", "reference")
        rr, cc = np.mgrid[r0:r1, c0:c1]
        x, y = fwd * (cc.ravel() + 0.5, rr.ravel() + 0.5)
        inside = contains_xy(g, np.asarray(x), np.asarray(y))
        rows.append(rr.ravel()[inside])
        cols.append(cc.ravel()[inside])
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(rows).astype(np.int64), np.concatenate(cols).astype(np.int64)


def load_reference(ref: ReferenceSamples, crs_wkt: str, transform: Any, width: int, height: int) -> ReferenceSample:
    """The reference sample on the raster grid (see the module doc); raises InvalidArgument/NotFound."""
    from pyproj import CRS, Transformer
    from shapely import wkt as shapely_wkt
    from shapely.ops import transform as shapely_transform

    from groundsynth.tiling.grid import parse_crs

    feats, crs_text, source = read_features(ref)
    if ref.split:
        feats = [f for f in feats if f.split == ref.split]
    if not feats:
        raise InvalidArgument(f"no reference features{' of split ' + repr(ref.split) if ref.split else ''} in "
                              f"{source}", "reference")
    src_crs = parse_crs(crs_text, "reference.crs") if crs_text.strip() else CRS.from_epsg(4326)
    dst_crs = CRS.from_wkt(crs_wkt)
    to_raster = None if src_crs == dst_crs else Transformer.from_crs(src_crs, dst_crs, always_xy=True).transform
    inverse = ~transform
    cols_: dict[str, list[Any]] = {k: [] for k in ("row", "col", "cls", "unit", "split", "stratum")}
    sizes: dict[str, float] = {}
    kinds, outside = set(), 0
    for i, f in enumerate(feats):
        where = f"reference.features[{i}]" if source == "inline" else f"reference feature {f.id or i + 1}"
        cls = reference_class(f.class_value)
        if cls is None:
            raise InvalidArgument(f"{where}: unknown class {f.class_value!r}; expected a class name or an ESA "
                                  "WorldCover code", "reference.class_field" if source != "inline" else where)
        try:
            geom = shapely_wkt.loads(f.wkt)
        except Exception:
            raise InvalidArgument(f"{where}: not a WKT geometry: {f.wkt[:60]!r}", "reference") from None
        try:
            geom_r = geom if to_raster is None else shapely_transform(to_raster, geom)
        except Exception as exc:
            raise InvalidArgument(f"{where}: cannot reproject to the raster CRS ({exc})", "reference.crs") from None
        kinds.add("point" if "Point" in geom.geom_type else "polygon")
        rr, cc = _pixels_of(geom_r, inverse, width, height)
        inside = (rr >= 0) & (rr < height) & (cc >= 0) & (cc < width)
        if not inside.any():
            outside += 1
            continue
        rr, cc = rr[inside], cc[inside]
        n = rr.size
        for key, vals in (("row", rr), ("col", cc), ("cls", np.full(n, cls)), ("unit", np.full(n, i)),
                          ("split", [f.split] * n), ("stratum", [f.stratum] * n)):
            cols_[key].append(np.asarray(vals))
        if f.stratum and f.stratum_size > 0:
            sizes[f.stratum] = float(f.stratum_size)
        if sum(a.size for a in cols_["row"]) > MAX_PIXELS:
            raise InvalidArgument(f"the reference sample covers more than {MAX_PIXELS} pixels", "reference")
    if not cols_["row"]:
        raise InvalidArgument(f"all {len(feats)} reference features of {source} fall outside the raster", "reference")
    cat = {k: np.concatenate(v) for k, v in cols_.items()}
    return ReferenceSample(cat["row"].astype(np.int64), cat["col"].astype(np.int64), cat["cls"].astype(np.uint8),
                           cat["unit"].astype(np.int64), cat["split"].astype(str), cat["stratum"].astype(str),
                           [f.id for f in feats], sizes, outside, os.fspath(source),
                           kinds.pop() if len(kinds) == 1 else "mixed")


# ------------------------------------------------------------------ per tile

def owners(sample_rows: np.ndarray, sample_cols: np.ndarray, cells: Any) -> np.ndarray:
    """Index (into `cells`) of the first cell holding each sample pixel; -1 where none does."""
    owner = np.full(np.asarray(sample_rows).size, -1, np.int64)
    for k, c in enumerate(cells):
        free = owner < 0
        inside = free & (sample_rows >= c.row_off) & (sample_rows < c.row_off + c.height) \
            & (sample_cols >= c.col_off) & (sample_cols < c.col_off + c.width)
        owner[inside] = k
    return owner


def points_in_tile(sample: ReferenceSample | dict[str, np.ndarray], cell: Any,
                   owned: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, classes) of the sample pixels inside a tile, rows/cols relative to the tile's window.

    `sample`: a ReferenceSample or its `to_arrays()`; `owned`: optional bool mask of the pixels this
    tile owns (see `owners`), so that with overlapping tiles a pixel is counted once."""
    arr = sample.to_arrays() if isinstance(sample, ReferenceSample) else sample
    r, c = np.asarray(arr["row"]), np.asarray(arr["col"])
    inside = (r >= cell.row_off) & (r < cell.row_off + cell.height) & (c >= cell.col_off) & (c < cell.col_off + cell.width)
    if owned is not None:
        inside &= owned
    return (r[inside] - cell.row_off).astype(np.int64), (c[inside] - cell.col_off).astype(np.int64), \
        np.asarray(arr["cls"])[inside].astype(np.uint8)
