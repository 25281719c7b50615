"""A dock panel showing a job's report.html.

QTextBrowser renders the backend's self-contained HTML (tables, embedded PNG
charts as data URIs); it runs no JavaScript. "Open in browser" hands the file
to the system browser for the full page.
"""
from __future__ import annotations

from pathlib import Path

from qgis.gui import QgsDockWidget
from qgis.PyQt.QtCore import QUrl
from qgis.PyQt.QtGui import QDesktopServices
from qgis.PyQt.QtWidgets import QPushButton, QTextBrowser, QVBoxLayout, QWidget


class ReportPanel(QgsDockWidget):
    def __init__(self, parent=None):
        super().__init__("GroundSynth report", parent)
        self.setObjectName("GroundSynthReportPanel")
        body = QWidget(self)
        layout = QVBoxLayout(body)
        self.browser = QTextBrowser(body)
        self.browser.setOpenExternalLinks(True)
        self.open_button = QPushButton("Open in browser", body)
        self.open_button.clicked.connect(self.open_external)
        layout.addWidget(self.browser)
        layout.addWidget(self.open_button)
        self.setWidget(body)
        self.path = ""

    def show_report(self, path: str) -> None:
        self.path = path
        html = Path(path).read_text(encoding="utf-8")
        self.browser.document().setBaseUrl(QUrl.fromLocalFile(str(Path(path).parent) + "/"))
        self.browser.setHtml(html)
        self.setWindowTitle(f"GroundSynth report - {Path(path).parent.name}")
        self.show()
        self.raise_()

    def open_external(self) -> None:
        if self.path:
            QDesktopServices.openUrl(QUrl.fromLocalFile(self.path))
