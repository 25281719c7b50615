"""The same contract for every executor (inline, process and, in the `-m ray` step, ray on a local cluster of two
worker nodes): identical tiles and records, a SIGKILLed worker, a killed head then resume, cancel, the fit
barrier's stored state, an engine failure. In every case each tile is recorded and emitted exactly once, every
artefact opens and no temp file is left."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import rasterio

from groundsynth.pipeline.events import TileDone
from groundsynth.pipeline.outputs import record_order
from groundsynth.pipeline.prepare import RunOptions
from groundsynth.pipeline.runner import run_job
from groundsynth.request.errors import GroundSynthError
from groundsynth.request.spec import Aoi, JobSpec, SynthesisOptions
from groundsynth.service.journal import Journal
from scripts.tile_digest import digests
from tests.helpers_engines import TEST_STAGES, test_engines
from tests.helpers_rasters import px_bbox, write_raster

ROOT = Path(__file__).resolve().parents[1]
ALL = 12 + 24                                  # 4 x 3 real tiles, 2 variants
EXECUTORS = ["inline", "process", pytest.param("ray", marks=pytest.mark.ray)]
PARALLEL = ["process", pytest.param("ray", marks=pytest.mark.ray)]


@pytest.fixture(autouse=True)
def engines():
    with test_engines():
        yield


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return write_raster(tmp_path_factory.mktemp("exec") / "src.tif", width=256, height=192, seed=1)


def make_spec(source, seg=None, syn=None, variants=2):
    return JobSpec(aoi=Aoi(bbox=px_bbox(0, 0, 256, 192)), raster_path=str(source), tile_size=64, seed=11,
                   stages=TEST_STAGES(synthesise_params=syn, **(seg or {})),
                   synthesis=SynthesisOptions(variants=variants))


class Events(list):
    def __call__(self, event):
        self.append(event)

    def tiles(self):
        return [e.record.tile_id for e in self if isinstance(e, TileDone)]

    def of(self, kind):
        return [e for e in self if e.kind == kind]


def options(request, name, **kw):
    address = request.getfixturevalue("ray_cluster").address if name == "ray" else ""
    return RunOptions(executor=name, workers=2, ray_address=address, **kw)


def records_json(journal, job_id):
    return sorted(r.to_json() for r in journal.tiles(job_id))


@pytest.fixture(scope="module")
def reference(source, tmp_path_factory):
    """The inline run: the bytes and records every executor must reproduce."""
    ws = tmp_path_factory.mktemp("ref")
    journal = Journal(ws / "journal.sqlite")
    with test_engines():
        assert run_job("ref", make_spec(source), ws, journal, Events(), lambda: False,
                       RunOptions(executor="inline", batch_size=3)) == "SUCCEEDED"
    out = (digests(ws / "jobs" / "ref"), records_json(journal, "ref"), grid_rows(ws / "jobs" / "ref"))
    journal.close()
    return out


def grid_rows(job_dir):
    import fiona

    with fiona.open(job_dir / "tiles.gpkg", layer="tiles") as layer:
        return [(dict(f.properties), f.geometry.coordinates) for f in layer]


def check_job(journal, job_id, job_dir, emitted, reference=None):
    """Every tile recorded once and emitted once, every artefact opens, no temp file, same bytes as inline."""
    ids = [r.tile_id for r in journal.tiles(job_id)]
    assert len(ids) == len(set(ids)) == ALL
    assert len(emitted) == len(set(emitted)) and set(emitted) == set(ids)
    for rec in journal.tiles(job_id):
        for rel in rec.artefacts.values():
            with rasterio.open(job_dir / rel) as ds:
                assert ds.read().shape[1:] == (rec.height, rec.width)
    for vrt in job_dir.glob("*.vrt"):
        with rasterio.open(vrt) as ds:
            ds.read(1)
    assert list(job_dir.rglob(".tmp-*")) == []
    if reference is not None:
        assert digests(job_dir) == reference[0]
        assert records_json(journal, job_id) == reference[1]


def test_every_executor_writes_the_same_tiles_and_records(request, executor_name, source, tmp_path, reference):
    journal = Journal(tmp_path / "journal.sqlite")
    ev = Events()
    assert run_job("j", make_spec(source), tmp_path, journal, ev, lambda: False,
                   options(request, executor_name, batch_size=3)) == "SUCCEEDED"
    job_dir = tmp_path / "jobs" / "j"
    check_job(journal, "j", job_dir, ev.tiles(), reference)
    # the tile grid comes out the same (rows, order, attributes), whatever order the batches finished in
    assert grid_rows(job_dir) == reference[2]
    assert [e.record.tile_id for e in ev.of("tile")] == \
        [r.tile_id for r in sorted(journal.tiles("j"), key=record_order)]      # committed in task order
    assert json.loads((job_dir / "report.json").read_text())["job_id"] == "j"
    journal.close()


@pytest.fixture(params=EXECUTORS)
def executor_name(request):
    return request.param


@pytest.fixture(params=PARALLEL)
def parallel_name(request):
    return request.param


def test_a_sigkilled_worker_is_replaced_and_its_batch_retried(request, parallel_name, source, tmp_path, reference):
    pids = tmp_path / "pids"
    pids.mkdir()
    journal = Journal(tmp_path / "journal.sqlite")
    killed: list[int] = []
    ev = Events()

    def emit(event):
        ev(event)
        if len(ev.tiles()) == 2 and not killed:
            victim = next(int(p.name) for p in sorted(pids.iterdir()) if int(p.name) != os.getpid())
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

    spec = make_spec(source, seg={"sleep": 0.03, "pid_dir": str(pids)})
    assert run_job("k", spec, tmp_path, journal, emit, lambda: False,
                   options(request, parallel_name, batch_size=2)) == "SUCCEEDED"
    assert killed and not _alive(killed[0])
    check_job(journal, "k", tmp_path / "jobs" / "k", ev.tiles(), reference)
    if parallel_name == "process":
        from groundsynth.pipeline.executors.process import shared_process_executor

        assert shared_process_executor(2).restarts >= 1           # the pool was replaced
    journal.close()


HEAD = """
import json, sys
from tests.helpers_engines import register_all
register_all()
from groundsynth.pipeline.prepare import RunOptions
from groundsynth.pipeline.runner import run_job
from groundsynth.request.spec import JobSpec
from groundsynth.service.journal import Journal
args = json.loads(sys.argv[1])
def emit(event):
    if event.kind == "tile":
        print(event.record.tile_id, flush=True)
if __name__ == "__main__":
    run_job("h", JobSpec.from_json(args["spec"]), args["ws"], Journal(args["ws"] + "/journal.sqlite"), emit,
            lambda: False, RunOptions(executor=args["executor"], workers=2, ray_address=args["address"], batch_size=2))
"""


def test_a_killed_head_resumes_every_tile_once(request, executor_name, source, tmp_path, reference):
    pids = tmp_path / "pids"
    pids.mkdir()
    spec = make_spec(source, seg={"sleep": 0.03, "pid_dir": str(pids)})
    opts = options(request, executor_name, batch_size=2)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    script = tmp_path / "head.py"
    script.write_text(HEAD)
    args = json.dumps({"spec": spec.to_json(), "ws": str(tmp_path), "executor": executor_name,
                       "address": opts.ray_address})
    head = subprocess.Popen([sys.executable, str(script), args], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x.strip()) for x in head.stdout], daemon=True).start()
    first: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while len(first) < 8 and time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                first.append(lines.get(timeout=1))
    finally:
        head.send_signal(signal.SIGKILL)                           # no clean-up at all
        head.wait(30)
    time.sleep(0.3)
    while not lines.empty():                                       # printed before it died
        first.append(lines.get())
    assert len(first) >= 8
    dead_workers = {int(p.name) for p in pids.iterdir()} - {head.pid}
    journal = Journal(tmp_path / "journal.sqlite")
    assert journal.get_job("h").state == "RUNNING"                 # it died mid-job
    ev = Events()
    assert run_job("h", spec, tmp_path, journal, ev, lambda: False, opts) == "SUCCEEDED"
    check_job(journal, "h", tmp_path / "jobs" / "h", first + ev.tiles(), reference)
    journal.close()
    if executor_name == "process":       # the dead head's workers leave by themselves
        deadline = time.monotonic() + 30
        while any(_alive(p) for p in dead_workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(p) for p in dead_workers)


def test_cancel_drains_the_batches_in_flight_then_resume_finishes(request, executor_name, source, tmp_path,
                                                                  reference):
    journal = Journal(tmp_path / "journal.sqlite")
    spec = make_spec(source, seg={"sleep": 0.02})
    opts = options(request, executor_name, batch_size=2)
    ev = Events()
    assert run_job("c", spec, tmp_path, journal, ev, lambda: len(ev.tiles()) >= 1, opts) == "CANCELLED"
    recorded = [r.tile_id for r in journal.tiles("c")]
    assert ev.tiles() == recorded and journal.get_job("c").state == "CANCELLED"
    window = 1 if executor_name == "inline" else 2 * 2           # batches in flight at most (2 workers)
    assert 2 <= len(recorded) <= 2 * (window + 1) and len(recorded) % 2 == 0   # whole batches, drained
    job_dir = tmp_path / "jobs" / "c"
    for rec in journal.tiles("c"):
        for rel in rec.artefacts.values():
            with rasterio.open(job_dir / rel):
                pass
    assert list(job_dir.rglob(".tmp-*")) == [] and (job_dir / "tiles.gpkg").is_file()
    ev2 = Events()
    assert run_job("c", spec, tmp_path, journal, ev2, lambda: False, opts) == "SUCCEEDED"
    check_job(journal, "c", job_dir, ev.tiles() + ev2.tiles(), reference)
    journal.close()


def test_the_fit_runs_once_and_a_resumed_job_reuses_its_state(request, executor_name, source, tmp_path, reference):
    fits = tmp_path / "fits.log"
    spec = make_spec(source, syn={"fit_log": str(fits)})
    opts = options(request, executor_name, batch_size=2)
    journal = Journal(tmp_path / "journal.sqlite")
    ev = Events()
    syn_seen = lambda: any(t.endswith("_v1") or t.endswith("_v2") for t in ev.tiles())  # noqa: E731
    assert run_job("s", spec, tmp_path, journal, ev, syn_seen, opts) == "CANCELLED"
    meta = journal.get_meta("s", "synthesis_state")
    state = tmp_path / "jobs" / "s" / meta["path"]
    assert hashlib.sha256(state.read_bytes()).hexdigest() == meta["sha256"]
    assert meta["fit_tiles"] == 12 and fits.read_text().count("fit 12") == 1
    ev2 = Events()
    assert run_job("s", spec, tmp_path, journal, ev2, lambda: False, opts) == "SUCCEEDED"
    assert fits.read_text().count("fit") == 1                     # not fitted again
    check_job(journal, "s", tmp_path / "jobs" / "s", ev.tiles() + ev2.tiles(), reference)
    journal.close()


def test_an_engine_failure_keeps_the_batches_before_it(request, executor_name, source, tmp_path):
    marker = tmp_path / "fail-now"
    marker.write_text("x")
    spec = make_spec(source, seg={"fail_on": "r0001_c0002", "fail_marker": str(marker)}, variants=1)
    journal = Journal(tmp_path / "journal.sqlite")
    with pytest.raises(GroundSynthError) as err:
        run_job("f", spec, tmp_path, journal, Events(), lambda: False, options(request, executor_name, batch_size=1))
    # the worker's error comes back whole: its type, its message, the tile it names
    assert type(err.value).__name__ == "EngineFailed" and err.value.tile_id == "r0001_c0002"
    assert "test-bright" in err.value.message and journal.get_job("f").state == "FAILED"
    # committed in order: the batches before the failing one, never one after it
    assert [r.tile_id for r in journal.tiles("f")] == ["r0000_c0000", "r0000_c0001", "r0000_c0002", "r0000_c0003",
                                                     "r0001_c0000", "r0001_c0001"]
    journal.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:      # a zombie (exited, not yet reaped) counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_in_head_thread_waits_for_the_thread_and_raises_the_bodys_error_first():
    import threading

    import pytest

    from groundsynth.pipeline.outputs import in_head_thread

    release, ran = threading.Event(), []

    def slow() -> None:
        release.wait(5)
        ran.append("thread")

    def failing() -> None:
        raise OSError("disk full in the thread")

    with in_head_thread(slow):
        ran.append("body")
        release.set()
    assert ran == ["body", "thread"]                      # the block ends after the thread does
    with pytest.raises(OSError, match="in the thread"), in_head_thread(failing):
        pass
    with pytest.raises(ValueError, match="body"), in_head_thread(failing):
        raise ValueError("the body's error")
