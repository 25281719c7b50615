"""run_job end to end with the test engines: events, journal, resume, outputs (VRT, tiles.gpkg), CLI."""
import json
import os

import numpy as np
import pytest
import rasterio

from groundsynth.artefacts.tile_grid import CLASS_COLUMNS
from groundsynth.pipeline.events import TileDone
from groundsynth.pipeline.prepare import RunOptions, new_job_id, prepare_job
from groundsynth.pipeline.runner import run_job
from groundsynth.request.classes import CLASS_NAMES
from groundsynth.request.errors import GroundSynthError
from groundsynth.request.spec import Aoi, JobSpec, SynthesisOptions
from groundsynth.service.journal import Journal
from tests.helpers_engines import TEST_STAGES, test_engines
from tests.helpers_rasters import px_bbox, write_raster


@pytest.fixture(autouse=True)
def engines():
    with test_engines():
        yield


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    # 256 x 192 px -> with 64 px tiles a 4 x 3 grid (AOI = whole raster)
    return write_raster(tmp_path_factory.mktemp("pipe") / "src.tif", width=256, height=192, seed=1)


def _spec(source, **kw):
    kw.setdefault("stages", TEST_STAGES())
    kw.setdefault("synthesis", SynthesisOptions(variants=2))
    return JobSpec(aoi=Aoi(bbox=px_bbox(0, 0, 256, 192)), raster_path=str(source), tile_size=64, seed=11, **kw)


class Events(list):
    """Collects the pipeline's domain events; `of("tile")` gives the recorded TileRecords."""

    def __call__(self, event):
        self.append((event.kind, event.record if isinstance(event, TileDone) else event))

    def kinds(self):
        return [k for k, _ in self]

    def of(self, kind):
        return [m for k, m in self if k == kind]


def _files(job_dir, records):
    return {rel: (os.stat(job_dir / rel).st_ino, os.stat(job_dir / rel).st_mtime_ns)
            for r in records for rel in r.artefacts.values()}


@pytest.fixture(scope="module")
def full_job(source, tmp_path_factory):
    ws = tmp_path_factory.mktemp("ws")
    journal = Journal(ws / "journal.sqlite")
    ev = Events()
    with test_engines():
        state = run_job("full", _spec(source), ws, journal, ev, lambda: False, RunOptions(batch_size=5))
    yield state, ev, journal, ws / "jobs" / "full"
    journal.close()


def test_events_and_journal_of_a_full_job(full_job):
    state, ev, journal, job_dir = full_job
    assert state == "SUCCEEDED"
    kinds = ev.kinds()
    assert kinds[0] == "accepted" and kinds[-1] == "done"
    assert kinds.index("report") > max(i for i, k in enumerate(kinds) if k == "tile")
    acc = ev.of("accepted")[0]
    assert (acc.tile_count, acc.skipped_tiles, acc.output_dir) == (12, 0, str(job_dir))
    tiles = ev.of("tile")
    assert len(tiles) == 12 + 24 and len({t.tile_id for t in tiles}) == 36
    done = ev.of("done")[0]
    assert (done.state, done.real_tiles, done.synthetic_tiles) == ("SUCCEEDED", 12, 24)
    syn_progress = [p for p in ev.of("progress") if p.stage == "synthesise"]
    assert syn_progress[-1].done == syn_progress[-1].total == 24
    out_progress = [p for p in ev.of("progress") if p.stage == "outputs"]
    # real image/mask + 2 variants x (image, mask, cond_mask) VRTs + tiles.gpkg
    assert out_progress[-1].done == out_progress[-1].total == 2 + 6 + 1
    row = journal.get_job("full")
    assert (row.state, row.tiles_total, row.tiles_done, row.synthetic_total, row.synthetic_done) == \
        ("SUCCEEDED", 12, 12, 24, 24)
    assert set(journal.get_meta("full", "stretch")) == {"low", "high"}
    timings = journal.get_meta("full", "timings")
    assert {"segment", "synthesise", "caption", "ground", "write", "report", "total"} <= set(timings)
    rec = next(t for t in tiles if t.kind == "synthetic")
    assert rec.source_tile_id and rec.variant in (1, 2) and len(rec.captions) == 5
    assert "fidelity_miou" in rec.metrics and rec.attributes["engine_synthesise"] == "test-palette"
    # the test synthesiser paints class k at the grey level the test segmenter maps to k: fidelity is perfect
    assert min(t.metrics["fidelity_miou"] for t in tiles if t.kind == "synthetic") > 0.9
    # composition shares of real tiles sum to 1 and match the mask file
    real = next(t for t in journal.tiles("full", "real"))
    with rasterio.open(job_dir / real.artefacts["mask"]) as m:
        counts = np.bincount(m.read(1).ravel(), minlength=7)[:7]
    assert real.composition == pytest.approx(list(counts / counts.sum()))
    report = json.loads((job_dir / "report.json").read_text())
    assert report["job_id"] == "full"
    assert ev.of("report")[0].json_path == "report.json"


def test_every_tile_records_its_split_and_synthetic_tiles_inherit_it(full_job):
    _, _, journal, _ = full_job
    real = {r.tile_id: r.attributes["split"] for r in journal.tiles("full", "real")}
    assert set(real.values()) <= {"train", "val", "test"} and "train" in real.values()
    for r in journal.tiles("full", "synthetic"):
        assert r.attributes["split"] == real[r.source_tile_id]


def test_vrt_mosaics_open_and_match_tiles(full_job):
    _, ev, journal, job_dir = full_job
    layers = {m.layer: m for m in ev.of("layer")}
    assert {"real_image", "real_mask", "synthetic_image_v1", "synthetic_mask_v2", "synthetic_cond_mask_v1",
            "tiles"} <= set(layers)
    assert layers["real_image"].format == "vrt" and layers["tiles"].format == "gpkg"
    for layer, kind, variant in (("real_image", "real", 0), ("real_mask", "real", 0),
                                 ("synthetic_image_v2", "synthetic", 2), ("synthetic_mask_v1", "synthetic", 1)):
        art = "image" if "image" in layer else "mask"
        recs = [r for r in journal.tiles("full", kind) if r.variant == variant]
        with rasterio.open(job_dir / f"{layer}.vrt") as vrt:
            assert (vrt.width, vrt.height) == (256, 192)
            with rasterio.open(job_dir / recs[0].artefacts[art]) as t0:
                assert vrt.crs == t0.crs and vrt.count == t0.count
                assert vrt.transform.almost_equals(t0.transform @ t0.transform.translation(-recs[0].col_off,
                                                                                           -recs[0].row_off))
            if art == "mask":
                assert vrt.nodata == 255 and vrt.colormap(1)[6] == (0, 0, 255, 255)
            mosaic = vrt.read()
        for r in recs:
            with rasterio.open(job_dir / r.artefacts[art]) as t:
                tile = t.read()
            assert (mosaic[:, r.row_off:r.row_off + r.height, r.col_off:r.col_off + r.width] == tile).all(), r.tile_id


def test_tiles_gpkg_has_one_row_per_tile(full_job):
    import fiona

    _, _, journal, job_dir = full_job
    records = {r.tile_id: r for r in journal.tiles("full")}
    with fiona.open(job_dir / "tiles.gpkg", layer="tiles") as layer:
        rows = list(layer)
        schema = layer.schema["properties"]
        assert layer.crs.to_epsg() == 32618
    assert len(rows) == len(records) == 36
    assert {"tile_id", "kind", "row", "col", "variant", "source_tile", "nodata", "caption_1", "caption_5",
            "grounding", "fidelity_miou", "engine_segment", "art_image"} <= set(schema)
    assert set(CLASS_COLUMNS) <= set(schema) and "pct_built_up" in schema and len(CLASS_NAMES) == 7
    for f in rows:
        p = f.properties
        rec = records[p["tile_id"]]
        assert (p["kind"], p["row"], p["col"], p["variant"]) == (rec.kind, rec.row, rec.col, rec.variant)
        assert p["caption_1"] == rec.captions[0]
        assert sum(p[c] for c in CLASS_COLUMNS) == pytest.approx(100, abs=0.01)
        assert p["grounding"] == pytest.approx(rec.metrics["grounding"])
        xs, ys = zip(*f.geometry.coordinates[0], strict=True)
        assert (min(xs), min(ys), max(xs), max(ys)) == pytest.approx(rec.bounds)


def test_resume_after_cancel_keeps_finished_tiles(source, tmp_path):
    journal = Journal(tmp_path / "journal.sqlite")
    spec = _spec(source)
    ev = Events()
    # inline: one batch at a time, so the cancel lands after exactly 3 batches (tests/test_executors.py
    # checks the same for the parallel executors, which also finish the batches in flight)
    state = run_job("c1", spec, tmp_path, journal, ev, lambda: len(ev.of("tile")) >= 5,
                    RunOptions(batch_size=2, executor="inline"))
    assert state == "CANCELLED" and ev.of("done")[0].state == "CANCELLED"
    assert journal.get_job("c1").state == "CANCELLED"
    first = journal.tiles("c1")
    assert len(first) == 6           # the batch in progress (2 tiles) was finished: 3 batches
    assert "tiles" in {m.layer for m in ev.of("layer")}      # layers written for what is done
    job_dir = tmp_path / "jobs" / "c1"
    before = _files(job_dir, first)
    stretch = journal.get_meta("c1", "stretch")

    ev2 = Events()
    assert run_job("c1", spec, tmp_path, journal, ev2, lambda: False, RunOptions(batch_size=2)) == "SUCCEEDED"
    assert journal.get_meta("c1", "stretch") == stretch
    resumed_ids = {t.tile_id for t in ev2.of("tile")}
    assert not resumed_ids & {r.tile_id for r in first}            # nothing recomputed
    all_tiles = journal.tiles("c1")
    assert len(all_tiles) == len({r.tile_id for r in all_tiles}) == 36
    assert _files(job_dir, first) == before                       # finished tiles' files untouched
    leftovers = [p for p in job_dir.rglob(".tmp-*")]
    assert leftovers == []


def test_resume_after_engine_failure(source, tmp_path):
    journal = Journal(tmp_path / "journal.sqlite")
    marker = tmp_path / "fail-now"
    marker.write_text("x")
    spec = _spec(source, stages=TEST_STAGES(fail_on="r0001_c0002", fail_marker=str(marker)),
                 synthesis=SynthesisOptions(variants=1))
    with pytest.raises(GroundSynthError) as err:
        run_job("f1", spec, tmp_path, journal, Events(), lambda: False, RunOptions(batch_size=1))
    assert "r0001_c0002" in err.value.message and "test-bright" in err.value.message
    row = journal.get_job("f1")
    assert row.state == "FAILED" and "r0001_c0002" in row.error
    first = journal.tiles("f1")
    assert [r.tile_id for r in first] == ["r0000_c0000", "r0000_c0001", "r0000_c0002", "r0000_c0003",
                                          "r0001_c0000", "r0001_c0001"]
    before = _files(tmp_path / "jobs" / "f1", first)
    marker.unlink()      # the cause is fixed; a restarted backend resumes the job
    ev = Events()
    assert run_job("f1", spec, tmp_path, journal, ev, lambda: False, RunOptions(batch_size=4)) == "SUCCEEDED"
    assert len(ev.of("tile")) == 6 + 12
    assert sorted(journal.tile_ids("f1", "real")) == sorted({f"r{r:04d}_c{c:04d}" for r in range(3) for c in range(4)})
    assert _files(tmp_path / "jobs" / "f1", first) == before


def test_nodata_tiles_are_flagged_and_not_synthesised(tmp_path):
    data = np.full((4, 128, 128), 1200, np.uint16)
    data[:, :, 64:] = 0                     # right half: nodata (0)
    data[:, 5:60, 5:60] = 3000
    src = write_raster(tmp_path / "half.tif", width=128, height=128, data=data)
    journal = Journal(tmp_path / "journal.sqlite")
    spec = JobSpec(aoi=Aoi(bbox=px_bbox(0, 0, 128, 128)), raster_path=str(src), tile_size=64,
                   stages=TEST_STAGES(), synthesis=SynthesisOptions(variants=1))
    assert run_job("n1", spec, tmp_path, journal, Events(), lambda: False) == "SUCCEEDED"
    real = {r.tile_id: r for r in journal.tiles("n1", "real")}
    assert {k for k, r in real.items() if r.nodata} == {"r0000_c0001", "r0001_c0001"}
    flagged = real["r0000_c0001"]
    assert flagged.captions == [] and flagged.metrics == {}
    with rasterio.open(tmp_path / "jobs" / "n1" / flagged.artefacts["mask"]) as m:
        assert (m.read(1) == 255).all()
    assert {r.source_tile_id for r in journal.tiles("n1", "synthetic")} == {"r0000_c0000", "r0001_c0000"}
    assert journal.get_job("n1").synthetic_total == 2


def test_only_requested_stages_run(source, tmp_path):
    journal = Journal(tmp_path / "journal.sqlite")
    spec = _spec(source, stages=TEST_STAGES(("segment",)), synthesis=SynthesisOptions())
    ev = Events()
    assert run_job(new_job_id(), spec, tmp_path, journal, ev, lambda: False) == "SUCCEEDED"
    tiles = ev.of("tile")
    assert len(tiles) == 12 and all(t.kind == "real" and not t.captions and not t.metrics for t in tiles)
    assert {p.stage for p in ev.of("progress")} == {"segment", "outputs", "report"}   # no caption, synthesise or ground


def test_prepare_is_cheap_and_counts_tiles(source, tmp_path):
    prep = prepare_job(_spec(source), tmp_path)
    assert prep.tile_count == 12 and prep.variants == 2 and prep.has_nir
    assert not (tmp_path / "jobs").exists()     # prepare writes nothing
    jid = new_job_id()
    assert jid.startswith("j") and "/" not in jid and jid != new_job_id()


def test_run_command_prints_the_job_dir_last(source, tmp_path, capsys):
    from groundsynth.cli.main import main

    rc = main(["run", "--raster", str(source), "--aoi", ",".join(map(str, px_bbox(0, 0, 128, 64))),
               "--workspace", str(tmp_path / "ws"), "--tile-size", "64", "--variants", "1", "--seed", "3",
               "--engine", "segment=test-bright", "--engine", "synthesise=test-palette",
               "--engine", "caption=test-count", "--engine", "ground=test-agree", "--param", "segment.sleep=0"])
    out, err = capsys.readouterr()
    assert rc == 0
    job_dir = out.strip().splitlines()[-1]
    assert job_dir.startswith(str((tmp_path / "ws" / "jobs").resolve()))
    assert os.path.exists(os.path.join(job_dir, "tiles.gpkg")) and os.path.exists(os.path.join(job_dir, "report.json"))
    assert "tile" in err       # the tqdm bar on stderr

    rc = main(["run", "--raster", str(source), "--aoi=-10,40,-9,41", "--aoi-crs", "EPSG:4326",
               "--workspace", str(tmp_path / "ws"), "--engine", "segment=test-bright", "--stages", "segment"])
    out, err = capsys.readouterr()
    assert rc == 2 and "error (INVALID_ARGUMENT): aoi:" in err and "entirely outside" in err
    rc = main(["run", "--raster", str(source), "--aoi", "1,2,3", "--workspace", str(tmp_path / "ws")])
    assert rc == 2 and "aoi.bbox" in capsys.readouterr().err


def test_run_command_resumes_a_job_by_id(source, tmp_path, capsys):
    from groundsynth.cli.main import main

    journal = Journal(tmp_path / "journal.sqlite")
    spec = _spec(source, stages=TEST_STAGES(("segment", "caption")), synthesis=SynthesisOptions())
    ev = Events()
    assert run_job("cli1", spec, tmp_path, journal, ev, lambda: len(ev.of("tile")) >= 4,
                   RunOptions(batch_size=4, executor="inline")) == "CANCELLED"     # one batch at a time
    journal.close()
    rc = main(["run", "--workspace", str(tmp_path), "--job-id", "cli1", "--quiet"])
    out, _ = capsys.readouterr()
    assert rc == 0 and out.strip().splitlines()[-1] == str((tmp_path / "jobs" / "cli1").resolve())
    journal = Journal(tmp_path / "journal.sqlite")
    assert journal.get_job("cli1").state == "SUCCEEDED" and journal.get_job("cli1").tiles_done == 12
    journal.close()
    assert main(["run", "--workspace", str(tmp_path), "--job-id", "nope"]) == 2
    assert "unknown job 'nope'" in capsys.readouterr().err


def test_default_engines_end_to_end_on_a_demo_crop(tmp_path_factory):
    """The real default engines (segment/spectral, synthesise/texture, caption/composition,
    ground/composition) on a 2 x 2 tile crop of the Sentinel-2 demo scene, by the coast."""
    from groundsynth.demo.scene import demo_raster
    from groundsynth.engines import default_engine

    root = tmp_path_factory.mktemp("demo-crop")
    raster = demo_raster(root / "data")
    spec = JobSpec(aoi=Aoi(bbox=px_bbox(768, 512, 1024, 768)), raster_path=str(raster), tile_size=128,
                   synthesis=SynthesisOptions(variants=1), seed=1)
    journal = Journal(root / "journal.sqlite")
    ev = Events()
    assert run_job("demo", spec, root, journal, ev, lambda: False) == "SUCCEEDED"
    real = journal.tiles("demo", "real")
    syn = journal.tiles("demo", "synthetic")
    assert len(real) == 4 and len(syn) == 4 and not any(r.nodata for r in real)
    for stage in ("segment", "synthesise", "caption", "ground"):
        assert {r.attributes[f"engine_{stage}"] for r in real + syn} == {default_engine(stage).name}
    for r in real + syn:
        assert len(r.captions) == 5 and "grounding" in r.metrics
        assert sum(r.composition) == pytest.approx(1)
    # the crop spans farmland and the lagoon: water and vegetation are both found
    shares = np.mean([r.composition for r in real], axis=0)
    assert shares[CLASS_NAMES.index("Water")] > 0.05
    assert shares[CLASS_NAMES.index("Tree")] + shares[CLASS_NAMES.index("Crop")] + \
        shares[CLASS_NAMES.index("Grass")] > 0.05
    report = ev.of("report")[0]
    assert report.summary["tiles_real"] == 4 and "grounding_mean" in report.summary
    journal.close()


def test_label_raster_in_another_crs_is_cut_to_every_tile(source, tmp_path):
    """A WorldCover-coded label raster in EPSG:4326 is reprojected onto each tile's grid (groundsynth.tiling.labels)."""
    from pyproj import Transformer

    to_ll = Transformer.from_crs("EPSG:32618", "EPSG:4326", always_xy=True)
    minx, miny, maxx, maxy = px_bbox(-20, -20, 276, 212)
    lons, lats = to_ll.transform([minx, maxx, minx, maxx], [miny, miny, maxy, maxy])
    w, h = 120, 100
    codes = np.full((1, h, w), 40, np.uint8)          # cropland
    codes[:, :, : w // 2] = 80                        # west half: water
    from rasterio.transform import from_bounds

    labels = write_raster(tmp_path / "wc.tif", width=w, height=h, count=1, dtype="uint8", nodata=0, crs="EPSG:4326",
                          transform=from_bounds(min(lons), min(lats), max(lons), max(lats), w, h), data=codes)
    journal = Journal(tmp_path / "journal.sqlite")
    spec = _spec(source, stages=TEST_STAGES(("segment",)), synthesis=SynthesisOptions(),
                 label_raster_path=str(labels))
    ev = Events()
    assert run_job("lab", spec, tmp_path, journal, ev, lambda: False) == "SUCCEEDED"
    job_dir = tmp_path / "jobs" / "lab"
    for rec in journal.tiles("lab"):
        with rasterio.open(job_dir / rec.artefacts["labels"]) as t, rasterio.open(job_dir / rec.artefacts["mask"]) as m:
            assert t.crs == m.crs and t.transform == m.transform and t.shape == m.shape
            values = set(np.unique(t.read(1)).tolist())
        assert values <= {3, 6}                       # WorldCover 40 -> Crop (3), 80 -> Water (6)
        if rec.col == 0:
            assert 6 in values
        if rec.col == 3:
            assert values == {3}
    assert "real_labels" in {m.layer for m in ev.of("layer")}


def test_run_command_refuses_a_workspace_in_use(source, tmp_path, capsys):
    """A server (or another run) holding the workspace would resume the same jobs: `run` must not share it."""
    import subprocess
    import sys

    from groundsynth.cli.main import main

    ws = tmp_path / "ws"
    ws.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from groundsynth.service.workspace_lock import lock_workspace; "
        f"lock_workspace({str(ws)!r}, 'test holder'); print('locked', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    try:
        assert holder.stdout.readline().strip() == "locked"
        rc = main(["run", "--raster", str(source), "--aoi", ",".join(map(str, px_bbox(0, 0, 64, 64))),
                   "--workspace", str(ws), "--engine", "segment=test-bright", "--stages", "segment"])
        err = capsys.readouterr().err
        assert rc == 2 and "error (FAILED_PRECONDITION): workspace:" in err and "test holder" in err
    finally:
        holder.kill()
        holder.wait()
    rc = main(["run", "--raster", str(source), "--aoi", ",".join(map(str, px_bbox(0, 0, 64, 64))),
               "--workspace", str(ws), "--engine", "segment=test-bright", "--stages", "segment", "--quiet"])
    assert rc == 0          # the lock died with its holder
