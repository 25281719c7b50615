"""RenderTask: write the area of interest of any raster layer (WMS, XYZ, WCS, ...) to a GeoTIFF.

The backend reads files, so for a layer that is not a file the dock first
writes the AOI at a chosen resolution (map units per pixel of the layer's CRS)
with QgsRasterFileWriter through a QgsRasterPipe, in a QgsTask with progress;
the provider is cloned on the main thread, so the worker thread never touches
the layer itself. The file appears under its final name only when complete.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

from qgis.core import QgsRasterBlockFeedback, QgsRasterFileWriter, QgsRasterPipe, QgsRectangle, QgsTask
from qgis.PyQt.QtCore import pyqtSignal

MAX_SIDE = 20000        # pixels per side: beyond, ask for a coarser resolution


def output_size(extent: QgsRectangle, resolution: float) -> tuple[int, int]:
    if resolution <= 0:
        raise ValueError(f"resolution must be > 0 map units per pixel, got {resolution}")
    cols, rows = math.ceil(extent.width() / resolution), math.ceil(extent.height() / resolution)
    if cols < 1 or rows < 1:
        raise ValueError("the area of interest is smaller than one pixel at this resolution")
    if max(cols, rows) > MAX_SIDE:
        raise ValueError(f"{cols} x {rows} pixels at {resolution:g} map units per pixel is too large "
                         f"(at most {MAX_SIDE} a side): choose a coarser resolution or a smaller area")
    return cols, rows


class RenderTask(QgsTask):
    ended = pyqtSignal(bool, str, str)        # ok, path, error text

    def __init__(self, layer, extent: QgsRectangle, resolution: float, dest: str | os.PathLike):
        super().__init__(f"GroundSynth: write {layer.name()} to a GeoTIFF", QgsTask.Flag.CanCancel)
        self.cols, self.rows = output_size(extent, resolution)
        # snap the extent to whole pixels
        self.extent = QgsRectangle(extent.xMinimum(), extent.yMaximum() - self.rows * resolution,
                                   extent.xMinimum() + self.cols * resolution, extent.yMaximum())
        self.provider = layer.dataProvider().clone()
        self.crs = layer.crs()
        self.dest = Path(dest)
        self.error_text = ""

    def run(self) -> bool:
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.dest.with_name(self.dest.stem + ".part.tif")
        pipe = QgsRasterPipe()
        if not pipe.set(self.provider):
            self.error_text = "cannot read the layer's data provider"
            return False
        writer = QgsRasterFileWriter(str(tmp))
        writer.setOutputFormat("GTiff")
        writer.setCreateOptions(["COMPRESS=DEFLATE", "TILED=YES"])
        feedback = QgsRasterBlockFeedback()
        feedback.progressChanged.connect(self.setProgress)
        self.feedback = feedback
        err = writer.writeRaster(pipe, self.cols, self.rows, self.extent, self.crs, feedback)
        if self.isCanceled() or feedback.isCanceled():
            self.error_text = "cancelled"
            tmp.unlink(missing_ok=True)
            return False
        if err != QgsRasterFileWriter.WriterError.NoError:
            self.error_text = f"writing {tmp.name} failed (QgsRasterFileWriter error {int(err)})"
            tmp.unlink(missing_ok=True)
            return False
        os.replace(tmp, self.dest)
        return True

    def cancel(self) -> None:
        fb = getattr(self, "feedback", None)
        if fb is not None:
            fb.cancel()
        super().cancel()

    def finished(self, result: bool) -> None:
        self.ended.emit(bool(result), str(self.dest) if result else "", "" if result else self.error_text)
