"""Reference samples from QGIS for the backend's accuracy assessment (issue 11): a vector layer of points or
polygons with a class attribute (any CRS; classes by name or ESA WorldCover code), or points digitised on the
map with a class picker, written to a GeoJSON file that the backend reads (`groundsynth run --reference FILE`,
JobSpec.reference.path).

The file is RFC 7946 GeoJSON: a FeatureCollection in EPSG:4326 (longitude, latitude), one feature per sample
unit with the properties `class` (the class name, or the WorldCover code as given), `id`, and `split`,
`stratum`, `stratum_size` when the layer has them. Classes are checked here, so a bad value is refused before
anything is sent, naming the feature and the attribute. The file is written to a temporary name and renamed.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFeature,
    QgsFeatureRequest,
    QgsGeometry,
    QgsPointXY,
    QgsProject,
    QgsVectorLayer,
    QgsWkbTypes,
)

from .errors import PluginError
from .layers.styling import DEFAULT_CLASSES

# ESA WorldCover 2021 codes and the class each maps to (groundsynth.request.classes.WORLDCOVER_TO_CLASS)
WORLDCOVER_CODES = {10: "Tree", 95: "Tree", 20: "Shrub", 30: "Grass", 90: "Grass", 100: "Grass", 40: "Crop",
                    50: "Built-up", 60: "Barren", 70: "Barren", 80: "Water"}
CLASS_NAMES = tuple(c[1] for c in DEFAULT_CLASSES)
PASSED_ON = ("split", "stratum", "stratum_size")
DIGITISED_FIELD = "class"
WGS84 = "EPSG:4326"


class ReferenceError(PluginError):
    title = "Reference samples"


def _key(name: str) -> str:
    return name.strip().lower().replace("_", "").replace("-", "").replace(" ", "")


def reference_class(value) -> str | None:
    """The class a reference label names: a class name (case-insensitive, "built up" = "Built-up") or a
    WorldCover code (10 .. 100, as a number or text); None when it names none."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return WORLDCOVER_CODES.get(int(value)) if float(value).is_integer() else None
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return next((n for n in CLASS_NAMES if _key(n) == _key(text)), None) if text else None
    return WORLDCOVER_CODES.get(int(number)) if number.is_integer() else None


def _label(value):
    """The class value as written: a WorldCover code stays a number, a name stays its text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    return str(value).strip()


def _json_value(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def reference_features(layer: QgsVectorLayer, class_field: str, selected_only: bool = False) -> list[dict]:
    """GeoJSON features (EPSG:4326) of the layer's points or polygons; ReferenceError names what is wrong."""
    if layer is None or not layer.isValid():
        raise ReferenceError("choose a valid vector layer of reference points or polygons")
    request = QgsFeatureRequest()
    if selected_only:
        if not layer.selectedFeatureCount():
            raise ReferenceError(f"{layer.name()}: 'selected features only' is ticked, but none is selected")
        request.setFilterFids(layer.selectedFeatureIds())
    return source_features(layer, class_field, layer.name(), layer.crs(), request)


def source_features(source, class_field: str, name: str, crs: QgsCoordinateReferenceSystem,
                    request: QgsFeatureRequest | None = None) -> list[dict]:
    """GeoJSON features (EPSG:4326) of a QgsFeatureSource (a layer, or Processing's thread-safe source)."""
    gtype = QgsWkbTypes.geometryType(source.wkbType())
    if gtype not in (QgsWkbTypes.GeometryType.PointGeometry, QgsWkbTypes.GeometryType.PolygonGeometry):
        raise ReferenceError(f"{name}: reference samples are points or polygons, not "
                             f"{QgsWkbTypes.geometryDisplayString(gtype).lower()}s")
    names = source.fields().names()
    if class_field not in names:
        raise ReferenceError(f"{name} has no attribute {class_field!r} (it has: {', '.join(names) or 'none'})")
    if not crs.isValid():
        raise ReferenceError(f"{name} has no valid CRS: set it (Layer Properties > Source) first")
    transform = QgsCoordinateTransform(crs, QgsCoordinateReferenceSystem(WGS84), QgsProject.instance())
    out = []
    for feat in source.getFeatures(request or QgsFeatureRequest()):
        value = feat[class_field]
        where = f"{name} feature {feat.id()}"
        if reference_class(value) is None:
            raise ReferenceError(f"{where}: {class_field} = {value!r} is neither a class name "
                                 f"({', '.join(CLASS_NAMES)}) nor an ESA WorldCover code "
                                 f"({', '.join(str(c) for c in sorted(WORLDCOVER_CODES))})")
        geom = QgsGeometry(feat.geometry())
        if geom.isNull() or geom.isEmpty():
            raise ReferenceError(f"{where} has no geometry")
        geom.transform(transform)
        props = {"class": _label(value), "id": str(feat["id"]) if "id" in names and feat["id"] else str(feat.id())}
        props.update({k: _json_value(feat[k]) for k in PASSED_ON if k in names and feat[k] not in (None, "")})
        out.append((feat.id(), {"type": "Feature", "geometry": json.loads(geom.asJson(8)), "properties": props}))
    if not out:
        raise ReferenceError(f"{name} has no features")
    return [f for _fid, f in sorted(out, key=lambda item: item[0])]      # in feature order, selected or not


def write_geojson(features: list[dict], dest: str | os.PathLike, name: str) -> Path:
    """Write reference features as a GeoJSON FeatureCollection to `dest`, atomically."""
    doc = {"type": "FeatureCollection", "name": f"reference samples from {name}", "features": features}
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    try:
        tmp.write_text(json.dumps(doc), encoding="utf-8")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def write_reference(layer: QgsVectorLayer, class_field: str, dest: str | os.PathLike,
                    selected_only: bool = False) -> tuple[Path, int]:
    """Write the layer's reference samples to the GeoJSON file `dest` (atomically); (path, features)."""
    features = reference_features(layer, class_field, selected_only)
    return write_geojson(features, dest, layer.name()), len(features)


def inline_features(features: list[dict]) -> list[dict]:
    """GeoJSON features (from `reference_features`) as JobSpec.reference.features entries (WKT, EPSG:4326)."""
    out = []
    for f in features:
        props = f["properties"]
        geom = QgsGeometry.fromWkt(_geojson_wkt(f["geometry"]))
        out.append({"wkt": geom.asWkt(8), "class_value": str(props["class"]), "id": str(props.get("id", "")),
                    "split": str(props.get("split", "")), "stratum": str(props.get("stratum", "")),
                    "stratum_size": float(props.get("stratum_size") or 0.0)})
    return out


def _geojson_wkt(geometry: dict) -> str:
    from osgeo import ogr

    return ogr.CreateGeometryFromJson(json.dumps(geometry)).ExportToIsoWkt()


# ------------------------------------------------------------------ digitised on the map
def digitised_layer(crs: QgsCoordinateReferenceSystem, name: str = "reference points (digitised)") -> QgsVectorLayer:
    """A memory point layer with a `class` attribute, for samples digitised on the map."""
    from .layers.results import _field

    layer = QgsVectorLayer(f"Point?crs={crs.authid() or 'EPSG:4326'}", name, "memory")
    if not crs.authid():
        layer.setCrs(crs)
    layer.dataProvider().addAttributes([_field(DIGITISED_FIELD, "string")])
    layer.updateFields()
    return layer


def add_sample(layer: QgsVectorLayer, point: QgsPointXY, crs: QgsCoordinateReferenceSystem, cls: str) -> QgsFeature:
    """Add one digitised sample of class `cls` at `point` (given in `crs`, e.g. the map canvas's)."""
    if reference_class(cls) is None:
        raise ReferenceError(f"{cls!r} is not a class ({', '.join(CLASS_NAMES)})")
    geom = QgsGeometry.fromPointXY(point)
    if crs != layer.crs():
        geom.transform(QgsCoordinateTransform(crs, layer.crs(), QgsProject.instance()))
    feat = QgsFeature(layer.fields())
    feat[DIGITISED_FIELD] = cls
    feat.setGeometry(geom)
    layer.dataProvider().addFeatures([feat])
    layer.updateExtents()
    layer.triggerRepaint()
    return feat


__all__ = ["ReferenceError", "add_sample", "digitised_layer", "reference_class", "reference_features",
           "inline_features", "source_features", "write_geojson", "write_reference"]
