"""Input section: the raster layer, its band mapping (R, G, B, NIR) and an optional label raster.

The band boxes always follow the current raster layer: when a layer is removed
and the combo moves on, or anything else leaves them tied to another layer,
they are re-tied before a request is filled. A layer that is not a file (WMS,
XYZ, ...) is written to a GeoTIFF at `resolution` first (the dock runs a
RenderTask); its bands are then red, green, blue (and alpha, never NIR).
"""
from __future__ import annotations

from pathlib import Path

from qgis.core import QgsMapLayerProxyModel, QgsProject, QgsRasterLayer
from qgis.gui import QgsMapLayerComboBox, QgsRasterBandComboBox
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QDoubleSpinBox, QFormLayout, QGridLayout, QLabel

from ..errors import InputError
from .base import Panel, compact

ROLES = ("red", "green", "blue", "nir")


def layer_file(layer) -> str:
    """The file behind a GDAL layer's source ('' for none)."""
    return layer.dataProvider().dataSourceUri().split("|")[0] if layer is not None else ""


def is_file_layer(layer) -> bool:
    return layer is not None and layer.providerType() == "gdal" and Path(layer_file(layer)).is_file()


class InputPanel(Panel):
    def __init__(self, parent=None):
        super().__init__("Input", parent)
        form = QFormLayout(self)
        self.raster_combo = compact(QgsMapLayerComboBox(), 14)
        self.raster_combo.setFilters(QgsMapLayerProxyModel.Filter.RasterLayer)
        self.raster_combo.layerChanged.connect(self._raster_changed)
        # the combo also moves to another layer without layerChanged (first layer added, current one removed)
        self.raster_combo.currentIndexChanged.connect(lambda _i: QTimer.singleShot(0, self._sync_if_alive))
        form.addRow("Raster", self.raster_combo)
        self.band_combos: dict[str, QgsRasterBandComboBox] = {}
        grid = QGridLayout()
        for i, role in enumerate(ROLES):
            combo = compact(QgsRasterBandComboBox(), 8)
            combo.setShowNotSetOption(True)
            combo.setObjectName(f"band_{role}")
            self.band_combos[role] = combo
            grid.addWidget(QLabel(role.upper() if role == "nir" else role.capitalize()), i, 0)
            grid.addWidget(combo, i, 1)
        form.addRow("Bands", grid)
        self.resolution = QDoubleSpinBox()
        self.resolution.setObjectName("render_resolution")
        self.resolution.setDecimals(4)
        self.resolution.setRange(1e-6, 1e6)
        self.resolution.setValue(10.0)
        self.resolution.setToolTip("a layer that is not a file (WMS, XYZ, ...) is first written to a GeoTIFF at "
                                   "this resolution: map units of the layer's CRS per pixel")
        self.resolution_label = QLabel("Resolution")
        form.addRow(self.resolution_label, self.resolution)
        self.label_combo = compact(QgsMapLayerComboBox(), 14)
        self.label_combo.setFilters(QgsMapLayerProxyModel.Filter.RasterLayer)
        self.label_combo.setAllowEmptyLayer(True)
        self.label_combo.setLayer(None)
        form.addRow("Labels (optional)", self.label_combo)
        self._bands_layer_id = None
        QgsProject.instance().layersRemoved.connect(self._layers_removed)
        self._raster_changed(self.raster_combo.currentLayer())

    def _raster_changed(self, layer) -> None:
        self._bands_layer_id = layer.id() if layer is not None else ""
        rendered = layer is not None and not is_file_layer(layer)
        for i, role in enumerate(ROLES):
            combo = self.band_combos[role]
            combo.setLayer(layer if not rendered else None)
            count = layer.bandCount() if isinstance(layer, QgsRasterLayer) and not rendered else 0
            combo.setBand(i + 1 if i + 1 <= count else -1)
            combo.setEnabled(not rendered)
        self.resolution.setVisible(rendered)
        self.resolution_label.setVisible(rendered)
        if rendered and layer.crs().isGeographic():
            self.resolution.setValue(0.0001)      # about 10 m

    def _sync_if_alive(self) -> None:
        try:
            self.sync_bands()
        except RuntimeError:        # deleted meanwhile
            pass

    def _layers_removed(self, _ids) -> None:
        try:
            self.sync_bands()
        except RuntimeError:        # this panel's widgets are already deleted
            QgsProject.instance().layersRemoved.disconnect(self._layers_removed)

    def sync_bands(self) -> None:
        """Tie the band boxes to the current raster layer if they are tied to another (or a removed) one."""
        layer = self.raster_combo.currentLayer()
        if (layer.id() if layer is not None else "") != self._bands_layer_id:
            self._raster_changed(layer)

    def needs_render(self) -> bool:
        layer = self.layer()
        return layer is not None and not is_file_layer(layer)

    def set_bands(self, red: int, green: int, blue: int, nir: int = -1) -> None:
        for role, band in zip(ROLES, (red, green, blue, nir), strict=True):
            self.band_combos[role].setBand(band)

    def layer(self) -> QgsRasterLayer | None:
        layer = self.raster_combo.currentLayer()
        return layer if isinstance(layer, QgsRasterLayer) else None

    def fill(self, request) -> None:
        """Fill the raster and bands; for a layer that is not a file, the path is left for the dock to set
        once the layer is written to a GeoTIFF (red, green, blue = bands 1-3 of that file, no NIR)."""
        self.sync_bands()
        layer = self.layer()
        if layer is None or not layer.isValid():
            raise InputError("choose a raster layer")
        request.name = layer.name()
        request.label_path = layer_file(self.label_combo.currentLayer())
        if self.needs_render():
            request.raster_path, request.band_count = "", 0
            request.red, request.green, request.blue, request.nir = 1, 2, 3, -1
            return
        path = layer_file(layer)
        bands = {role: combo.currentBand() for role, combo in self.band_combos.items()}
        request.raster_path = str(Path(path).resolve())
        request.red, request.green, request.blue = (max(bands[r], 0) for r in ("red", "green", "blue"))
        request.nir = bands["nir"] if bands["nir"] > 0 else -1
        request.band_count = layer.bandCount()
