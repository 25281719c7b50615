"""`make screenshot`: a demo job through a real backend, rendered like the analyst sees it.

Starts `groundsynth serve` on 127.0.0.1 (free port) with a scratch
workspace, builds the Sentinel-2 demo raster there (groundsynth.demo.scene), opens
the GroundSynth dock in an offscreen QGIS, runs a job on an area of the scene
with the backend's default engines (the first available engine where a
default is unavailable), then renders three map panels (real image with the
tile grid coloured by the dock's "auto" score, the real land-cover mask, a synthetic
variant) next to the dock (widget.grab()) into docs/screenshot.png.

    python scripts/screenshot.py [--out docs/screenshot.png] [--tiles 3] [--tile-size 256] [--keep]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def start_backend(workspace: Path, log: Path, extra: list[str]) -> tuple[subprocess.Popen, str]:
    out = log.with_suffix(".out")
    cmd = [sys.executable, "-m", "groundsynth", "serve", "--address", "127.0.0.1:0", "--workspace", str(workspace),
           "--quiet", *extra]
    with open(log, "wb") as err, open(out, "wb") as so:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=so, stderr=err, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        for line in out.read_text(errors="replace").splitlines():
            if line.startswith("serving on "):
                return proc, line.split()[-1]
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"backend did not start:\n{log.read_text(errors='replace')[-3000:]}")


class Iface:
    """The part of QgisInterface the dock uses."""

    def __init__(self, canvas, bar):
        self.canvas, self.bar = canvas, bar

    def mapCanvas(self):  # noqa: N802
        return self.canvas

    def messageBar(self):  # noqa: N802
        return self.bar


def render(layers, extent, crs, size):
    from qgis.core import QgsMapRendererParallelJob, QgsMapSettings
    from qgis.PyQt.QtCore import QSize
    from qgis.PyQt.QtGui import QColor

    ms = QgsMapSettings()
    ms.setLayers(layers)
    ms.setDestinationCrs(crs)
    ms.setOutputSize(QSize(size, size))
    ms.setExtent(extent)
    ms.setBackgroundColor(QColor(255, 255, 255))
    job = QgsMapRendererParallelJob(ms)
    job.start()
    job.waitForFinished()
    return job.renderedImage()


def draw_map_tip(image, tiles, width: int = 330) -> None:
    """Paint the tile layer's map tip for its first real tile into the panel's lower-left corner."""
    from qgis.core import QgsExpression, QgsExpressionContext, QgsExpressionContextUtils
    from qgis.PyQt.QtCore import QRectF
    from qgis.PyQt.QtGui import QColor, QPainter, QPen, QTextDocument

    feature = next((f for f in tiles.getFeatures() if f["kind"] == "real"), None)
    if feature is None:
        return
    ctx = QgsExpressionContext(QgsExpressionContextUtils.globalProjectLayerScopes(tiles))
    ctx.setFeature(feature)
    doc = QTextDocument()
    doc.setHtml(QgsExpression.replaceExpressionText(tiles.mapTipTemplate(), ctx))
    doc.setTextWidth(width)
    h = doc.size().height()
    p = QPainter(image)
    p.setRenderHint(QPainter.Antialiasing)
    x, y = 12, image.height() - h - 12
    p.setPen(QPen(QColor(90, 90, 90), 1))
    p.setBrush(QColor(255, 255, 255, 235))
    p.drawRoundedRect(QRectF(x - 4, y - 4, width + 8, h + 8), 6, 6)
    p.translate(x, y)
    doc.drawContents(p)
    p.end()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "screenshot.png"))
    ap.add_argument("--tiles", type=int, default=4, help="AOI is tiles x tiles tiles of the scene")
    ap.add_argument("--tile-size", type=int, default=256)
    ap.add_argument("--variants", type=int, default=1)
    ap.add_argument("--workspace", help="backend workspace (default: a temporary folder)")
    ap.add_argument("--serve-arg", action="append", default=[], help="extra argument for `groundsynth serve`")
    ap.add_argument("--engines", default="", help="override engines, e.g. 'segment=spectral; caption=composition'")
    ap.add_argument("--keep", action="store_true", help="keep the temporary workspace")
    ap.add_argument("--timeout", type=float, default=900)
    args = ap.parse_args(argv)

    from qgis.core import QgsApplication, QgsProject, QgsRasterLayer, QgsRectangle
    from qgis.gui import QgsMapCanvas, QgsMessageBar
    from qgis.PyQt.QtCore import QRect, Qt
    from qgis.PyQt.QtGui import QColor, QFont, QImage, QPainter
    from qgis.PyQt.QtWidgets import QApplication

    from groundsynth.demo.scene import demo_raster

    tmp = Path(tempfile.mkdtemp(prefix="gs-shot-"))
    workspace = Path(args.workspace) if args.workspace else tmp / "workspace"
    workspace.mkdir(parents=True, exist_ok=True)
    raster = demo_raster(workspace / "data")
    proc, address = start_backend(workspace, tmp / "backend.log", args.serve_arg)
    app = QgsApplication([], True)
    app.initQgis()
    try:
        from plugin.dock import GroundSynthDock
        from plugin.report_panel import ReportPanel
        from plugin.settings import PluginSettings

        canvas = QgsMapCanvas()
        canvas.resize(800, 800)
        bar = QgsMessageBar()
        iface = Iface(canvas, bar)
        layer = QgsRasterLayer(str(raster), "Sentinel-2 demo (R,G,B,NIR)", "gdal")
        QgsProject.instance().addMapLayer(layer)
        from plugin.layers import styling
        styling.style_image(layer)
        canvas.setDestinationCrs(layer.crs())
        settings = PluginSettings(address=address, workspace=str(workspace), backend_mode="python",
                                  python=sys.executable, cache_dir=str(tmp / "cache"), score="auto",
                                  tile_size=args.tile_size)
        report = ReportPanel()
        dock = GroundSynthDock(iface, settings=settings, report_panel=report)
        dock.resize(460, 900)
        dock.show()
        deadline = time.monotonic() + 60
        while dock.capabilities is None and time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.05)
        if dock.capabilities is None:
            raise SystemExit("no Capabilities from the backend")
        chosen = {}
        for st in dock.capabilities.stages:
            engines = [e for e in st.engines if e.available and not e.name.startswith("test-")]
            pick = next((e for e in engines if e.is_default), engines[0] if engines else None)
            if pick is None:
                dock.stages_panel.stage_rows[st.stage].check.setChecked(False)
                continue
            dock.stages_panel.set_engine(st.stage, pick.name)
            chosen[st.stage] = pick.name
        from plugin.job_request import parse_engines

        for stage, name in parse_engines(args.engines).items():
            dock.stages_panel.set_engine(stage, name)
            chosen[stage] = name
        print("engines:", chosen)
        dock.input_panel.raster_combo.setLayer(layer)
        # an AOI of tiles x tiles whole tiles near the centre, on the backend's tile grid (raster origin)
        e = layer.extent()
        px = layer.rasterUnitsPerPixelX()
        step = args.tile_size * px
        side = args.tiles * step
        col0 = int((e.width() / 2 - side / 2) // step)
        row0 = int((e.height() / 2 - side / 2) // step)
        x0, y1 = e.xMinimum() + col0 * step, e.yMaximum() - row0 * step
        inset = px / 2     # half a pixel inside, so no neighbouring tile is touched
        rect = QgsRectangle(x0 + inset, y1 - side + inset, x0 + side - inset, y1 - inset)
        dock.area_panel.set_drawn_rectangle(rect, layer.crs())
        dock.area_panel.tile_size.setValue(args.tile_size)
        dock.synthesis_panel.variants.setValue(args.variants)
        done = []
        dock.job_finished.connect(lambda job, state: done.append(state))
        t0 = time.monotonic()
        if dock.run_job() is None:
            raise SystemExit(f"the dock refused to run: {dock.run_panel.log_view.toPlainText()[-2000:]}")
        while not done and time.monotonic() - t0 < args.timeout:
            app.processEvents()
            time.sleep(0.02)
        print(f"job {dock.job_id}: {done[0] if done else 'TIMEOUT'} in {time.monotonic() - t0:.1f} s")
        if not done or done[0] != "SUCCEEDED":
            print(dock.run_panel.log_view.toPlainText()[-3000:])
            return 1
        for _ in range(20):
            app.processEvents()
        res = dock.results
        # -------- compose: 2 x 2 panels (three maps + the report panel) and the dock's full content
        panel = 600
        crs = layer.crs()
        extent = rect.buffered(side * 0.02)
        tiles = res.layers["tiles"]
        first = render([tiles, res.layers["real_image"]], extent, crs, panel)
        draw_map_tip(first, tiles)
        panels = [(f"Real image + tile grid (colour: {res.score_shown() or 'none'}) + map tip", first),
                  ("Land-cover mask (segment)", render([res.layers["real_mask"]], extent, crs, panel))]
        if "synthetic_image_v1" in res.layers:
            panels.append(("Synthetic image, variant 1 (synthesise)",
                           render([res.layers["synthetic_image_v1"]], extent, crs, panel)))
        report.resize(panel, panel)
        report.show()
        for _ in range(10):
            app.processEvents()
        panels.append(("Report panel", report.grab().toImage().scaled(panel, panel, Qt.KeepAspectRatio,
                                                                     Qt.SmoothTransformation)))
        margin, header, legend_h = 16, 34, 60
        grid_w = 2 * panel + 3 * margin
        grid_h = 2 * (header + panel) + 2 * margin + legend_h
        # the real dock as it docks: its narrowest width, the map's height, the "Input and area" tab open
        dock.tabs.setCurrentIndex(1)
        dock.resize(max(dock.minimumWidth(), 480), grid_h)
        for _ in range(10):
            app.processEvents()
        dock_img = dock.grab().toImage()
        width = grid_w + dock_img.width() + margin
        height = max(grid_h, dock_img.height()) + 2 * margin
        out = QImage(width, height, QImage.Format_ARGB32)
        out.fill(QColor(245, 245, 245))
        p = QPainter(out)
        p.setRenderHint(QPainter.Antialiasing)
        font = QFont()
        font.setPointSize(12)
        font.setBold(True)
        p.setFont(font)
        for k, (title, img) in enumerate(panels):
            x = margin + (k % 2) * (panel + margin)
            y = margin + (k // 2) * (header + panel + margin)
            p.setPen(QColor(30, 30, 30))
            p.drawText(QRect(x, y, panel, header), Qt.AlignLeft | Qt.AlignVCenter, title)
            p.drawImage(x, y + header, img)
        font.setBold(False)
        font.setPointSize(10)
        p.setFont(font)
        lx, ly = margin, margin + 2 * (header + panel + margin)
        for c in res.classes:
            p.fillRect(lx, ly + 4, 16, 16, QColor(c.color))
            p.setPen(QColor(30, 30, 30))
            p.drawText(QRect(lx + 22, ly, 120, 24), Qt.AlignLeft | Qt.AlignVCenter, c.name)
            lx += 110
        p.drawText(QRect(margin, ly + 26, grid_w - margin, 24), Qt.AlignLeft | Qt.AlignVCenter,
                   f"job {res.job_id} ({args.tiles} x {args.tiles} tiles of {args.tile_size} px, Sentinel-2 demo) | "
                   "engines: " + ", ".join(f"{k}={v}" for k, v in chosen.items()))
        p.drawImage(grid_w, margin, dock_img)
        p.end()
        dest = Path(args.out)
        dest.parent.mkdir(parents=True, exist_ok=True)
        out.save(str(dest))
        print(f"wrote {dest} ({out.width()}x{out.height()})")
        dock.shutdown()
        return 0
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        QApplication.processEvents()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}")


if __name__ == "__main__":
    rc = main()
    # Everything is written and the backend stopped. Interpreter teardown would destroy the dock, canvas and
    # QgsApplication in an order QGIS does not support (segfault), so leave without it.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)
