"""Results section: the score that colours the tile grid, the backend's job list (reload) and remote mode."""
from __future__ import annotations

import time

from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import QCheckBox, QComboBox, QFormLayout, QHBoxLayout, QPushButton

from ..connection.api import state_name
from .base import Panel


class JobsPanel(Panel):
    score_changed = pyqtSignal(str)
    refresh_requested = pyqtSignal()
    reload_requested = pyqtSignal(str)      # job id

    def __init__(self, settings, parent=None):
        super().__init__("Results", parent)
        form = QFormLayout(self)
        self.score_combo = QComboBox()
        self.score_combo.setEditable(True)
        self.score_combo.addItems(["grounding", "fidelity_miou"])
        self.score_combo.setCurrentText(settings.score)
        self.score_combo.currentTextChanged.connect(self.score_changed)
        form.addRow("Colour tiles by", self.score_combo)
        row = QHBoxLayout()
        self.jobs_combo = QComboBox()
        self.jobs_refresh = QPushButton("Refresh")
        self.jobs_load = QPushButton("Load")
        self.jobs_refresh.clicked.connect(self.refresh_requested)
        self.jobs_load.clicked.connect(lambda: self.reload_requested.emit(self.jobs_combo.currentData() or ""))
        row.addWidget(self.jobs_combo, 1)
        row.addWidget(self.jobs_refresh)
        row.addWidget(self.jobs_load)
        form.addRow("Jobs", row)
        self.fetch_check = QCheckBox("Backend on another machine: upload the raster, download job files")
        self.fetch_check.setChecked(bool(settings.fetch_artefacts))
        self.fetch_check.setToolTip("send the raster with UploadRaster, and fetch layers and the report with "
                                    "FetchArtefact into the cache folder instead of sharing paths")
        form.addRow(self.fetch_check)

    def fill_jobs(self, jobs) -> None:
        self.jobs_combo.clear()
        for j in jobs:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(j.created))
            self.jobs_combo.addItem(f"{j.job_id} {j.spec.name} [{state_name(j.state)}] {when}", j.job_id)

    def set_score_choices(self, fields: list[str]) -> None:
        current = self.score_combo.currentText()
        self.score_combo.blockSignals(True)
        self.score_combo.clear()
        self.score_combo.addItems(fields)
        self.score_combo.setCurrentText(current if current in fields else (fields[0] if fields else current))
        self.score_combo.blockSignals(False)

    def set_running(self, running: bool) -> None:
        self.jobs_load.setEnabled(not running)

    def remote(self) -> bool:
        return self.fetch_check.isChecked()
