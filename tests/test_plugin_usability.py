"""What a new user met on the way (issue: from the zip to a first result), each fixed and checked here without
a backend: grpc missing, band boxes tied to a removed layer, the report panel squashed and its legend run
together, the dock too narrow with Run below the fold, long errors cut off, a drawn EPSG:4326 rectangle
labelled "0 x 0", no Help/About, the log not in QgsMessageLog, and "Copy diagnostics"."""
from __future__ import annotations

import sys

import pytest
from qgis.core import Qgis, QgsApplication, QgsCoordinateReferenceSystem, QgsProject, QgsRasterLayer, QgsRectangle
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QTextDocument
from qgis.PyQt.QtWidgets import QApplication, QMainWindow, QMessageBox, QPushButton, QScrollArea, QTextBrowser

from plugin import classFactory
from plugin.dock import GroundSynthDock
from plugin.report_html import for_text_browser
from plugin.report_panel import MIN_SIZE, ReportPanel
from plugin.settings import PluginSettings
from tests.plugin_fixtures import clear_bar, free_port, sample_raster

LEGEND = ('<p class="legend"><span><span class="sw" style="background:#006400"></span>Tree</span>'
          '<span><span class="sw" style="background:#ffb6c1"></span>Shrub</span></p>')
STRIP = ("<table class='strip'><tr><th>tile</th><th>real image</th><th>caption</th></tr><tr>"
         "<td class='cap'><b>r0002_c0003_v1</b><br>largest: Crop<br>grounding 100.00</td>"
         "<td><img src=\"x.png\" alt=\"real/image/r0002_c0003.tif\"></td>"
         "<td class=\"cap\">" + "a long caption about cropland, water and a village " * 6 + "</td></tr></table>")
CARDS = ("<div class='cards'>" + "".join(f"<div class='card'><div class='v'>{v}</div><div class='k'>{k}</div></div>"
                                         for v, k in (("16", "real tiles"), ("0.599", "fidelity mIoU"))) + "</div>")


@pytest.fixture
def dock(qgis_iface, qgis_new_project, qtbot, tmp_path):
    settings = PluginSettings(address=f"127.0.0.1:{free_port()}", workspace=str(tmp_path / "ws"),
                              cache_dir=str(tmp_path / "cache"))
    d = GroundSynthDock(qgis_iface, settings=settings, report_panel=ReportPanel())
    qtbot.addWidget(d)
    clear_bar(qgis_iface)
    yield d
    d.shutdown()


# ------------------------------------------------------------------ grpc missing
def test_without_grpc_the_plugin_loads_and_offers_install(qgis_iface, monkeypatch, qtbot):
    for name in [m for m in sys.modules if m == "grpc" or m.startswith(("grpc.", "grpc_"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "grpc", None)           # `import grpc` raises ImportError
    clear_bar(qgis_iface)
    plugin = classFactory(qgis_iface)
    plugin.initProcessing()
    plugin.initGui()                                         # no exception, no traceback dialog
    try:
        assert plugin.dock is None and plugin.provider is None
        assert plugin.missing == ["grpcio (not installed)"]
        items = qgis_iface.messageBar().items()
        assert len(items) == 1 and items[0].level() == Qgis.MessageLevel.Warning
        assert "grpcio" in items[0].text() and "python-deps" in items[0].text()
        buttons = items[0].findChildren(QPushButton, "groundsynth_install_deps")
        assert len(buttons) == 1 and buttons[0].text() == "Install"
    finally:
        plugin.unload()


def test_dependency_install_goes_to_a_plugin_folder_never_into_qgis_python(tmp_path):
    from plugin import deps

    steps = deps.install_steps("/usr/bin/python3", tmp_path / "python-deps")
    args = steps[0].args
    assert args[:4] == ["/usr/bin/python3", "-m", "pip", "install"]
    assert args[args.index("--target") + 1] == str(tmp_path / "python-deps")
    assert "--user" not in args and "--break-system-packages" not in args
    assert {"grpcio==1.85.1", "protobuf==7.36.2"} <= set(args)
    (tmp_path / "python-deps").mkdir()
    monkey_dir = str(tmp_path / "python-deps")
    old = deps.deps_dir
    deps.deps_dir = lambda: tmp_path / "python-deps"
    try:
        deps.add_to_path()
        assert sys.path[0] == monkey_dir
    finally:
        deps.deps_dir = old
        sys.path.remove(monkey_dir)


# ------------------------------------------------------------------ band boxes
def test_band_boxes_follow_the_current_layer_after_a_removal(dock, tmp_path, qtbot):
    four = QgsRasterLayer(str(sample_raster(tmp_path, size=64, name="four.tif")), "four", "gdal")
    three_path = tmp_path / "three.tif"
    import rasterio

    with rasterio.open(tmp_path / "four.tif") as src:
        profile = src.profile
        profile.update(count=3)
        with rasterio.open(three_path, "w", **profile) as dst:
            dst.write(src.read([1, 2, 3]))
    three = QgsRasterLayer(str(three_path), "three", "gdal")
    QgsProject.instance().addMapLayers([four, three])
    panel = dock.input_panel
    panel.raster_combo.setLayer(four)
    qtbot.waitUntil(lambda: panel.band_combos["nir"].currentBand() == 4, timeout=2000)
    QgsProject.instance().removeMapLayer(four.id())
    assert panel.raster_combo.currentLayer() is three
    qtbot.waitUntil(lambda: all(c.layer() is three for c in panel.band_combos.values()), timeout=2000)
    dock.area_panel.set_drawn_rectangle(three.extent(), three.crs())
    req = dock.build_request()                  # no "Band mapping missing"
    assert (req.red, req.green, req.blue, req.nir, req.band_count) == (1, 2, 3, -1, 3)


# ------------------------------------------------------------------ report panel
def test_report_legend_and_tile_column_render_as_in_a_browser():
    def layout(html: str, width: int = 400) -> QTextDocument:      # a report panel at about its minimum
        doc = QTextDocument()
        doc.setHtml(html)
        doc.setTextWidth(width)
        doc.size()                                  # lays the document out
        return doc

    assert "TreeShrub" in layout(LEGEND).toPlainText()                 # what the raw HTML gives in Qt
    text = layout(for_text_browser(LEGEND)).toPlainText()
    assert "Tree" in text and "TreeShrub" not in text and "\u25a0" in text

    def tile_id_lines(html: str) -> int:
        doc = layout(html)
        block = doc.find("r0002_c0003_v1").block()
        return block.layout().lineCount()


    # the cell holds three lines (tile id, largest class, score): kept whole, not wrapped
    assert tile_id_lines(STRIP) > 3                                    # a few characters per line before
    assert tile_id_lines(for_text_browser(STRIP)) == 3
    cards = layout(for_text_browser(CARDS)).toPlainText()
    assert "16" in cards and "fidelity mIoU" in cards and "display:flex" not in for_text_browser(CARDS)


def test_report_panel_docks_at_a_usable_size(qgis_app, qtbot, tmp_path):
    window = QMainWindow()
    qtbot.addWidget(window)
    window.resize(1200, 800)
    other = GroundSynthDock(None, settings=PluginSettings(address=f"127.0.0.1:{free_port()}",
                                                          workspace=str(tmp_path / "ws")))
    panel = ReportPanel(window)
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, other)
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, panel)
    report = tmp_path / "report.html"
    report.write_text(f"<html><body><h1>GroundSynth report</h1>{CARDS}{LEGEND}{STRIP}</body></html>")
    window.show()
    panel.show_report(str(report))
    qtbot.waitUntil(lambda: panel.isVisible(), timeout=2000)
    assert panel.browser.height() >= MIN_SIZE.height() and panel.browser.width() >= MIN_SIZE.width()
    other.shutdown()


# ------------------------------------------------------------------ dock layout
def test_run_progress_and_log_are_visible_without_scrolling(dock, qtbot, tmp_path):
    layer = QgsRasterLayer(str(sample_raster(tmp_path, size=64, name="a_raster_with_a_rather_long_name.tif")),
                           "Sentinel-2 demo (R,G,B,NIR) with a long layer name", "gdal")
    QgsProject.instance().addMapLayer(layer)
    dock.input_panel.raster_combo.setLayer(layer)          # long layer and band names must not widen the dock
    dock.resize(dock.minimumWidth(), 760)
    dock.show()
    qtbot.waitExposed(dock)
    run = dock.run_panel
    for widget in (run.run_button, run.cancel_button, *run.progress.values(), run.log_view):
        assert widget.isVisible()
        parent = widget.parentWidget()
        while parent is not None:                 # not inside any scroll area
            assert not isinstance(parent, QScrollArea), widget.objectName()
            parent = parent.parentWidget()
        top_left = widget.mapTo(dock, widget.rect().topLeft())
        assert dock.rect().contains(top_left) and top_left.y() + widget.height() <= dock.height()
    # no section is wider than the dock at its narrowest: nothing is clipped sideways
    for i in range(dock.tabs.count()):
        dock.tabs.setCurrentIndex(i)
        scroll = dock.tabs.widget(i)
        qtbot.wait(20)
        assert not scroll.horizontalScrollBar().isVisible(), dock.tabs.tabText(i)
        assert scroll.widget().width() >= scroll.widget().minimumSizeHint().width()


# ------------------------------------------------------------------ messages
def test_long_errors_have_details_and_everything_reaches_the_message_log(dock, qgis_iface, qtbot):
    logged = []
    QgsApplication.messageLog().messageReceived.connect(lambda msg, tag, level: logged.append((tag, msg)))
    long_text = "the backend refused the raster: " + "a very long reason " * 40 + "\nand a second line"
    dock.message("Raster not allowed", long_text)
    item = qgis_iface.messageBar().items()[-1]
    assert item.title() == "Raster not allowed" and len(item.text()) <= 160
    button = item.findChild(QPushButton, "groundsynth_details")
    assert button is not None and button.text() == "Details"
    button.click()
    box = next(w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()
               and w.objectName() == "groundsynth_details_box")
    assert box.detailedText() == long_text
    box.close()
    dock.log("a plain log line")
    assert ("GroundSynth", f"Raster not allowed: {long_text}") in logged
    assert ("GroundSynth", "a plain log line") in logged
    assert dock.last_error.startswith("Raster not allowed: ")


# ------------------------------------------------------------------ area label
def test_a_rectangle_drawn_in_degrees_is_labelled_in_degrees_and_metres(dock):
    dock.area_panel.set_drawn_rectangle(QgsRectangle(-75.0, 36.13, -74.98, 36.15),
                                        QgsCoordinateReferenceSystem("EPSG:4326"))
    label = dock.area_panel.drawn_label.text()
    assert not label.startswith("0 x 0")
    assert "0.0200\u00b0 x 0.0200\u00b0" in label and "km" in label and "EPSG:4326" in label
    dock.area_panel.set_drawn_rectangle(QgsRectangle(500000, 4000000, 502560, 4001280),
                                        QgsCoordinateReferenceSystem("EPSG:32618"))
    assert dock.area_panel.drawn_label.text() == "2.56 km x 1.28 km (EPSG:32618)"


# ------------------------------------------------------------------ help, about, diagnostics
def test_help_and_about_are_in_the_plugin_menu(qgis_iface, qgis_new_project, qtbot):
    plugin = classFactory(qgis_iface)
    plugin.initGui()
    try:
        actions = {a.text(): a for a in plugin.extra_actions}
        assert set(actions) == {"Help", "About GroundSynth"}
        actions["Help"].trigger()
        helps = [w for w in QApplication.topLevelWidgets() if w.objectName() == "GroundSynthHelp" and w.isVisible()]
        assert helps
        text = helps[-1].findChild(QTextBrowser, "help_browser").toPlainText()
        assert "Set up backend" in text and "qgis_process" in text
        helps[-1].close()
        actions["About GroundSynth"].trigger()
        about = [w for w in QApplication.topLevelWidgets() if w.objectName() == "GroundSynthAbout" and w.isVisible()]
        assert about and "GPL-2.0-or-later" in about[-1].text() and "0.2.0" in about[-1].text()
        about[-1].close()
    finally:
        plugin.unload()


def test_copy_diagnostics(dock):
    dock.message("Bad token", "the backend refused the token")
    text = dock.copy_diagnostics()
    assert QApplication.clipboard().text() == text
    for need in ("GroundSynth plugin: 0.2.0", "QGIS: ", "grpc: ", "generated gRPC code: grpcio-tools",
                 dock.backend_panel.address.text(), "health ", "capabilities: not loaded",
                 "last error: Bad token: the backend refused the token", "managed environment: "):
        assert need in text, need
