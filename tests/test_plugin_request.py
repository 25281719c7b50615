"""JobRequest checks and its JobSpec, Processing's parameter strings, area checks and error texts."""
from pathlib import Path

import pytest
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsRectangle,
    QgsVectorLayer,
)

from groundsynth.api.v1.convert import spec_from_proto
from plugin import area
from plugin.errors import AreaError, BandMappingError, CrsMismatchError, user_message
from plugin.job_request import JobRequest, StageChoice, parse_engines, parse_params, parse_targets
from tests.plugin_fixtures import FakeRpcError

ROOT = Path(__file__).resolve().parents[1]




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
