"""The pieces under the executors: the head's loop (`drive`: bounded in flight, ordered commit, retry, failure,
cancel), the worker's tile cache, per-batch sync, the GDAL cache cap, mask reuse by the grounder, declared
resources, errors carried back from workers, the stored synthesis state, and the executor option everywhere
(spec, contract, CLI, server config, Capabilities)."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from groundsynth.pipeline.context import EngineFailed, RealTask, TaskFailure, TaskResult
from groundsynth.pipeline.executors.base import TileExecutor, WorkerLost, WorkerLostTooOften, drive
from groundsynth.pipeline.prepare import RunOptions
from groundsynth.pipeline.runner import run_job
from groundsynth.pipeline.tile_cache import TileCache
from groundsynth.request.errors import FailedPrecondition, GroundSynthError, InvalidArgument
from groundsynth.service.journal import Journal
from tests.helpers_engines import test_engines
from tests.test_executors import Events, make_spec, source  # noqa: F401 - fixture


# ---------------------------------------------------------------- drive
class Handle:
    def __init__(self, task, attempt):
        self.task, self.attempt = task, attempt


class FakeExecutor(TileExecutor):
    """Tasks finish in reverse order of submission, one per wait; `lose` and `fail` name task indexes."""

    name = "fake"

    def __init__(self, lose=(), fail=(), slots=2):
        self.n, self.lose, self.fail = slots, set(lose), set(fail)
        self.running: list = []
        self.max_running = 0
        self.submitted: list[int] = []

    def slots(self):
        return self.n

    def submit(self, ctx, task, shared=None):
        self.submitted.append(task)
        self.running.append(Handle(task, self.submitted.count(task)))
        self.max_running = max(self.max_running, len(self.running))
        return self.running[-1]

    def wait(self, handles, timeout):
        return [handles[-1]]

    def result(self, handle):
        self.running.remove(handle)
        task, attempt = handle.task, handle.attempt
        if task in self.lose and attempt == 1:
            raise WorkerLost("killed")
        if task in self.fail:
            return TaskResult(failure=TaskFailure.of(EngineFailed(f"task {task} failed", f"t{task}")))
        return TaskResult(value=task)


def test_drive_commits_in_task_order_with_bounded_work_in_flight():
    ex = FakeExecutor()
    committed = []
    assert drive(ex, None, list(range(10)), lambda t, r: committed.append(r.value), lambda: False) is True
    assert committed == list(range(10))                     # finished in reverse, committed in order
    assert ex.max_running <= 4                              # window: two per slot


def test_drive_retries_a_lost_task_and_gives_up_after_three_retries():
    ex = FakeExecutor(lose={3})
    committed = []
    assert drive(ex, None, list(range(6)), lambda t, r: committed.append(r.value), lambda: False)
    assert committed == list(range(6)) and ex.submitted.count(3) == 2

    class Always(FakeExecutor):
        def result(self, handle):
            self.running.remove(handle)
            raise WorkerLost("node removed")

    with pytest.raises(WorkerLostTooOften, match="lost 4 times"):
        drive(Always(), None, [RealTask((), ())], lambda t, r: None, lambda: False)


def test_drive_commits_the_tasks_before_a_failure_and_none_after():
    ex = FakeExecutor(fail={4})
    committed = []
    with pytest.raises(EngineFailed) as err:
        drive(ex, None, list(range(10)), lambda t, r: committed.append(r.value), lambda: False)
    assert committed == [0, 1, 2, 3] and err.value.tile_id == "t4"
    assert ex.running == []                                 # drained before raising


def test_drive_waits_for_tasks_in_flight_when_recording_fails():
    """A full disk while the head records a batch: no task may still run (and write files) once drive
    has raised, so the service's sweep of unrecorded files sees them all."""
    class InOrder(FakeExecutor):                             # tasks finish in submission order
        def wait(self, handles, timeout):
            return [handles[0]]

    ex = InOrder()

    def record(task, res):
        if res.value == 2:
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        drive(ex, None, list(range(10)), record, lambda: False)
    assert ex.running == [] and len(ex.submitted) > 3


def test_drive_cancel_stops_submitting_and_drains():
    ex = FakeExecutor()
    committed: list[int] = []
    assert drive(ex, None, list(range(10)), lambda t, r: committed.append(r.value),
                 lambda: len(committed) >= 2) is False
    assert committed == list(range(len(committed))) and 2 <= len(committed) <= 2 + 4 and ex.running == []


def test_batches_are_even_whole_rounds_over_the_slots_and_keep_the_order():
    from types import SimpleNamespace

    from groundsynth.pipeline.job_run import JobRun

    def cut(n, bs, slots):
        run = SimpleNamespace(opt=RunOptions(batch_size=bs), executor=FakeExecutor(slots=slots))
        out = JobRun.batches(run, list(range(n)))
        assert [i for b in out for i in b] == list(range(n))
        return [len(b) for b in out]

    assert cut(70, 8, 2) == [7] * 10            # not 9 batches of 8 (the last of 6) with a worker idle
    assert cut(64, 8, 2) == [8] * 8
    assert cut(70, 8, 1) == [8] * 7 + [7] * 2
    assert cut(3, 8, 4) == [1, 1, 1]            # fewer items than slots: one each
    assert cut(5, 2, 4) == [2, 1, 1, 1]
    assert cut(0, 8, 2) == []


# ---------------------------------------------------------------- worker pieces
def _blas_threads(_=None):
    from threadpoolctl import threadpool_info

    return sorted({int(lib["num_threads"]) for lib in threadpool_info() if lib["user_api"] == "blas"})


def test_a_pool_worker_runs_one_blas_thread_although_numpy_was_loaded_in_the_fork_server():
    # numpy (OpenBLAS) is loaded in the fork server (PRELOAD), where OPENBLAS_NUM_THREADS is not set: a
    # variable set in the worker comes too late, so two workers on two cores ran two BLAS threads each
    import multiprocessing
    from concurrent import futures

    from groundsynth.pipeline.executors.process import PRELOAD
    from groundsynth.pipeline.worker import init_worker

    mp = multiprocessing.get_context("forkserver")
    mp.set_forkserver_preload(PRELOAD)
    with futures.ProcessPoolExecutor(1, mp_context=mp, initializer=init_worker, initargs=(os.getpid(), 1)) as ex:
        assert ex.submit(_blas_threads).result(timeout=120) == [1]


def test_tile_cache_is_bounded_in_bytes_and_least_recently_used_goes_first():
    cache = TileCache(max_bytes=3 * (4 * 64 * 64 + 64 * 64))
    tile = (np.ones((4, 64, 64), np.uint8), np.zeros((64, 64), np.uint8))
    for i in range(3):
        cache.put("j", f"t{i}", *tile)
    assert cache.get("j", "t0") is not None                 # t0 is now the most recent
    cache.put("j", "t3", *tile)
    assert cache.get("j", "t1") is None and cache.get("j", "t0") is not None and len(cache) == 3
    assert cache.nbytes <= cache.max_bytes
    cache.drop_job("j")
    assert len(cache) == 0 and cache.nbytes == 0


def test_a_batch_is_synced_once_after_its_atomic_renames(tmp_path, monkeypatch):
    from groundsynth.artefacts import atomic

    synced: list[str] = []
    real_fsync = os.fsync
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")),
                                                        real_fsync(fd)))
    paths = [tmp_path / "a" / f"{i}.bin" for i in range(3)]
    for p in paths:
        with atomic.atomic_path(p, sync=False) as tmp:
            tmp.write_bytes(b"x")
    assert synced == [] and all(p.read_bytes() == b"x" for p in paths)
    atomic.sync_files(paths)
    assert synced == [str(p) for p in paths] + [str(tmp_path / "a")]     # the files, then their folder once
    (tmp_path / "a" / ".tmp-left.tif").write_bytes(b"half")
    assert atomic.remove_temp_files(tmp_path) == 1 and not list(tmp_path.rglob(".tmp-*"))


def test_workers_cap_the_gdal_block_cache_and_a_fresh_inline_job_reads_no_tile_back(source, tmp_path,  # noqa: F811
                                                                                   monkeypatch):
    from rasterio._env import get_gdal_config

    from groundsynth.pipeline import real_tiles, synthetic_tiles

    seen, reads = [], []
    compute = real_tiles.compute_real
    monkeypatch.setattr(real_tiles, "compute_real", lambda w, t: (seen.append(get_gdal_config("GDAL_CACHEMAX")),
                                                                  compute(w, t))[1])
    read = synthetic_tiles.read_image_tile
    monkeypatch.setattr(synthetic_tiles, "read_image_tile", lambda p: (reads.append(p), read(p))[1])
    journal = Journal(tmp_path / "journal.sqlite")
    spec = make_spec(source)
    with test_engines():
        ev = Events()
        opts = RunOptions(executor="inline", batch_size=4, gdal_cache_mb=32)
        assert run_job("r", spec, tmp_path, journal, ev, lambda: any("_v" in t for t in ev.tiles()), opts) == \
            "CANCELLED"
        assert seen and set(seen) == {32 << 20}
        assert reads == []                     # the fit and the synthetic batches used the tiles kept in memory
        from groundsynth.pipeline.tile_cache import TILES

        TILES.drop_job("r")                    # as after a restart: a resumed job reads them back
        assert run_job("r", spec, tmp_path, journal, Events(), lambda: False, opts) == "SUCCEEDED"
    assert reads and len(journal.tiles("r")) == 36
    journal.close()


def test_the_grounder_reuses_the_pipeline_mask_when_its_reference_is_the_same_segmenter(monkeypatch):
    from groundsynth.engines import get_engine
    from groundsynth.engines.base import EngineContext, GroundInput, TileInput, engine_key

    rng = np.random.default_rng(3)
    image = rng.uniform(0, 1, (4, 64, 64)).astype(np.float32)
    valid = np.ones((64, 64), bool)
    grounder = get_engine("ground", "composition")({}, EngineContext())
    ref = grounder.reference()
    mask = ref.segment([TileInput("t", image, valid)])[0]
    caps = ["Mostly water with some trees in the north."]
    again = grounder.ground([GroundInput("t", "real", image, valid, mask, caps)])           # re-segments
    calls = []
    monkeypatch.setattr(type(ref), "segment", lambda self, tiles: calls.append(len(tiles)) or [mask] * len(tiles))
    key = engine_key(type(ref), ref.p)
    reused = grounder.ground([GroundInput("t", "real", image, valid, mask, caps, mask_source=key)])
    assert calls == [] and reused == again                                                  # same scores, no work
    other = engine_key(type(ref), {**ref.p, "smoothing": 99})
    grounder.ground([GroundInput("t", "real", image, valid, mask, caps, mask_source=other)])
    assert calls == [1]                                    # other parameters: segmented again


def test_engines_declare_what_a_worker_needs():
    from groundsynth.engines import get_engine
    from groundsynth.pipeline.executors.resources import actor_options, actors_for, worker_resources

    builtin = [get_engine(s, "") for s in ("segment", "synthesise", "caption", "ground")]
    assert worker_resources(builtin, "cpu") == {"num_cpus": 1.0, "num_gpus": 0.0, "memory_mb": 0, "device": "cpu"}
    neural = [get_engine("segment", "segformer"), get_engine("caption", "vlm"), get_engine("ground", "clip")]
    res = worker_resources(neural, "cuda")
    assert res["num_gpus"] == 1.0 and res["memory_mb"] >= 16384         # a VLM takes the whole GPU
    assert actor_options(worker_resources(neural[:1], "cuda"), 1)["num_gpus"] == 0.25
    with pytest.raises(FailedPrecondition, match="no GPU"):
        actor_options(res, 0)
    assert actors_for({"num_cpus": 1.0, "num_gpus": 0.25}, {"CPU": 16, "GPU": 2}) == 8
    assert actors_for({"num_cpus": 1.0, "num_gpus": 0.0}, {"CPU": 6}) == 6


def test_errors_come_back_from_workers_whole():
    for exc in (InvalidArgument("expected 1..9", "stages[segment].params.k"), EngineFailed("boom", "r0001_c0002"),
                FileNotFoundError(2, "No such file", "/x.tif")):
        back = pickle.loads(pickle.dumps(TaskFailure.of(exc))).rebuild()
        assert type(back) is type(exc) and str(back) == str(exc) and back.args == exc.args
        assert getattr(back, "field", None) == getattr(exc, "field", None)
        assert getattr(back, "tile_id", None) == getattr(exc, "tile_id", None)
    assert isinstance(back, OSError) and back.errno == 2


def test_a_state_file_that_does_not_match_its_digest_is_fitted_again(source, tmp_path):  # noqa: F811
    fits = tmp_path / "fits.log"
    spec = make_spec(source, syn={"fit_log": str(fits)})
    journal = Journal(tmp_path / "journal.sqlite")
    with test_engines():
        ev = Events()
        opts = RunOptions(executor="inline", batch_size=4)
        assert run_job("x", spec, tmp_path, journal, ev, lambda: any("_v" in t for t in ev.tiles()), opts) == \
            "CANCELLED"
        state = tmp_path / "jobs" / "x" / "synthesis_state.pkl"
        state.write_bytes(pickle.dumps({"state": {"fitted": -1}, "stats": None}))
        assert run_job("x", spec, tmp_path, journal, Events(), lambda: False, opts) == "SUCCEEDED"
    assert fits.read_text().count("fit") == 2
    journal.close()


def test_an_object_store_state_is_kept_per_job_so_what_an_engine_derives_from_it_is_derived_once(tmp_path):
    # Ray hands every task a fresh copy of the state; texture caches its search arrays for as long as the
    # state object lives, so without keeping the first copy it derived them again for every batch
    from groundsynth.pipeline.context import SharedState
    from groundsynth.pipeline.state_file import forget_states, resolve

    job, other = tmp_path / "jobs" / "a", tmp_path / "jobs" / "b"
    first = resolve(SharedState("d1", {"state": [1]}), job)
    assert resolve(SharedState("d1", {"state": [1]}), job) is first          # a later copy: the first one
    assert resolve(SharedState("d2", {"state": [2]}), job) == {"state": [2]}  # another fit: its own
    assert resolve(SharedState("d1", {"state": [1]}), other) is not first     # another job: its own
    forget_states(job)
    assert resolve(SharedState("d1", {"state": [1]}), job) is not first       # the report phase let it go
    forget_states(job)
    forget_states(other)
    assert resolve({"plain": 1}) == {"plain": 1}


def test_a_job_id_reused_in_another_workspace_gets_its_own_worker_state(source, tmp_path):  # noqa: F811
    """Workers cache a job's engines, source and real tiles; an id alone is not unique (tests, two
    workspaces): the second job must write into its own folder and read its own tiles."""
    spec = make_spec(source)
    with test_engines():
        for ws in ("a", "b"):
            journal = Journal(tmp_path / ws / "journal.sqlite")
            opts = RunOptions(executor="process", workers=1, batch_size=4)
            assert run_job("same", spec, tmp_path / ws, journal, Events(), lambda: False, opts) == "SUCCEEDED"
            recs = journal.tiles("same")
            journal.close()
            assert recs and all((tmp_path / ws / "jobs" / "same" / p).is_file()
                                for r in recs for p in r.artefacts.values())


# ---------------------------------------------------------------- the option everywhere
def test_the_executor_option_in_spec_contract_config_cli_and_capabilities(source, tmp_path, monkeypatch, capsys):  # noqa: F811
    from groundsynth.api.v1.convert import spec_from_proto, spec_to_proto
    from groundsynth.cli.main import main
    from groundsynth.pipeline import executors
    from groundsynth.service.config import ServerConfig
    from groundsynth.service.server import capabilities

    spec = make_spec(source)
    spec.executor = "inline"
    assert spec.normalised().executor == "inline" and spec_from_proto(spec_to_proto(spec)).executor == "inline"
    spec.executor = "threads"
    with pytest.raises(InvalidArgument, match="^executor: expected one of inline, process, ray"):
        spec.normalised()
    with pytest.raises(InvalidArgument) as err:
        ServerConfig.from_mapping({"executor": "gpu"})
    assert err.value.field == "executor"
    cfg = ServerConfig.from_mapping({"workspace": str(tmp_path), "executor": "inline", "executor_workers": 3})
    caps = capabilities(cfg)
    assert caps.limits.default_executor == "inline" and {"inline", "process"} <= set(caps.executors)
    monkeypatch.setattr(executors.importlib.util, "find_spec", lambda name: None)
    assert executors.available_executors() == ["inline", "process"]
    with pytest.raises(FailedPrecondition, match="optional .ray. extra"):
        executors.check_executor("ray")
    monkeypatch.undo()
    rc = main(["run", "--raster", str(source), "--aoi", ",".join(map(str, _bbox())), "--workspace",
               str(tmp_path / "ws"), "--tile-size", "64", "--stages", "segment", "--engine", "segment=test-bright",
               "--executor", "inline", "--quiet"])
    assert rc == 0 and Path(capsys.readouterr().out.strip().splitlines()[-1], "tiles.gpkg").is_file()
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--raster", str(source), "--aoi", ",".join(map(str, _bbox())), "--workspace",
              str(tmp_path / "ws"), "--executor", "threads"])
    assert exit_.value.code == 2 and "invalid choice: 'threads'" in capsys.readouterr().err


def _bbox():
    from tests.helpers_rasters import px_bbox

    return px_bbox(0, 0, 128, 64)


@pytest.fixture(autouse=True)
def engines():
    with test_engines():
        yield


def test_shipped_errors_are_groundsynth_errors():
    assert issubclass(WorkerLostTooOften, GroundSynthError)
