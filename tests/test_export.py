"""groundsynth.export: the original's PNG + CSV layout, georeferenced GeoTIFFs, deterministic leak-free split."""
import csv
from collections import Counter

import numpy as np
import pytest
import rasterio
from PIL import Image

from groundsynth.cli.main import main
from groundsynth.export.dataset import CSV_COLUMNS, export_dataset, split_of
from groundsynth.report import read_report, write_report
from groundsynth.request.classes import CLASS_COLORS
from groundsynth.request.errors import FailedPrecondition, InvalidArgument, NotFound
from tests.helpers_jobdir import build_job_dir, context, make_spec


@pytest.fixture(scope="module")
def job_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("job")
    write_report(d, make_spec(), build_job_dir(d), context())
    return d


@pytest.fixture(scope="module")
def exported(job_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("dataset")
    return out, export_dataset(job_dir, out, seed=3)


def read_rows(out):
    with open(out / "dataset.csv", newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def test_csv_layout_matches_the_original(exported, job_dir):
    out, result = exported
    rows = read_rows(out)
    assert rows[0] == ["filename", "split", "Tree", "Shrub", "Grass", "Crop", "Built-up", "Barren", "Water",
                       "caption_1", "caption_2", "caption_3", "caption_4", "caption_5"]
    assert tuple(rows[0]) == CSV_COLUMNS
    body = {r[0]: r for r in rows[1:]}
    assert len(body) == result["images"] == 10                   # 5 real + 5 synthetic; the nodata tile is out
    assert result["real"] == 5 and result["synthetic"] == 5
    assert "r0001_c0002.png" not in body
    # r0000_c0000: Tree on 21 of 32 columns, Water on 11 -> 66 % / 34 %
    assert body["r0000_c0000.png"][2:9] == ["66", "0", "0", "0", "0", "0", "34"]
    doc = read_report(job_dir)
    caps = next(t for t in doc["tiles"] if t["tile_id"] == "r0000_c0000")["captions"]
    assert body["r0000_c0000.png"][9:] == caps
    assert sum(result["splits"].values()) == 10


def test_synthetic_tiles_follow_their_source_split(exported):
    out, _ = exported
    split = {r[0][:-4]: r[1] for r in read_rows(out)[1:]}
    for tid, s in split.items():
        if "_v" in tid:
            assert s == split[tid.split("_v")[0]], tid
        assert s in ("train", "val", "test")


def test_pngs_hold_the_tile_pixels(exported, job_dir):
    out, _ = exported
    with rasterio.open(job_dir / "real/image/r0000_c0001.tif") as src:
        rgb = np.moveaxis(src.read([1, 2, 3]), 0, -1)
    with Image.open(out / "images" / "r0000_c0001.png") as im:
        assert im.mode == "RGB" and im.size == (32, 32)
        assert (np.asarray(im) == rgb).all()
    with rasterio.open(job_dir / "synthetic/mask/r0000_c0001_v1.tif") as src:
        mask = src.read(1)
    with Image.open(out / "masks" / "r0000_c0001_v1.png") as im:
        assert im.mode == "P"
        assert (np.asarray(im) == mask).all()                    # class indices, not colours
        pal = im.getpalette()
        assert tuple(pal[0:3]) == CLASS_COLORS[0] and tuple(pal[18:21]) == CLASS_COLORS[6]


def test_geotiffs_keep_the_georeference(exported, job_dir):
    """(layout 2: the GeoTIFFs moved from geotiff/{images,masks}/ to real/ and synthetic/v<N>/, as COGs)"""
    from rio_cogeo.cogeo import cog_validate

    out, _ = exported
    with rasterio.open(out / "real/images/r0001_c0001.tif") as a, \
            rasterio.open(job_dir / "real/image/r0001_c0001.tif") as b:
        assert a.count == 4 and a.crs.to_epsg() == 32618 and a.transform == b.transform
        assert (a.read() == b.read()).all()
    with rasterio.open(out / "synthetic/v1/masks/r0001_c0001_v1.tif") as m:
        assert m.crs.to_epsg() == 32618 and m.transform.c == pytest.approx(435730.0 + 320.0)
        assert m.nodata == 255 and m.colormap(1)[6][:3] == CLASS_COLORS[6]
    for tif in out.rglob("*.tif"):
        assert cog_validate(str(tif), quiet=True)[0], tif
    assert not (out / "geotiff").exists() and not (out / "synthetic/v1/images/r0001_c0001.tif").exists()
    assert not list(out.rglob(".tmp-*"))


def test_split_is_deterministic_and_follows_the_fractions(job_dir, tmp_path):
    a = export_dataset(job_dir, tmp_path / "a", seed=3)
    b = export_dataset(job_dir, tmp_path / "b", seed=3)
    assert (tmp_path / "a/dataset.csv").read_bytes() == (tmp_path / "b/dataset.csv").read_bytes()
    assert a["splits"] == b["splits"]
    ids = [f"r{i:04d}_c0000" for i in range(3000)]
    counts = Counter(split_of(t, 0, (0.8, 0.1, 0.1)) for t in ids)
    assert counts["train"] / 3000 == pytest.approx(0.8, abs=0.03)
    assert counts["val"] / 3000 == pytest.approx(0.1, abs=0.02)
    other = [split_of(t, 1, (0.8, 0.1, 0.1)) for t in ids]
    assert other != [split_of(t, 0, (0.8, 0.1, 0.1)) for t in ids]
    assert all(split_of(t, 5, (0, 0, 1)) == "test" for t in ids[:50])


@pytest.mark.parametrize("splits", [(0.5, 0.5), (0.8, 0.3, 0.1), (-0.1, 0.6, 0.5), ("a", 0, 1)])
def test_bad_splits_are_rejected(job_dir, tmp_path, splits):
    with pytest.raises(InvalidArgument) as err:
        export_dataset(job_dir, tmp_path / "x", splits=splits)
    assert err.value.field == "splits"


def test_unfinished_or_empty_job_dirs_are_errors(tmp_path, job_dir):
    with pytest.raises(NotFound, match="report.json"):
        export_dataset(tmp_path / "nothing", tmp_path / "out")
    with pytest.raises(InvalidArgument, match="other than the job directory"):
        export_dataset(job_dir, job_dir)
    empty = tmp_path / "empty"
    write_report(empty, make_spec(), [r for r in build_job_dir(empty) if r.nodata], context())
    with pytest.raises(FailedPrecondition, match="no valid real tiles"):
        export_dataset(empty, tmp_path / "out2")


def test_command_line(job_dir, tmp_path, capsys):
    assert main(["export", "--job-dir", str(job_dir), "--out", str(tmp_path / "cli"), "--splits", "0.5,0.25,0.25",
                 "--seed", "4"]) == 0
    assert "exported 10 images (5 real, 5 synthetic)" in capsys.readouterr().out
    assert (tmp_path / "cli/dataset.csv").exists() and (tmp_path / "cli/export.json").exists()
    assert main(["export", "--job-dir", str(job_dir), "--out", str(tmp_path / "bad"), "--splits", "0.8,x"]) == 2
    assert "splits" in capsys.readouterr().err


def test_real_pipeline_job_reports_and_exports(tmp_path):
    """run_job with the cheap test segment/synthesise engines and the composition caption/ground engines:
    the pipeline's report call, report.json and export work together."""
    from groundsynth.pipeline.prepare import RunOptions
    from groundsynth.pipeline.runner import run_job
    from groundsynth.request.spec import Aoi, JobSpec, StageConfig, SynthesisOptions
    from groundsynth.service.journal import Journal
    from tests.helpers_engines import TestBright, test_engines
    from tests.helpers_rasters import px_bbox, write_raster

    src = write_raster(tmp_path / "src.tif", width=128, height=128, seed=2)
    stages = [StageConfig("segment", TestBright.name), StageConfig("synthesise", "test-palette"),
              StageConfig("caption", "composition"),
              StageConfig("ground", "composition", {"reference_segmenter": TestBright.name})]
    spec = JobSpec(aoi=Aoi(bbox=px_bbox(0, 0, 128, 128)), raster_path=str(src), tile_size=64, seed=5,
                   stages=stages, synthesis=SynthesisOptions(variants=1))
    journal = Journal(tmp_path / "ws" / "journal.sqlite")
    try:
        with test_engines():
            state = run_job("e2e", spec, tmp_path / "ws", journal, lambda event: None, lambda: False,
                            RunOptions(batch_size=4))
    finally:
        journal.close()
    assert state == "SUCCEEDED"
    job_dir = tmp_path / "ws" / "jobs" / "e2e"
    doc = read_report(job_dir)
    s = doc["summary"]
    assert s["tiles_real"] == 4 and s["tiles_synthetic"] == 4
    assert s["grounding_mean_real"] >= 90                    # own captions, same segmenter re-segments
    assert 0 <= s["fidelity_miou_mean"] <= 1
    assert doc["engines"]["caption"]["name"] == "composition"
    assert JobSpec.from_dict(doc["spec"]).seed == 5
    assert (job_dir / "report.html").stat().st_size > 10_000
    out = export_dataset(job_dir, tmp_path / "ds")            # the job has its own split
    assert out["images"] == 8 and out["real"] == 4
    rows = read_rows(tmp_path / "ds")
    assert all(r[9] for r in rows[1:])                       # every row has captions
