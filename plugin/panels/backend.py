"""Backend section: which backend (the managed environment, an existing Python, or a remote address),
"Set up backend", address and health light, workspace and token, the allowed folders, start/stop.

The light polls gRPC Health every 3 s in a helper thread (never blocking the UI);
`came_up` fires when the backend starts answering, so the dock can load Capabilities.
A backend started here may read the folders of the chosen raster and label layers
(`roots_getter`); they are shown under "Allowed folders".
"""
from __future__ import annotations

import os
import shlex
from pathlib import Path

from qgis.core import Qgis
from qgis.gui import QgsFileWidget
from qgis.PyQt.QtCore import QTimer, pyqtSignal
from qgis.PyQt.QtWidgets import QComboBox, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QPushButton

from ..connection import environment
from ..connection.api import BackendClient, read_token
from ..tasks.async_call import call_async
from .base import Panel
from .setup_dialog import SetupDialog

MODE_LABELS = {"managed": "Managed environment", "python": "Existing Python", "remote": "Remote address"}

LIGHT = {"up": "#2e9e44", "down": "#c62828", "unknown": "#9e9e9e"}
LIGHT_TIPS = {"up": "backend serving", "down": "backend not reachable", "unknown": "checking..."}


class BackendPanel(Panel):
    came_up = pyqtSignal()                  # health went to "up"
    capabilities_requested = pyqtSignal()

    def __init__(self, settings, backend, roots_getter=None, parent=None):
        super().__init__("Backend", parent)
        self.settings = settings
        self.backend = backend
        self.roots_getter = roots_getter or (lambda: [])
        self.setup_dialog: SetupDialog | None = None
        self.health = "unknown"
        self._closing = False
        self._token_from_file = True
        self._build()
        self.backend.output.connect(lambda line: self.log.emit(f"[backend] {line}"))
        self.backend.state_changed.connect(self._backend_state_changed)
        self.backend.failed.connect(self._backend_failed)
        self.health_timer = QTimer(self)
        self.health_timer.setInterval(3000)
        self.health_timer.timeout.connect(self.check_health)
        self._backend_state_changed(self.backend.is_running())

    def _build(self) -> None:
        form = QFormLayout(self)
        self.mode = QComboBox()
        self.mode.setObjectName("backend_mode")
        for key, label in MODE_LABELS.items():
            self.mode.addItem(label, key)
        self.mode.setCurrentIndex(max(0, self.mode.findData(self.settings.backend_mode)))
        self.mode.currentIndexChanged.connect(self._mode_changed)
        form.addRow("Backend", self.mode)
        env_row = QHBoxLayout()
        self.env_label = QLabel()
        self.env_label.setWordWrap(True)
        self.setup_button = QPushButton("Set up backend...")
        self.setup_button.setObjectName("setup_backend")
        self.setup_button.clicked.connect(self.open_setup)
        env_row.addWidget(self.env_label, 1)
        env_row.addWidget(self.setup_button)
        form.addRow("Environment", env_row)
        self.python = QLineEdit(self.settings.python)
        self.python.setPlaceholderText("an interpreter that has the groundsynth package")
        form.addRow("Python", self.python)
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
        self.roots_label = QLabel("-")
        self.roots_label.setObjectName("allowed_roots")
        self.roots_label.setWordWrap(True)
        self.roots_label.setToolTip("folders a backend started here may read rasters from (besides its workspace): "
                                    "those of the chosen raster and label layers")
        form.addRow("Allowed folders", self.roots_label)
        self.extra_args = QLineEdit()
        self.extra_args.setPlaceholderText("e.g. --device cpu --batch-size 4")
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
        self._mode_changed()

    # ------------------------------------------------------------ which backend
    def mode_key(self) -> str:
        return self.mode.currentData()

    def _mode_changed(self, *_args) -> None:
        mode = self.mode_key()
        self.python.setEnabled(mode == "python")
        self.setup_button.setEnabled(mode == "managed")
        self.refresh_environment()
        self._backend_state_changed(self.backend.is_running())

    def refresh_environment(self) -> None:
        ready = environment.is_set_up()
        self.env_label.setText(f"ready ({environment.venv_dir()})" if ready else "not set up yet")
        if self.mode_key() == "managed" and not ready:
            self.setup_button.setText("Set up backend...")
            self.setup_button.setDefault(True)
        else:
            self.setup_button.setText("Set up again...")

    def python_for_start(self) -> str:
        if self.mode_key() == "managed":
            return str(environment.venv_python()) if environment.is_set_up() else ""
        return self.python.text().strip()

    def open_setup(self) -> SetupDialog:
        if self.setup_dialog is None:
            self.setup_dialog = SetupDialog(self.window())
            self.setup_dialog.line.connect(lambda line: self.log.emit(f"[set-up] {line}"))
            self.setup_dialog.done_setup.connect(self._setup_done)
        self.setup_dialog.show()
        self.setup_dialog.raise_()
        return self.setup_dialog

    def _setup_done(self, ok: bool, error: str) -> None:
        self.refresh_environment()
        if ok:
            self.notify.emit("Backend set up", f"the backend environment is ready in {environment.venv_dir()}; "
                             "press Start", Qgis.MessageLevel.Success)
        else:
            self.notify.emit("Backend set-up failed", error, Qgis.MessageLevel.Critical)

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
        python = self.python_for_start()
        if self.mode_key() == "remote":
            self.notify.emit("Backend", "a remote backend is started on its own machine; choose 'Managed "
                             "environment' or 'Existing Python' to start one here", Qgis.MessageLevel.Warning)
            return
        if not python:
            self.notify.emit("Backend not set up", "press 'Set up backend...' first (or choose 'Existing Python')",
                             Qgis.MessageLevel.Critical)
            return
        if not ws:
            self.notify.emit("Backend", "choose a workspace folder first", Qgis.MessageLevel.Warning)
            return
        roots = self.roots_getter()
        self.backend.start(self.address.text().strip(), ws, python, extra_args=shlex.split(self.extra_args.text()),
                           allowed_roots=roots)
        self._token_from_file = True
        self.refresh_roots()
        self.log.emit(f"starting backend on {self.address.text().strip()} (workspace {ws}, python {python}, "
                      f"allowed {', '.join(roots) or 'workspace only'})")
        self.health = "unknown"
        self._paint_light()

    def owns_backend(self) -> bool:
        return self.backend.is_running()

    def allows(self, path: str) -> bool:
        """Whether the backend started here may read `path` (its workspace or an allowed root)."""
        real = Path(os.path.realpath(path))
        roots = [self.workspace.filePath(), *self.backend.allowed_roots]
        return any(real.is_relative_to(os.path.realpath(r)) for r in roots if r)

    def _backend_failed(self, code: int, tail: str) -> None:
        lines = [ln.strip() for ln in tail.splitlines() if ln.strip()]
        reason = next((ln for ln in reversed(lines) if "Error" in ln or "error" in ln), lines[-1] if lines else "")
        self.notify.emit("Backend did not start" if self.health != "up" else "Backend stopped",
                         f"exit code {code}: {reason or 'no output'}\n\n{tail}", Qgis.MessageLevel.Critical)

    def stop_backend(self) -> None:
        self.backend.stop()
        self.log.emit("backend stopped")
        self.check_health()

    def _backend_state_changed(self, running: bool) -> None:
        self.start_button.setEnabled(not running and self.mode_key() != "remote")
        self.stop_button.setEnabled(running)
        self.refresh_roots()

    def refresh_roots(self) -> None:
        """Show the folders a backend started here reads: its own while it runs, else those Start would pass."""
        if self.backend.is_running():
            roots = self.backend.allowed_roots
            self.roots_label.setText("\n".join(roots) if roots else "(workspace only)")
        else:
            roots = self.roots_getter()
            self.roots_label.setText("\n".join(roots) + "\n(when started here)" if roots else "-")

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
        self.settings.backend_mode = self.mode_key()
