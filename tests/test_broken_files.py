"""Item 6 of issue 9: clear errors for broken files and bad command lines.

- a truncated GeoTIFF: INVALID_ARGUMENT at Submit and for an upload (a block read), `run` prints
  `error (INVALID_ARGUMENT): raster_path: ...` and exits 2 (no traceback);
- a truncated or corrupt journal: `serve` prints `error (FAILED_PRECONDITION): journal: ...` with what to do;
- a full disk: RESOURCE_EXHAUSTED "disk full" naming the workspace, no half-written or unrecorded tile files
  (a real 1 MiB tmpfs when this machine lets us mount one, and always a simulated ENOSPC at the atomic layer);
- Watch with an after_seq past the job's last event: INVALID_ARGUMENT;
- `--tile-size abc` in the `error (CODE): field: message` format; `--aoi -75.7,...` without `=`.
"""
import contextlib
import errno
import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from groundsynth.api.v1.contract import pb, rpc
from groundsynth.request.errors import InvalidArgument, ResourceExhausted
from groundsynth.request.spec import Aoi, JobSpec
from groundsynth.service.journal import Journal
from tests.helpers_engines import TEST_STAGES
from tests.server_fixture import ROOT, make_test_raster, raster_bbox, start_server

SC = grpc.StatusCode


def truncated(path: Path, src: Path, fraction: float = 0.6) -> Path:
    data = src.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def spec(raster, size=128, **kw):
    minx, miny, maxx, maxy = raster_bbox(size)
    return JobSpec(aoi=Aoi(bbox=(minx, miny, maxx, maxy)), raster_path=str(raster), tile_size=64,
                   stages=kw.pop("stages", TEST_STAGES(("segment", "caption"))), **kw)


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    base = tmp_path_factory.mktemp("broken")
    workspace = base / "workspace"
    raster = make_test_raster(workspace / "data" / "src.tif", size=128)
    server = start_server(workspace, "--quiet")
    server.raster = raster
    server.cut = truncated(workspace / "data" / "cut.tif", raster)
    yield server
    server.kill()


# ------------------------------------------------------------------ truncated rasters

def test_truncated_geotiff_is_invalid_argument_at_submit_and_upload(srv):
    with srv.client() as c:
        with pytest.raises(InvalidArgument) as err:
            list(c.submit(spec(srv.cut)))
        assert err.value.message.startswith("raster_path") and "truncated" in err.value.message
        with pytest.raises(InvalidArgument) as err:
            list(c.submit(spec(srv.raster, label_raster_path=str(srv.cut))))
        assert err.value.message.startswith("label_raster_path")
        with pytest.raises(InvalidArgument) as err:
            c.upload(srv.cut)
        assert err.value.message.startswith("data") and "truncated" in err.value.message
    uploads = srv.workspace / "uploads"
    assert not uploads.exists() or list(uploads.iterdir()) == []


def test_run_with_a_truncated_geotiff_gives_the_error_format_not_a_traceback(srv, tmp_path):
    minx, miny, maxx, maxy = raster_bbox(128)
    out = subprocess.run([sys.executable, "-m", "groundsynth", "run", "--raster", str(srv.cut), "--workspace",
                          str(tmp_path / "ws"), f"--aoi={minx},{miny},{maxx},{maxy}", "--tile-size", "64",
                          "--stages", "segment", "--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "error (INVALID_ARGUMENT): raster_path:" in out.stderr and "Traceback" not in out.stderr


# ------------------------------------------------------------------ journal

def _workspace_with_jobs(ws: Path) -> Path:
    from groundsynth.artefacts.records import TileRecord

    journal = Journal.for_workspace(ws)
    for i in range(40):
        journal.create_job(f"j{i:03d}", spec("/data/x.tif", name="n" * 100), str(ws / "jobs" / f"j{i:03d}"))
        for t in range(20):
            journal.record_tile(f"j{i:03d}", TileRecord(f"r{t:04d}_c0000", "real", t, 0, captions=["c" * 200]))
    journal.close()
    return ws / "journal.sqlite"


@pytest.mark.parametrize("damage", ["half", "header", "garbage"])
def test_broken_journal_stops_serve_with_a_clear_message(tmp_path, damage):
    ws = tmp_path / "ws"
    path = _workspace_with_jobs(ws)
    data = path.read_bytes()
    assert len(data) > 64 * 1024
    path.write_bytes({"half": data[: len(data) // 2], "header": data[:100],
                      "garbage": b"this is not sqlite" * 1000}[damage])
    out = subprocess.run([sys.executable, "-m", "groundsynth", "serve", "--address", "127.0.0.1:0",
                          "--workspace", str(ws)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "error (FAILED_PRECONDITION): journal:" in out.stderr and "Traceback" not in out.stderr
    assert "mv " in out.stderr and str(path) in out.stderr


# ------------------------------------------------------------------ full disk

@contextlib.contextmanager
def tiny_disk(path: Path, size: str = "1m"):
    """A tmpfs of `size` at `path`; yields False (and nothing mounted) where mounting is not permitted."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        res = None
    if res is None or res.returncode != 0:
        yield False
        return
    try:
        yield True
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


def _check_no_unrecorded_files(workspace: Path, job_id: str) -> None:
    journal = Journal.for_workspace(workspace)
    try:
        recorded = {(workspace / "jobs" / job_id / p).resolve() for r in journal.tiles(job_id)
                    for p in r.artefacts.values()}
    finally:
        journal.close()
    job_dir = workspace / "jobs" / job_id
    tifs = {p.resolve() for p in job_dir.rglob("*.tif") if p.parent.parent.name in ("real", "synthetic")}
    assert tifs <= recorded, sorted(str(p) for p in tifs - recorded)[:5]
    assert not [p for p in workspace.rglob(".tmp-*")]


def test_full_disk_on_a_real_tiny_filesystem(tmp_path):
    ws = tmp_path / "ws"
    data = tmp_path / "data"
    raster = make_test_raster(data / "src.tif", size=512)
    with tiny_disk(ws) as mounted:
        if not mounted:
            print("mount -t tmpfs is not permitted here: see test_full_disk_simulated_at_the_atomic_layer")
            _simulated_full_disk(tmp_path / "sim")
            return
        server = start_server(ws, "--allow-root", str(data), "--batch-size", "4", "--quiet")
        try:
            with server.client() as c:
                events = list(c.submit(spec(raster, size=512, stages=TEST_STAGES())))
                last = events[-1]
                assert last.HasField("failed"), last
                assert last.failed.code == SC.RESOURCE_EXHAUSTED.value[0]
                assert "disk full" in last.failed.message and str(ws.resolve()) in last.failed.message
                assert last.failed.message.startswith("workspace")
                info = c.get_job(last.job_id)
                assert info.state == pb.FAILED and "disk full" in info.error
                with pytest.raises(ResourceExhausted, match="disk full"):
                    c.upload(make_test_raster(tmp_path / "big.tif", size=512))
                assert c.health() == "SERVING"
            _check_no_unrecorded_files(ws, last.job_id)
            assert not (ws / "uploads").exists() or list((ws / "uploads").iterdir()) == []
        finally:
            server.kill()


def test_full_disk_simulated_at_the_atomic_layer(tmp_path):
    """ENOSPC from the file system (patched into groundsynth.artefacts.atomic after 12 files), in-process."""
    _simulated_full_disk(tmp_path)


def _simulated_full_disk(tmp_path):
    import groundsynth.artefacts.atomic as atomic
    from groundsynth.service.config import ServerConfig
    from groundsynth.service.server import GroundSynthServer
    from tests.helpers_engines import test_engines

    class FullAfter:
        def __init__(self, n):
            self.left = n

        def __getattr__(self, name):
            return getattr(os, name)

        def fsync(self, fd):
            self.left -= 1
            if self.left < 0:
                raise OSError(errno.ENOSPC, "No space left on device")
            return os.fsync(fd)

    ws = tmp_path / "ws"
    raster = make_test_raster(ws / "data" / "src.tif", size=256)
    with contextlib.ExitStack() as stack, test_engines():
        mp = stack.enter_context(pytest.MonkeyPatch.context())
        server = GroundSynthServer(ServerConfig.load(workspace=ws, address="127.0.0.1:0", batch_size=2,
                                                     executor="inline")).start()   # the patch is in this process
        stack.callback(server.stop, 0)
        mp.setattr(atomic, "os", FullAfter(12))
        with _client(server) as c:
            events = list(c.submit(spec(raster, size=256, stages=TEST_STAGES())))
        last = events[-1]
        assert last.HasField("failed") and last.failed.code == SC.RESOURCE_EXHAUSTED.value[0], last
        assert "disk full" in last.failed.message and str(ws.resolve()) in last.failed.message
        _check_no_unrecorded_files(ws, last.job_id)


def _client(server):
    from groundsynth.api.v1.client import GroundSynthClient

    return GroundSynthClient(server.address, token=server.token)


# ------------------------------------------------------------------ Watch / CLI

def test_watch_after_the_last_event_is_invalid_argument(srv):
    with srv.client() as c:
        events = list(c.submit(spec(srv.raster)))
    job_id, last = events[-1].job_id, events[-1].seq
    stub = rpc.GroundSynthStub(grpc.insecure_channel(srv.address))
    auth = (("authorization", f"Bearer {srv.token}"),)
    for after in (last + 1, 2**63, 2**64 - 1):
        with pytest.raises(grpc.RpcError) as err:
            list(stub.Watch(pb.WatchRequest(job_id=job_id, after_seq=after), metadata=auth, timeout=10))
        assert err.value.code() == SC.INVALID_ARGUMENT and err.value.details().startswith("after_seq")
        assert f"0..{last}" in err.value.details()
    assert list(stub.Watch(pb.WatchRequest(job_id=job_id, after_seq=last), metadata=auth, timeout=10)) == []


@pytest.mark.parametrize("args, field", [
    (["--tile-size", "abc"], "tile_size: expected an integer, got 'abc'"),
    (["--seed", "x1"], "seed: expected an integer"),
    (["--batch-size", "2.5"], "batch_size: expected an integer"),
])
def test_bad_flag_values_use_the_error_format(tmp_path, args, field):
    out = subprocess.run([sys.executable, "-m", "groundsynth", "run", "--raster", "a.tif", "--workspace",
                          str(tmp_path), "--aoi=0,0,1,1", *args], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2
    assert out.stderr.startswith(f"error (INVALID_ARGUMENT): {field}"), out.stderr
    assert "usage:" not in out.stderr


def test_aoi_starting_with_a_minus_works_without_equals(tmp_path):
    from pyproj import Transformer

    raster = make_test_raster(tmp_path / "src.tif", size=128)
    minx, miny, maxx, maxy = raster_bbox(128)
    to_ll = Transformer.from_crs("EPSG:32618", "EPSG:4326", always_xy=True)
    (lon0, lat0), (lon1, lat1) = to_ll.transform(minx + 100, miny + 100), to_ll.transform(maxx - 100, maxy - 100)
    assert lon0 < 0
    out = subprocess.run([sys.executable, "-m", "groundsynth", "run", "--raster", str(raster), "--workspace",
                          str(tmp_path / "ws"), "--aoi", f"{lon0:.6f},{lat0:.6f},{lon1:.6f},{lat1:.6f}",
                          "--aoi-crs", "EPSG:4326", "--tile-size", "64", "--stages", "segment", "--quiet"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert Path(out.stdout.strip().splitlines()[-1]).is_dir()


def test_join_negative_values_only_touches_options_with_a_value():
    from groundsynth.cli.main import _value_options, build_parser, join_negative_values

    opts = _value_options(build_parser())
    assert {"--aoi", "--tile-size", "--seed"} <= opts and "--quiet" not in opts
    assert join_negative_values(["run", "--aoi", "-75.7,37.6,-75.6,37.7", "--quiet", "-1"], opts) == \
        ["run", "--aoi=-75.7,37.6,-75.6,37.7", "--quiet", "-1"]
    assert join_negative_values(["--seed", "-.5"], opts) == ["--seed=-.5"]
