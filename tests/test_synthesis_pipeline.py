"""The pipeline's synthesis path: the fit sees the train split only (with tile ids), every synthetic batch
names its source tiles, and the report measures realism against held-out tiles (report.json / html)."""
import json
import pickle

import numpy as np
import pytest
import rasterio

from groundsynth.artefacts.records import TileRecord
from groundsynth.pipeline.runner import run_job
from groundsynth.pipeline.synthetic_tiles import fit_sample
from groundsynth.report.realism import realism_section
from groundsynth.request.spec import Aoi, JobSpec, SplitOptions, StageConfig, SynthesisOptions
from groundsynth.service.journal import Journal
from tests.helpers_engines import TEST_STAGES, test_engines
from tests.helpers_rasters import px_bbox, write_raster

SPLIT = SplitOptions(0.5, 0.25, 0.25, 1)


def test_fit_sample_is_the_train_split_and_warns_without_one():
    recs = [TileRecord(tile_id=f"t{i}", kind="real", row=0, col=i, attributes={"split": s})
            for i, s in enumerate(["train", "val", "train", "test", "train"])]
    tiles, warning = fit_sample(recs, 2)
    assert [r.tile_id for r in tiles] == ["t0", "t4"] and warning == ""
    tiles, warning = fit_sample([r for r in recs if r.attributes["split"] != "train"], 10)
    assert [r.tile_id for r in tiles] == ["t1", "t3"] and "no train-split tile" in warning


def test_the_fit_sees_train_tiles_only_and_synthesis_names_each_source(tmp_path):
    source = write_raster(tmp_path / "src.tif", width=256, height=192, seed=3)
    log = tmp_path / "calls.log"
    spec = JobSpec(aoi=Aoi(bbox=px_bbox(0, 0, 256, 192)), raster_path=str(source), tile_size=64, seed=5,
                   stages=TEST_STAGES(synthesise_params={"call_log": str(log)}),
                   synthesis=SynthesisOptions(variants=2), split=SPLIT)
    journal = Journal(tmp_path / "journal.sqlite")
    try:
        with test_engines():
            assert run_job("fit", spec, tmp_path, journal, lambda e: None, lambda: False) == "SUCCEEDED"
        real = {r.tile_id: r for r in journal.tiles("fit", "real")}
        syn = journal.tiles("fit", "synthetic")
        splits = {t: r.attributes["split"] for t, r in real.items()}
        assert {"train", "val", "test"} <= set(splits.values())
        fits = [ln.split()[1:] for ln in log.read_text().splitlines() if ln.startswith("fit")]
        assert len(fits) == 1 and fits[0] and {splits[t] for t in fits[0]} == {"train"}
        assert sorted(fits[0]) == sorted(t for t, s in splits.items() if s == "train")
        assert journal.get_meta("fit", "synthesis_fit")["tiles"] == fits[0]
        with open(tmp_path / "jobs" / "fit" / "synthesis_state.pkl", "rb") as fh:
            assert pickle.load(fh)["state"]["tile_ids"] == fits[0]        # what the workers receive
        sources = [t for ln in log.read_text().splitlines() if ln.startswith("synthesise") for t in ln.split()[1:]]
        assert sorted(sources) == sorted(r.source_tile_id for r in syn)   # every synthetic tile named its source
    finally:
        journal.close()


@pytest.fixture(scope="module")
def rgb_crop(tmp_path_factory):
    from groundsynth.demo.scene import demo_raster

    root = tmp_path_factory.mktemp("texture-job")
    with rasterio.open(demo_raster(root / "data")) as ds:
        window = rasterio.windows.Window(768, 512, 256, 256)          # farmland by the lagoon
        data = ds.read([1, 2, 3], window=window)
        profile = ds.profile | {"count": 3, "width": 256, "height": 256, "transform": ds.window_transform(window)}
    path = root / "rgb.tif"
    with rasterio.open(path, "w", **profile) as out:
        out.write(data)
    return path


def test_texture_job_on_rgb_tiles_with_boost_reports_realism_against_held_out_tiles(rgb_crop, tmp_path):
    with rasterio.open(rgb_crop) as ds:
        bbox = tuple(ds.bounds)
    stages = [StageConfig("segment", "spectral"), StageConfig("synthesise", "texture"),
              StageConfig("caption", "composition"), StageConfig("ground", "composition")]
    spec = JobSpec(aoi=Aoi(bbox=bbox), raster_path=str(rgb_crop), tile_size=64, seed=4, stages=stages, split=SPLIT,
                   synthesis=SynthesisOptions(variants=2, mask_strategy="boost", boost_targets={"Water": 0.3}))
    journal = Journal(tmp_path / "journal.sqlite")
    try:
        assert run_job("tex", spec, tmp_path, journal, lambda e: None, lambda: False) == "SUCCEEDED"
        syn = journal.tiles("tex", "synthetic")
        assert len(syn) == 2 * len([r for r in journal.tiles("tex", "real") if not r.nodata])
        assert {r.attributes["engine_synthesise"] for r in syn} == {"texture"}
        job = tmp_path / "jobs" / "tex"
        with rasterio.open(job / syn[0].artefacts["image"]) as img:
            assert img.count == 3
        report = json.loads((job / "report.json").read_text())
        rz = report["realism"]
        assert rz["available"] and rz["held_out_split"] == "test"
        assert rz["copied_from_source"]["max"] == 0                      # never its own source tile
        assert rz["synthetic"]["w1"] is not None and rz["real"]["w1"] is not None
        assert "not realism" in rz["layout_agreement"]["note"] and rz["layout_agreement"]["fidelity_miou_mean"] > 0.3
        assert rz["variant_distance"] > 0                                # two variants of a mask differ
        per_tile = [t["realism"] for t in report["tiles"] if t.get("kind") == "synthetic" and "realism" in t]
        assert per_tile and all(t["copied_from_source"] == 0 and "speckle" in t for t in per_tile)
        page = (job / "report.html").read_text()
        assert "Realism of synthetic tiles" in page and "real vs held-out" in page and "layout agreement" in page
        assert "spread ratio real" in page
        water = np.mean([r.composition[6] for r in syn])
        assert water > 0.2                                               # boost asked for 30 % Water
        # the section came from the workers (report_metrics: its parts side by side on the executor); it is
        # what realism_section computes from the same records in one process
        assert report["timings"].get("realism", 0) > 0
        records = sorted(journal.tiles("tex"), key=lambda r: (r.kind != "real", r.row, r.col, r.variant))
        here_per_tile: dict = {}
        here = realism_section(job, records, journal.get_meta("tex", "synthesis_fit"), here_per_tile, seed=4)
        assert json.loads(json.dumps(here)) == rz
        in_report = {t["tile_id"]: t["realism"] for t in report["tiles"] if "realism" in t}
        assert in_report == json.loads(json.dumps(here_per_tile))
    finally:
        journal.close()



def _spied_job(rgb_crop, tmp_path, monkeypatch, job, windows=None):
    """An exemplar job on the RGB crop; (the task kinds of every execute_all call, report.json realism, the
    section recomputed in one process from the same records). `windows`: gets each call's in_flight."""
    windows = [] if windows is None else windows
    from groundsynth.pipeline.context import RealismTask
    from groundsynth.pipeline.job_run import JobRun

    calls: list[list[str]] = []
    real_execute_all = JobRun.execute_all

    def spy(self, tasks, *a, **k):
        calls.append([type(t).__name__ + (f":{t.part}" if isinstance(t, RealismTask) else "") for t in tasks])
        windows.append(k.get("in_flight", 0))
        return real_execute_all(self, tasks, *a, **k)

    monkeypatch.setattr(JobRun, "execute_all", spy)
    with rasterio.open(rgb_crop) as ds:
        bbox = tuple(ds.bounds)
    stages = [StageConfig("segment", "spectral"), StageConfig("synthesise", "exemplar"),
              StageConfig("caption", "composition"), StageConfig("ground", "composition")]
    spec = JobSpec(aoi=Aoi(bbox=bbox), raster_path=str(rgb_crop), tile_size=64, seed=4, stages=stages, split=SPLIT,
                   synthesis=SynthesisOptions(variants=1))
    journal = Journal(tmp_path / "journal.sqlite")
    try:
        assert run_job(job, spec, tmp_path, journal, lambda e: None, lambda: False) == "SUCCEEDED"
        report = json.loads((tmp_path / "jobs" / job / "report.json").read_text())
        records = sorted(journal.tiles(job), key=lambda r: (r.kind != "real", r.row, r.col, r.variant))
        here = realism_section(tmp_path / "jobs" / job, records, journal.get_meta(job, "synthesis_fit"), {}, seed=4)
    finally:
        journal.close()
    return calls, report["realism"], json.loads(json.dumps(here))


def test_the_real_vs_held_out_part_runs_beside_the_fit_and_the_report_keeps_its_numbers(rgb_crop, tmp_path,
                                                                                         monkeypatch):
    windows: list[int] = []
    calls, realism, here = _spied_job(rgb_crop, tmp_path, monkeypatch, "early", windows)
    fit_call = next(c for c in calls if "FitTask" in c)
    assert "RealismTask:real" in fit_call                               # real tiles only: beside the fit
    # the fit first and every task beside it in flight at once: results are committed in task order, so a
    # smaller window would hold the tasks after it back until the fit ends (a worker idle meanwhile)
    assert fit_call[0] == "FitTask" and "ControlTask" in fit_call
    assert windows[calls.index(fit_call)] >= len(fit_call)
    assert not any("RealismTask:real" in c for c in calls if c is not fit_call)
    assert any("RealismTask:synthetic" in c for c in calls)             # the other parts at the end
    assert realism["available"] and realism == here


def test_the_real_vs_held_out_part_is_computed_again_when_the_final_tiles_differ(rgb_crop, tmp_path, monkeypatch):
    from groundsynth.report import realism as section

    keys = iter(range(1000))
    monkeypatch.setattr(section, "plan_key", lambda plan: next(keys))   # the final key never matches
    calls, realism, here = _spied_job(rgb_crop, tmp_path, monkeypatch, "late")
    assert sum("RealismTask:real" in c for c in calls) == 2             # beside the fit, and again at the end
    assert realism["available"] and realism == here
