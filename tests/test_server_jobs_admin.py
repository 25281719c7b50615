"""Item 4 of issue 9: ListJobs cannot be broken for good.

Against a real server: bounded spec text fields (INVALID_ARGUMENT naming the field), paged ListJobs with
abbreviated entries (old clients that send limit 0 and no token still get the newest jobs, one bounded
page), a journal holding 10 MB names from before the limits still lists, and DeleteJob (RPC and
`groundsynth jobs delete`) removes a finished job's files, rows and events and refuses running jobs.
"""
import subprocess
import sys

import grpc
import pytest

from groundsynth.api.v1.contract import pb, rpc
from groundsynth.request.errors import FailedPrecondition, InvalidArgument, NotFound
from groundsynth.request.spec import Aoi, JobSpec, StageConfig
from groundsynth.service.event_log import EventLog
from groundsynth.service.journal import Journal
from tests.server_fixture import ROOT, make_test_raster, raster_bbox, start_server

SC = grpc.StatusCode


def spec(raster, **changes):
    minx, miny, maxx, maxy = raster_bbox(128)
    s = pb.JobSpec(raster_path=str(raster), tile_size=64, name="admin", stages=[
        pb.StageConfig(stage="segment", engine="test-bright"), pb.StageConfig(stage="caption", engine="test-count")])
    s.aoi.bbox.CopyFrom(pb.BBox(minx=minx, miny=miny, maxx=maxx, maxy=maxy))
    for k, v in changes.items():
        setattr(s, k, v)
    return s


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    base = tmp_path_factory.mktemp("admin")
    workspace = base / "workspace"
    raster = make_test_raster(workspace / "data" / "src.tif", size=128)
    server = start_server(workspace, "--quiet")
    server.raster = raster
    yield server
    server.kill()


def _stub(srv):
    return rpc.GroundSynthStub(grpc.insecure_channel(srv.address, options=[
        ("grpc.max_send_message_length", 64 << 20)])), (("authorization", f"Bearer {srv.token}"),)


@pytest.mark.parametrize("changes, field", [
    (dict(name="n" * 201), "name"),
    (dict(name="n" * 10_000_000), "name"),
    (dict(raster_path="/" + "p" * 5000), "raster_path"),
    (dict(label_raster_path="/" + "p" * 5000), "label_raster_path"),
])
def test_spec_text_fields_are_bounded(srv, changes, field):
    stub, auth = _stub(srv)
    with pytest.raises(grpc.RpcError) as err:
        list(stub.Submit(pb.SubmitRequest(spec=spec(srv.raster, **changes)), metadata=auth, timeout=60))
    assert err.value.code() == SC.INVALID_ARGUMENT and err.value.details().startswith(field), err.value.details()
    assert "at most" in err.value.details()


def test_polygon_and_params_are_bounded(srv):
    stub, auth = _stub(srv)
    big_wkt = "POLYGON((" + ", ".join(f"{500000 + i % 100} {3990000 + i // 100}" for i in range(80_000)) + "))"
    s = spec(srv.raster)
    s.aoi.polygon_wkt = big_wkt
    many = spec(srv.raster)
    many.stages[0].params.update({f"p{i}": "1" for i in range(65)})
    long_value = spec(srv.raster)
    long_value.stages[0].params["sleep"] = "1" * 5000
    for bad, field in ((s, "aoi.polygon_wkt"), (many, "stages[0].params"), (long_value, "stages[0].params.sleep")):
        with pytest.raises(grpc.RpcError) as err:
            list(stub.Submit(pb.SubmitRequest(spec=bad), metadata=auth, timeout=60))
        assert err.value.code() == SC.INVALID_ARGUMENT and err.value.details().startswith(field), \
            err.value.details()[:200]


def _old_journal(workspace, n, name="job", name_chars=0):
    """Jobs recorded as an older server would have (no size limits), before the server starts."""
    journal = Journal.for_workspace(workspace)
    ids = []
    for i in range(n):
        job_id = f"j2020010{i // 10}T0000{i % 10:02d}Z-{i:06x}"
        s = JobSpec(aoi=Aoi(polygon_wkt="POLYGON((0 0, 1 0, 1 1, 0 0))"), raster_path="/data/x.tif",
                    name=(name * (name_chars // len(name) + 1))[:name_chars] if name_chars else f"{name} {i}",
                    stages=[StageConfig("segment", "spectral", {"ndvi_tree": "0.5"})])
        journal.create_job(job_id, s, str(workspace / "jobs" / job_id))
        journal.set_state(job_id, "SUCCEEDED", error="e" * 5000)
        ids.append(job_id)
    journal.close()
    return ids


def test_jobs_with_huge_names_from_an_old_journal_still_list(tmp_path):
    ws = tmp_path / "ws"
    ids = _old_journal(ws, 7, name_chars=10_000_000)
    server = start_server(ws, "--quiet")
    try:
        with server.client() as c:
            page = c.list_jobs_page()
            assert [j.job_id for j in page.jobs] == ids[::-1] and page.total_jobs == 7
            assert page.ByteSize() < 200_000
            entry = page.jobs[0]
            assert entry.abbreviated and len(entry.name) == 200 and len(entry.spec.name) == 200
            assert not entry.spec.aoi.polygon_wkt and not entry.spec.stages[0].params
            assert entry.spec.stages[0].engine == "spectral" and entry.spec.raster_path == "/data/x.tif"
            assert len(entry.error) == 1000
            full = c.get_job(ids[0])                          # GetJob keeps the full spec
            assert not full.abbreviated and len(full.spec.name) == 10_000_000
            assert full.spec.stages[0].params["ndvi_tree"] == "0.5"
    finally:
        server.kill()


def test_list_jobs_pages_newest_first_and_old_clients_get_one_bounded_page(tmp_path):
    ws = tmp_path / "ws"
    ids = _old_journal(ws, 125)[::-1]                         # newest first
    server = start_server(ws, "--quiet")
    try:
        stub, auth = _stub(server)
        old = stub.ListJobs(pb.ListJobsRequest(), metadata=auth, timeout=10)     # an old client: limit 0 = "all"
        assert [j.job_id for j in old.jobs] == ids[:100] and old.next_page_token and old.total_jobs == 125
        seen, token = [], ""
        while True:
            page = stub.ListJobs(pb.ListJobsRequest(limit=40, page_token=token), metadata=auth, timeout=10)
            assert len(page.jobs) <= 40
            seen += [j.job_id for j in page.jobs]
            token = page.next_page_token
            if not token:
                break
        assert seen == ids
        with server.client() as c:
            assert [j.job_id for j in c.list_jobs()] == ids   # the Python client pages through everything
            assert [j.job_id for j in c.list_jobs(7)] == ids[:7]
            with pytest.raises(InvalidArgument, match="page_token"):
                c.list_jobs_page(10, "not-a-token!")
            with pytest.raises(InvalidArgument, match="limit"):
                c.list_jobs_page(-1)
        out = subprocess.run([sys.executable, "-m", "groundsynth", "jobs", "--address", server.address,
                              "--token-file", str(ws / "token"), "list"], cwd=ROOT, capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0 and len(out.stdout.splitlines()) == 125, out.stderr
    finally:
        server.kill()


def test_delete_job_removes_files_rows_and_events(srv):
    with srv.client() as c:
        events = list(c.submit(spec(srv.raster)))
        job_id = events[-1].job_id
        assert events[-1].done.state == pb.SUCCEEDED
        out_dir = srv.workspace / "jobs" / job_id
        assert out_dir.is_dir() and any(out_dir.rglob("*.tif"))
        resp = c.delete_job(job_id)
        assert resp.job_id == job_id and resp.files_removed > 0 and resp.bytes_freed > 0
        assert not out_dir.exists() and not list((srv.workspace / "jobs").glob(".deleting-*"))
        with pytest.raises(NotFound):
            c.get_job(job_id)
        with pytest.raises(NotFound):
            list(c.watch(job_id))
        assert job_id not in {j.job_id for j in c.list_jobs()}
        with pytest.raises(NotFound):
            c.delete_job(job_id)
    journal = Journal.for_workspace(srv.workspace)          # WAL: readable beside the server
    try:
        assert journal.get_job(job_id) is None and journal.tiles(job_id) == []
    finally:
        journal.close()
    log = EventLog(srv.workspace / "journal.sqlite")
    try:
        assert log.events(job_id) == []
    finally:
        log.close()


def test_delete_refuses_a_running_job_and_needs_the_token(srv):
    with srv.client() as c:
        slow = spec(srv.raster)
        slow.stages[0].params["sleep"] = "0.5"
        stream = c.submit(slow)
        job_id = next(iter(stream)).job_id
        try:
            with pytest.raises(FailedPrecondition, match="cancel it first"):
                c.delete_job(job_id)
        finally:
            stream.cancel()
            c.cancel(job_id)
    stub, _ = _stub(srv)
    with pytest.raises(grpc.RpcError) as err:
        stub.DeleteJob(pb.DeleteJobRequest(job_id=job_id), timeout=10)
    assert err.value.code() == SC.UNAUTHENTICATED


def test_cli_jobs_delete(srv):
    with srv.client() as c:
        job_id = list(c.submit(spec(srv.raster)))[-1].job_id
    cmd = [sys.executable, "-m", "groundsynth", "jobs", "--address", srv.address, "--token-file",
           str(srv.workspace / "token"), "delete", job_id]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and f"{job_id} deleted" in out.stdout, out.stderr
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and out.stderr.startswith("error (NOT_FOUND): job_id"), out.stderr


def test_a_deletion_cut_short_is_finished_at_the_next_start(tmp_path):
    ws = tmp_path / "ws"
    left = ws / "jobs" / ".deleting-j1"
    (left / "real").mkdir(parents=True)
    (left / "real" / "x.tif").write_bytes(b"x")
    server = start_server(ws, "--quiet")
    try:
        assert not left.exists()
    finally:
        server.kill()
