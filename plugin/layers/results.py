"""Puts a job's results on the map while its events stream in (main thread only).

Each job gets its own layer-tree group. TileResult events fill a "tiles (live)"
memory layer at once, so footprints, captions and scores show up tile by
tile; LayerReady events add the mosaics (real image/mask, each synthetic
variant's image/mask) and finally the tiles.gpkg grid, which replaces the live
layer. Layers are read from the job directory when the backend shares this
machine's file system, otherwise their files are fetched with FetchArtefact
into a local cache first.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from qgis.core import (
    Qgis,
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsField,
    QgsGeometry,
    QgsLayerTreeGroup,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QObject, QVariant, pyqtSignal

from . import styling
from .safe_files import inside, job_folder, vrt_sources
from .styling import LandCoverClass, class_field

N_CAPTIONS = 5
LIVE_TILES = "tiles (live)"


def _field(name: str, kind: str) -> QgsField:
    """A QgsField of kind "string", "int" or "double": QMetaType where QGIS takes it (3.38+, and QGIS 4 / Qt6,
    which has no QVariant.Type), QVariant.Type before."""
    if Qgis.QGIS_VERSION_INT >= 33800:
        from qgis.PyQt.QtCore import QMetaType

        types = {"string": QMetaType.Type.QString, "int": QMetaType.Type.Int, "double": QMetaType.Type.Double}
    else:
        types = {"string": QVariant.Type.String, "int": QVariant.Type.Int, "double": QVariant.Type.Double}
    return QgsField(name, types[kind])


def _layer_order_key(name: str) -> tuple:
    """Draw order inside a group, top first: tiles, masks, images; real before synthetic."""
    rank = 0 if name.startswith("tiles") else 1 if "mask" in name else 2
    m = re.search(r"_v(\d+)$", name)
    return rank, int(m.group(1)) if m else 0, name


class ArtefactSource:
    """Where a job's files are read from: the job dir itself, or a fetch cache."""

    def __init__(self, job_id: str, output_dir: str, client=None, cache_dir: str | os.PathLike | None = None,
                 force_fetch: bool = False):
        self.job_id = job_id
        self.output_dir = Path(output_dir) if output_dir else None
        self.client = client
        self.cache_dir = job_folder(cache_dir, job_id) if cache_dir else None
        self.force_fetch = force_fetch

    @property
    def local(self) -> bool:
        """True when the job directory is visible here (checked at each use: it may appear after Accepted)."""
        return bool(self.output_dir and not self.force_fetch and self.output_dir.is_dir())

    @property
    def folder(self) -> Path | None:
        """Where this machine finds the job's files."""
        return self.output_dir if self.local else self.cache_dir

    def path(self, rel: str) -> Path:
        """Local path of a job file, fetching it (and for a VRT its sources) if remote. A name that leaves the
        job folder or the cache (absolute, `..`, a symlink out of the cache, a VRT source outside it) is
        refused with UnsafeJobFile (layers/safe_files.py) before anything is written or opened."""
        if self.local:
            return inside(self.output_dir, rel)
        if self.client is None or self.cache_dir is None:
            raise FileNotFoundError(f"job file {rel} is on a remote backend and no client/cache is set")
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        dest = inside(self.cache_dir, rel, resolve=True)
        self.client.fetch_artefact(self.job_id, rel, dest)
        if rel.lower().endswith(".vrt"):
            base = Path(rel.replace("\\", "/")).parent
            try:
                subs = [(base / text).as_posix() for text in vrt_sources(dest, rel)]
                targets = [(sub, inside(self.cache_dir, sub, resolve=True)) for sub in subs]
            except Exception:
                dest.unlink(missing_ok=True)      # never leave a VRT that points outside for GDAL to open
                raise
            for sub, target in targets:
                if not target.exists():
                    self.client.fetch_artefact(self.job_id, sub, target)
        return dest


class JobResults(QObject):
    """Layer-tree group and layers of one job; feed it JobEvents with `handle()`."""

    report_ready = pyqtSignal(str)          # local path of report.html
    layer_added = pyqtSignal(str)           # layer kind, e.g. "real_mask"

    def __init__(self, job_id: str, source: ArtefactSource, classes: list[LandCoverClass] | None = None,
                 score: str | None = None, title: str = "", project: QgsProject | None = None, parent=None):
        super().__init__(parent)
        self.job_id = job_id
        self.source = source
        self.classes = classes or styling.classes_from_capabilities()
        self.score = score
        self.project = project or QgsProject.instance()
        root = self.project.layerTreeRoot()
        group_name = f"GroundSynth {title or job_id}"
        self.group: QgsLayerTreeGroup = root.findGroup(group_name) or root.insertGroup(0, group_name)
        self.layers: dict[str, object] = {}
        self.added: list[str] = []            # layer kinds in the order they arrived
        self.live: QgsVectorLayer | None = None
        self.report_path: str = ""
        self.tile_filter = ""                  # a subset expression on the tile layers ("" = all tiles)

    # ------------------------------------------------------------ events
    def handle(self, ev) -> None:
        which = ev.WhichOneof("event")
        if which == "tile":
            self.add_tile(ev.tile)
        elif which == "layer":
            self.add_layer(ev.layer.layer, ev.layer.path, ev.layer.format)
        elif which == "report":
            self.report_path = str(self.source.path(ev.report.html_path)) if ev.report.html_path else ""
            if self.report_path:
                self.report_ready.emit(self.report_path)

    def load_job_info(self, info) -> None:
        """Load every layer (and the report) of a finished job from its JobInfo."""
        for lr in info.layers:
            self.add_layer(lr.layer, lr.path, lr.format)
        if info.report.html_path:
            self.report_path = str(self.source.path(info.report.html_path))
            self.report_ready.emit(self.report_path)

    # ------------------------------------------------------------ layers
    def _insert(self, kind: str, layer) -> None:
        old = self.layers.pop(kind, None)
        if old is not None:
            self._remove(old)
        self.project.addMapLayer(layer, False)
        keys = sorted([*self.layers, kind], key=_layer_order_key)
        node = self.group.insertLayer(keys.index(kind), layer)
        # the real mosaics and the grid show at once; synthetic variants are one click away
        node.setItemVisibilityChecked(not kind.startswith("synthetic"))
        self.layers[kind] = layer
        self.added.append(kind)

    def _remove(self, layer) -> None:
        try:
            self.project.removeMapLayer(layer.id())
        except RuntimeError:   # already deleted by the user
            pass

    def add_layer(self, kind: str, rel_path: str, fmt: str = ""):
        path = str(self.source.path(rel_path))
        if kind == "tiles" or fmt == "gpkg":
            layer = QgsVectorLayer(f"{path}|layername=tiles", "tiles", "ogr")
            if not layer.isValid():
                layer = QgsVectorLayer(path, "tiles", "ogr")
            if not layer.isValid():
                raise RuntimeError(f"cannot open the tile grid {path}")
            styling.style_tiles(layer, self.score, self.classes)
            layer.setSubsetString(self.tile_filter)
            if self.live is not None:
                self._remove(self.live)
                self.layers.pop(LIVE_TILES, None)
                self.live = None
        else:
            layer = QgsRasterLayer(path, kind, "gdal")
            if not layer.isValid():
                raise RuntimeError(f"cannot open layer {kind} at {path}")
            if "mask" in kind or kind.endswith("labels"):      # real_mask, synthetic_cond_mask_v1, real_labels
                styling.style_mask(layer, self.classes)
            elif kind.startswith("synthetic") and "real_image" in self.layers:
                # the real image's stretch, so synthetic brightness compares with the real tiles
                styling.style_image(layer, limits=styling.image_limits(self.layers["real_image"]))
            else:
                styling.style_image(layer)
        self._insert(kind, layer)
        self.layer_added.emit(kind)
        return layer

    def set_tile_filter(self, kind: str = "", variant: int = 0) -> str:
        """Show only tiles of `kind` ("real", "synthetic"; "" = all) and, for synthetic, `variant` (0 = all):
        synthetic tiles lie exactly over their real tile, so identify and map tips reach them this way."""
        parts = [f"\"kind\" = '{kind}'"] if kind else []
        if kind == "synthetic" and variant:
            parts.append(f"\"variant\" = {int(variant)}")
        self.tile_filter = " AND ".join(parts)
        for name in ("tiles", LIVE_TILES):
            layer = self.layers.get(name)
            if layer is not None:
                layer.setSubsetString(self.tile_filter)
                if self.score in (None, "", styling.AUTO_SCORE):     # "auto" picks among the tiles shown
                    styling.style_tiles(layer, self.score, self.classes)
                layer.triggerRepaint()
        return self.tile_filter

    def score_shown(self) -> str:
        """The field that colours the tile grid now (what "auto" chose), "" when none does."""
        for kind in ("tiles", LIVE_TILES):
            layer = self.layers.get(kind)
            renderer = layer.renderer() if layer is not None else None
            if renderer is not None and hasattr(renderer, "classAttribute"):
                return renderer.classAttribute()
        return ""

    def set_score(self, score: str) -> None:
        """Re-style the tile layers by another score ("auto": one that varies, styling.default_score)."""
        self.score = score
        for kind in ("tiles", LIVE_TILES):
            layer = self.layers.get(kind)
            if layer is not None:
                styling.style_tiles(layer, score, self.classes)

    # ------------------------------------------------------------ live tiles
    def _live_layer(self, crs_text: str) -> QgsVectorLayer:
        if self.live is not None:
            return self.live
        layer = QgsVectorLayer("Polygon", LIVE_TILES, "memory")
        layer.setCrs(QgsCoordinateReferenceSystem(crs_text))
        fields = [_field("tile_id", "string"), _field("kind", "string"),
                  _field("row", "int"), _field("col", "int"), _field("variant", "int"),
                  _field("source_tile", "string"), _field("nodata", "int")]
        fields += [_field(class_field(c.name), "double") for c in self.classes]
        fields += [_field(f"caption_{i}", "string") for i in range(1, N_CAPTIONS + 1)]
        layer.dataProvider().addAttributes(fields)
        layer.updateFields()
        self.live = layer
        layer.setSubsetString(self.tile_filter)
        self._insert(LIVE_TILES, layer)
        return layer

    def add_tile(self, t) -> None:
        if "tiles" in self.layers:     # the final grid is already loaded
            return
        layer = self._live_layer(t.footprint.crs)
        prov = layer.dataProvider()
        new = [_field(k, "double") for k in sorted(t.metrics) if layer.fields().indexOf(k) < 0]
        if new:
            prov.addAttributes(new)
            layer.updateFields()
        values = {"tile_id": t.tile_id, "kind": t.kind, "row": t.row, "col": t.col, "variant": t.variant,
                  "source_tile": t.source_tile_id, "nodata": int(t.nodata)}
        for c in self.classes:
            values[class_field(c.name)] = 100.0 * float(t.composition.get(c.name, 0.0))   # percent, as tiles.gpkg
        for i, cap in enumerate(list(t.captions)[:N_CAPTIONS], start=1):
            values[f"caption_{i}"] = cap
        values.update({k: float(v) for k, v in t.metrics.items()})
        feat = QgsFeature(layer.fields())
        for k, v in values.items():
            feat[k] = v
        b = t.footprint.bounds
        feat.setGeometry(QgsGeometry.fromRect(QgsRectangle(b.minx, b.miny, b.maxx, b.maxy)))
        prov.addFeatures([feat])
        layer.updateExtents()
        if t.metrics and (self.score in t.metrics or self.score in (None, "", styling.AUTO_SCORE)):
            styling.style_tiles(layer, self.score, self.classes)
        else:
            layer.setMapTipTemplate(styling.map_tip_html(self.classes, layer))
            layer.triggerRepaint()

    # ------------------------------------------------------------ cleanup
    def remove(self) -> None:
        for layer in list(self.layers.values()):
            self._remove(layer)
        self.layers.clear()
        parent = self.group.parent()
        if parent is not None:
            parent.removeChildNode(self.group)
