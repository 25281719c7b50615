"""Reference samples through a real server: a file must lie under the allowed roots (PERMISSION_DENIED naming
reference.path otherwise, like the rasters), inline features (what the QGIS dock digitises) are assessed,
and a bad inline class fails the Submit naming the feature."""
import json
from pathlib import Path

import grpc
import pytest

from groundsynth.api.v1.contract import pb, rpc
from tests.server_fixture import make_test_raster, raster_bbox, start_server

SC = grpc.StatusCode


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    base = tmp_path_factory.mktemp("refsrv")
    workspace = base / "workspace"
    server = start_server(workspace, "--batch-size", "4")
    server.raster = make_test_raster(workspace / "data" / "src.tif", size=128)
    outside = base / "outside" / "ref.geojson"
    outside.parent.mkdir(parents=True)
    outside.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    server.outside = outside
    yield server
    server.kill()


@pytest.fixture
def stub(srv):
    ch = grpc.insecure_channel(srv.address)
    yield rpc.GroundSynthStub(ch)
    ch.close()


def _spec(srv, reference):
    spec = pb.JobSpec(raster_path=str(srv.raster), tile_size=64,
                      stages=[pb.StageConfig(stage="segment", engine="spectral")], reference=reference)
    minx, miny, maxx, maxy = raster_bbox(128)
    spec.aoi.bbox.CopyFrom(pb.BBox(minx=minx, miny=miny, maxx=maxx, maxy=maxy))
    return spec


def _submit(stub, srv, spec):
    return list(stub.Submit(pb.SubmitRequest(spec=spec), metadata=(("authorization", f"Bearer {srv.token}"),),
                            timeout=120))


def test_a_reference_file_outside_the_allowed_roots_is_refused(srv, stub):
    with pytest.raises(grpc.RpcError) as err:
        _submit(stub, srv, _spec(srv, pb.ReferenceSamples(path=str(srv.outside))))
    assert err.value.code() == SC.PERMISSION_DENIED and err.value.details().startswith("reference.path")


def test_inline_reference_features_are_assessed(srv, stub):
    x0, _, _, y1 = raster_bbox(128)
    feats = [pb.ReferenceFeature(wkt=f"POINT ({x0 + 10 * c + 5} {y1 - 10 * r - 5})", class_value=v, split=s)
             for c, r, v, s in ((3, 3, "Crop", "test"), (70, 20, "80", "tune"), (100, 100, "Tree", "test"))]
    events = _submit(stub, srv, _spec(srv, pb.ReferenceSamples(features=feats, crs="EPSG:32618")))
    assert events[-1].HasField("done"), events[-1]
    assert events[0].accepted.spec.reference.features[1].class_value == "80"
    report = next(e.report for e in events if e.HasField("report"))
    assert report.summary["ref_points"] == 3 and report.summary["ref_points_test"] == 2
    doc = json.loads((Path(events[-1].done.output_dir) / "report.json").read_text())
    assert doc["accuracy_assessment"]["all"]["n"] == 3 and doc["accuracy_assessment"]["source"] == "inline"


def test_an_unknown_inline_class_names_the_feature(srv, stub):
    feats = [pb.ReferenceFeature(wkt="POINT (500005 3999995)", class_value="Tree"),
             pb.ReferenceFeature(wkt="POINT (500015 3999995)", class_value="Forest")]
    with pytest.raises(grpc.RpcError) as err:
        _submit(stub, srv, _spec(srv, pb.ReferenceSamples(features=feats, crs="EPSG:32618")))
    assert err.value.code() == SC.INVALID_ARGUMENT
    assert err.value.details().startswith("reference.features[1].class_value")
