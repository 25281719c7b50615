"""Item 3 of issue 9: the allowed roots hold for EVERY file a source or label raster opens.

Against a real server on 127.0.0.1: VRTs inside the workspace that read rasters outside it (directly, nested,
relative to the VRT), VRTs and paths naming /vsicurl/http://127.0.0.1:PORT/... (a local http.server counts
requests: nothing may be fetched), network driver files (WMS), for raster_path, label_raster_path and uploads:
all PERMISSION_DENIED naming the field. VRTs whose members lie inside the roots still run. Neural `weights`
paths are confined to the allowed roots and the models folder, with one message whether or not an outside
path exists. The check is one function (service.security.check_raster), tested here directly too.
"""
import http.server
import threading
from pathlib import Path

import grpc
import pytest

from groundsynth.api.v1.contract import pb, rpc
from groundsynth.request.errors import InvalidArgument, PermissionDenied
from groundsynth.service import security
from tests.server_fixture import make_test_raster, raster_bbox, start_server

SC = grpc.StatusCode


class Counter(http.server.BaseHTTPRequestHandler):
    hits: list = []

    def do_GET(self):  # noqa: N802 - http.server API
        Counter.hits.append(("GET", self.path))
        self.send_response(404)
        self.end_headers()

    def do_HEAD(self):  # noqa: N802
        Counter.hits.append(("HEAD", self.path))
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def http_counter():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Counter)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def vrt(source: str, relative: bool = False, size: int = 64) -> str:
    return (f'<VRTDataset rasterXSize="{size}" rasterYSize="{size}"><SRS>EPSG:32618</SRS>'
            f'<GeoTransform>500000, 10, 0, 4000000, 0, -10</GeoTransform>'
            + "".join(f'<VRTRasterBand dataType="UInt16" band="{b}"><SimpleSource>'
                      f'<SourceFilename relativeToVRT="{int(relative)}">{source}</SourceFilename>'
                      f'<SourceBand>{b}</SourceBand></SimpleSource></VRTRasterBand>' for b in (1, 2, 3, 4))
            + "</VRTDataset>")


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    base = tmp_path_factory.mktemp("paths")
    workspace = base / "workspace"
    raster = make_test_raster(workspace / "data" / "src.tif", size=256)
    server = start_server(workspace, "--quiet")
    server.raster = raster
    server.outside = make_test_raster(base / "outside" / "secret.tif", size=64)
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


def spec(srv, **changes):
    minx, miny, maxx, maxy = raster_bbox(64)
    s = pb.JobSpec(raster_path=str(srv.raster), tile_size=64, stages=[
        pb.StageConfig(stage="segment", engine="test-bright"), pb.StageConfig(stage="caption", engine="test-count")])
    s.aoi.bbox.CopyFrom(pb.BBox(minx=minx, miny=miny, maxx=maxx, maxy=maxy))
    for k, v in changes.items():
        setattr(s, k, v)
    return s


def submit_error(stub, auth, s) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        list(stub.Submit(pb.SubmitRequest(spec=s), metadata=auth, timeout=30))
    return err.value


def write(srv, name: str, text: str) -> Path:
    path = srv.workspace / "data" / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("field", ["raster_path", "label_raster_path"])
def test_vrt_reading_a_raster_outside_the_roots_is_refused(srv, stub, auth, field):
    direct = write(srv, "steal.vrt", vrt(str(srv.outside)))
    relative = write(srv, "steal-rel.vrt", vrt("../../outside/secret.tif", relative=True))
    nested = write(srv, "nested.vrt", vrt(str(direct)))
    for path in (direct, relative, nested):
        err = submit_error(stub, auth, spec(srv, **{field: str(path)}))
        assert err.code() == SC.PERMISSION_DENIED, (path.name, err.details())
        assert err.details().startswith(field) and "outside the allowed roots" in err.details()


def test_network_paths_and_vrts_naming_urls_fetch_nothing(srv, stub, auth, http_counter):
    Counter.hits.clear()
    url = f"/vsicurl/{http_counter}/remote.tif"
    remote_vrt = write(srv, "remote.vrt", vrt(url))
    nested = write(srv, "remote-nested.vrt", vrt(str(remote_vrt)))
    wms = write(srv, "remote.wms", f'<GDAL_WMS><Service name="TMS"><ServerUrl>{http_counter}/${{z}}/${{x}}/${{y}}.png'
                                   '</ServerUrl></Service><DataWindow><UpperLeftX>-20037508.34</UpperLeftX>'
                                   '<UpperLeftY>20037508.34</UpperLeftY><LowerRightX>20037508.34</LowerRightX>'
                                   '<LowerRightY>-20037508.34</LowerRightY><TileLevel>18</TileLevel>'
                                   '<TileCountX>1</TileCountX><TileCountY>1</TileCountY></DataWindow>'
                                   '<Projection>EPSG:3857</Projection><BlockSizeX>256</BlockSizeX>'
                                   '<BlockSizeY>256</BlockSizeY><BandsCount>3</BandsCount></GDAL_WMS>')
    for field in ("raster_path", "label_raster_path"):
        for path in (url, "/vsis3/bucket/x.tif", str(remote_vrt), str(nested), str(wms)):
            err = submit_error(stub, auth, spec(srv, **{field: path}))
            assert err.code() == SC.PERMISSION_DENIED, (field, path, err.details())
            assert err.details().startswith(field)
    with srv.client() as c:                         # an uploaded VRT naming a URL: refused, nothing fetched
        for path in (remote_vrt, wms):
            with pytest.raises(PermissionDenied):
                c.upload(path)
    assert Counter.hits == []


def test_vrt_with_members_inside_the_roots_runs(srv):
    inner = write(srv, "inner.vrt", vrt("src.tif", relative=True, size=256))
    with srv.client() as c:
        events = list(c.submit(spec(srv, raster_path=str(inner))))
    assert events[-1].HasField("done") and events[-1].done.state == pb.SUCCEEDED, events[-1]


def test_vrt_python_pixel_functions_are_refused(tmp_path):
    src = make_test_raster(tmp_path / "a.tif", size=64)
    text = vrt(str(src)).replace('<VRTRasterBand dataType="UInt16" band="1">',
                                 '<VRTRasterBand dataType="UInt16" band="1" subClass="VRTDerivedRasterBand">'
                                 '<PixelFunctionType>f</PixelFunctionType>'
                                 '<PixelFunctionLanguage>Python</PixelFunctionLanguage>', 1)
    (tmp_path / "py.vrt").write_text(text)
    with pytest.raises(PermissionDenied, match="Python pixel functions"):
        security.check_raster(tmp_path / "py.vrt", [tmp_path], "raster_path")
    (tmp_path / "dtd.vrt").write_text('<!DOCTYPE x [<!ENTITY a "b">]>' + vrt(str(src)))
    with pytest.raises(PermissionDenied, match="DOCTYPE"):
        security.check_raster(tmp_path / "dtd.vrt", [tmp_path], "raster_path")


def test_check_raster_is_the_one_check_for_sources_labels_and_uploads(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    src = make_test_raster(root / "a.tif", size=64)
    secret = make_test_raster(outside / "s.tif", size=64)
    assert security.check_raster(src, [root], "raster_path") == src.resolve()
    (root / "case.vrt").write_text(vrt(str(secret)).replace("SourceFilename", "sourcefilename"))
    with pytest.raises(PermissionDenied):                     # GDAL reads tags case-insensitively: so do we
        security.check_raster(root / "case.vrt", [root], "raster_path")
    (root / "text.tif").write_text("not a raster")
    with pytest.raises(InvalidArgument, match="expected a raster file"):
        security.check_raster(root / "text.tif", [root], "label_raster_path")
    with pytest.raises(PermissionDenied):                     # an upload may only read its own folder
        security.check_upload_raster(root / "case.vrt", "data")


def test_weights_outside_the_roots_and_models_folder_are_refused_alike(srv, stub, auth, tmp_path):
    existing = tmp_path / "elsewhere" / "segformer"
    existing.mkdir(parents=True)
    (existing / "config.json").write_text("{}")
    missing = tmp_path / "nowhere" / "segformer"
    messages = []
    for path in (existing, missing, Path("/etc")):
        s = spec(srv)
        del s.stages[:]
        s.stages.append(pb.StageConfig(stage="segment", engine="segformer", params={"weights": str(path)}))
        err = submit_error(stub, auth, s)
        assert err.code() == SC.PERMISSION_DENIED, err.details()
        assert err.details().startswith("stages[segment].params.weights")
        messages.append(err.details().replace(repr(str(path)), "PATH"))
    assert messages[0] == messages[1] == messages[2]           # nothing tells whether an outside path exists
    inside = srv.workspace / "models" / "my-segformer"         # under the models folder: allowed (here missing)
    s = spec(srv)
    del s.stages[:]
    s.stages.append(pb.StageConfig(stage="segment", engine="segformer", params={"weights": str(inside)}))
    try:
        events = list(stub.Submit(pb.SubmitRequest(spec=s), metadata=auth, timeout=60))
    except grpc.RpcError as exc:                              # refused at Submit: not for its place, though
        assert exc.code() == SC.FAILED_PRECONDITION, exc.details()
    else:                                                     # or accepted, and the engine says what is missing
        assert events[-1].HasField("failed") and events[-1].failed.code == SC.FAILED_PRECONDITION.value[0]
        assert str(inside) in events[-1].failed.message
