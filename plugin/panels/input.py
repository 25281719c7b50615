"""Input section: the raster layer, its band mapping (R, G, B, NIR) and an optional label raster."""
from __future__ import annotations

from pathlib import Path

from qgis.core import QgsMapLayerProxyModel, QgsRasterLayer
from qgis.gui import QgsMapLayerComboBox, QgsRasterBandComboBox
from qgis.PyQt.QtWidgets import QFormLayout, QGridLayout, QLabel

from ..errors import InputError
from .base import Panel

ROLES = ("red", "green", "blue", "nir")


def layer_file(layer) -> str:
    """The file behind a GDAL layer's source ('' for none)."""
    return layer.dataProvider().dataSourceUri().split("|")[0] if layer is not None else ""


class InputPanel(Panel):
    def __init__(self, parent=None):
        super().__init__("Input", parent)
        form = QFormLayout(self)
        self.raster_combo = QgsMapLayerComboBox()
        self.raster_combo.setFilters(QgsMapLayerProxyModel.Filter.RasterLayer)
        self.raster_combo.layerChanged.connect(self._raster_changed)
        form.addRow("Raster", self.raster_combo)
        self.band_combos: dict[str, QgsRasterBandComboBox] = {}
        grid = QGridLayout()
        for i, role in enumerate(ROLES):
            combo = QgsRasterBandComboBox()
            combo.setShowNotSetOption(True)
            combo.setObjectName(f"band_{role}")
            self.band_combos[role] = combo
            grid.addWidget(QLabel(role.upper() if role == "nir" else role.capitalize()), i // 2, (i % 2) * 2)
            grid.addWidget(combo, i // 2, (i % 2) * 2 + 1)
        form.addRow("Bands", grid)
        self.label_combo = QgsMapLayerComboBox()
        self.label_combo.setFilters(QgsMapLayerProxyModel.Filter.RasterLayer)
        self.label_combo.setAllowEmptyLayer(True)
        self.label_combo.setLayer(None)
        form.addRow("Labels (optional)", self.label_combo)
        self._raster_changed(self.raster_combo.currentLayer())

    def _raster_changed(self, layer) -> None:
        for i, role in enumerate(ROLES):
            combo = self.band_combos[role]
            combo.setLayer(layer)
            count = layer.bandCount() if isinstance(layer, QgsRasterLayer) else 0
            combo.setBand(i + 1 if i + 1 <= count else -1)

    def set_bands(self, red: int, green: int, blue: int, nir: int = -1) -> None:
        for role, band in zip(ROLES, (red, green, blue, nir), strict=True):
            self.band_combos[role].setBand(band)

    def layer(self) -> QgsRasterLayer | None:
        layer = self.raster_combo.currentLayer()
        return layer if isinstance(layer, QgsRasterLayer) else None

    def fill(self, request) -> None:
        layer = self.layer()
        if layer is None or not layer.isValid():
            raise InputError("choose a raster layer")
        path = layer_file(layer)
        if not Path(path).exists():
            raise InputError(f"the raster layer {layer.name()!r} is not a file the backend can read ({path})")
        bands = {role: combo.currentBand() for role, combo in self.band_combos.items()}
        request.raster_path = str(Path(path).resolve())
        request.red, request.green, request.blue = (max(bands[r], 0) for r in ("red", "green", "blue"))
        request.nir = bands["nir"] if bands["nir"] > 0 else -1
        request.band_count = layer.bandCount()
        request.label_path = layer_file(self.label_combo.currentLayer())
        request.name = layer.name()
