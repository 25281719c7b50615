"""The dock against a REAL backend process (groundsynth serve, test engines) on a Sentinel-2 crop:
a run lands styled layers in a per-job group, cancel stops the job on the backend, a finished job reloads,
and every error case reaches the message bar."""
from __future__ import annotations

import socket
from pathlib import Path

import pytest
from qgis.core import (
    Qgis,
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFeature,
    QgsGeometry,
    QgsGraduatedSymbolRenderer,
    QgsMultiBandColorRenderer,
    QgsPalettedRasterRenderer,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import Qt

from groundsynth.request import classes as palette
from plugin.connection.api import BackendClient, state_name
from plugin.dock import GroundSynthDock
from plugin.report_panel import ReportPanel
from plugin.settings import PluginSettings
from tests.plugin_fixtures import bar_messages, clear_bar, sample_raster
from tests.server_fixture import start_server

TEST_ENGINES = {"segment": "test-bright", "synthesise": "test-palette", "caption": "test-count",
                "ground": "test-agree"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("plugin_srv")
    srv = start_server(base / "workspace")
    srv.raster = sample_raster(srv.workspace / "data", size=256)
    yield srv
    srv.kill()


@pytest.fixture
def dock(server, qgis_iface, qgis_new_project, qtbot, tmp_path):
    settings = PluginSettings(address=server.address, workspace=str(server.workspace), python="",
                              cache_dir=str(tmp_path / "cache"), score="grounding", tile_size=128)
    d = GroundSynthDock(qgis_iface, settings=settings, report_panel=ReportPanel())
    qtbot.addWidget(d)
    qtbot.addWidget(d.report_panel)
    clear_bar(qgis_iface)
    qtbot.waitUntil(lambda: d.capabilities is not None, timeout=10000)
    for stage, engine in TEST_ENGINES.items():
        d.stages_panel.set_engine(stage, engine)
    yield d
    d.shutdown()


def add_raster(path: Path) -> QgsRasterLayer:
    layer = QgsRasterLayer(str(path), "s2", "gdal")
    assert layer.isValid()
    QgsProject.instance().addMapLayer(layer)
    return layer


def wgs84_rect_inside(layer: QgsRasterLayer, shrink: float = 0.1) -> QgsRectangle:
    """The raster's extent, shrunk a little, in EPSG:4326 (a project CRS other than the raster's)."""
    e = layer.extent()
    dx, dy = e.width() * shrink, e.height() * shrink
    inner = QgsRectangle(e.xMinimum() + dx, e.yMinimum() + dy, e.xMaximum() - dx, e.yMaximum() - dy)
    tr = QgsCoordinateTransform(layer.crs(), QgsCoordinateReferenceSystem("EPSG:4326"), QgsProject.instance())
    return tr.transformBoundingBox(inner)


def critical(iface) -> list[str]:
    return bar_messages(iface, Qgis.MessageLevel.Critical)


# ------------------------------------------------------------------ a full run
def test_dock_runs_a_job_and_lands_styled_layers(server, dock, qgis_iface, qtbot):
    layer = add_raster(server.raster)
    dock.input_panel.raster_combo.setLayer(layer)
    assert [dock.input_panel.band_combos[r].currentBand() for r in ("red", "green", "blue", "nir")] == [1, 2, 3, 4]
    dock.area_panel.set_drawn_rectangle(wgs84_rect_inside(layer, 0.0), QgsCoordinateReferenceSystem("EPSG:4326"))
    dock.area_panel.tile_size.setValue(128)
    dock.synthesis_panel.variants.setValue(1)
    with qtbot.waitSignal(dock.job_finished, timeout=60000) as finished:
        task = dock.run_job()
        assert task is not None and not dock.is_idle()
    assert finished.args[1] == "SUCCEEDED", critical(qgis_iface)
    assert dock.is_idle()
    res = dock.results
    group = QgsProject.instance().layerTreeRoot().findGroup(res.group.name())
    assert group is not None and res.job_id in group.name()
    kinds = {n.name() for n in group.children()}
    assert {"tiles", "real_mask", "real_image", "synthetic_image_v1", "synthetic_mask_v1"} <= kinds
    assert "tiles (live)" not in kinds
    # tiles showed up while streaming (live layer), before the final grid replaced them
    assert res.added.index("tiles (live)") < res.added.index("real_mask") < res.added.index("tiles")
    want = [(i, palette.hex_color(i), palette.CLASS_NAMES[i]) for i in range(7)]
    for kind in ("real_mask", "synthetic_mask_v1"):
        r = res.layers[kind].renderer()
        assert isinstance(r, QgsPalettedRasterRenderer), kind
        assert [(c.value, c.color.name(), c.label) for c in r.classes()] == want
    for kind in ("real_image", "synthetic_image_v1"):
        assert isinstance(res.layers[kind].renderer(), QgsMultiBandColorRenderer), kind
    # one stretch for the job: synthetic images use the real image's limits
    from plugin.layers.styling import image_limits
    assert image_limits(res.layers["synthetic_image_v1"]) == image_limits(res.layers["real_image"])
    tiles = res.layers["tiles"]
    assert isinstance(tiles.renderer(), QgsGraduatedSymbolRenderer)
    assert tiles.renderer().classAttribute() == "grounding"
    feats = list(tiles.getFeatures())
    real = [f for f in feats if f["kind"] == "real"]
    assert len(real) == 4 and len(feats) == 8
    assert all(f["caption_1"] and f["grounding"] is not None for f in real)
    assert "caption_1" in tiles.mapTipTemplate() and "pct_crop" in tiles.mapTipTemplate()
    # the user picks another score: the grid is re-styled by it
    dock.jobs_panel.score_combo.setCurrentText("fidelity_miou")
    assert tiles.renderer().classAttribute() == "fidelity_miou"
    # "auto" (the default setting): a score that varies over the tiles, named in the choice's tooltip
    from plugin.layers.styling import default_score
    dock.jobs_panel.score_combo.setCurrentText("auto")
    assert dock.jobs_panel.score_combo.itemText(0) == "auto"
    auto = tiles.renderer().classAttribute()
    assert auto == default_score(tiles)
    assert len({f[auto] for f in tiles.getFeatures() if f[auto] is not None}) > 1     # a score that varies
    res.set_score("auto")
    dock._update_score_choices()
    assert dock.jobs_panel.score_combo.itemData(0, Qt.ItemDataRole.ToolTipRole) == f"auto: coloured by {auto}"
    # the report opened in its panel
    assert dock.report_panel.path == str(Path(res.source.output_dir) / "report.html")
    text = dock.report_panel.browser.toPlainText()
    assert "GroundSynth report" in text and "Summary" in text and res.job_id in dock.report_panel.windowTitle()
    # progress bars filled, log tells the story
    assert dock.run_panel.progress["segment"].value() == dock.run_panel.progress["segment"].maximum() > 0
    assert "accepted" in dock.run_panel.log_view.toPlainText()

    # reload the finished job from the backend's job list
    job_id = res.job_id
    with qtbot.waitSignal(dock.jobs_panel.jobs_combo.model().rowsInserted, timeout=10000):
        dock.refresh_jobs()
    qtbot.waitUntil(lambda: dock.jobs_panel.jobs_combo.findData(job_id) >= 0, timeout=5000)
    dock.jobs_panel.jobs_combo.setCurrentIndex(dock.jobs_panel.jobs_combo.findData(job_id))
    dock.jobs_panel.fetch_check.setChecked(True)     # as for a backend on another machine: files come via FetchArtefact
    with qtbot.waitSignal(dock.job_finished, timeout=30000) as again:
        dock.jobs_panel.jobs_load.click()
    assert again.args == [job_id, "SUCCEEDED"]
    groups = [g for g in QgsProject.instance().layerTreeRoot().findGroups() if job_id in g.name()]
    assert len(groups) == 1
    reloaded = dock.results
    cache = Path(dock.settings.cache_dir) / job_id
    assert not reloaded.source.local and reloaded.source.folder == cache
    mask = reloaded.layers["real_mask"]
    assert Path(mask.source()).is_relative_to(cache) and mask.isValid()
    assert isinstance(mask.renderer(), QgsPalettedRasterRenderer)
    assert mask.dataProvider().sample(mask.extent().center(), 1)[1]        # the fetched tiles are readable
    assert reloaded.layers["tiles"].featureCount() == 8
    assert dock.report_panel.path == str(cache / "report.html")


# ------------------------------------------------------------------ cancel
def test_cancel_mid_run_cancels_the_backend_job(server, dock, qgis_iface, qtbot):
    layer = add_raster(server.raster)
    dock.input_panel.raster_combo.setLayer(layer)
    dock.area_panel.set_area_mode("extent")
    qgis_iface.mapCanvas().setDestinationCrs(layer.crs())
    qgis_iface.mapCanvas().setExtent(layer.extent())
    dock.area_panel.tile_size.setValue(32)                                  # 64 tiles, 8 engine batches
    dock.stages_panel.set_engine("segment", "test-bright", {"sleep": "0.1"})  # ~6 s of segmenting
    dock.stages_panel.set_engine("synthesise", "test-palette", enabled=False)
    tiles_seen = []
    task = dock.run_job()
    task.job_event.connect(lambda ev: tiles_seen.append(ev) if ev.WhichOneof("event") == "progress" else None)
    qtbot.waitUntil(lambda: len(tiles_seen) >= 1 and dock.job_id != "", timeout=20000)
    job_id = dock.job_id
    with qtbot.waitSignal(dock.job_finished, timeout=30000) as finished:
        dock.run_panel.cancel_button.click()
    assert finished.args == [job_id, "CANCELLED"]
    with BackendClient(server.address, server.token) as c:
        assert state_name(c.get_job(job_id).state) == "CANCELLED"
    assert dock.is_idle() and dock.run_panel.state_label.text().startswith("idle")
    assert dock.run_panel.run_button.isEnabled() and not dock.run_panel.cancel_button.isEnabled()


# ------------------------------------------------------------------ errors
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_backend_not_running_is_reported(server, dock, qgis_iface, qtbot):
    layer = add_raster(server.raster)
    dock.input_panel.raster_combo.setLayer(layer)
    dock.area_panel.set_drawn_rectangle(layer.extent(), layer.crs())
    dock.backend_panel.address.setText(f"127.0.0.1:{free_port()}")
    with qtbot.waitSignal(dock.job_finished, timeout=20000):
        dock.run_job()
    assert any(m.startswith("Backend not running:") for m in critical(qgis_iface)), critical(qgis_iface)
    assert dock.is_idle()
    dock.backend_panel.check_health()
    qtbot.waitUntil(lambda: dock.backend_panel.health == "down", timeout=5000)


def test_bad_token_is_reported(server, dock, qgis_iface, qtbot):
    layer = add_raster(server.raster)
    dock.input_panel.raster_combo.setLayer(layer)
    dock.area_panel.set_drawn_rectangle(layer.extent(), layer.crs())
    dock.backend_panel.set_token("not-the-token")
    with qtbot.waitSignal(dock.job_finished, timeout=20000):
        dock.run_job()
    assert any(m.startswith("Bad token:") for m in critical(qgis_iface)), critical(qgis_iface)


def test_invalid_area_is_reported(server, dock, qgis_iface):
    layer = add_raster(server.raster)
    dock.input_panel.raster_combo.setLayer(layer)
    e = layer.extent()
    far = QgsRectangle(e.xMaximum() + 1000, e.yMaximum() + 1000, e.xMaximum() + 2000, e.yMaximum() + 2000)
    dock.area_panel.set_drawn_rectangle(far, layer.crs())
    assert dock.run_job() is None
    assert any(m.startswith("Invalid area:") and "does not overlap" in m for m in critical(qgis_iface))
    clear_bar(qgis_iface)
    dock.area_panel.set_drawn_rectangle(QgsRectangle(e.xMinimum(), e.yMinimum(), e.xMinimum(), e.yMaximum()), layer.crs())
    assert dock.run_job() is None
    assert any(m.startswith("Invalid area:") and "empty" in m for m in critical(qgis_iface))


def test_invalid_area_from_the_backend_is_reported(server, dock, qgis_iface, qtbot):
    """The backend's own INVALID_ARGUMENT on the aoi reaches the bar as "Invalid area" (dock checks bypassed)."""
    from plugin.job_request import JobRequest, StageChoice
    from plugin.tasks.job_task import JobTask

    spec = JobRequest(raster_path=str(server.raster), band_count=4, bbox=(0, 0, 10, 10), aoi_crs="EPSG:32618",
                      tile_size=128, stages={"segment": StageChoice("test-bright")}).check().to_proto()
    client = dock.client()
    with qtbot.waitSignal(dock.job_finished, timeout=20000):
        dock._watch_task(JobTask(client, spec=spec), client)
    msgs = critical(qgis_iface)
    assert any(m.startswith("Invalid area:") and "outside the raster" in m for m in msgs), msgs


def test_crs_mismatch_is_reported(server, dock, qgis_iface):
    layer = add_raster(server.raster)
    dock.input_panel.raster_combo.setLayer(layer)
    aoi = QgsVectorLayer("Polygon?field=id:integer", "aoi", "memory")
    aoi.setCrs(QgsCoordinateReferenceSystem())
    f = QgsFeature(aoi.fields())
    f.setGeometry(QgsGeometry.fromRect(layer.extent()))
    aoi.dataProvider().addFeatures([f])
    QgsProject.instance().addMapLayer(aoi)
    aoi.selectAll()
    dock.area_panel.polygon_combo.setLayer(aoi)
    dock.area_panel.set_area_mode("selection")
    assert dock.run_job() is None
    assert any(m.startswith("CRS mismatch:") for m in critical(qgis_iface)), critical(qgis_iface)


def test_band_mapping_missing_is_reported(server, dock, qgis_iface):
    layer = add_raster(server.raster)
    dock.input_panel.raster_combo.setLayer(layer)
    dock.area_panel.set_drawn_rectangle(layer.extent(), layer.crs())
    dock.input_panel.set_bands(-1, 2, 3, 4)     # red "not set"
    assert dock.run_job() is None
    assert any(m.startswith("Band mapping missing:") and "red" in m for m in critical(qgis_iface))
    assert QgsApplication.taskManager().countActiveTasks() == 0


def test_remote_mode_uploads_the_raster_and_fetches_results(server, dock, qgis_iface, qtbot, tmp_path):
    """A raster the backend cannot read (outside its roots): refused as is, fine once uploaded."""
    outside = sample_raster(tmp_path / "elsewhere", size=128, name="local_only.tif")
    layer = add_raster(outside)
    dock.input_panel.raster_combo.setLayer(layer)
    dock.area_panel.set_drawn_rectangle(layer.extent(), layer.crs())
    dock.area_panel.tile_size.setValue(64)
    for stage in ("synthesise", "caption", "ground"):
        dock.stages_panel.set_engine(stage, TEST_ENGINES[stage], enabled=False)
    with qtbot.waitSignal(dock.job_finished, timeout=20000):
        dock.run_job()
    assert any(m.startswith("Raster not allowed:") and "--allow-root" in m for m in critical(qgis_iface)), \
        critical(qgis_iface)
    dock.jobs_panel.fetch_check.setChecked(True)
    with qtbot.waitSignal(dock.job_finished, timeout=30000) as finished:
        dock.run_job()
    assert finished.args[1] == "SUCCEEDED", critical(qgis_iface)
    with BackendClient(server.address, server.token) as c:
        info = c.get_job(finished.args[0])
    assert info.spec.upload_id and not info.spec.raster_path
    res = dock.results
    mask = res.layers["real_mask"]
    assert Path(mask.source()).is_relative_to(Path(dock.settings.cache_dir))
    assert isinstance(mask.renderer(), QgsPalettedRasterRenderer) and res.layers["tiles"].featureCount() == 4


def test_drawing_a_rectangle_sets_the_area_in_the_canvas_crs(dock, qgis_iface):
    canvas = qgis_iface.mapCanvas()
    canvas.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:3857"))
    dock.area_panel.set_area_mode("extent")
    dock.area_panel.start_drawing()
    assert canvas.mapTool() is dock.area_panel.map_tool and dock.area_panel.area_mode() == "rectangle"
    dock.area_panel.map_tool.extentChanged.emit(QgsRectangle(1, 2, 3, 4))
    area = dock.area_panel.current_area()
    assert area.bbox == (1, 2, 3, 4) and area.crs_text == "EPSG:3857"
    dock.shutdown()
    assert canvas.mapTool() is not dock.area_panel.map_tool


# ------------------------------------------------------------------ tile filter, export
def test_tile_filter_reaches_each_variant_and_export_writes_a_training_set(server, dock, qgis_iface, qtbot,
                                                                           tmp_path):
    import sys

    layer = add_raster(server.raster)
    dock.input_panel.raster_combo.setLayer(layer)
    dock.area_panel.set_drawn_rectangle(layer.extent(), layer.crs())
    dock.area_panel.tile_size.setValue(128)
    dock.synthesis_panel.variants.setValue(2)
    with qtbot.waitSignal(dock.job_finished, timeout=60000) as finished:
        dock.run_job()
    assert finished.args[1] == "SUCCEEDED", critical(qgis_iface)
    tiles = dock.results.layers["tiles"]
    assert tiles.featureCount() == 12                       # 4 real + 2 x 4 synthetic, lying on each other
    filters = [dock.jobs_panel.tile_filter.itemText(i) for i in range(dock.jobs_panel.tile_filter.count())]
    assert filters == ["all tiles", "real tiles", "synthetic tiles (all variants)", "synthetic variant 1",
                       "synthetic variant 2"]
    dock.jobs_panel.set_tile_filter("synthetic", 2)
    feats = list(tiles.getFeatures())
    assert len(feats) == 4 and {(f["kind"], f["variant"]) for f in feats} == {("synthetic", 2)}
    dock.jobs_panel.set_tile_filter("real")
    assert {f["kind"] for f in tiles.getFeatures()} == {"real"} and tiles.featureCount() == 4
    dock.jobs_panel.set_tile_filter("")
    assert tiles.featureCount() == 12
    # export from the dock: `groundsynth export` with the backend's Python
    bp = dock.backend_panel
    bp.mode.setCurrentIndex(bp.mode.findData("python"))
    bp.python.setText(sys.executable)
    out = tmp_path / "dataset"
    task = dock.export_job(str(out))
    assert task is not None
    with qtbot.waitSignal(task.ended, timeout=60000) as ended:
        pass
    assert ended.args == [True, ""], task.output[-20:]
    assert (out / "dataset.csv").exists() and len(list((out / "images").rglob("*.png"))) == 12
    assert any(m.startswith("Export:") and str(out) in m for m in bar_messages(qgis_iface, Qgis.MessageLevel.Success))


# ------------------------------------------------------------------ a layer that is not a file
def make_xyz_tiles(folder: Path, zoom: int = 14) -> Path:
    """2 x 2 PNG tiles of an XYZ service around (0, 0) in EPSG:3857, with colour blocks."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    n = 2 ** zoom
    for x in (n // 2, n // 2 + 1):
        for y in (n // 2 - 1, n // 2):
            blocks = (np.add.outer(np.arange(256) // 40, np.arange(256) // 64) % 5) * 50 + 20
            rgb = np.stack([blocks + rng.integers(0, 20, blocks.shape)] * 3, axis=-1).clip(0, 255).astype("uint8")
            rgb[..., 1] = np.roll(rgb[..., 1], 30, axis=0)
            (folder / str(zoom) / str(x)).mkdir(parents=True, exist_ok=True)
            Image.fromarray(rgb).save(folder / str(zoom) / str(x) / f"{y}.png")
    return folder


def test_an_xyz_layer_is_written_to_a_geotiff_then_run(server, dock, qgis_iface, qtbot, tmp_path):
    import rasterio

    tiles = make_xyz_tiles(tmp_path / "xyz")
    layer = QgsRasterLayer(f"type=xyz&url=file://{tiles}/{{z}}/{{x}}/{{y}}.png&zmin=14&zmax=14", "xyz tiles", "wms")
    assert layer.isValid()
    QgsProject.instance().addMapLayer(layer)
    dock.input_panel.raster_combo.setLayer(layer)
    qtbot.waitUntil(lambda: dock.input_panel.needs_render(), timeout=2000)
    assert not dock.input_panel.resolution.isHidden()
    assert not any(c.isEnabled() for c in dock.input_panel.band_combos.values())
    dock.input_panel.resolution.setValue(10.0)
    dock.area_panel.set_drawn_rectangle(QgsRectangle(100, -2000, 2300, 2000), QgsCoordinateReferenceSystem("EPSG:3857"))
    dock.area_panel.tile_size.setValue(128)
    for stage in ("synthesise", "caption", "ground"):
        dock.stages_panel.set_engine(stage, TEST_ENGINES[stage], enabled=False)
    with qtbot.waitSignal(dock.job_finished, timeout=60000) as finished:
        assert dock.run_job() is None             # first the layer is written to a GeoTIFF (a task)
        assert dock.render_task is not None and not dock.is_idle(), critical(qgis_iface)
    assert finished.args[1] == "SUCCEEDED", critical(qgis_iface)
    with BackendClient(server.address, server.token) as c:
        spec = c.get_job(finished.args[0]).spec
    written = Path(spec.raster_path)
    assert written.parent == (server.workspace / "inputs").resolve() and written.suffix == ".tif"
    with rasterio.open(written) as ds:
        assert (ds.width, ds.height) == (220, 400) and ds.count >= 3 and ds.crs.to_epsg() == 3857
        assert ds.read(1).std() > 0                               # real pixels, not an empty canvas
    assert (spec.bands.red, spec.bands.green, spec.bands.blue, spec.bands.nir) == (1, 2, 3, -1)
    assert isinstance(dock.results.layers["real_mask"].renderer(), QgsPalettedRasterRenderer)


# ------------------------------------------------------------------ DeleteJob from the job list
def test_delete_job_removes_a_finished_job_and_its_group_and_refuses_a_running_one(server, dock, qgis_iface,
                                                                                  qtbot, monkeypatch):
    import grpc
    from qgis.PyQt.QtWidgets import QMessageBox

    layer = add_raster(server.raster)
    dock.input_panel.raster_combo.setLayer(layer)
    dock.area_panel.set_drawn_rectangle(layer.extent(), layer.crs())
    for stage in ("synthesise", "caption", "ground"):
        dock.stages_panel.set_engine(stage, TEST_ENGINES[stage], enabled=False)
    with qtbot.waitSignal(dock.job_finished, timeout=30000) as finished:
        dock.run_job()
    done_id = finished.args[0]
    assert finished.args[1] == "SUCCEEDED", critical(qgis_iface)
    group_name = dock.results.group.name()
    with BackendClient(server.address, server.token) as c:
        job_dir = Path(c.get_job(done_id).output_dir)
    assert job_dir.is_dir()
    # a running job: the list shows it, Delete is greyed out and the dock refuses it without asking the backend
    dock.area_panel.tile_size.setValue(32)
    dock.stages_panel.set_engine("segment", "test-bright", {"sleep": "0.1"})
    task = dock.run_job()
    qtbot.waitUntil(lambda: dock.job_id not in ("", done_id), timeout=20000)
    running_id = dock.job_id
    dock.refresh_jobs()
    qtbot.waitUntil(lambda: dock.jobs_panel.jobs_combo.findData(running_id) >= 0, timeout=10000)
    panel = dock.jobs_panel
    panel.jobs_combo.setCurrentIndex(panel.jobs_combo.findData(running_id))
    assert not panel.jobs_delete.isEnabled()
    clear_bar(qgis_iface)
    assert dock.delete_job(running_id) is False
    assert any("only a finished job" in m for m in bar_messages(qgis_iface, Qgis.MessageLevel.Warning))
    with qtbot.waitSignal(dock.job_finished, timeout=30000):
        task.cancel()
    # the finished job: "No" in the confirm dialog keeps it, "Yes" deletes files, rows and its layer group
    dock.refresh_jobs()
    qtbot.waitUntil(lambda: panel.job_state(running_id) == "CANCELLED", timeout=10000)
    panel.jobs_combo.setCurrentIndex(panel.jobs_combo.findData(done_id))
    assert panel.jobs_delete.isEnabled()
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.No)
    panel.jobs_delete.click()
    assert job_dir.is_dir() and QgsProject.instance().layerTreeRoot().findGroup(group_name) is not None
    cached = Path(dock.settings.cache_dir) / done_id / "real_mask.vrt"      # as remote mode fetches it
    cached.parent.mkdir(parents=True)
    cached.write_text("<VRTDataset/>")
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    with qtbot.waitSignal(dock.job_deleted, timeout=20000) as deleted:
        panel.jobs_delete.click()
    assert deleted.args == [done_id, True]
    assert not job_dir.exists() and not cached.parent.exists() and QgsProject.instance().layerTreeRoot().findGroup(group_name) is None
    assert panel.jobs_combo.findData(done_id) < 0 and all(r.job_id != done_id for r in dock.all_results)
    assert any(m.startswith("Delete job:") and done_id in m
               for m in bar_messages(qgis_iface, Qgis.MessageLevel.Success))
    with BackendClient(server.address, server.token) as c, pytest.raises(grpc.RpcError) as err:
        c.get_job(done_id)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    # a job someone else deleted meanwhile: the backend's NOT_FOUND reaches the message bar
    with BackendClient(server.address, server.token) as c:
        c.delete_job(running_id)
    with qtbot.waitSignal(dock.job_deleted, timeout=20000) as deleted:
        dock.delete_job(running_id, confirm=False)
    assert deleted.args == ["", False]
    assert any(m.startswith("Not found:") and running_id in m for m in critical(qgis_iface)), critical(qgis_iface)


# ------------------------------------------------------------------ reference samples with the job
def test_reference_samples_go_with_the_job_local_file_and_remote_inline(server, dock, qgis_iface, qtbot):
    import json

    layer = add_raster(server.raster)
    dock.input_panel.raster_combo.setLayer(layer)
    dock.area_panel.set_drawn_rectangle(layer.extent(), layer.crs())
    for stage in ("synthesise", "caption", "ground"):
        dock.stages_panel.set_engine(stage, TEST_ENGINES[stage], enabled=False)
    # digitised on the map, in another CRS than the raster's: one point in each 128 px tile
    e = layer.extent()
    to_wgs = QgsCoordinateTransform(layer.crs(), QgsCoordinateReferenceSystem("EPSG:4326"), QgsProject.instance())
    panel = dock.reference_panel
    for i, (fx, fy) in enumerate(((0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75))):
        panel.class_picker.setCurrentText(("Water", "Crop", "Tree", "Grass")[i])
        p = to_wgs.transform(e.xMinimum() + fx * e.width(), e.yMinimum() + fy * e.height())
        panel.add_point(p, QgsCoordinateReferenceSystem("EPSG:4326"))
    assert panel.in_use()
    for remote in (False, True):
        dock.jobs_panel.fetch_check.setChecked(remote)
        with qtbot.waitSignal(dock.job_finished, timeout=30000) as finished:
            dock.run_job()
        assert finished.args[1] == "SUCCEEDED", critical(qgis_iface)
        with BackendClient(server.address, server.token) as c:
            info = c.get_job(finished.args[0])
        if remote:      # the backend cannot read this machine's files: the samples went inline
            assert not info.spec.reference.path and len(info.spec.reference.features) == 4
            assert info.spec.reference.features[0].wkt.upper().startswith("POINT")
        else:           # the GeoJSON in <workspace>/inputs, which the backend reads
            assert Path(info.spec.reference.path).parent == server.workspace / "inputs"
        doc = json.loads((Path(info.output_dir) / "report.json").read_text())
        assert doc["accuracy_assessment"], doc.get("accuracy_assessment")
        tiles = dock.results.layers["tiles"]
        assert sum(f["ref_points"] or 0 for f in tiles.getFeatures()) == 4
