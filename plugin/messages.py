"""Message-bar messages with the full text one click away ("Details"), all logged to QgsMessageLog.

The bar shows the first line of a message (at most SHORT characters); when the
text is longer, a "Details" button opens it whole (selectable, copyable). Every
message and every log line also goes to the "GroundSynth" tab of the QGIS log
panel (QgsMessageLog).
"""
from __future__ import annotations

from functools import partial

from qgis.core import Qgis, QgsMessageLog
from qgis.gui import QgsMessageBarItem
from qgis.PyQt.QtWidgets import QMessageBox, QPushButton

TAG = "GroundSynth"
SHORT = 160
DETAILS_PROPERTY = "groundsynth_details"
_open: list[QMessageBox] = []


def log(text: str, level=Qgis.MessageLevel.Info) -> None:
    QgsMessageLog.logMessage(text, TAG, level)


def short_text(text: str) -> str:
    lines = text.strip().splitlines()
    first = lines[0] if lines else ""
    return first if len(first) <= SHORT else first[:SHORT - 3].rstrip() + "..."


def show_details(title: str, text: str, parent=None) -> QMessageBox:
    box = QMessageBox(QMessageBox.Icon.Information, title, short_text(text), QMessageBox.StandardButton.Close,
                      parent)
    box.setObjectName("groundsynth_details_box")
    box.setDetailedText(text)
    box.setInformativeText(text if len(text) < 2000 else text[:2000] + " ...")
    _open.append(box)
    box.finished.connect(lambda _r: _open.remove(box) if box in _open else None)
    box.show()
    return box


def push(bar, title: str, text: str, level=Qgis.MessageLevel.Critical, duration: int = 10):
    """Show (title, text) in `bar` (a QgsMessageBar) and log it; returns the bar item."""
    log(f"{title}: {text}", level)
    if bar is None:
        return None
    short = short_text(text)
    item = QgsMessageBarItem(title, short, level, duration)
    item.setProperty(DETAILS_PROPERTY, text)
    if short != text.strip():
        button = QPushButton("Details")
        button.setObjectName("groundsynth_details")
        button.clicked.connect(partial(show_details, title, text, bar.window()))   # no lambda: see main.py
        item.layout().addWidget(button)
    bar.pushItem(item)
    return item
