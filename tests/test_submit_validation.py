"""Item 5 of issue 9: refused at Submit with INVALID_ARGUMENT naming the field (not accepted and failing
later, or silently defaulted). Against a real server process; engine-specific checks are the engines'
`check_job` hooks (exemplar, ground/composition, ground/clip), NaN/inf in Param.parse."""
import math
import subprocess
import sys

import grpc
import numpy as np
import pytest

from groundsynth.api.v1.contract import pb, rpc
from groundsynth.engines.base import Param
from groundsynth.request.errors import InvalidArgument
from tests.server_fixture import ROOT, make_test_raster, raster_bbox, start_server

SC = grpc.StatusCode


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    base = tmp_path_factory.mktemp("validation")
    workspace = base / "workspace"
    raster = make_test_raster(workspace / "data" / "src.tif", size=128)
    server = start_server(workspace, "--quiet")
    server.raster = raster
    (workspace / "data" / "notes.tif").write_text("this is not a raster")
    import rasterio
    from rasterio.transform import from_origin

    with rasterio.open(workspace / "data" / "float-labels.tif", "w", driver="GTiff", width=16, height=16, count=1,
                       dtype="float32", crs="EPSG:32618", transform=from_origin(500000, 4000000, 80, 80)) as ds:
        ds.write(np.full((1, 16, 16), 10.0, np.float32))
    yield server
    server.kill()


@pytest.fixture
def stub(srv):
    ch = grpc.insecure_channel(srv.address)
    yield rpc.GroundSynthStub(ch)
    ch.close()


@pytest.fixture
def auth(srv):
    return (("authorization", f"Bearer {srv.token}"),)


def spec(srv, stages=None, **changes):
    minx, miny, maxx, maxy = raster_bbox(128)
    s = pb.JobSpec(raster_path=str(srv.raster), tile_size=64)
    s.aoi.bbox.CopyFrom(pb.BBox(minx=minx, miny=miny, maxx=maxx, maxy=maxy))
    s.stages.extend(stages or [pb.StageConfig(stage="segment", engine="test-bright"),
                               pb.StageConfig(stage="caption", engine="test-count")])
    for k, v in changes.items():
        if hasattr(v, "CopyFrom"):
            getattr(s, k).CopyFrom(v)
        else:
            setattr(s, k, v)
    return s


def seg(**params):
    return pb.StageConfig(stage="segment", engine="test-bright", params={k: str(v) for k, v in params.items()})


def exemplar(**params):
    return pb.StageConfig(stage="synthesise", engine="exemplar", params={k: str(v) for k, v in params.items()})


def ground(engine, **params):
    return pb.StageConfig(stage="ground", engine=engine, params={k: str(v) for k, v in params.items()})


CASES = [
    ("reference_segmenter", [seg(), ground("composition", reference_segmenter="nope")], {},
     "stages[ground].params.reference_segmenter"),
    ("reference_segmenter_clip", [seg(), ground("clip", reference_segmenter="nope")], {},
     "stages[ground].params.reference_segmenter"),
    ("patch_larger_than_tile", [seg(), exemplar(patch_size=128)], {}, "stages[synthesise].params.patch_size"),
    ("overlap_half_patch", [seg(), exemplar(patch_size=32, overlap=16)], {}, "stages[synthesise].params.overlap"),
    ("overlap_above_patch", [seg(), exemplar(patch_size=16, overlap=20)], {}, "stages[synthesise].params.overlap"),
    ("nan_param", [seg(sleep="nan")], {}, "stages[segment].params.sleep"),
    ("inf_param", [seg(), ground("composition", present_share="inf")], {}, "stages[ground].params.present_share"),
    ("minus_inf_param", [seg(), ground("composition", major_share="-inf")], {}, "stages[ground].params.major_share"),
    ("variants_negative", [seg(), exemplar()], dict(synthesis=pb.SynthesisOptions(variants=-1)),
     "synthesis.variants"),
    ("label_not_a_raster", None, dict(label_raster_path="data/notes.tif"), "label_raster_path"),
    ("label_float", None, dict(label_raster_path="data/float-labels.tif"), "label_raster_path"),
]


@pytest.mark.parametrize("name, stages, changes, field", CASES, ids=[c[0] for c in CASES])
def test_refused_at_submit_naming_the_field(srv, stub, auth, name, stages, changes, field):
    if "label_raster_path" in changes:
        changes = dict(changes, label_raster_path=str(srv.workspace / changes["label_raster_path"]))
    with pytest.raises(grpc.RpcError) as err:
        list(stub.Submit(pb.SubmitRequest(spec=spec(srv, stages, **changes)), metadata=auth, timeout=60))
    assert err.value.code() == SC.INVALID_ARGUMENT, err.value.details()
    assert err.value.details().startswith(field), err.value.details()


def test_valid_exemplar_settings_still_run(srv):
    s = spec(srv, [seg(), exemplar(patch_size=32, overlap=15), pb.StageConfig(stage="caption", engine="test-count")])
    with srv.client() as c:
        events = list(c.submit(s))
    assert events[-1].HasField("done") and events[-1].done.state == pb.SUCCEEDED, events[-1]


def test_param_parse_refuses_non_finite_numbers():
    p = Param("x", "float", 0.5, "a share")
    for bad in ("nan", "NaN", "inf", "-inf", float("nan"), math.inf):
        with pytest.raises(InvalidArgument, match="finite"):
            p.parse(bad, "stages[ground].params.x")
    assert p.parse("0.25", "x") == 0.25


def test_cli_refuses_negative_variants(srv, tmp_path):
    out = subprocess.run([sys.executable, "-m", "groundsynth", "run", "--raster", str(srv.raster), "--workspace",
                          str(tmp_path / "ws"), "--aoi=500000,3998720,501280,4000000", "--variants", "-1"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "error (INVALID_ARGUMENT): synthesis.variants" in out.stderr, out.stderr
