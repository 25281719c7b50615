"""Backend section: address and health light, workspace and token, start/stop of a local backend.

The light polls gRPC Health every 3 s in a helper thread (never blocking the UI);
`came_up` fires when the backend starts answering, so the dock can load Capabilities.
"""
from __future__ import annotations

import shlex

from qgis.core import Qgis
from qgis.gui import QgsFileWidget
from qgis.PyQt.QtCore import QTimer, pyqtSignal
from qgis.PyQt.QtWidgets import QFormLayout, QHBoxLayout, QLabel, QLineEdit, QPushButton

from ..connection.api import BackendClient, read_token
from ..tasks.async_call import call_async
from .base import Panel

LIGHT = {"up": "#2e9e44", "down": "#c62828", "unknown": "#9e9e9e"}
LIGHT_TIPS = {"up": "backend serving", "down": "backend not reachable", "unknown": "checking..."}


class BackendPanel(Panel):
    came_up = pyqtSignal()                  # health went to "up"
    capabilities_requested = pyqtSignal()

    def __init__(self, settings, backend, parent=None):
        super().__init__("Backend", parent)
        self.settings = settings
        self.backend = backend
        self.health = "unknown"
        self._closing = False
        self._token_from_file = True
        self._build()
        self.backend.output.connect(lambda line: self.log.emit(f"[backend] {line}"))
        self.backend.state_changed.connect(self._backend_state_changed)
        self.health_timer = QTimer(self)
        self.health_timer.setInterval(3000)
        self.health_timer.timeout.connect(self.check_health)
        self._backend_state_changed(self.backend.is_running())

    def _build(self) -> None:
        form = QFormLayout(self)
        row = QHBoxLayout()
        self.light = QLabel("\u25cf")
        self.light.setObjectName("health_light")
        self.address = QLineEdit(self.settings.address)
        self.address.setObjectName("address")
        self.address.editingFinished.connect(self.check_health)
        row.addWidget(self.light)
        row.addWidget(self.address, 1)
        form.addRow("Address", row)
        self.workspace = QgsFileWidget()
        self.workspace.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.workspace.setFilePath(self.settings.workspace)
        self.workspace.fileChanged.connect(lambda _p: self.reload_token(force=True))
        form.addRow("Workspace", self.workspace)
        self.token = QLineEdit()
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.token.setPlaceholderText("read from <workspace>/token")
        self.token.textEdited.connect(lambda _t: setattr(self, "_token_from_file", False))
        form.addRow("Token", self.token)
        self.python = QLineEdit(self.settings.python)
        form.addRow("Python", self.python)
        self.extra_args = QLineEdit()
        self.extra_args.setPlaceholderText("e.g. --allow-root /data/rasters")
        self.extra_args.setToolTip("extra arguments for `groundsynth serve` when started from here")
        form.addRow("Serve arguments", self.extra_args)
        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.stop_button = QPushButton("Stop")
        self.caps_button = QPushButton("Capabilities")
        self.start_button.clicked.connect(self.start_backend)
        self.stop_button.clicked.connect(self.stop_backend)
        self.caps_button.clicked.connect(self.capabilities_requested)
        for b in (self.start_button, self.stop_button, self.caps_button):
            buttons.addWidget(b)
        form.addRow(buttons)
        self._paint_light()

    # ------------------------------------------------------------ token, client
    def client(self) -> BackendClient:
        return BackendClient(self.address.text().strip(), self.token.text().strip())

    def reload_token(self, force: bool = False) -> None:
        """Fill the token from <workspace>/token unless the user typed one (or `force`)."""
        if not (force or self._token_from_file or not self.token.text()):
            return
        token = read_token(self.workspace.filePath())
        if token:
            self.token.setText(token)
            self._token_from_file = True

    def set_token(self, token: str) -> None:
        """Use this token instead of the workspace's (as if typed)."""
        self.token.setText(token)
        self._token_from_file = False

    # ------------------------------------------------------------ local backend
    def start_backend(self) -> None:
        ws = self.workspace.filePath()
        if not ws:
            self.notify.emit("Backend", "choose a workspace folder first", Qgis.MessageLevel.Warning)
            return
        self.backend.start(self.address.text().strip(), ws, self.python.text().strip(),
                           extra_args=shlex.split(self.extra_args.text()))
        self._token_from_file = True
        self.log.emit(f"starting backend on {self.address.text().strip()} (workspace {ws})")
        self.health = "unknown"
        self._paint_light()

    def stop_backend(self) -> None:
        self.backend.stop()
        self.log.emit("backend stopped")
        self.check_health()

    def _backend_state_changed(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.stop_button.setEnabled(running)

    # ------------------------------------------------------------ health
    def start_polling(self) -> None:
        self.health_timer.start()
        self.reload_token()
        self.check_health()

    def check_health(self) -> None:
        if self._closing:
            return
        client = BackendClient(self.address.text().strip(), "")

        def probe():
            try:
                return client.health(timeout=1.5)
            finally:
                client.close()

        call_async(probe, self._health_result, lambda _e: self._health_result(False), self)

    def _health_result(self, ok: bool | None) -> None:
        if self._closing:
            return
        before = self.health
        self.health = "unknown" if ok is None else "up" if ok else "down"
        self._paint_light()
        if ok and before != "up":
            self.reload_token()
            self.came_up.emit()

    def _paint_light(self) -> None:
        self.light.setStyleSheet(f"color: {LIGHT[self.health]}; font-size: 16pt;")
        self.light.setToolTip(LIGHT_TIPS[self.health])

    def shutdown(self) -> None:
        self._closing = True
        self.health_timer.stop()
        self.settings.address = self.address.text().strip()
        self.settings.workspace = self.workspace.filePath()
        self.settings.python = self.python.text().strip()
