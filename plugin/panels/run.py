"""Run section: Run / Cancel, one progress bar per stage, the job state and the log."""
from __future__ import annotations

import time

from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import QFormLayout, QHBoxLayout, QLabel, QPlainTextEdit, QProgressBar, QPushButton, QVBoxLayout

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
        form = QFormLayout()
        self.progress: dict[str, QProgressBar] = {}
        for stage in PROGRESS_STAGES:
            bar = QProgressBar()
            self.progress[stage] = bar
            form.addRow(stage, bar)
        self.reset_progress()
        layout.addLayout(form)
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
        for bar in self.progress.values():
            bar.setRange(0, 1)
            bar.setValue(0)
            bar.setFormat("-")          # no event for this stage yet

    def on_progress(self, stage: str, done: int, total: int) -> None:
        bar = self.progress.get(stage)
        if bar is None:
            return
        bar.setFormat("%v / %m")
        bar.setRange(0, max(total, 1))
        bar.setValue(min(done, max(total, 1)))
