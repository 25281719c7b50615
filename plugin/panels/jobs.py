"""Results section: the score that colours the tile grid, which tiles the grid shows (real, synthetic,
one variant: synthetic tiles lie exactly over their real tile), the backend's job list (reload, delete a
finished job),
remote mode, export of the job as a training set and "Copy diagnostics"."""
from __future__ import annotations

import time

from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtWidgets import QCheckBox, QComboBox, QFormLayout, QHBoxLayout, QPushButton

from ..connection.api import state_name
from ..layers.styling import AUTO_SCORE
from .base import Panel, compact

FINAL_STATES = ("SUCCEEDED", "FAILED", "CANCELLED")
STATE_ROLE = Qt.ItemDataRole.UserRole + 1


class JobsPanel(Panel):
    score_changed = pyqtSignal(str)
    refresh_requested = pyqtSignal()
    reload_requested = pyqtSignal(str)      # job id
    delete_requested = pyqtSignal(str)      # job id
    tile_filter_changed = pyqtSignal(str, int)      # kind ("" = all), variant (0 = any)
    export_requested = pyqtSignal()
    diagnostics_requested = pyqtSignal()

    def __init__(self, settings, parent=None):
        super().__init__("Results", parent)
        form = QFormLayout(self)
        self.score_combo = compact(QComboBox(), 12)
        self.score_combo.setEditable(True)
        self.score_combo.addItems([AUTO_SCORE, "grounding", "fidelity_miou"])
        self.score_combo.setCurrentText(settings.score or AUTO_SCORE)
        self.score_combo.setToolTip("the score that colours the tile grid; auto: a grounding margin or the agreement "
                                    "with reference samples when the job has them, else grounding or fidelity, "
                                    "the first that varies over the tiles")
        self.score_combo.currentTextChanged.connect(self.score_changed)
        form.addRow("Colour tiles by", self.score_combo)
        self.tile_filter = compact(QComboBox(), 12)
        self.tile_filter.setObjectName("tile_filter")
        self.set_variants(0)
        self.tile_filter.currentIndexChanged.connect(self._filter_changed)
        form.addRow("Show tiles", self.tile_filter)
        row = QHBoxLayout()
        self.jobs_combo = compact(QComboBox(), 10)
        self.jobs_refresh = QPushButton("Refresh")
        self.jobs_load = QPushButton("Load")
        self.jobs_delete = QPushButton("Delete")
        self.jobs_delete.setObjectName("delete_job")
        self.jobs_delete.setToolTip("remove the chosen finished job on the backend (its files and rows) and its "
                                    "layer group here")
        self.jobs_refresh.clicked.connect(self.refresh_requested)
        self.jobs_load.clicked.connect(lambda: self.reload_requested.emit(self.jobs_combo.currentData() or ""))
        self.jobs_delete.clicked.connect(lambda: self.delete_requested.emit(self.jobs_combo.currentData() or ""))
        self.jobs_combo.currentIndexChanged.connect(lambda _i: self._update_delete())
        form.addRow("Jobs", self.jobs_combo)
        row.addWidget(self.jobs_refresh)
        row.addWidget(self.jobs_load)
        row.addWidget(self.jobs_delete)
        form.addRow("", row)
        self.fetch_check = QCheckBox("Remote backend (upload, download)")
        self.fetch_check.setChecked(bool(settings.fetch_artefacts))
        self.fetch_check.setToolTip("for a backend on another machine: send the raster with UploadRaster, and fetch "
                                    "layers and the report with FetchArtefact into the cache folder instead of "
                                    "sharing paths")
        form.addRow(self.fetch_check)
        row2 = QHBoxLayout()
        self.export_button = QPushButton("Export training set...")
        self.export_button.setObjectName("export")
        self.export_button.setToolTip("write the current job's tiles as a training set (PNG + CSV + GeoTIFF) "
                                      "with `groundsynth export`")
        self.export_button.clicked.connect(self.export_requested)
        self.diagnostics_button = QPushButton("Copy diagnostics")
        self.diagnostics_button.setObjectName("diagnostics")
        self.diagnostics_button.setToolTip("versions, backend address and health, capabilities and the last error, "
                                           "copied to the clipboard for a bug report")
        self.diagnostics_button.clicked.connect(self.diagnostics_requested)
        row2.addWidget(self.export_button)
        row2.addWidget(self.diagnostics_button)
        form.addRow(row2)

    def fill_jobs(self, jobs) -> None:
        self.jobs_combo.clear()
        for j in jobs:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(j.created))
            self.jobs_combo.addItem(f"{j.job_id} {j.spec.name} [{state_name(j.state)}] {when}", j.job_id)
            self.jobs_combo.setItemData(self.jobs_combo.count() - 1, state_name(j.state), STATE_ROLE)
        self._update_delete()

    def job_state(self, job_id: str) -> str:
        """The state the list last showed for `job_id` ("" when it is not listed)."""
        index = self.jobs_combo.findData(job_id)
        return (self.jobs_combo.itemData(index, STATE_ROLE) or "") if index >= 0 else ""

    def drop_job(self, job_id: str) -> None:
        index = self.jobs_combo.findData(job_id)
        if index >= 0:
            self.jobs_combo.removeItem(index)
        self._update_delete()

    def _update_delete(self) -> None:
        state = self.job_state(self.jobs_combo.currentData() or "")
        self.jobs_delete.setEnabled(state in FINAL_STATES)
        self.jobs_delete.setToolTip(self.jobs_delete.toolTip().split("\n")[0]
                                    + ("" if state in FINAL_STATES or not state else
                                       f"\n(this job is {state}: only a finished job can be deleted)"))

    def set_score_choices(self, fields: list[str], shown: str = "") -> None:
        """Offer "auto" and the tile grid's score fields; `shown` is the field "auto" chose (its tooltip)."""
        current = self.score_combo.currentText()
        fields = [AUTO_SCORE, *[f for f in fields if f != AUTO_SCORE]]
        self.score_combo.blockSignals(True)
        self.score_combo.clear()
        self.score_combo.addItems(fields)
        if shown:
            self.score_combo.setItemData(0, f"auto: coloured by {shown}", Qt.ItemDataRole.ToolTipRole)
        self.score_combo.setCurrentText(current if current in fields else (fields[0] if fields else current))
        self.score_combo.blockSignals(False)

    def set_variants(self, variants: int) -> None:
        """Offer all / real / synthetic / each variant (kind, variant) as tile filters."""
        current = self.tile_filter.currentData()
        self.tile_filter.blockSignals(True)
        self.tile_filter.clear()
        self.tile_filter.addItem("all tiles", ":0")
        self.tile_filter.addItem("real tiles", "real:0")
        if variants:
            self.tile_filter.addItem("synthetic tiles (all variants)", "synthetic:0")
        for v in range(1, variants + 1 if variants > 1 else 0):
            self.tile_filter.addItem(f"synthetic variant {v}", f"synthetic:{v}")
        index = self.tile_filter.findData(current) if current is not None else 0
        self.tile_filter.setCurrentIndex(max(index, 0))
        self.tile_filter.blockSignals(False)

    def set_tile_filter(self, kind: str, variant: int = 0) -> None:
        index = self.tile_filter.findData(f"{kind}:{variant}")
        if index < 0:
            raise ValueError(f"no tile filter {kind!r} variant {variant}")
        self.tile_filter.setCurrentIndex(index)

    def current_filter(self) -> tuple[str, int]:
        kind, _, variant = (self.tile_filter.currentData() or ":0").partition(":")
        return kind, int(variant or 0)

    def _filter_changed(self, _index: int) -> None:
        self.tile_filter_changed.emit(*self.current_filter())

    def set_running(self, running: bool) -> None:
        self.jobs_load.setEnabled(not running)

    def remote(self) -> bool:
        return self.fetch_check.isChecked()
