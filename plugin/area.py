"""Area of interest from QGIS objects: a rectangle, the map extent, or polygon features.

The AOI is sent in its own CRS (the backend reprojects); before sending, the
plugin checks that the CRS is defined, that the area can be transformed to the
raster's CRS and that it overlaps the raster, so that these mistakes reach the
analyst at once as "CRS mismatch" / "Invalid area".
"""
from __future__ import annotations

from dataclasses import dataclass

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsCsException,
    QgsFeatureRequest,
    QgsGeometry,
    QgsProject,
    QgsRectangle,
    QgsVectorLayer,
    QgsWkbTypes,
)

from .errors import AreaError, CrsMismatchError


@dataclass
class Area:
    bbox: tuple[float, float, float, float] | None
    polygon_wkt: str
    crs: QgsCoordinateReferenceSystem

    @property
    def crs_text(self) -> str:
        return crs_text(self.crs)

    def geometry(self) -> QgsGeometry:
        if self.bbox is not None:
            return QgsGeometry.fromRect(QgsRectangle(*self.bbox))
        return QgsGeometry.fromWkt(self.polygon_wkt)


def crs_text(crs: QgsCoordinateReferenceSystem) -> str:
    """'EPSG:<code>' when the CRS has one, else its WKT."""
    if crs.authid().upper().startswith("EPSG:"):
        return crs.authid()
    return crs.toWkt(QgsCoordinateReferenceSystem.WktVariant.WKT_PREFERRED)


def _need_crs(crs: QgsCoordinateReferenceSystem, what: str) -> None:
    if crs is None or not crs.isValid():
        raise CrsMismatchError(f"the {what} has no valid CRS; set one (Layer Properties > Source) and retry")


def from_rectangle(rect: QgsRectangle, crs: QgsCoordinateReferenceSystem) -> Area:
    _need_crs(crs, "area of interest")
    if rect is None or rect.isNull() or rect.isEmpty() or rect.width() <= 0 or rect.height() <= 0:
        raise AreaError("the area of interest is empty: draw a rectangle with a width and a height")
    return Area((rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum()), "", crs)


def from_features(layer: QgsVectorLayer, selected_only: bool = True) -> Area:
    if layer is None or not layer.isValid():
        raise AreaError("choose a polygon layer for the area of interest")
    if layer.geometryType() != QgsWkbTypes.GeometryType.PolygonGeometry:
        raise AreaError(f"layer {layer.name()!r} is not a polygon layer")
    _need_crs(layer.crs(), f"polygon layer {layer.name()!r}")
    if selected_only:
        if not layer.selectedFeatureCount():
            raise AreaError(f"no polygon selected in layer {layer.name()!r}: select one or more features")
        feats = layer.getSelectedFeatures()
    else:
        feats = layer.getFeatures(QgsFeatureRequest())
    geoms = [f.geometry() for f in feats if f.hasGeometry() and not f.geometry().isEmpty()]
    if not geoms:
        raise AreaError(f"the features of {layer.name()!r} have no geometry")
    union = QgsGeometry.unaryUnion(geoms)
    if union.isEmpty() or union.area() <= 0:
        raise AreaError(f"the polygons of {layer.name()!r} have no area")
    return Area(None, union.asWkt(), layer.crs())


def check_against_raster(area: Area, raster_crs: QgsCoordinateReferenceSystem, raster_extent: QgsRectangle) -> None:
    """Raise CrsMismatchError / AreaError if the area cannot be used with this raster."""
    _need_crs(area.crs, "area of interest")
    _need_crs(raster_crs, "raster layer")
    geom = area.geometry()
    if area.crs != raster_crs:
        try:
            tr = QgsCoordinateTransform(area.crs, raster_crs, QgsProject.instance())
            if geom.transform(tr) != 0:
                raise QgsCsException("transform failed")
        except QgsCsException as exc:
            raise CrsMismatchError(
                f"the area (CRS {area.crs.authid() or 'custom'}) cannot be transformed to the raster's CRS "
                f"{raster_crs.authid() or 'custom'}: {exc}") from None
    if not geom.boundingBox().intersects(raster_extent) or not geom.intersects(QgsGeometry.fromRect(raster_extent)):
        raise AreaError("the area of interest does not overlap the raster layer")
