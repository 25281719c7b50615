"""Area section: a drawn rectangle, the map extent or selected polygons; and the tile size."""
from __future__ import annotations

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsDistanceArea,
    QgsMapLayerProxyModel,
    QgsPointXY,
    QgsProject,
    QgsRectangle,
    QgsUnitTypes,
)
from qgis.gui import QgsMapLayerComboBox, QgsMapToolExtent
from qgis.PyQt.QtWidgets import (
    QButtonGroup,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
)

from .. import area as area_mod
from .base import Panel, compact

AREA_MODES = ("rectangle", "extent", "selection")
AREA_LABELS = ("Drawn rectangle", "Map extent", "Selected polygons")


def _length(metres: float) -> str:
    return f"{metres / 1000:.2f} km" if metres >= 1000 else f"{metres:.0f} m"


def rectangle_label(rect: QgsRectangle, crs: QgsCoordinateReferenceSystem) -> str:
    """'2.56 km x 1.20 km (EPSG:32618)'; in a geographic CRS the size in degrees and, on the ellipsoid, metres."""
    name = crs.authid() or "custom CRS"
    if not crs.isGeographic():
        factor = QgsUnitTypes.fromUnitToUnitFactor(crs.mapUnits(), QgsUnitTypes.DistanceUnit.DistanceMeters)
        if crs.mapUnits() == QgsUnitTypes.DistanceUnit.DistanceUnknownUnit:
            return f"{rect.width():.4g} x {rect.height():.4g} map units ({name})"
        return f"{_length(rect.width() * factor)} x {_length(rect.height() * factor)} ({name})"
    da = QgsDistanceArea()
    da.setSourceCrs(crs, QgsProject.instance().transformContext())
    da.setEllipsoid(crs.ellipsoidAcronym() or "EPSG:7030")
    mid_y = (rect.yMinimum() + rect.yMaximum()) / 2
    mid_x = (rect.xMinimum() + rect.xMaximum()) / 2
    width = da.measureLine(QgsPointXY(rect.xMinimum(), mid_y), QgsPointXY(rect.xMaximum(), mid_y))
    height = da.measureLine(QgsPointXY(mid_x, rect.yMinimum()), QgsPointXY(mid_x, rect.yMaximum()))
    return (f"{rect.width():.4f}\u00b0 x {rect.height():.4f}\u00b0 = about {_length(width)} x {_length(height)} "
            f"({name})")


class AreaPanel(Panel):
    def __init__(self, canvas_getter, raster_getter, tile_size: int = 256, parent=None):
        """`canvas_getter()` gives the map canvas (or None); `raster_getter()` the input raster layer."""
        super().__init__("Area of interest", parent)
        self.canvas = canvas_getter
        self.raster = raster_getter
        self.drawn_rect: QgsRectangle | None = None
        self.drawn_crs = QgsCoordinateReferenceSystem()
        self.map_tool = None
        form = QFormLayout(self)
        self.area_buttons: dict[str, QRadioButton] = {}
        group = QButtonGroup(self)
        row = QVBoxLayout()
        for mode, label in zip(AREA_MODES, AREA_LABELS, strict=True):
            rb = QRadioButton(label)
            group.addButton(rb)
            self.area_buttons[mode] = rb
            row.addWidget(rb)
        self.area_buttons["extent"].setChecked(True)
        form.addRow(row)
        draw_row = QHBoxLayout()
        self.draw_button = QPushButton("Draw rectangle")
        self.draw_button.clicked.connect(self.start_drawing)
        self.drawn_label = QLabel("no rectangle drawn")
        self.drawn_label.setObjectName("drawn_label")
        self.drawn_label.setWordWrap(True)
        draw_row.addWidget(self.draw_button)
        draw_row.addWidget(self.drawn_label, 1)
        form.addRow(draw_row)
        self.polygon_combo = compact(QgsMapLayerComboBox(), 14)
        self.polygon_combo.setFilters(QgsMapLayerProxyModel.Filter.PolygonLayer)
        self.polygon_combo.setAllowEmptyLayer(True)
        form.addRow("Polygon layer", self.polygon_combo)
        self.tile_size = QSpinBox()
        self.tile_size.setRange(32, 2048)
        self.tile_size.setSingleStep(32)
        self.tile_size.setValue(int(tile_size))
        form.addRow("Tile size (px)", self.tile_size)

    def set_area_mode(self, mode: str) -> None:
        self.area_buttons[mode].setChecked(True)

    def area_mode(self) -> str:
        return next(m for m, b in self.area_buttons.items() if b.isChecked())

    def start_drawing(self) -> None:
        canvas = self.canvas()
        if canvas is None:
            return
        if self.map_tool is None:
            self.map_tool = QgsMapToolExtent(canvas)
            self.map_tool.extentChanged.connect(self._rect_drawn)
        canvas.setMapTool(self.map_tool)
        self.set_area_mode("rectangle")

    def _rect_drawn(self, rect: QgsRectangle) -> None:
        self.set_drawn_rectangle(rect, self.canvas().mapSettings().destinationCrs())

    def set_drawn_rectangle(self, rect: QgsRectangle, crs: QgsCoordinateReferenceSystem) -> None:
        self.drawn_rect = QgsRectangle(rect)
        self.drawn_crs = crs
        self.drawn_label.setText(rectangle_label(rect, crs))
        self.set_area_mode("rectangle")

    def current_area(self) -> area_mod.Area:
        mode = self.area_mode()
        if mode == "rectangle":
            if self.drawn_rect is None:
                raise area_mod.AreaError("no rectangle drawn: press 'Draw rectangle' and drag on the map")
            return area_mod.from_rectangle(self.drawn_rect, self.drawn_crs)
        if mode == "extent":
            canvas = self.canvas()
            return area_mod.from_rectangle(canvas.extent(), canvas.mapSettings().destinationCrs())
        return area_mod.from_features(self.polygon_combo.currentLayer(), selected_only=True)

    def fill(self, request) -> None:
        area = self.current_area()
        layer = self.raster()
        if layer is not None:
            area_mod.check_against_raster(area, layer.crs(), layer.extent())
        request.bbox, request.polygon_wkt, request.aoi_crs = area.bbox, area.polygon_wkt, area.crs_text
        request.tile_size = self.tile_size.value()

    def shutdown(self) -> None:
        canvas = self.canvas()
        if self.map_tool is not None and canvas is not None:
            canvas.unsetMapTool(self.map_tool)
