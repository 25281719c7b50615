"""Run section: Run / Cancel, one progress bar per stage, the job state and the log.

It sits below the dock's tabs, outside any scroll area, so Run, progress and log
are always in view; the bars are two to a row and carry their stage's name.
"""
from __future__ import annotations

import time

from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QPlainTextEdit, QProgressBar, QPushButton, QVBoxLayout

from ..connection.api import STAGES
from .base import Panel

PROGRESS_STAGES = (*STAGES, "outputs", "report")


class RunPanel(Panel):
    run_requested = pyqtSignal()
    cancel_requested = pyqtSignal()

    def __init__(self, parent=None):
        super().__init__("Run", parent)
        layout = QVBoxLayout(self)
        row = QHBoxLayout()
        self.run_button = QPushButton("Run")
        self.run_button.setObjectName("run")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancel")
        self.run_button.clicked.connect(self.run_requested)
        self.cancel_button.clicked.connect(self.cancel_requested)
        row.addWidget(self.run_button)
        row.addWidget(self.cancel_button)
        layout.addLayout(row)
        grid = QGridLayout()
        self.progress: dict[str, QProgressBar] = {}
        for i, stage in enumerate(PROGRESS_STAGES):
            bar = QProgressBar()
            bar.setObjectName(f"progress_{stage}")
            bar.setToolTip(f"{stage}: done / total")
            self.progress[stage] = bar
            grid.addWidget(bar, i // 2, i % 2)
        self.reset_progress()
        layout.addLayout(grid)
        self.state_label = QLabel("idle")
        layout.addWidget(self.state_label)
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(2000)
        self.log_view.setMinimumHeight(90)
        layout.addWidget(self.log_view)

    def append_log(self, text: str) -> None:
        self.log_view.appendPlainText(f"{time.strftime('%H:%M:%S')} {text}")

    def set_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        if not running and not self.state_label.text().startswith("idle"):
            self.state_label.setText("idle")

    def reset_progress(self) -> None:
        for stage, bar in self.progress.items():
            bar.setRange(0, 1)
            bar.setValue(0)
            bar.setFormat(f"{stage}: -")          # no event for this stage yet

    def on_progress(self, stage: str, done: int, total: int) -> None:
        bar = self.progress.get(stage)
        if bar is None:
            return
        bar.setFormat(f"{stage}: %v / %m")
        bar.setRange(0, max(total, 1))
        bar.setValue(min(done, max(total, 1)))
