"""Panel: the common base of the dock's sections."""
from __future__ import annotations

from qgis.gui import QgsCollapsibleGroupBox
from qgis.PyQt.QtCore import pyqtSignal


class Panel(QgsCollapsibleGroupBox):
    """A dock section. Subclasses build their widgets in `__init__` and override `load` / `fill`."""

    log = pyqtSignal(str)                       # a line for the dock's log
    notify = pyqtSignal(str, str, object)       # message-bar title, text, Qgis.MessageLevel

    def __init__(self, title: str, parent=None):
        super().__init__(title, parent)

    def load(self, capabilities) -> None:
        """Adapt to the backend's Capabilities (default: nothing to adapt)."""

    def fill(self, request) -> None:
        """Write this section's part of `request` (a JobRequest); default: nothing."""
