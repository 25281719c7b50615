"""A dock panel showing a job's report.html.

QTextBrowser renders the backend's self-contained HTML (tables, embedded PNG
charts as data URIs), adapted by report_html.for_text_browser to what Qt's rich
text supports; it runs no JavaScript. "Open in browser" hands the file to the
system browser for the full page. The panel never docks smaller than
MIN_SIZE, so it does not open squashed under the GroundSynth dock.
"""
from __future__ import annotations

from pathlib import Path

from qgis.gui import QgsDockWidget
from qgis.PyQt.QtCore import QSize, QUrl
from qgis.PyQt.QtGui import QDesktopServices
from qgis.PyQt.QtWidgets import QPushButton, QTextBrowser, QVBoxLayout, QWidget

from .report_html import for_text_browser

MIN_SIZE = QSize(420, 420)


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
        self.browser.setMinimumSize(MIN_SIZE)
        self.path = ""

    def sizeHint(self) -> QSize:  # noqa: N802  (Qt API name)
        return QSize(640, 720)

    def show_report(self, path: str) -> None:
        self.path = path
        html = Path(path).read_text(encoding="utf-8")
        self.browser.document().setBaseUrl(QUrl.fromLocalFile(str(Path(path).parent) + "/"))
        self.browser.setHtml(for_text_browser(html, max(320, self.browser.viewport().width() - 40)))
        self.setWindowTitle(f"GroundSynth report - {Path(path).parent.name}")
        self.show()
        self.raise_()

    def open_external(self) -> None:
        if self.path:
            QDesktopServices.openUrl(QUrl.fromLocalFile(self.path))
