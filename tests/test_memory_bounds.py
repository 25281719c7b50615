"""Memory a job holds does not grow with the AOI where the pipeline can bound it: the synthesiser's fit gets
its sample's images one at a time, and GDAL's block cache is capped in the head as in the workers."""
from __future__ import annotations

import ctypes
import weakref

import rasterio

from groundsynth.engines import register, unregister
from groundsynth.pipeline.prepare import RunOptions, prepare_job
from groundsynth.pipeline.runner import run_job
from groundsynth.request.spec import Aoi, JobSpec, SynthesisOptions
from groundsynth.service.journal import Journal
from groundsynth.tiling import source as source_mod
from tests.helpers_engines import TEST_STAGES, TestPalette, test_engines
from tests.helpers_rasters import px_bbox, write_raster
from tests.test_executors import Events, make_spec, source  # noqa: F401 - fixture

ALIVE: dict[str, int] = {}


class CountingPalette(TestPalette):
    """test-palette whose fit goes through its images in turn and notes how many of them are alive at once."""

    __test__ = False
    name = "test-palette-counting"

    def fit(self, images, masks, valids, tile_ids=None):
        refs, most = [], 0
        for img in images:
            refs.append(weakref.ref(img))
            most = max(most, sum(r() is not None for r in refs))
            del img
        ALIVE["most"], ALIVE["n"] = most, len(images)
        return {"fitted": len(images)}


def test_the_fit_gets_its_sample_one_image_at_a_time(source, tmp_path):  # noqa: F811
    spec = make_spec(source)
    spec.stages[1].engine = CountingPalette.name
    journal = Journal(tmp_path / "journal.sqlite")
    with test_engines():
        register(CountingPalette)
        try:
            assert run_job("f", spec, tmp_path, journal, Events(), lambda: False,
                           RunOptions(executor="inline", batch_size=4)) == "SUCCEEDED"
        finally:
            unregister(CountingPalette.stage, CountingPalette.name)
    journal.close()
    assert ALIVE["n"] == 12                  # every real tile is in the sample
    assert ALIVE["most"] <= 2                # not the whole sample held at once


def _gdal_lib() -> ctypes.CDLL:
    """The GDAL that rasterio itself uses (its wheel bundles one in rasterio.libs; QGIS and pyogrio bring others)."""
    import os

    here = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(rasterio.__file__))), "rasterio.libs")
    with open("/proc/self/maps") as f:
        paths = {ln.split()[-1] for ln in f if "/libgdal" in ln and os.path.realpath(ln.split()[-1]).startswith(here)}
    assert paths, "rasterio's own libgdal is not mapped"
    lib = ctypes.CDLL(sorted(paths)[0])
    lib.GDALGetCacheUsed64.restype = ctypes.c_int64
    lib.GDALGetCacheMax64.restype = ctypes.c_int64
    return lib


def test_the_head_caps_the_gdal_block_cache_while_it_samples_the_aoi(tmp_path, monkeypatch):
    with rasterio.open(write_raster(tmp_path / "s.tif", width=1024, height=1024)) as src:
        data = src.read()
    big = tmp_path / "big.tif"                  # 8 MiB of pixels, 4 bands, deflated 256 px blocks (as the demo scene)
    with rasterio.open(big, "w", driver="GTiff", width=1024, height=1024, count=4, dtype="uint16", tiled=True,
                       compress="deflate", blockxsize=256, blockysize=256, crs="EPSG:32618", nodata=0,
                       transform=rasterio.transform.from_origin(435730.0, 4179460.0, 10.0, 10.0)) as dst:
        dst.write(data)
    lib = _gdal_lib()
    seen = []
    read = source_mod.SourceRaster.read_sample

    def spy(self, *a, **kw):
        out = read(self, *a, **kw)
        seen.append((lib.GDALGetCacheUsed64(), lib.GDALGetCacheMax64()))   # before the dataset closes
        return out

    monkeypatch.setattr(source_mod.SourceRaster, "read_sample", spy)
    spec = JobSpec(aoi=Aoi(bbox=px_bbox(0, 0, 1024, 1024)), raster_path=str(big), stages=TEST_STAGES(),
                   synthesis=SynthesisOptions(variants=1))
    with test_engines():
        prepare_job(spec, tmp_path, RunOptions(gdal_cache_mb=1))
    used, cap = seen[-1]
    assert (used <= 1 << 20, cap) == (True, 1 << 20), f"{used >> 20} MiB of blocks cached, cap {cap >> 20} MiB"


def test_the_head_caps_the_gdal_block_cache_while_it_builds_the_mosaics_overviews(source, tmp_path,  # noqa: F811
                                                                                  monkeypatch):
    """Overviews read every block of a mosaic; without the cap GDAL keeps them, up to 5 % of the machine's
    memory, so the head's peak grew with the AOI."""
    from groundsynth.pipeline import outputs

    lib = _gdal_lib()
    seen = []
    build = outputs.build_overviews

    caps = []

    def spy(*a, **kw):
        caps.append(kw.get("cache_cap_mb"))                     # the cap the build itself runs under
        out = build(*a, **kw)
        seen.append(lib.GDALGetCacheMax64())
        return out

    monkeypatch.setattr(outputs, "build_overviews", spy)
    journal = Journal(tmp_path / "journal.sqlite")
    with test_engines():
        assert run_job("o", make_spec(source), tmp_path, journal, Events(), lambda: False,
                       RunOptions(executor="inline", gdal_cache_mb=3)) == "SUCCEEDED"
    journal.close()
    assert seen and set(seen) == {3 << 20}
    assert set(caps) == {3}


def test_the_report_phase_lets_go_of_the_jobs_synthesis_caches(tmp_path, monkeypatch):
    """Real tiles kept for synthesis and the cached synthesis state are dropped when a report task starts
    (only this job's), so a worker's report-phase peak does not sit on top of full caches."""
    from types import SimpleNamespace

    import numpy as np

    from groundsynth.pipeline import state_file, worker
    from groundsynth.pipeline.context import RealismTask, SummaryTask
    from groundsynth.pipeline.tile_cache import TILES

    job, other = tmp_path / "jobs" / "a", tmp_path / "jobs" / "b"
    job.mkdir(parents=True)
    other.mkdir(parents=True)
    TILES.resize(max(TILES.max_bytes, 1 << 20))
    for j in ("a", "b"):
        TILES.put(f"{j}@{tmp_path / 'jobs' / j}", "r0000_c0000", np.ones((3, 8, 8), np.uint8), np.zeros((8, 8), np.uint8))
    sa = state_file.write_state(job / state_file.STATE_NAME, {"pool": 1})
    sb = state_file.write_state(other / state_file.STATE_NAME, {"pool": 2})
    worker.forget_job_memory(SimpleNamespace(job_id="a", job_dir=str(job)))
    assert TILES.get(f"a@{job}", "r0000_c0000") is None and TILES.get(f"b@{other}", "r0000_c0000") is not None
    cached = {k[0] for k in state_file._cache}
    assert sa.path not in cached and sb.path in cached
    TILES.drop_job("b")

    called = []
    monkeypatch.setattr(worker, "forget_job_memory", lambda ctx: called.append(ctx.job_id))
    ctx = SimpleNamespace(job_id="a", job_dir=str(job), tile_cache_bytes=0, gdal_cache_bytes=1 << 20)
    monkeypatch.setattr("groundsynth.pipeline.worker_job.worker_job", lambda ctx, timer: None)
    for task in (RealismTask("nope", None, 0), SummaryTask(())):
        assert worker.run_task(ctx, task).failure is not None     # no engines, no plan: fails, after the drop
    assert called == ["a", "a"]


def test_the_report_phase_also_lets_go_of_textures_search_arrays(tmp_path):
    """The texture synthesiser's per-process search arrays (151 MiB for the demo's pool) live as long as the
    state they were derived from: when a worker forgets the job's state, they go too, before the report's
    large tasks."""
    import gc
    from types import SimpleNamespace

    import numpy as np

    from groundsynth.engines.base import EngineContext
    from groundsynth.engines.builtin import _texture_pool as tp
    from groundsynth.engines.builtin.texture import Texture
    from groundsynth.pipeline import state_file, worker

    rng = np.random.default_rng(0)
    masks = [np.where(np.arange(64)[None, :] < 30 + i, 2, 6).repeat(64, 0).astype(np.uint8) for i in range(3)]
    images = [rng.random((4, 64, 64)).astype(np.float32) for _ in masks]
    eng = Texture({}, EngineContext(seed=0))
    fitted = eng.fit(images, masks, [np.ones((64, 64), bool)] * 3, ["a", "b", "c"])
    sf = state_file.write_state(tmp_path / state_file.STATE_NAME, {"state": fitted})
    del fitted
    state = state_file.load_state(sf)["state"]           # as a worker gets it
    eng.synthesise([masks[0]], [1], state, ["a"])
    token = state.token
    assert token in tp._CACHE
    del state
    gc.collect()
    assert token in tp._CACHE                              # the worker's state cache still holds the state
    worker.forget_job_memory(SimpleNamespace(job_id="j", job_dir=str(tmp_path)))
    gc.collect()
    assert token not in tp._CACHE
