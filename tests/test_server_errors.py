"""Bad input against a real server process: every kind gets its status code and a message naming the
field, and the server still answers Health afterwards (checked after every test)."""
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from groundsynth.api.v1.client import GroundSynthClient
from groundsynth.api.v1.contract import pb, rpc
from tests.server_fixture import ROOT, make_test_raster, raster_bbox, start_server

SC = grpc.StatusCode
MAX_UPLOAD = 200_000
MAX_MESSAGE = 2 * 1024 * 1024


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    base = tmp_path_factory.mktemp("errors")
    workspace = base / "workspace"
    raster = make_test_raster(workspace / "data" / "src.tif", size=512)
    server = start_server(workspace, "--max-tiles-per-job", "20", "--max-concurrent-jobs", "1",
                          "--max-queued-jobs", "0", "--max-upload-bytes", str(MAX_UPLOAD),
                          "--max-message-bytes", str(MAX_MESSAGE), "--batch-size", "1")
    server.raster = raster
    server.outside = make_test_raster(base / "outside" / "secret.tif", size=64)
    yield server
    server.kill()


@pytest.fixture(scope="module")
def channel(srv):
    ch = grpc.insecure_channel(srv.address, options=[("grpc.max_send_message_length", 8 * MAX_MESSAGE)])
    yield ch
    ch.close()


@pytest.fixture
def stub(channel):
    return rpc.GroundSynthStub(channel)


@pytest.fixture
def auth(srv):
    return (("authorization", f"Bearer {srv.token}"),)


@pytest.fixture(autouse=True)
def still_serving(srv):
    yield
    assert srv.alive()
    with srv.client() as c:
        assert c.health() == "SERVING"
        assert c.capabilities().api_version            # and the authenticated API still works


def quarter_bbox():
    minx, miny, maxx, maxy = raster_bbox(512)
    return pb.BBox(minx=minx, miny=maxy - 1280, maxx=minx + 1280, maxy=maxy)


def test_stages(**segment_params):
    return [pb.StageConfig(stage="segment", engine="test-bright", params={k: str(v) for k, v in segment_params.items()}),
            pb.StageConfig(stage="caption", engine="test-count")]


test_stages.__test__ = False


def good_spec(srv, **changes):
    spec = pb.JobSpec(raster_path=str(srv.raster), tile_size=64, stages=test_stages())
    spec.aoi.bbox.CopyFrom(quarter_bbox())
    for key, value in changes.items():
        if isinstance(value, list):
            del getattr(spec, key)[:]
            getattr(spec, key).extend(value)
        elif hasattr(value, "CopyFrom"):
            getattr(spec, key).CopyFrom(value)
        else:
            setattr(spec, key, value)
    return spec


def submit_error(stub, auth, spec) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        list(stub.Submit(pb.SubmitRequest(spec=spec), metadata=auth, timeout=30))
    return err.value


# ------------------------------------------------------------------ UNAUTHENTICATED

@pytest.mark.parametrize("metadata", [(), (("authorization", "Bearer wrong-token"),), (("authorization", "token"),)])
def test_every_call_needs_the_token(srv, stub, metadata):
    calls = [
        lambda: stub.ListJobs(pb.ListJobsRequest(), metadata=metadata, timeout=10),
        lambda: stub.GetJob(pb.GetJobRequest(job_id="x"), metadata=metadata, timeout=10),
        lambda: stub.Capabilities(pb.CapabilitiesRequest(), metadata=metadata, timeout=10),
        lambda: stub.Cancel(pb.CancelRequest(job_id="x"), metadata=metadata, timeout=10),
        lambda: list(stub.Submit(pb.SubmitRequest(spec=good_spec(srv)), metadata=metadata, timeout=10)),
        lambda: list(stub.Watch(pb.WatchRequest(job_id="x"), metadata=metadata, timeout=10)),
        lambda: list(stub.FetchArtefact(pb.FetchArtefactRequest(job_id="x", path="a"), metadata=metadata, timeout=10)),
        lambda: stub.UploadRaster(iter([pb.UploadChunk(header=pb.UploadHeader(filename="a.tif", total_size=1))]),
                                  metadata=metadata, timeout=10),
    ]
    for call in calls:
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == SC.UNAUTHENTICATED
        assert "token" in err.value.details()


def test_unauthenticated_submit_creates_no_job(srv):
    with srv.client() as c:
        before = len(c.list_jobs())
    bad = GroundSynthClient(srv.address, token="x" * 43)
    with pytest.raises(Exception) as err:
        list(bad.submit(good_spec(srv)))
    assert err.value.code == SC.UNAUTHENTICATED
    with srv.client() as c:
        assert len(c.list_jobs()) == before


def test_health_needs_no_token(channel):
    """Health is the one open service; reflection is off by default and needs the token when enabled
    (tests/test_server_lockout.py)."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    resp = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="groundsynth.v1.GroundSynth"))
    assert resp.status == health_pb2.HealthCheckResponse.SERVING


# ------------------------------------------------------------------ INVALID_ARGUMENT

@pytest.mark.parametrize("changes, field", [
    (dict(tile_size=8), "tile_size"),
    (dict(overlap=500), "overlap"),
    (dict(aoi=pb.AreaOfInterest(bbox=pb.BBox(minx=5, miny=0, maxx=1, maxy=1))), "aoi.bbox"),
    (dict(aoi=pb.AreaOfInterest()), "aoi"),
    (dict(aoi=pb.AreaOfInterest(bbox=pb.BBox(minx=0, miny=0, maxx=1, maxy=1))), "aoi"),     # outside the raster
    (dict(stages=[pb.StageConfig(stage="paint")]), "stages[0].stage"),
    (dict(stages=[pb.StageConfig(stage="segment", engine="nope")]), "stages[segment].engine"),
    (dict(stages=test_stages(sleep="slow")), "stages[segment].params.sleep"),
    (dict(stages=test_stages(colour="red")), "stages[segment].params.colour"),
    (dict(raster_path="relative/src.tif"), "raster_path"),
    (dict(upload_id="../../etc"), "upload_id"),
    (dict(synthesis=pb.SynthesisOptions(mask_strategy="dream")), "synthesis"),
])
def test_invalid_spec_fails_the_submit_call(srv, stub, auth, changes, field):
    err = submit_error(stub, auth, good_spec(srv, **changes))
    assert err.code() == SC.INVALID_ARGUMENT, err.details()
    assert err.details().startswith(field), err.details()
    assert any(w in err.details() for w in ("expected", "give", "outside", "takes")), err.details()


def test_missing_spec_and_raw_garbage(srv, channel, auth, stub):
    with pytest.raises(grpc.RpcError) as err:
        list(stub.Submit(pb.SubmitRequest(), metadata=auth, timeout=10))
    assert err.value.code() == SC.INVALID_ARGUMENT and "spec" in err.value.details()
    raw = channel.unary_unary("/groundsynth.v1.GroundSynth/GetJob", request_serializer=lambda b: b,
                              response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError) as err:                         # bytes that are not a GetJobRequest
        raw(b"\xff\xff\xff\xff\x0f garbage", metadata=auth, timeout=10)
    assert err.value.code() in (SC.INTERNAL, SC.INVALID_ARGUMENT, SC.UNKNOWN)


@pytest.mark.parametrize("path", ["../journal.sqlite", "../../token", "/etc/passwd", "a/../../x", ""])
def test_fetch_refuses_paths_leaving_the_job_dir(srv, stub, auth, path):
    job_id = _finished_job(srv)
    with pytest.raises(grpc.RpcError) as err:
        list(stub.FetchArtefact(pb.FetchArtefactRequest(job_id=job_id, path=path), metadata=auth, timeout=10))
    assert err.value.code() == SC.INVALID_ARGUMENT and err.value.details().startswith("path")


def test_fetch_refuses_symlinks_out_of_the_job_dir(srv, stub, auth):
    job_id = _finished_job(srv)
    with srv.client() as c:
        out = Path(c.get_job(job_id).output_dir)
    (out / "evil").symlink_to(srv.workspace)                          # points at the token's folder
    with pytest.raises(grpc.RpcError) as err:
        list(stub.FetchArtefact(pb.FetchArtefactRequest(job_id=job_id, path="evil/token"), metadata=auth, timeout=10))
    assert err.value.code() == SC.PERMISSION_DENIED and "outside the job directory" in err.value.details()


def _upload(stub, auth, chunks):
    return stub.UploadRaster(iter(chunks), metadata=auth, timeout=30)


@pytest.mark.parametrize("name", ["../evil.tif", "/tmp/evil.tif", "sub/evil.tif", "..", ".hidden.tif", ""])
def test_upload_refuses_names_that_are_not_plain(srv, stub, auth, name):
    with pytest.raises(grpc.RpcError) as err:
        _upload(stub, auth, [pb.UploadChunk(header=pb.UploadHeader(filename=name, total_size=3)),
                             pb.UploadChunk(data=b"abc")])
    assert err.value.code() == SC.INVALID_ARGUMENT and err.value.details().startswith("header.filename")
    assert not (srv.workspace.parent / "evil.tif").exists() and not Path("/tmp/evil.tif").exists()


@pytest.mark.parametrize("chunks, field", [
    ([pb.UploadChunk(data=b"abc")], "header"),
    ([], "header"),
    ([pb.UploadChunk(header=pb.UploadHeader(filename="a.tif", total_size=3)), pb.UploadChunk(data=b"abcdef")], "data"),
    ([pb.UploadChunk(header=pb.UploadHeader(filename="a.tif", total_size=9)), pb.UploadChunk(data=b"abc")], "data"),
    ([pb.UploadChunk(header=pb.UploadHeader(filename="a.tif", total_size=3)), pb.UploadChunk(data=b"abc")], "data"),
    ([pb.UploadChunk(header=pb.UploadHeader(filename="a.tif", total_size=0))], "header.total_size"),
])
def test_upload_refuses_bad_streams_and_keeps_nothing(srv, stub, auth, chunks, field):
    before = set((srv.workspace / "uploads").glob("*")) if (srv.workspace / "uploads").exists() else set()
    with pytest.raises(grpc.RpcError) as err:
        _upload(stub, auth, chunks)
    assert err.value.code() == SC.INVALID_ARGUMENT and err.value.details().startswith(field), err.value.details()
    after = set((srv.workspace / "uploads").glob("*")) if (srv.workspace / "uploads").exists() else set()
    assert after == before                                             # nothing half-written is kept


# ------------------------------------------------------------------ NOT_FOUND / PERMISSION_DENIED

def test_unknown_things_are_not_found(srv, stub, auth):
    for call in (lambda: stub.GetJob(pb.GetJobRequest(job_id="j-nope"), metadata=auth, timeout=10),
                 lambda: stub.Cancel(pb.CancelRequest(job_id="j-nope"), metadata=auth, timeout=10),
                 lambda: list(stub.Watch(pb.WatchRequest(job_id="j-nope"), metadata=auth, timeout=10)),
                 lambda: list(stub.FetchArtefact(pb.FetchArtefactRequest(job_id="j-nope", path="report.json"),
                                                 metadata=auth, timeout=10))):
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == SC.NOT_FOUND and err.value.details().startswith("job_id")
    job_id = _finished_job(srv)
    with pytest.raises(grpc.RpcError) as err:
        list(stub.FetchArtefact(pb.FetchArtefactRequest(job_id=job_id, path="real/image/nope.tif"),
                                metadata=auth, timeout=10))
    assert err.value.code() == SC.NOT_FOUND and err.value.details().startswith("path")
    for changes, field in ((dict(upload_id="0" * 32), "upload_id"),
                           (dict(raster_path=str(srv.workspace / "data" / "missing.tif")), "raster_path")):
        err = submit_error(stub, auth, good_spec(srv, **changes))
        assert err.code() == SC.NOT_FOUND and err.details().startswith(field)


def test_rasters_outside_the_allowed_roots_are_refused(srv, stub, auth):
    err = submit_error(stub, auth, good_spec(srv, raster_path=str(srv.outside)))
    assert err.code() == SC.PERMISSION_DENIED and err.details().startswith("raster_path")
    assert "--allow-root" in err.details()
    link = srv.workspace / "data" / "link.tif"                        # a symlink inside pointing out
    if not link.exists():
        link.symlink_to(srv.outside)
    err = submit_error(stub, auth, good_spec(srv, raster_path=str(link)))
    assert err.code() == SC.PERMISSION_DENIED
    err = submit_error(stub, auth, good_spec(srv, raster_path=str(srv.workspace / "data" / ".." / ".." / "outside" /
                                                                "secret.tif")))
    assert err.code() == SC.PERMISSION_DENIED
    err = submit_error(stub, auth, good_spec(srv, label_raster_path=str(srv.outside)))
    assert err.code() == SC.PERMISSION_DENIED and err.details().startswith("label_raster_path")


# ------------------------------------------------------------------ RESOURCE_EXHAUSTED

def test_too_many_tiles(srv, stub, auth):
    minx, miny, maxx, maxy = raster_bbox(512)                          # 64 tiles > 20
    err = submit_error(stub, auth, good_spec(srv, aoi=pb.AreaOfInterest(
        bbox=pb.BBox(minx=minx, miny=miny, maxx=maxx, maxy=maxy))))
    assert err.code() == SC.RESOURCE_EXHAUSTED and err.details().startswith("aoi") and "20" in err.details()


def test_too_many_concurrent_jobs(srv, stub, auth):
    with srv.client() as c:
        slow = c.submit(good_spec(srv, stages=test_stages(sleep=0.5)))
        first = next(iter(slow))
        try:
            err = submit_error(stub, auth, good_spec(srv))
            assert err.code() == SC.RESOURCE_EXHAUSTED and err.details().startswith("jobs")
            assert "max_concurrent_jobs 1" in err.details()
        finally:
            slow.cancel()
            c.cancel(first.job_id)
        _wait_idle(c)


def test_upload_over_the_limit(srv, stub, auth):
    with pytest.raises(grpc.RpcError) as err:
        _upload(stub, auth, [pb.UploadChunk(header=pb.UploadHeader(filename="big.tif", total_size=MAX_UPLOAD + 1))])
    assert err.value.code() == SC.RESOURCE_EXHAUSTED and err.value.details().startswith("header.total_size")
    assert str(MAX_UPLOAD) in err.value.details()


def test_message_over_the_size_limit(srv, stub, auth):
    with pytest.raises(grpc.RpcError) as err:
        _upload(stub, auth, [pb.UploadChunk(header=pb.UploadHeader(filename="big.tif", total_size=100)),
                             pb.UploadChunk(data=b"x" * (MAX_MESSAGE + 1024))])
    assert err.value.code() == SC.RESOURCE_EXHAUSTED


# ------------------------------------------------------------------ FAILED_PRECONDITION and job failures

def test_engine_without_weights_is_failed_precondition(srv, stub, auth):
    err = submit_error(stub, auth, good_spec(srv, stages=[pb.StageConfig(stage="segment", engine="test-noweights")]))
    assert err.code() == SC.FAILED_PRECONDITION
    assert err.details().startswith("stages[segment].engine") and "weights not found at" in err.details()
    with srv.client() as c:
        seg = next(s for s in c.capabilities().stages if s.stage == "segment")
        info = next(e for e in seg.engines if e.name == "test-noweights")
        assert not info.available and "weights not found" in info.unavailable_reason


def test_engine_crash_fails_the_job_not_the_server(srv):
    with srv.client() as c:
        events = list(c.submit(good_spec(srv, stages=test_stages(fail_on="r0000_c0001"))))
        failed = events[-1]
        assert failed.WhichOneof("event") == "failed"
        assert failed.failed.code == SC.INTERNAL.value[0] and "r0000_c0001" in failed.failed.message
        info = c.get_job(failed.job_id)
        assert info.state == pb.FAILED and "r0000_c0001" in info.error
        assert info.tiles_done >= 1                                     # tiles before the failure are kept


def test_capabilities_describe_engines_and_limits(srv):
    with srv.client() as c:
        caps = c.capabilities()
    assert caps.limits.max_tiles_per_job == 20 and caps.limits.max_upload_bytes == MAX_UPLOAD
    assert [cl.name for cl in caps.classes][:2] == ["Tree", "Shrub"] and caps.classes[6].color == "#0000ff"
    seg = {e.name: e for s in caps.stages if s.stage == "segment" for e in s.engines}
    sleep = next(p for p in seg["test-bright"].params if p.name == "sleep")
    assert (sleep.type, sleep.default, sleep.has_range, sleep.min, sleep.max) == ("float", "0.0", True, 0, 10)
    assert {s.stage for s in caps.stages} == {"segment", "synthesise", "caption", "ground"}
    assert "boost" in caps.mask_strategies


def test_serve_refuses_non_loopback_without_tls(tmp_path):
    res = subprocess.run([sys.executable, "-m", "groundsynth", "serve", "--address", "0.0.0.0:0",
                          "--workspace", str(tmp_path / "ws")], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert "FAILED_PRECONDITION" in res.stderr and "address" in res.stderr and "--tls-cert" in res.stderr
    assert not (tmp_path / "ws" / "token").exists()


def test_second_server_on_the_same_workspace_is_refused(srv):
    res = subprocess.run([sys.executable, "-m", "groundsynth", "serve", "--address", "127.0.0.1:0",
                          "--workspace", str(srv.workspace)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert "FAILED_PRECONDITION" in res.stderr and "is in use (server pid" in res.stderr


# ------------------------------------------------------------------ helpers

def _finished_job(srv) -> str:
    with srv.client() as c:
        for j in c.list_jobs():
            if j.state == pb.SUCCEEDED:
                return j.job_id
        events = list(c.submit(good_spec(srv)))
        assert events[-1].done.state == pb.SUCCEEDED
        return events[-1].job_id


def _wait_idle(c, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(j.state not in (pb.QUEUED, pb.RUNNING) for j in c.list_jobs()):
            return
        time.sleep(0.05)
    raise AssertionError("jobs still running")


def test_upload_of_a_vrt_reading_files_outside_the_upload_is_refused(srv, stub, auth):
    """A VRT (or any raster pointing at other files) uploaded by a client would let the server read any file it
    can open, past the allowed roots: only self-contained rasters are accepted."""
    import rasterio

    with rasterio.open(srv.outside) as ds:
        w, h = ds.width, ds.height
    vrt = (f'<VRTDataset rasterXSize="{w}" rasterYSize="{h}"><SRS>EPSG:32618</SRS>'
           f'<GeoTransform>0, 10, 0, 0, 0, -10</GeoTransform><VRTRasterBand dataType="UInt16" band="1">'
           f'<SimpleSource><SourceFilename relativeToVRT="0">{srv.outside}</SourceFilename>'
           f'<SourceBand>1</SourceBand></SimpleSource></VRTRasterBand></VRTDataset>').encode()
    before = set((srv.workspace / "uploads").glob("*")) if (srv.workspace / "uploads").exists() else set()
    with pytest.raises(grpc.RpcError) as err:
        _upload(stub, auth, [pb.UploadChunk(header=pb.UploadHeader(filename="steal.vrt", total_size=len(vrt))),
                             pb.UploadChunk(data=vrt)])
    assert err.value.code() == SC.PERMISSION_DENIED and err.value.details().startswith("data"), err.value.details()
    after = set((srv.workspace / "uploads").glob("*")) if (srv.workspace / "uploads").exists() else set()
    assert after == before


def test_label_raster_is_recorded_by_its_resolved_path(srv, stub, auth):
    """The label path that was checked against the allowed roots is the one the job opens: a symlink given by
    the client is resolved at Submit, so swapping it later cannot point the job outside the roots."""
    import os

    target = make_test_raster(srv.workspace / "data" / "labels-real.tif", size=64)
    link = srv.workspace / "data" / "labels-link.tif"
    if not link.exists():
        link.symlink_to(target)
    events = list(stub.Submit(pb.SubmitRequest(spec=good_spec(srv, label_raster_path=str(link))),
                              metadata=auth, timeout=60))
    accepted = events[0].accepted
    assert accepted.spec.label_raster_path == os.path.realpath(target) != str(link)
    assert events[-1].HasField("done") or events[-1].HasField("failed")
