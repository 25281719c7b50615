"""The plugin object QGIS loads: dock, report panel, toolbar action, Processing provider, Help and About.

When grpcio/protobuf are missing from QGIS's Python (plugin/deps.py), the
plugin still loads: it shows a message bar with an "Install" button (pip
--target into a plugin-local folder) and builds the dock once they are there.

`unload()` leaves nothing behind: it cancels a running job (on the backend
too), joins its task and helper threads, stops a backend process the plugin
started and removes the provider, dock and actions.
"""
from __future__ import annotations

import sys
from pathlib import Path

from qgis.core import Qgis, QgsApplication, QgsMessageLog
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction, QPushButton

from . import deps
from .help import show_about, show_help
from .settings import PluginSettings, data_dir
from .tasks import async_call

ICON = Path(__file__).resolve().parent / "icon.svg"
MENU = "GroundSynth"


class GroundSynthPlugin:
    def __init__(self, iface):
        self.iface = iface
        self.dock = None
        self.report_panel = None
        self.provider = None
        self.action = None
        self.backend = None
        self.extra_actions: list[QAction] = []
        self.install_task = None
        self.install_item = None
        self.missing: list[str] = []

    def initProcessing(self):  # noqa: N802  (QGIS API name)
        deps.add_to_path()
        if self.provider is not None or deps.missing():
            return
        from .processing.provider import GroundSynthProvider

        self.provider = GroundSynthProvider()
        QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):  # noqa: N802
        main = self.iface.mainWindow()
        for text, slot in (("Help", lambda: show_help(main)), ("About GroundSynth", lambda: show_about(main))):
            action = QAction(text, main)
            action.triggered.connect(slot)
            self.iface.addPluginToMenu(MENU, action)
            self.extra_actions.append(action)
        deps.add_to_path()
        self.missing = deps.missing()
        if self.missing:
            self._offer_install()
            return
        self._init_full()

    def _init_full(self) -> None:
        from .connection.process import LocalBackend
        from .dock import GroundSynthDock
        from .report_panel import ReportPanel

        self.initProcessing()
        self.backend = LocalBackend()
        main = self.iface.mainWindow()
        self.report_panel = ReportPanel(main)
        self.dock = GroundSynthDock(self.iface, backend=self.backend, settings=PluginSettings.load(),
                                    report_panel=self.report_panel, parent=main)
        self.iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
        self.iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.report_panel)
        self.report_panel.hide()
        self.action = QAction(QIcon(str(ICON)), "GroundSynth", main)
        self.action.setCheckable(True)
        self.action.setChecked(True)
        self.action.toggled.connect(self.dock.setUserVisible)
        self.dock.visibilityChanged.connect(self.action.setChecked)
        self.iface.addToolBarIcon(self.action)
        self.iface.addPluginToMenu(MENU, self.action)

    # ------------------------------------------------------------ missing dependencies
    def _offer_install(self) -> None:
        text = (f"QGIS's Python lacks {', '.join(self.missing)}. Install them into the plugin's own folder "
                f"({deps.deps_dir()}); nothing else is changed.")
        QgsMessageLog.logMessage(text, "GroundSynth", Qgis.MessageLevel.Warning)
        bar = self.iface.messageBar()
        item = bar.createMessage("GroundSynth needs gRPC", text)
        button = QPushButton("Install")
        button.setObjectName("groundsynth_install_deps")
        self.install_item = item
        button.clicked.connect(self._install_clicked)      # a bound method: a lambda here crashed QGIS 3.22
        item.layout().addWidget(button)
        bar.pushWidget(item, Qgis.MessageLevel.Warning, 0)

    def _install_clicked(self, _checked: bool = False) -> None:
        self.install_dependencies(self.install_item)

    def install_dependencies(self, item=None, python: str = ""):
        """pip install --target <data folder>/python-deps; then build the dock (or ask for a restart)."""
        from .connection.environment import SetupError, install_python
        from .tasks.commands import CommandsTask

        try:
            python = python or install_python()
        except SetupError as exc:
            self.iface.messageBar().pushMessage(exc.title, exc.text, Qgis.MessageLevel.Critical, 0)
            return None
        stale = [m for m in ("grpc", "google.protobuf") if m in sys.modules]
        task = CommandsTask("GroundSynth: install grpcio and protobuf", deps.install_steps(python),
                            data_dir() / "setup.log")
        task.line.connect(lambda line: QgsMessageLog.logMessage(line, "GroundSynth", Qgis.MessageLevel.Info))
        task.ended.connect(lambda ok, err: self._installed(ok, err, item, stale))
        self.install_task = task
        QgsApplication.taskManager().addTask(task)
        return task

    def _installed(self, ok: bool, error: str, item, stale: list[str]) -> None:
        bar = self.iface.messageBar()
        if item is not None:
            try:
                bar.popWidget(item)
            except RuntimeError:
                pass
        if not ok:
            bar.pushMessage("GroundSynth: install failed", error, Qgis.MessageLevel.Critical, 0)
            return
        deps.add_to_path()
        self.missing = deps.missing()
        if self.missing or stale:
            bar.pushMessage("GroundSynth", "installed; restart QGIS to load the new grpcio/protobuf",
                            Qgis.MessageLevel.Info, 0)
            return
        self._init_full()
        bar.pushMessage("GroundSynth", "grpcio and protobuf installed", Qgis.MessageLevel.Success, 5)

    # ------------------------------------------------------------ unload
    def unload(self):
        if self.install_task is not None:
            self.install_task.cancel()
            self.install_task = None
        if self.dock is not None:
            self.dock.shutdown()
            self.dock.settings.save()
            self.iface.removeDockWidget(self.dock)
            self.dock.deleteLater()
            self.dock = None
        if self.report_panel is not None:
            self.iface.removeDockWidget(self.report_panel)
            self.report_panel.deleteLater()
            self.report_panel = None
        if self.backend is not None:
            self.backend.stop()
            self.backend = None
        async_call.wait_all(5.0)
        for action in [*self.extra_actions, *([self.action] if self.action is not None else [])]:
            self.iface.removePluginMenu(MENU, action)
            action.deleteLater()
        if self.action is not None:
            self.iface.removeToolBarIcon(self.action)
        self.action = None
        self.extra_actions = []
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
