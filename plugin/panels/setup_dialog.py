"""The "Set up backend" dialog: options of the managed environment, then progress and the pip log."""
from __future__ import annotations

import os
import shlex

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
)

from ..connection import environment as env
from ..errors import PluginError


class SetupDialog(QDialog):
    done_setup = pyqtSignal(bool, str)       # ok, error text
    line = pyqtSignal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("GroundSynthSetup")
        self.setWindowTitle("Set up the GroundSynth backend")
        self.resize(620, 560)
        self.task = None
        layout = QVBoxLayout(self)
        wheel = env.bundled_wheel()
        intro = QLabel(f"Creates a Python environment in {env.venv_dir()} and installs the backend "
                       f"({wheel.name if wheel else 'from the package you give'}) with its pinned dependencies. "
                       "QGIS's own Python is not changed.")
        intro.setWordWrap(True)
        layout.addWidget(intro)
        form = QFormLayout()
        self.package = QLineEdit()
        self.package.setPlaceholderText(wheel.name if wheel else "a wheel, a folder or groundsynth==<version>")
        form.addRow("Backend package", self.package)
        self.neural = QCheckBox("Neural engines (torch, transformers, open_clip: 1-3 GB)")
        form.addRow(self.neural)
        self.device = QComboBox()
        self.device.addItem("CPU only", "cpu")
        self.device.addItem("CUDA (NVIDIA GPU)", "cuda")
        form.addRow("Torch build", self.device)
        self.torch_index = QLineEdit()
        self.torch_index.setPlaceholderText("pip index of CPU-only torch wheels (Linux; see Help)")
        form.addRow("CPU torch index", self.torch_index)
        self.index_url = QLineEdit()
        self.index_url.setPlaceholderText("default: PyPI")
        form.addRow("Package index", self.index_url)
        self.base_python = QLineEdit()
        self.base_python.setPlaceholderText("found automatically (Python >= 3.11)")
        form.addRow("Base Python", self.base_python)
        self.system_site = QCheckBox("See the base Python's packages (--system-site-packages)")
        form.addRow(self.system_site)
        self.reuse = QLineEdit()
        self.reuse.setPlaceholderText(f"site-packages folders to reuse, separated by '{os.pathsep}'")
        form.addRow("Reuse packages", self.reuse)
        self.pip_args = QLineEdit()
        self.pip_args.setPlaceholderText("e.g. --no-index --find-links /path/to/wheels")
        form.addRow("Extra pip arguments", self.pip_args)
        layout.addLayout(form)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        layout.addWidget(self.progress)
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(5000)
        layout.addWidget(self.log_view, 1)
        buttons = QDialogButtonBox()
        self.setup_button = QPushButton("Set up")
        self.setup_button.setObjectName("setup_start")
        buttons.addButton(self.setup_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.close_button = buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.setup_button.clicked.connect(self.start)
        self.close_button.clicked.connect(self.close_or_cancel)
        layout.addWidget(buttons)

    def options(self) -> env.SetupOptions:
        reuse = [p for p in self.reuse.text().split(os.pathsep) if p.strip()]
        return env.SetupOptions(package=self.package.text().strip(), neural=self.neural.isChecked(),
                                device=self.device.currentData(), torch_index=self.torch_index.text().strip(),
                                index_url=self.index_url.text().strip(), base_python=self.base_python.text().strip(),
                                system_site_packages=self.system_site.isChecked(), reuse_site_packages=reuse,
                                pip_args=shlex.split(self.pip_args.text()))

    def start(self):
        """Start the set-up task (returns it, or None after showing why it cannot start)."""
        if self.task is not None:
            return None
        try:
            task = env.setup_task(self.options())
        except PluginError as exc:
            self._append(f"{exc.title}: {exc.text}")
            self.done_setup.emit(False, exc.text)
            return None
        task.line.connect(self._append)
        task.progressChanged.connect(lambda p: self.progress.setValue(int(p)))
        task.ended.connect(self._ended)
        self.task = task
        self.setup_button.setEnabled(False)
        self.close_button.setText("Cancel")
        QgsApplication.taskManager().addTask(task)
        return task

    def _append(self, text: str) -> None:
        self.log_view.appendPlainText(text)
        self.line.emit(text)

    def _ended(self, ok: bool, error: str) -> None:
        self.task = None
        self.setup_button.setEnabled(True)
        self.close_button.setText("Close")
        self.progress.setValue(100 if ok else self.progress.value())
        self._append("backend environment ready" if ok else f"set-up failed: {error}")
        self.done_setup.emit(ok, error)

    def close_or_cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()
        else:
            self.close()
