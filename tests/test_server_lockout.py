"""Item 2 of issue 9: no lock-out. Against a real server process on 127.0.0.1:

- idle streams opened without a token (reflection, uploads, Watch, Submit) hold no RPC thread: Health and
  authenticated calls keep answering while 24 of them are open;
- reflection is off by default; with `--reflection` it needs the token;
- stalled uploads: at most `max_uploads` run at once (the rest get RESOURCE_EXHAUSTED at once), each has an
  idle and a total deadline (DEADLINE_EXCEEDED naming the deadline), and a timed-out upload leaves nothing;
- idle authenticated Watch streams fill only their own class (`max_streams`): unary calls and Health answer.
"""
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from groundsynth.api.v1.contract import pb, rpc
from tests.server_fixture import make_test_raster, raster_bbox, start_server

SC = grpc.StatusCode


class Stall:
    """A request iterator that yields `first` and then blocks until released (an idle client)."""

    def __init__(self, first=()):
        self.first = list(first)
        self.release = threading.Event()

    def __iter__(self):
        yield from self.first
        self.release.wait(120)


class Trickle:
    """Yields the header, then one byte every `every_s` seconds: never idle, never done."""

    def __init__(self, every_s: float):
        self.every_s = every_s
        self.release = threading.Event()

    def __iter__(self):
        yield pb.UploadChunk(header=pb.UploadHeader(filename="slow.tif", total_size=10_000))
        while not self.release.wait(self.every_s):
            yield pb.UploadChunk(data=b"x")


def _health(channel, timeout=3.0) -> int:
    return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout).status


def _capabilities_ok(stub, auth, timeout=5.0) -> bool:
    return bool(stub.Capabilities(pb.CapabilitiesRequest(), metadata=auth, timeout=timeout).api_version)


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    base = tmp_path_factory.mktemp("lockout")
    workspace = base / "workspace"
    raster = make_test_raster(workspace / "data" / "src.tif", size=256)
    server = start_server(workspace, "--quiet")          # default limits: 16 workers
    server.raster = raster
    yield server
    server.kill()


@pytest.fixture
def channel(srv):
    ch = grpc.insecure_channel(srv.address)
    yield ch
    ch.close()


@pytest.fixture
def auth(srv):
    return (("authorization", f"Bearer {srv.token}"),)


def _open_all(calls):
    """Start the calls (each returns (call, stall)); give them time to reach the server."""
    opened = [c() for c in calls]
    time.sleep(2.0)
    return opened


def _close_all(opened):
    for call, stall in opened:
        stall.release.set()
        call.cancel()


def test_idle_unauthenticated_streams_hold_no_rpc_thread(srv, channel, auth):
    stub = rpc.GroundSynthStub(channel)
    refl = reflection_pb2_grpc.ServerReflectionStub(channel)
    spec = pb.JobSpec(raster_path=str(srv.raster), tile_size=64)

    def reflection():
        s = Stall()
        return refl.ServerReflectionInfo(iter(s)), s

    def upload():
        s = Stall([pb.UploadChunk(header=pb.UploadHeader(filename="a.tif", total_size=100))])
        return stub.UploadRaster.future(iter(s)), s

    def watch():
        return stub.Watch(pb.WatchRequest(job_id="x")), Stall()

    def submit():
        return stub.Submit(pb.SubmitRequest(spec=spec)), Stall()

    opened = _open_all([reflection] * 16 + [upload] * 4 + [watch] * 2 + [submit] * 2)
    try:
        t0 = time.monotonic()
        assert _health(channel) == health_pb2.HealthCheckResponse.SERVING
        assert _capabilities_ok(stub, auth)
        with srv.client() as c:
            assert isinstance(c.list_jobs(), list)
        assert time.monotonic() - t0 < 5
    finally:
        _close_all(opened)


def test_reflection_is_off_by_default(channel):
    refl = reflection_pb2_grpc.ServerReflectionStub(channel)
    with pytest.raises(grpc.RpcError) as err:
        list(refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10))
    assert err.value.code() == SC.UNIMPLEMENTED


def test_reflection_when_enabled_needs_the_token(tmp_path):
    server = start_server(tmp_path / "ws", "--reflection", "--quiet")
    try:
        ch = grpc.insecure_channel(server.address)
        refl = reflection_pb2_grpc.ServerReflectionStub(ch)
        ask = [reflection_pb2.ServerReflectionRequest(list_services="")]
        with pytest.raises(grpc.RpcError) as err:
            list(refl.ServerReflectionInfo(iter(ask), timeout=10))
        assert err.value.code() == SC.UNAUTHENTICATED
        answers = list(refl.ServerReflectionInfo(iter(ask), timeout=10,
                                                 metadata=(("authorization", f"Bearer {server.token}"),)))
        names = {s.name for s in answers[0].list_services_response.service}
        assert {"groundsynth.v1.GroundSynth", "grpc.health.v1.Health"} <= names
        ch.close()
    finally:
        server.kill()


def test_stalled_uploads_cannot_take_every_thread(srv, channel, auth):
    """16 authenticated uploads that stall after the first chunk: only max_uploads (2) run, the others are
    refused at once; Health and the other calls keep answering."""
    stub = rpc.GroundSynthStub(channel)

    def upload():
        s = Stall([pb.UploadChunk(header=pb.UploadHeader(filename="a.tif", total_size=100_000)),
                   pb.UploadChunk(data=b"x" * 1000)])
        return stub.UploadRaster.future(iter(s), metadata=auth), s

    opened = _open_all([upload] * 16)
    try:
        assert _health(channel) == health_pb2.HealthCheckResponse.SERVING
        assert _capabilities_ok(stub, auth)
        refused = [f for f, _ in opened if f.done() and f.code() == SC.RESOURCE_EXHAUSTED]
        assert len(refused) == 14, [f.code() if f.done() else "open" for f, _ in opened]
        assert "uploads" in refused[0].details() and "2" in refused[0].details()
    finally:
        _close_all(opened)


def test_upload_idle_and_total_deadlines(tmp_path):
    server = start_server(tmp_path / "ws", "--upload-idle-timeout-s", "1", "--upload-total-timeout-s", "3", "--quiet")
    try:
        ch = grpc.insecure_channel(server.address)
        stub = rpc.GroundSynthStub(ch)
        auth = (("authorization", f"Bearer {server.token}"),)
        stall = Stall([pb.UploadChunk(header=pb.UploadHeader(filename="a.tif", total_size=100_000)),
                       pb.UploadChunk(data=b"x" * 1000)])
        t0 = time.monotonic()
        with pytest.raises(grpc.RpcError) as err:
            stub.UploadRaster(iter(stall), metadata=auth, timeout=30)
        assert err.value.code() == SC.DEADLINE_EXCEEDED and "idle" in err.value.details()
        assert 0.8 < time.monotonic() - t0 < 6
        stall.release.set()

        trickle = Trickle(0.3)
        t0 = time.monotonic()
        with pytest.raises(grpc.RpcError) as err:
            stub.UploadRaster(iter(trickle), metadata=auth, timeout=30)
        trickle.release.set()
        assert err.value.code() == SC.DEADLINE_EXCEEDED and "3" in err.value.details()
        assert 2.5 < time.monotonic() - t0 < 8
        uploads = server.workspace / "uploads"
        assert not uploads.exists() or list(uploads.iterdir()) == []          # nothing half-written kept
        raster = make_test_raster(tmp_path / "small.tif", size=64)
        with server.client() as c:                                          # both upload slots were given back
            assert len(c.upload(raster)) == 32
            assert len(c.upload(raster)) == 32
        ch.close()
    finally:
        server.kill()


def test_idle_watch_streams_fill_only_their_own_class(srv, channel, auth):
    """More Watch streams than max_streams (8) on a slow job: the extra ones are refused naming the limit;
    unary calls and Health answer meanwhile."""
    stub = rpc.GroundSynthStub(channel)
    minx, miny, maxx, maxy = raster_bbox(256)
    spec = pb.JobSpec(raster_path=str(srv.raster), tile_size=64, stages=[
        pb.StageConfig(stage="segment", engine="test-bright", params={"sleep": "0.5"}),
        pb.StageConfig(stage="caption", engine="test-count")])
    spec.aoi.bbox.CopyFrom(pb.BBox(minx=minx, miny=miny, maxx=maxx, maxy=maxy))
    with srv.client() as c:
        stream = c.submit(spec)
        job_id = next(iter(stream)).job_id
        watches = [stub.Watch(pb.WatchRequest(job_id=job_id), metadata=auth) for _ in range(10)]
        try:
            time.sleep(1.0)
            assert _health(channel) == health_pb2.HealthCheckResponse.SERVING
            assert _capabilities_ok(stub, auth)
            assert c.get_job(job_id).job_id == job_id
            refused = []
            for w in watches:
                try:
                    next(w)
                except grpc.RpcError as exc:
                    refused.append(exc)
            assert len(refused) == 3                  # the Submit stream + 7 watches hold the 8 stream slots
            assert all(e.code() == SC.RESOURCE_EXHAUSTED and "streams" in e.details() for e in refused)
        finally:
            for w in watches:
                w.cancel()
            stream.cancel()
            c.cancel(job_id)


def test_timed_out_uploads_leave_no_thread_and_no_slot(tmp_path):
    """In-process: the pump thread of a timed-out upload ends with its RPC, and its slot is given back."""
    from groundsynth.service.config import ServerConfig
    from groundsynth.service.server import GroundSynthServer

    cfg = ServerConfig.load(workspace=tmp_path / "ws", address="127.0.0.1:0", upload_idle_timeout_s=0.5)
    server = GroundSynthServer(cfg).start()
    try:
        ch = grpc.insecure_channel(server.address)
        stub = rpc.GroundSynthStub(ch)
        auth = (("authorization", f"Bearer {server.token}"),)
        stalls = []
        for _ in range(3):
            stall = Stall([pb.UploadChunk(header=pb.UploadHeader(filename="a.tif", total_size=100)),
                           pb.UploadChunk(data=b"x")])
            stalls.append(stall)
            with pytest.raises(grpc.RpcError) as err:
                stub.UploadRaster(iter(stall), metadata=auth, timeout=10)
            assert err.value.code() == SC.DEADLINE_EXCEEDED
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(t.name == "upload-pump" for t in threading.enumerate()):
            time.sleep(0.05)
        assert not [t for t in threading.enumerate() if t.name == "upload-pump"]
        assert server.limiter.in_use() == {"streams": 0, "uploads": 0, "calls": 0}
        for stall in stalls:
            stall.release.set()
        ch.close()
    finally:
        server.stop(0)
