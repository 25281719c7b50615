"""Help (the bundled docs, help/plugin.md, rendered in a window) and About."""
from __future__ import annotations

import configparser
from pathlib import Path

from qgis.PyQt.QtCore import QUrl
from qgis.PyQt.QtWidgets import QDialog, QMessageBox, QTextBrowser, QVBoxLayout

PLUGIN_DIR = Path(__file__).resolve().parent
_open: list[QDialog] = []


def help_file() -> Path:
    """help/plugin.md in an installed plugin; docs/plugin.md when run from a source checkout."""
    for candidate in (PLUGIN_DIR / "help" / "plugin.md", PLUGIN_DIR.parent / "docs" / "plugin.md"):
        if candidate.exists():
            return candidate
    raise FileNotFoundError("the plugin's help (help/plugin.md) is missing from this installation")


def metadata() -> dict[str, str]:
    cp = configparser.ConfigParser()
    for candidate in (PLUGIN_DIR / "metadata.txt", PLUGIN_DIR.parent / "metadata.txt"):
        if candidate.exists():
            cp.read(candidate, encoding="utf-8")
            return dict(cp["general"])
    return {}


def show_help(parent=None) -> QDialog:
    path = help_file()
    dialog = QDialog(parent)
    dialog.setObjectName("GroundSynthHelp")
    dialog.setWindowTitle("GroundSynth help")
    dialog.resize(820, 760)
    browser = QTextBrowser(dialog)
    browser.setObjectName("help_browser")
    browser.setOpenExternalLinks(True)
    browser.setSearchPaths([str(path.parent)])
    browser.document().setBaseUrl(QUrl.fromLocalFile(str(path.parent) + "/"))
    browser.setMarkdown(path.read_text(encoding="utf-8"))
    layout = QVBoxLayout(dialog)
    layout.addWidget(browser)
    dialog.finished.connect(lambda _r: _open.remove(dialog) if dialog in _open else None)
    _open.append(dialog)
    dialog.show()
    return dialog


def about_text() -> str:
    m = metadata()
    return (f"<b>GroundSynth {m.get('version', '')}</b><br>{m.get('description', '')}<br><br>"
            f"Author: {m.get('author', '')}<br>Licence: GPL-2.0-or-later (LICENSE in the plugin folder)<br>"
            f"Help: Plugins &gt; GroundSynth &gt; Help ({help_file().name})")


def show_about(parent=None) -> QMessageBox:
    box = QMessageBox(QMessageBox.Icon.Information, "About GroundSynth", about_text(),
                      QMessageBox.StandardButton.Ok, parent)
    box.setObjectName("GroundSynthAbout")
    box.show()
    _open.append(box)
    box.finished.connect(lambda _r: _open.remove(box) if box in _open else None)
    return box
