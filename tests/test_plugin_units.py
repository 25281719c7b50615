"""Plugin parts without a backend: styling, results from a fake event stream, requests, area checks,
JobTask cancel, error texts, packaging metadata and the Processing provider."""
from __future__ import annotations

import configparser
from pathlib import Path

import numpy as np
import pytest
from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsGraduatedSymbolRenderer,
    QgsMultiBandColorRenderer,
    QgsPalettedRasterRenderer,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsVectorLayer,
)

from groundsynth.api.v1.convert import spec_from_proto
from groundsynth.request import classes as palette
from plugin import area, styling
from plugin.backend_api import pb
from plugin.errors import AreaError, BandMappingError, CrsMismatchError, user_message
from plugin.job_request import JobRequest, StageChoice, parse_engines, parse_params, parse_targets
from plugin.job_task import JobTask
from plugin.results import LIVE_TILES, ArtefactSource, JobResults
from tests.plugin_fixtures import FakeCall, FakeClient, FakeRpcError, sample_raster

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def job_dir(tmp_path_factory):
    """A job directory as the backend writes it: image, mask, tiles.gpkg, report.html."""
    import rasterio

    d = tmp_path_factory.mktemp("job")
    src = sample_raster(d, size=128)
    with rasterio.open(src) as ds:
        data = ds.read()
        profile = ds.profile
        b = ds.bounds
        crs_wkt = ds.crs.to_wkt()
    img = np.clip(data[:3].astype(np.float32) / 3000 * 255, 0, 255).astype(np.uint8)
    profile.update(count=3, dtype="uint8", nodata=None)
    with rasterio.open(d / "real_image.tif", "w", **profile) as dst:
        dst.write(img)
    mask = (np.arange(128 * 128).reshape(128, 128) // (128 * 128 // 7 + 1)).astype(np.uint8)
    mask[:4, :4] = 255
    profile.update(count=1, nodata=255)
    with rasterio.open(d / "real_mask.tif", "w", **profile) as dst:
        dst.write(mask, 1)
    (d / "report.html").write_text("<html><body><h1>GroundSynth report</h1><p>grounding_mean 42</p></body></html>")
    return {"dir": d, "bounds": b, "crs": crs_wkt}


def tile_event(seq, tile_id, row, col, bounds, crs, grounding, kind="real", variant=0):
    t = pb.TileResult(tile_id=tile_id, kind=kind, row=row, col=col, variant=variant,
                      footprint=pb.Footprint(crs=crs, bounds=pb.BBox(minx=bounds[0], miny=bounds[1], maxx=bounds[2],
                                                                     maxy=bounds[3])),
                      composition={"Tree": 0.25, "Crop": 0.75}, captions=[f"cropland tile {tile_id}", "two"],
                      metrics={"grounding": grounding, "fidelity_miou": 0.5})
    return pb.JobEvent(job_id="job1", seq=seq, tile=t)


def write_tiles_gpkg(path: Path, bounds, crs_wkt):
    """A tiles.gpkg like the backend's (layer 'tiles')."""
    import fiona
    from fiona.crs import CRS

    minx, miny, maxx, maxy = bounds
    midx = (minx + maxx) / 2
    props = {"tile_id": "str", "kind": "str", "row": "int", "col": "int", "variant": "int", "source_tile": "str",
             "nodata": "int", **{styling.class_field(n): "float" for n in palette.CLASS_NAMES},
             **{f"caption_{i}": "str" for i in range(1, 6)}, "grounding": "float", "fidelity_miou": "float"}
    schema = {"geometry": "Polygon", "properties": props}
    with fiona.open(path, "w", driver="GPKG", layer="tiles", schema=schema, crs=CRS.from_wkt(crs_wkt)) as dst:
        for i, (x0, x1, g) in enumerate(((minx, midx, 20.0), (midx, maxx, 80.0))):
            rec = {k: None for k in props}
            rec.update(tile_id=f"r0000_c{i:04d}", kind="real", row=0, col=i, variant=0, source_tile="", nodata=0,
                       caption_1=f"farmland with a village {i}", grounding=g, fidelity_miou=0.4 + i / 10,
                       pct_crop=60.0, pct_tree=40.0)
            ring = [(x0, miny), (x1, miny), (x1, maxy), (x0, maxy), (x0, miny)]
            dst.write({"geometry": {"type": "Polygon", "coordinates": [ring]}, "properties": rec})


# ------------------------------------------------------------------ styling
def test_mask_style_has_the_palette_classes(qgis_new_project, job_dir):
    layer = QgsRasterLayer(str(job_dir["dir"] / "real_mask.tif"), "real_mask", "gdal")
    assert layer.isValid()
    styling.style_mask(layer)
    r = layer.renderer()
    assert isinstance(r, QgsPalettedRasterRenderer)
    got = [(c.value, c.color.name(), c.label) for c in r.classes()]
    want = [(i, palette.hex_color(i), palette.CLASS_NAMES[i]) for i in range(7)]
    assert got == want
    assert layer.dataProvider().sourceNoDataValue(1) == 255


def test_image_style_is_a_stretched_rgb(qgis_new_project, job_dir):
    layer = QgsRasterLayer(str(job_dir["dir"] / "real_image.tif"), "real_image", "gdal")
    styling.style_image(layer)
    r = layer.renderer()
    assert isinstance(r, QgsMultiBandColorRenderer)
    assert (r.redBand(), r.greenBand(), r.blueBand()) == (1, 2, 3)
    ce = r.redContrastEnhancement()
    assert 0 <= ce.minimumValue() < ce.maximumValue() <= 255


def test_tiles_style_is_graduated_by_the_chosen_score_with_a_map_tip(qgis_new_project, job_dir, tmp_path):
    write_tiles_gpkg(tmp_path / "tiles.gpkg", job_dir["bounds"], job_dir["crs"])
    layer = QgsVectorLayer(f"{tmp_path / 'tiles.gpkg'}|layername=tiles", "tiles", "ogr")
    assert layer.isValid()
    assert styling.score_fields(layer) == ["grounding", "fidelity_miou"]
    r = styling.style_tiles(layer, "fidelity_miou")
    assert isinstance(layer.renderer(), QgsGraduatedSymbolRenderer)
    assert r.classAttribute() == "fidelity_miou" and len(r.ranges()) >= 1
    tip = layer.mapTipTemplate()
    assert '"caption_1"' in tip and "pct_crop" in tip and '"grounding"' in tip
    styling.style_tiles(layer, "grounding")
    assert layer.renderer().classAttribute() == "grounding"
    assert len(layer.renderer().ranges()) == 2                                    # at most one class per distinct score
    reds = [r.symbol().symbolLayer(0).strokeColor().red() for r in layer.renderer().ranges()]
    assert reds[0] > reds[1]                                                      # low = red end of the ramp


def test_tiles_style_with_one_score_value_is_one_class(qgis_new_project, job_dir, tmp_path):
    write_tiles_gpkg(tmp_path / "tiles.gpkg", job_dir["bounds"], job_dir["crs"])
    layer = QgsVectorLayer(f"{tmp_path / 'tiles.gpkg'}|layername=tiles", "tiles", "ogr")
    layer.startEditing()
    for f in layer.getFeatures():
        layer.changeAttributeValue(f.id(), layer.fields().indexOf("grounding"), 100.0)
    assert layer.commitChanges()
    r = styling.style_tiles(layer, "grounding")
    assert len(r.ranges()) == 1
    assert r.ranges()[0].symbol().symbolLayer(0).strokeColor().name() == "#1a9641"     # the "good" end


# ------------------------------------------------------------------ results from a fake stream
def test_results_follow_the_event_stream(qgis_new_project, job_dir, tmp_path, qtbot):
    jd = job_dir["dir"]
    write_tiles_gpkg(jd / "tiles.gpkg", job_dir["bounds"], job_dir["crs"])
    b = job_dir["bounds"]
    source = ArtefactSource("job1", str(jd))
    assert source.local
    res = JobResults("job1", source, score="grounding", project=QgsProject.instance())
    res.handle(tile_event(2, "r0000_c0000", 0, 0, (b.left, b.bottom, (b.left + b.right) / 2, b.top), job_dir["crs"],
                          30.0))
    live = res.layers[LIVE_TILES]
    assert live.featureCount() == 1
    f = next(live.getFeatures())
    assert f["caption_1"] == "cropland tile r0000_c0000" and f["grounding"] == 30.0 and f["pct_crop"] == 75.0
    assert live.renderer().classAttribute() == "grounding"
    res.handle(pb.JobEvent(job_id="job1", seq=3, layer=pb.LayerReady(layer="real_mask", path="real_mask.tif",
                                                                       format="vrt")))
    res.handle(pb.JobEvent(job_id="job1", seq=4, layer=pb.LayerReady(layer="real_image", path="real_image.tif",
                                                                       format="vrt")))
    res.handle(pb.JobEvent(job_id="job1", seq=5, layer=pb.LayerReady(layer="tiles", path="tiles.gpkg",
                                                                       format="gpkg")))
    with qtbot.waitSignal(res.report_ready, timeout=2000) as sig:
        res.handle(pb.JobEvent(job_id="job1", seq=6, report=pb.ReportReady(html_path="report.html",
                                                                           json_path="report.json")))
    assert sig.args == [str(jd / "report.html")]
    # one group for the job, tiles on top, the live layer replaced by the gpkg
    names = [n.name() for n in res.group.children()]
    assert names == ["tiles", "real_mask", "real_image"]
    assert res.group.name() == "GroundSynth job1"
    assert isinstance(res.layers["real_mask"].renderer(), QgsPalettedRasterRenderer)
    assert isinstance(res.layers["real_image"].renderer(), QgsMultiBandColorRenderer)
    tiles = res.layers["tiles"]
    assert tiles.renderer().classAttribute() == "grounding"
    res.set_score("fidelity_miou")
    assert tiles.renderer().classAttribute() == "fidelity_miou"
    res.remove()
    assert QgsProject.instance().layerTreeRoot().findGroup("GroundSynth job1") is None


def test_remote_source_fetches_vrt_and_its_tiles(tmp_path):
    job = tmp_path / "server_job"
    (job / "tiles" / "mask").mkdir(parents=True)
    (job / "tiles" / "mask" / "a.tif").write_bytes(b"A")
    (job / "real_mask.vrt").write_text(
        '<VRTDataset><VRTRasterBand><SimpleSource><SourceFilename relativeToVRT="1">tiles/mask/a.tif'
        '</SourceFilename></SimpleSource></VRTRasterBand></VRTDataset>')

    class Fetcher:
        fetched = []

        def fetch_artefact(self, job_id, rel, dest):
            self.fetched.append(rel)
            Path(dest).parent.mkdir(parents=True, exist_ok=True)
            Path(dest).write_bytes((job / rel).read_bytes())

    f = Fetcher()
    src = ArtefactSource("j", "/nonexistent/on/this/machine", client=f, cache_dir=tmp_path / "cache")
    assert not src.local
    p = src.path("real_mask.vrt")
    assert p == tmp_path / "cache" / "j" / "real_mask.vrt"
    assert f.fetched == ["real_mask.vrt", "tiles/mask/a.tif"]
    assert (tmp_path / "cache" / "j" / "tiles" / "mask" / "a.tif").read_bytes() == b"A"


# ------------------------------------------------------------------ requests
def test_request_to_proto_is_a_valid_backend_spec():
    req = JobRequest(raster_path="/data/x.tif", red=3, green=2, blue=1, nir=4, band_count=4,
                     bbox=(0, 0, 10, 10), aoi_crs="EPSG:32618", tile_size=128,
                     stages={"segment": StageChoice("spectral", {"k": "3"}), "synthesise": StageChoice()},
                     variants=2, seed=9, mask_strategy="boost", boost_targets={"Shrub": 0.3}).check()
    spec = spec_from_proto(req.to_proto()).normalised()
    assert (spec.bands.red, spec.bands.nir) == (3, 4)
    assert spec.aoi.bbox == (0, 0, 10, 10) and spec.aoi.crs == "EPSG:32618"
    assert [s.stage for s in spec.stages] == ["segment", "synthesise"]
    assert spec.stages[0].engine == "spectral" and spec.stages[0].params == {"k": "3"}
    assert spec.synthesis.variants == 2 and spec.synthesis.boost_targets == {"Shrub": 0.3}
    assert spec.seed == 9 and spec.tile_size == 128


@pytest.mark.parametrize("change, error, text", [
    (dict(nir=5), BandMappingError, "NIR is band 5"),
    (dict(red=0), BandMappingError, "red band is not set"),
    (dict(green=7), BandMappingError, "only 4 band"),
    (dict(bbox=(5, 0, 5, 10)), AreaError, "empty"),
    (dict(bbox=None), AreaError, "no area of interest"),
])
def test_request_checks_name_the_problem(change, error, text):
    kwargs = dict(raster_path="/x.tif", band_count=4, bbox=(0, 0, 1, 1))
    kwargs.update(change)
    with pytest.raises(error, match=text):
        JobRequest(**kwargs).check()


def test_processing_strings_parse():
    assert parse_engines("segment=spectral; caption=composition") == {"segment": "spectral",
                                                                      "caption": "composition"}
    assert parse_params("segment.sleep=0.5\nground.x=1") == {"segment": {"sleep": "0.5"}, "ground": {"x": "1"}}
    assert parse_targets("Shrub=0.3, Water=0.1") == {"Shrub": 0.3, "Water": 0.1}
    with pytest.raises(Exception, match="unknown stage"):
        parse_params("paint.x=1")


# ------------------------------------------------------------------ area
def test_area_checks_crs_and_overlap(qgis_new_project):
    utm = QgsCoordinateReferenceSystem("EPSG:32618")
    raster_extent = QgsRectangle(500000, 4000000, 502560, 4002560)
    with pytest.raises(CrsMismatchError, match="no valid CRS"):
        area.from_rectangle(QgsRectangle(0, 0, 1, 1), QgsCoordinateReferenceSystem())
    with pytest.raises(AreaError, match="empty"):
        area.from_rectangle(QgsRectangle(1, 1, 1, 1), utm)
    far = area.from_rectangle(QgsRectangle(0, 0, 10, 10), utm)
    with pytest.raises(AreaError, match="does not overlap"):
        area.check_against_raster(far, utm, raster_extent)
    # a WGS84 rectangle over the raster passes after transformation
    wgs = QgsCoordinateReferenceSystem("EPSG:4326")
    inside = area.from_rectangle(QgsRectangle(-75.0, 36.13, -74.98, 36.15), wgs)
    area.check_against_raster(inside, utm, raster_extent)
    assert inside.crs_text == "EPSG:4326"


def test_area_from_selected_polygons(qgis_new_project):
    layer = QgsVectorLayer("Polygon?crs=EPSG:32618&field=id:integer", "aoi", "memory")
    from qgis.core import QgsFeature, QgsGeometry

    feats = []
    for i, rect in enumerate((QgsRectangle(0, 0, 10, 10), QgsRectangle(20, 0, 30, 10))):
        f = QgsFeature(layer.fields())
        f["id"] = i
        f.setGeometry(QgsGeometry.fromRect(rect))
        feats.append(f)
    layer.dataProvider().addFeatures(feats)
    with pytest.raises(AreaError, match="no polygon selected"):
        area.from_features(layer)
    layer.selectByIds([f.id() for f in layer.getFeatures() if f["id"] == 1])
    a = area.from_features(layer)
    assert a.bbox is None and a.crs_text == "EPSG:32618"
    assert a.geometry().boundingBox() == QgsRectangle(20, 0, 30, 10)
    nocrs = QgsVectorLayer("Polygon?field=id:integer", "aoi", "memory")
    nocrs.setCrs(QgsCoordinateReferenceSystem())
    with pytest.raises(CrsMismatchError):
        area.from_features(nocrs)


# ------------------------------------------------------------------ errors
def test_grpc_errors_become_clear_messages():
    import grpc

    assert user_message(FakeRpcError(grpc.StatusCode.UNAVAILABLE, "connect failed"), "127.0.0.1:1")[0] == \
        "Backend not running"
    assert user_message(FakeRpcError(grpc.StatusCode.UNAUTHENTICATED, "bad token"))[0] == "Bad token"
    assert user_message(FakeRpcError(grpc.StatusCode.INVALID_ARGUMENT, "aoi: outside the raster")) == \
        ("Invalid area", "aoi: outside the raster")
    assert user_message(FakeRpcError(grpc.StatusCode.INVALID_ARGUMENT, "bands.nir: beyond"))[0] == \
        "Band mapping missing"


# ------------------------------------------------------------------ task
def _events(n_tiles=3):
    evs = [pb.JobEvent(job_id="job1", seq=1, accepted=pb.Accepted(job_id="job1", tile_count=n_tiles,
                                                                   output_dir="/nowhere"))]
    for i in range(n_tiles):
        evs.append(pb.JobEvent(job_id="job1", seq=2 + i, progress=pb.Progress(stage="segment", done=i + 1,
                                                                              total=n_tiles)))
    evs.append(pb.JobEvent(job_id="job1", seq=10, done=pb.Done(state=pb.SUCCEEDED, real_tiles=n_tiles)))
    return evs


def test_task_relays_events_as_signals(qgis_app, qtbot):
    task = JobTask(FakeClient(FakeCall(_events())), spec=pb.JobSpec())
    got, progress = [], []
    task.job_event.connect(lambda ev: got.append(ev.WhichOneof("event")))
    task.stage_progress.connect(lambda *a: progress.append(a))
    with qtbot.waitSignal(task.taskCompleted, timeout=5000):
        QgsApplication.taskManager().addTask(task)
    qtbot.waitUntil(lambda: len(got) == 5, timeout=2000)
    assert got == ["accepted", "progress", "progress", "progress", "done"]
    assert progress[-1] == ("segment", 3, 3)
    assert task.final_state == "SUCCEEDED" and task.job_id == "job1"


def test_task_cancel_asks_the_backend_and_ends(qgis_app, qtbot):
    evs = _events(5)
    cancelled = pb.JobEvent(job_id="job1", seq=11, done=pb.Done(state=pb.CANCELLED))
    call = FakeCall(evs[:2] + [cancelled], block_after=2)
    client = FakeClient(call, on_cancel=call.release.set)   # the backend ends the stream when told to cancel
    task = JobTask(client, spec=pb.JobSpec())
    seen, ended = [], []
    task.job_event.connect(lambda ev: seen.append(ev.WhichOneof("event")))
    task.taskCompleted.connect(lambda: ended.append("completed"))
    task.taskTerminated.connect(lambda: ended.append("terminated"))
    QgsApplication.taskManager().addTask(task)
    qtbot.waitUntil(lambda: "progress" in seen, timeout=5000)
    task.cancel()
    qtbot.waitUntil(lambda: bool(ended), timeout=5000)
    assert seen[-1] == "done"
    assert client.cancelled_jobs == ["job1"]
    assert task.final_state == "CANCELLED"


def test_task_reports_grpc_errors(qgis_app, qtbot):
    import grpc

    class Failing(FakeClient):
        def submit(self, spec):
            raise FakeRpcError(grpc.StatusCode.UNAUTHENTICATED, "missing or bad token")

    task = JobTask(Failing(FakeCall([])), spec=pb.JobSpec())
    with qtbot.waitSignal(task.failed, timeout=5000) as sig:
        QgsApplication.taskManager().addTask(task)
    assert sig.args[0] == "Bad token"


# ------------------------------------------------------------------ packaging / provider
def test_metadata_has_the_required_fields():
    cp = configparser.ConfigParser()
    cp.read(ROOT / "metadata.txt")
    g = cp["general"]
    for key in ("name", "qgisMinimumVersion", "description", "about", "version", "author", "email", "repository"):
        assert g.get(key), key
    assert g["qgisMinimumVersion"] == "3.22" and g["hasProcessingProvider"] == "yes"
    assert (ROOT / "plugin" / g["icon"]).exists()


def test_provider_lists_a_full_job_and_each_stage(qgis_processing):
    from plugin.processing_provider import GroundSynthProvider

    provider = GroundSynthProvider()
    assert QgsApplication.processingRegistry().addProvider(provider)
    try:
        ids = sorted(a.id() for a in provider.algorithms())
        assert ids == ["groundsynth:caption", "groundsynth:ground", "groundsynth:runjob", "groundsynth:segment",
                       "groundsynth:synthesise"]
        alg = QgsApplication.processingRegistry().algorithmById("groundsynth:segment")
        names = {p.name() for p in alg.parameterDefinitions()}
        assert {"INPUT", "EXTENT", "AOI_LAYER", "RED", "NIR", "ADDRESS", "TOKEN_FILE"} <= names
        assert "VARIANTS" not in names
        full = QgsApplication.processingRegistry().algorithmById("groundsynth:runjob")
        assert {"VARIANTS", "MASK_STRATEGY", "BOOST"} <= {p.name() for p in full.parameterDefinitions()}
        assert {o.name() for o in full.outputDefinitions()} >= {"OUTPUT_DIR", "TILES", "MASK", "REPORT", "JOB_ID"}
    finally:
        QgsApplication.processingRegistry().removeProvider(provider)


def test_param_form_has_a_widget_per_declared_type_and_sends_changes(qgis_app, qtbot):
    from qgis.gui import QgsFileWidget
    from qgis.PyQt.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QLineEdit, QSpinBox

    from plugin.param_widgets import ParamForm

    eng = pb.EngineInfo(name="e", params=[
        pb.ParamSpec(name="k", type="int", default="3", has_range=True, min=1, max=9),
        pb.ParamSpec(name="alpha", type="float", default="0.5", has_range=True, min=0, max=1),
        pb.ParamSpec(name="fast", type="bool", default="true"),
        pb.ParamSpec(name="mode", type="choice", default="a", choices=["a", "b"]),
        pb.ParamSpec(name="label", type="str", default="x"),
        pb.ParamSpec(name="weights", type="path", default=""),
    ])
    form = ParamForm(eng)
    qtbot.addWidget(form)
    kinds = {n: type(p.widget) for n, p in form.params.items()}
    assert kinds == {"k": QSpinBox, "alpha": QDoubleSpinBox, "fast": QCheckBox, "mode": QComboBox,
                     "label": QLineEdit, "weights": QgsFileWidget}
    assert form.params["k"].widget.maximum() == 9
    assert form.values() == {}                                 # defaults are not sent
    form.params["k"].widget.setValue(5)
    form.params["fast"].widget.setChecked(False)
    form.params["mode"].widget.setCurrentText("b")
    assert form.values() == {"k": "5", "fast": "false", "mode": "b"}
    assert form.values(changed_only=False)["alpha"] == "0.5"


def test_label_mosaic_is_styled_as_classes(qgis_new_project, job_dir):
    """The backend names the label mosaic 'real_labels' (real_labels.vrt): it is a class raster and must get
    the palette, not the RGB image style."""
    res = JobResults("jobL", ArtefactSource("jobL", str(job_dir["dir"])), project=QgsProject.instance())
    res.handle(pb.JobEvent(job_id="jobL", seq=1, layer=pb.LayerReady(layer="real_labels", path="real_mask.tif",
                                                                       format="vrt")))
    assert isinstance(res.layers["real_labels"].renderer(), QgsPalettedRasterRenderer)
    res.remove()
