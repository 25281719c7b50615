"""Reference samples section: a point or polygon layer with a class attribute (any CRS; names or WorldCover
codes), or points digitised on the map with a class picker; **Write GeoJSON** writes them to
`<workspace>/inputs` (always readable by the backend); with "Assess the job against them", Run sends them
with the job (DockActions.fill_reference) for the accuracy assessment (plugin/reference.py)."""
from __future__ import annotations

from qgis.core import QgsMapLayerProxyModel, QgsProject
from qgis.gui import QgsFieldComboBox, QgsMapLayerComboBox, QgsMapToolEmitPoint
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import QCheckBox, QComboBox, QFormLayout, QHBoxLayout, QLabel, QPushButton

from .. import reference
from .base import Panel, compact


class ReferencePanel(Panel):
    write_requested = pyqtSignal()

    def __init__(self, canvas_getter, parent=None):
        super().__init__("Reference samples", parent)
        self.canvas = canvas_getter
        self.map_tool = None
        self.digitised = None            # the memory layer of digitised points, once the first is placed
        form = QFormLayout(self)
        self.layer_combo = compact(QgsMapLayerComboBox(), 14)
        self.layer_combo.setObjectName("reference_layer")
        self.layer_combo.setFilters(QgsMapLayerProxyModel.Filter.PointLayer | QgsMapLayerProxyModel.Filter.PolygonLayer)
        self.layer_combo.setAllowEmptyLayer(True)
        self.layer_combo.setLayer(None)
        form.addRow("Layer", self.layer_combo)
        self.class_field = QgsFieldComboBox()
        self.class_field.setToolTip("the attribute with the reference class: a class name (Tree, Shrub, Grass, Crop, "
                                    "Built-up, Barren, Water) or an ESA WorldCover code (10 ... 100)")
        form.addRow("Class attribute", self.class_field)
        self.selected_only = QCheckBox("Selected features only")
        self.use_check = QCheckBox("Assess the job against them")
        self.use_check.setObjectName("use_reference")
        self.use_check.setChecked(True)
        self.use_check.setToolTip("Run sends the samples with the job (a local backend reads the GeoJSON written to "
                                  "<workspace>/inputs, a remote one gets them inline): report.json/html then hold "
                                  "the error matrix and accuracies, the tile grid ref_points and ref_agreement")
        form.addRow(self.selected_only)
        form.addRow(self.use_check)
        row = QHBoxLayout()
        self.class_picker = compact(QComboBox(), 8)
        self.class_picker.addItems(list(reference.CLASS_NAMES))
        self.digitise_button = QPushButton("Digitise")
        self.digitise_button.setCheckable(True)
        self.digitise_button.setToolTip("click on the map to place a reference point of the chosen class")
        self.digitise_button.toggled.connect(self._digitise)
        self.clear_button = QPushButton("Clear")
        self.clear_button.setToolTip("remove the digitised points")
        self.clear_button.clicked.connect(self.clear_digitised)
        row.addWidget(self.class_picker, 1)
        row.addWidget(self.digitise_button)
        row.addWidget(self.clear_button)
        form.addRow("Digitise", row)
        self.write_button = QPushButton("Write GeoJSON")
        self.write_button.setObjectName("write_reference")
        self.write_button.setToolTip("write the samples (EPSG:4326) to <workspace>/inputs for the backend's "
                                     "accuracy assessment (`groundsynth run --reference FILE`)")
        self.write_button.clicked.connect(self.write_requested)
        self.count_label = QLabel("no samples")
        self.count_label.setWordWrap(True)
        write_row = QHBoxLayout()
        write_row.addWidget(self.write_button)
        write_row.addWidget(self.count_label, 1)
        form.addRow(write_row)
        self.layer_combo.layerChanged.connect(self._layer_changed)
        self._layer_changed(None)

    # ------------------------------------------------------------ the layer
    def layer(self):
        return self.layer_combo.currentLayer()

    def in_use(self) -> bool:
        return self.layer() is not None and self.use_check.isChecked()

    def _layer_changed(self, layer) -> None:
        self.class_field.setLayer(layer)
        if layer is not None:
            names = layer.fields().names()
            lower = {n.lower(): n for n in names}
            guess = next((lower[k] for k in ("class", "class_name", "label", "code", "worldcover") if k in lower), "")
            if guess:
                self.class_field.setField(guess)
        self.write_button.setEnabled(layer is not None)
        self._update_count()

    def _update_count(self) -> None:
        layer = self.layer()
        self.count_label.setText(f"{layer.featureCount()} sample(s) in {layer.name()}" if layer is not None
                                 else "no samples")

    def load(self, capabilities) -> None:
        if capabilities.classes:
            current = self.class_picker.currentText()
            self.class_picker.clear()
            self.class_picker.addItems([c.name for c in capabilities.classes])
            self.class_picker.setCurrentText(current)

    # ------------------------------------------------------------ digitising
    def _digitise(self, on: bool) -> None:
        canvas = self.canvas()
        if canvas is None:
            return
        if not on:
            if self.map_tool is not None and canvas.mapTool() is self.map_tool:
                canvas.unsetMapTool(self.map_tool)
            return
        if self.map_tool is None:
            self.map_tool = QgsMapToolEmitPoint(canvas)
            self.map_tool.canvasClicked.connect(lambda point, _button: self.add_point(point))
            self.map_tool.deactivated.connect(lambda: self.digitise_button.setChecked(False))
        canvas.setMapTool(self.map_tool)

    def add_point(self, point, crs=None) -> None:
        """Place a sample of the picked class at `point` (in the canvas CRS unless `crs` is given)."""
        canvas = self.canvas()
        crs = crs if crs is not None else canvas.mapSettings().destinationCrs()
        if self.digitised is None or QgsProject.instance().mapLayer(self.digitised.id()) is None:
            self.digitised = reference.digitised_layer(crs)
            QgsProject.instance().addMapLayer(self.digitised)
        reference.add_sample(self.digitised, point, crs, self.class_picker.currentText())
        if self.layer() is not self.digitised:
            self.layer_combo.setLayer(self.digitised)
        self.class_field.setField(reference.DIGITISED_FIELD)
        self._update_count()

    def clear_digitised(self) -> None:
        layer = self.digitised
        if layer is not None and QgsProject.instance().mapLayer(layer.id()) is not None:
            layer.dataProvider().truncate()
            layer.triggerRepaint()
        self._update_count()

    def shutdown(self) -> None:
        canvas = self.canvas()
        if self.map_tool is not None and canvas is not None and canvas.mapTool() is self.map_tool:
            canvas.unsetMapTool(self.map_tool)
