"""Processing algorithms run through processing.run against a REAL backend (test engines)."""
from __future__ import annotations

from pathlib import Path

import pytest
from qgis.core import QgsApplication, QgsProcessingException, QgsRasterLayer, QgsVectorLayer

from tests.plugin_fixtures import sample_raster
from tests.server_fixture import start_server

ENGINES = "segment=test-bright; synthesise=test-palette; caption=test-count; ground=test-agree"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("proc_srv")
    srv = start_server(base / "workspace")
    srv.raster = sample_raster(srv.workspace / "data", size=256)
    yield srv
    srv.kill()


@pytest.fixture(scope="module")
def provider(qgis_processing):
    from plugin.processing.provider import GroundSynthProvider

    p = GroundSynthProvider()
    QgsApplication.processingRegistry().addProvider(p)
    yield p
    QgsApplication.processingRegistry().removeProvider(p)


def base_params(server, tmp_path, **extra):
    params = {"INPUT": str(server.raster), "RED": 1, "GREEN": 2, "BLUE": 3, "NIR": 4, "TILE_SIZE": 128,
              "ENGINES": ENGINES, "SEED": 3, "ADDRESS": server.address,
              "TOKEN_FILE": str(server.workspace / "token"), "CACHE_DIR": str(tmp_path / "cache")}
    params.update(extra)
    return params


def test_full_job_runs_through_processing_run(server, provider, tmp_path):
    import processing

    layer = QgsRasterLayer(str(server.raster), "s2", "gdal")
    e = layer.extent()
    extent = f"{e.xMinimum()},{e.xMaximum()},{e.yMinimum()},{e.yMaximum()} [EPSG:32618]"
    out = processing.run("groundsynth:runjob", base_params(server, tmp_path, EXTENT=extent, VARIANTS=1))
    assert out["STATE"] == "SUCCEEDED" and out["JOB_ID"] and out["TILE_COUNT"] == 4
    assert Path(out["OUTPUT_DIR"]).is_dir()
    tiles = QgsVectorLayer(out["TILES"], "tiles", "ogr")
    assert tiles.isValid() and tiles.featureCount() == 8          # 4 real + 4 synthetic
    assert {"caption_1", "grounding"} <= set(tiles.fields().names())
    mask = QgsRasterLayer(out["MASK"], "mask", "gdal")
    assert mask.isValid() and Path(out["MASK"]).exists()


def test_stage_algorithm_runs_only_its_stages(server, provider, tmp_path):
    import processing

    out = processing.run("groundsynth:segment", base_params(
        server, tmp_path, ENGINES="segment=test-bright", PARAMS="segment.sleep=0"))
    assert out["STATE"] == "SUCCEEDED"
    tiles = QgsVectorLayer(out["TILES"], "tiles", "ogr")
    feats = list(tiles.getFeatures())
    assert len(feats) == 4 and all(f["kind"] == "real" for f in feats)
    assert not any(f["caption_1"] for f in feats)                # no caption stage ran
    assert Path(out["MASK"]).exists()


def test_processing_reports_a_bad_token(server, provider, tmp_path):
    import processing

    bad = tmp_path / "token.txt"
    bad.write_text("nope")
    with pytest.raises(QgsProcessingException, match="Bad token"):
        processing.run("groundsynth:segment", base_params(server, tmp_path, ENGINES="segment=test-bright",
                                                          TOKEN_FILE=str(bad)))


def test_algorithm_runs_inside_a_processing_model(server, provider, tmp_path):
    """The graphical modeller's engine: a model with a GroundSynth child, run through processing.run."""
    import processing
    from qgis.core import (
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelChildParameterSource,
        QgsProcessingModelOutput,
        QgsProcessingModelParameter,
        QgsProcessingParameterRasterLayer,
    )

    alg = QgsApplication.processingRegistry().algorithmById("groundsynth:segment")
    assert alg.flags() & alg.FlagSupportsBatch and not alg.flags() & alg.FlagHideFromModeler
    model = QgsProcessingModelAlgorithm("segment tiles", "test")
    model.addModelParameter(QgsProcessingParameterRasterLayer("raster", "raster"),
                            QgsProcessingModelParameter("raster"))
    child = QgsProcessingModelChildAlgorithm("groundsynth:segment")
    child.setChildId("seg")
    params = base_params(server, tmp_path, ENGINES="segment=test-bright")
    params.pop("INPUT")
    child.addParameterSources("INPUT", [QgsProcessingModelChildParameterSource.fromModelParameter("raster")])
    for key, value in params.items():
        child.addParameterSources(key, [QgsProcessingModelChildParameterSource.fromStaticValue(value)])
    out = QgsProcessingModelOutput("tiles_out")
    out.setChildOutputName("TILES")
    out.setChildId("seg")
    child.setModelOutputs({"tiles_out": out})
    model.addChildAlgorithm(child)
    result = processing.run(model, {"raster": str(server.raster)})
    tiles = QgsVectorLayer(result["seg:tiles_out"], "tiles", "ogr")
    assert tiles.isValid() and tiles.featureCount() == 4


def test_remote_flag_uploads_and_downloads(server, provider, tmp_path):
    import processing

    outside = sample_raster(tmp_path / "elsewhere", size=128, name="local_only.tif")
    params = base_params(server, tmp_path, INPUT=str(outside), ENGINES="segment=test-bright", REMOTE=True)
    out = processing.run("groundsynth:segment", params)
    assert out["STATE"] == "SUCCEEDED"
    assert Path(out["OUTPUT_DIR"]) == tmp_path / "cache" / out["JOB_ID"]
    assert QgsVectorLayer(out["TILES"], "tiles", "ogr").featureCount() == 1
    assert QgsRasterLayer(out["MASK"], "mask", "gdal").isValid()


def test_nir_left_empty_means_the_backend_default_not_rgb_only(server, provider, tmp_path):
    """A 4-band raster with the NIR parameter unset must keep its NIR band (backend default), not drop it."""
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback

    alg = QgsApplication.processingRegistry().createAlgorithmById("groundsynth:runjob")
    params = base_params(server, tmp_path)
    del params["NIR"]
    req = alg.build_request(params, QgsProcessingContext(), QgsProcessingFeedback())
    assert req.nir == 0 and req.to_proto().bands.nir == 0


def test_bands_left_out_default_to_red_green_blue_as_qgis_process_needs(server, provider, tmp_path):
    """`qgis_process run groundsynth:runjob -- INPUT=...` without RED/GREEN/BLUE (the documented example)."""
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback

    alg = QgsApplication.processingRegistry().createAlgorithmById("groundsynth:runjob")
    params = base_params(server, tmp_path)
    for key in ("RED", "GREEN", "BLUE", "NIR"):
        del params[key]
    ok, msg = alg.checkParameterValues(params, QgsProcessingContext())
    assert ok, msg
    req = alg.build_request(params, QgsProcessingContext(), QgsProcessingFeedback())
    assert (req.red, req.green, req.blue, req.nir) == (1, 2, 3, 0)


def _reference_layer(raster: Path, rows: list[tuple[float, float, str]]) -> QgsVectorLayer:
    """A memory point layer in EPSG:4326 (not the raster's CRS) of (column, row, class) in raster pixels."""
    import rasterio

    from tests.test_plugin_reference import layer_of, to_wgs84

    with rasterio.open(raster) as src:
        assert src.crs.to_epsg() == 32618
        points = [(to_wgs84(*src.xy(r, c)), v) for c, r, v in rows]
    return layer_of("Point", "EPSG:4326", [(f"POINT({x!r} {y!r})", {"label": v}) for (x, y), v in points])


def test_a_job_algorithm_sends_reference_samples_and_returns_the_accuracy(server, provider, tmp_path):
    import json

    import processing

    layer = _reference_layer(server.raster, [(20, 20, "Water"), (200, 40, "80"), (100, 220, "Tree")])
    out = processing.run("groundsynth:segment", base_params(
        server, tmp_path, ENGINES="segment=test-bright", PARAMS="segment.sleep=0", REFERENCE=layer,
        REFERENCE_CLASS="label"))
    assert out["STATE"] == "SUCCEEDED"
    doc = json.loads((Path(out["OUTPUT_DIR"]) / "report.json").read_text())
    assessed = doc["accuracy_assessment"]
    assert assessed["source"] == "inline" and assessed["all"]["n"] == 3
    assert out["OVERALL_ACCURACY"] == pytest.approx(assessed["all"]["overall_accuracy"])
    plain = processing.run("groundsynth:segment", base_params(server, tmp_path, ENGINES="segment=test-bright",
                                                              PARAMS="segment.sleep=0"))
    assert plain["STATE"] == "SUCCEEDED" and plain.get("OVERALL_ACCURACY") is None


def test_bad_reference_samples_are_refused_before_a_job_is_sent(server, provider, tmp_path):
    import processing

    bad = _reference_layer(server.raster, [(20, 20, "Snow")])
    with pytest.raises(QgsProcessingException, match="label = 'Snow' is neither"):
        processing.run("groundsynth:segment", base_params(server, tmp_path, ENGINES="segment=test-bright",
                                                          REFERENCE=bad, REFERENCE_CLASS="label"))
    with pytest.raises(QgsProcessingException, match="REFERENCE_CLASS.*has: label"):
        processing.run("groundsynth:segment", base_params(server, tmp_path, ENGINES="segment=test-bright",
                                                          REFERENCE=bad))
