"""Panel: the common base of the dock's sections."""
from __future__ import annotations

from qgis.gui import QgsCollapsibleGroupBox
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import QComboBox


def compact(combo: QComboBox, chars: int = 14) -> QComboBox:
    """A combo box that does not widen the dock to its longest item (layer and band names can be long)."""
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(chars)
    return combo


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
