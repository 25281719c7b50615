"""The plugin object QGIS loads: dock, report panel, toolbar action, Processing provider.

`unload()` leaves nothing behind: it cancels a running job (on the backend
too), joins its task and helper threads, stops a backend process the plugin
started and removes the provider, dock and action.
"""
from __future__ import annotations

from pathlib import Path

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction

from .connection.process import LocalBackend
from .settings import PluginSettings
from .tasks import async_call

ICON = Path(__file__).resolve().parent / "icon.svg"


class GroundSynthPlugin:
    def __init__(self, iface):
        self.iface = iface
        self.dock = None
        self.report_panel = None
        self.provider = None
        self.action = None
        self.backend = None

    def initProcessing(self):  # noqa: N802  (QGIS API name)
        from .processing.provider import GroundSynthProvider

        if self.provider is None:
            self.provider = GroundSynthProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):  # noqa: N802
        from .dock import GroundSynthDock
        from .report_panel import ReportPanel

        self.initProcessing()
        self.backend = LocalBackend()
        main = self.iface.mainWindow()
        self.report_panel = ReportPanel(main)
        self.dock = GroundSynthDock(self.iface, backend=self.backend, settings=PluginSettings.load(),
                                    report_panel=self.report_panel, parent=main)
        self.iface.addDockWidget(Qt.RightDockWidgetArea, self.dock)
        self.iface.addDockWidget(Qt.RightDockWidgetArea, self.report_panel)
        self.report_panel.hide()
        self.action = QAction(QIcon(str(ICON)), "GroundSynth", main)
        self.action.setCheckable(True)
        self.action.setChecked(True)
        self.action.toggled.connect(self.dock.setUserVisible)
        self.dock.visibilityChanged.connect(self.action.setChecked)
        self.iface.addToolBarIcon(self.action)
        self.iface.addPluginToMenu("GroundSynth", self.action)

    def unload(self):
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
        if self.action is not None:
            self.iface.removeToolBarIcon(self.action)
            self.iface.removePluginMenu("GroundSynth", self.action)
            self.action.deleteLater()
            self.action = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
