"""TorchGeo-ready export of a real pipeline job with overlapping tiles, and GroundSynthDataset over it:
real and synthetic apart, the job's spatial split with a buffer, dataset filters, a STAC catalogue."""
from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import from_bounds

from groundsynth.export.dataset import export_dataset
from groundsynth.export.layout import read_split
from groundsynth.request.errors import FailedPrecondition, InvalidArgument
from tests.stac_offline import validate_tree

TILE, OVERLAP = 32, 8


def run_overlap_job(tmp: Path, job: str = "ov") -> Path:
    from groundsynth.pipeline.prepare import RunOptions
    from groundsynth.pipeline.runner import run_job
    from groundsynth.request.spec import Aoi, JobSpec, SplitOptions, StageConfig, SynthesisOptions
    from groundsynth.service.journal import Journal
    from tests.helpers_engines import TestBright, test_engines
    from tests.helpers_rasters import px_bbox, write_raster

    src = write_raster(tmp / "src.tif", width=216, height=216, seed=4)
    stages = [StageConfig("segment", TestBright.name), StageConfig("synthesise", "test-palette"),
              StageConfig("caption", "test-count")]
    spec = JobSpec(aoi=Aoi(bbox=px_bbox(0, 0, 216, 216)), raster_path=str(src), tile_size=TILE, overlap=OVERLAP,
                   seed=11, stages=stages, synthesis=SynthesisOptions(variants=2),
                   split=SplitOptions(0.5, 0.25, 0.25, block_tiles=2))
    journal = Journal(tmp / "ws" / "journal.sqlite")
    try:
        with test_engines():
            assert run_job(job, spec, tmp / "ws", journal, lambda e: None, lambda: False,
                           RunOptions(batch_size=16)) == "SUCCEEDED"
    finally:
        journal.close()
    return tmp / "ws" / "jobs" / job


@pytest.fixture(scope="module")
def job_dir(tmp_path_factory) -> Path:
    return run_overlap_job(tmp_path_factory.mktemp("ovjob"))


@pytest.fixture(scope="module")
def exported(job_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("ovexport") / "ds"
    return out, export_dataset(job_dir, out)


def footprints(out: Path, split: str) -> list[tuple[str, tuple[float, float, float, float]]]:
    rows = []
    for rel in read_split(out, split):
        with rasterio.open(out / rel) as src:
            rows.append((rel, tuple(src.bounds)))
    return rows


def test_export_keeps_real_and_each_variant_apart_with_split_files(exported, job_dir):
    out, info = exported
    assert info["split_source"] == "job" and info["layout_version"] == 2
    assert info["kinds"] == {"real": info["real"], "synthetic_v1": info["real"], "synthetic_v2": info["real"]}
    assert sorted(p.name for p in (out / "synthetic").iterdir()) == ["v1", "v2"]
    for split in ("train", "val", "test"):
        paths = read_split(out, split)
        assert len(paths) == info["splits"][split] and paths
        assert all((out / p).is_file() and (out / p.replace("/images/", "/masks/")).is_file() for p in paths)
    report = json.loads((job_dir / "report.json").read_text())
    split_of = {t["tile_id"]: t["attributes"]["split"] for t in report["tiles"] if t["kind"] == "real"}
    for split in ("train", "val", "test"):              # the job's own split, synthetic tiles follow their source
        for p in read_split(out, split):
            assert split_of[Path(p).stem.split("_v")[0]] == split, p
    assert info["buffer"] == 3 * sum(s == "buffer" for s in split_of.values()) > 0
    assert info["images"] == 3 * sum(s != "buffer" for s in split_of.values())


def test_splits_never_share_a_pixel(exported):
    out, info = exported
    half = 0.5 * 10.0                                   # half a pixel (10 m): shared edges are not shared pixels
    boxes = {s: footprints(out, s) for s in ("train", "val", "test")}
    for a, b in combinations(boxes, 2):
        for ra, (ax0, ay0, ax1, ay1) in boxes[a]:
            for rb, (bx0, by0, bx1, by1) in boxes[b]:
                overlap = min(ax1, bx1) - max(ax0, bx0) > half and min(ay1, by1) - max(ay0, by0) > half
                assert not overlap, (ra, rb)
    # without the buffer, overlapping tiles of different splits would touch: the job has such pairs
    assert info["buffer"] > 0


def test_a_sampler_over_the_real_split_never_yields_a_synthetic_pixel(exported, job_dir):
    import torch
    from torch.utils.data import DataLoader
    from torchgeo.datasets import stack_samples
    from torchgeo.samplers import RandomGeoSampler

    from groundsynth.datasets import GroundSynthGeoDataset

    out, _ = exported
    real = GroundSynthGeoDataset(out, "train", "real")
    synthetic = GroundSynthGeoDataset(out, "train", "synthetic", variants=(1,))
    assert all(t.kind == "real" and "/real/" in t.image.as_posix() for t in real.tiles)
    assert real.cmap[6][:3] == (0, 0, 255) and real.ignore_index == 255
    sampler = RandomGeoSampler(real, size=16, length=40, generator=torch.Generator().manual_seed(0))
    loader = DataLoader(real, sampler=sampler, batch_size=8, collate_fn=stack_samples)
    differs = 0
    with rasterio.open(job_dir / "real_image.vrt") as r_vrt, rasterio.open(job_dir / "synthetic_image_v1.vrt") as s_vrt:
        for batch in loader:
            for image, bounds in zip(batch["image"], batch["bounds"], strict=True):
                x, y = bounds[0], bounds[1]
                win = from_bounds(x.start, y.start, x.stop, y.stop, r_vrt.transform)
                expected = r_vrt.read(window=win, out_shape=(4, 16, 16)).astype(np.float32) / 255
                assert np.allclose(image.numpy(), expected, atol=1e-6)           # every pixel is the real one
                syn = s_vrt.read(window=win, out_shape=(4, 16, 16)).astype(np.float32) / 255
                differs += not np.allclose(syn, expected, atol=1e-6)
    assert differs >= 30                         # the synthetic tile at the same place would have shown
    s = synthetic[next(iter(RandomGeoSampler(synthetic, size=16, length=1,
                                             generator=torch.Generator().manual_seed(1))))]
    assert s["image"].shape == (4, 16, 16) and s["mask"].dtype == torch.long


def test_non_geo_dataset_gives_tiles_of_one_split_and_kind(exported):
    import torch

    from groundsynth.datasets import GroundSynthDataset

    out, info = exported
    train = GroundSynthDataset(out, "train", "real")
    both = GroundSynthDataset(out, "train", "real+synthetic")
    assert len(train) == sum(1 for p in read_split(out, "train") if p.startswith("real/"))
    assert len(both) == info["splits"]["train"] == 3 * len(train)
    sample = train[0]
    assert sample["image"].dtype == torch.float32 and sample["image"].shape == (4, TILE, TILE)
    assert 0 <= float(sample["image"].min()) and float(sample["image"].max()) <= 1
    assert sample["mask"].dtype == torch.long and set(sample["mask"].unique().tolist()) <= set(range(7)) | {255}
    rgb = GroundSynthDataset(out, "val", "synthetic", bands=("red", "green", "blue"))
    assert rgb[0]["image"].shape[0] == 3 and all(t.kind == "synthetic" for t in rgb.tiles)
    fig = train.plot({**sample, "prediction": sample["mask"]})
    assert len(fig.axes) == 3
    with pytest.raises(InvalidArgument, match="bands"):
        GroundSynthDataset(out, "train", bands=("swir",))
    with pytest.raises(InvalidArgument, match="kind"):
        GroundSynthDataset(out, "train", kind="fake")


def test_the_package_imports_without_torchgeo(tmp_path):
    import subprocess
    import sys

    code = ("import sys; sys.modules['torchgeo'] = None\n"
            "import groundsynth.datasets as d; print(d.KINDS)\n"
            "try:\n    d.GroundSynthDataset\nexcept ImportError as e:\n    print('hint:', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[1],
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "real+synthetic" in out.stdout and 'groundsynth[torchgeo]' in out.stdout


def test_the_job_split_cannot_be_changed_at_export(job_dir, tmp_path):
    with pytest.raises(InvalidArgument, match="own spatial split") as err:
        export_dataset(job_dir, tmp_path / "x", splits=(0.8, 0.1, 0.1))
    assert err.value.field == "splits"
    with pytest.raises(InvalidArgument, match="new job") as err:
        export_dataset(job_dir, tmp_path / "x", seed=3)
    assert err.value.field == "seed"


def test_filtered_tiles_are_left_out_unless_no_filters(job_dir, tmp_path, capsys):
    """Tiles the pipeline's dataset filters flagged (attributes["dropped_by"]) stay out, with their variants."""
    import shutil

    from groundsynth.cli.main import main

    copy = tmp_path / "job"
    shutil.copytree(job_dir, copy)
    doc = json.loads((copy / "report.json").read_text())
    flagged = {}
    for t in doc["tiles"]:
        if t["kind"] == "real" and t["attributes"]["split"] == "train" and len(flagged) < 3:
            flagged[t["tile_id"]] = t["attributes"]["dropped_by"] = "water" if not flagged else "nodata,water"
    (copy / "report.json").write_text(json.dumps(doc))
    kept = export_dataset(copy, tmp_path / "a")
    every = export_dataset(copy, tmp_path / "b", filters=False)
    assert kept["filtered"] == {"nodata": 2, "water": 3} and kept["filtered_derived"] == 6
    assert every["images"] - kept["images"] == 9 and every["filtered"] == {}
    names = {Path(p).stem for p in read_split(tmp_path / "a", "train")}
    assert not any(n.split("_v")[0] in flagged for n in names)
    assert main(["export", "--job-dir", str(copy), "--out", str(tmp_path / "c")]) == 0
    printed = capsys.readouterr().out
    assert "left out: 2 by filter nodata, 3 by filter water, 6 synthetic tiles of filtered tiles" in printed
    assert main(["export", "--job-dir", str(copy), "--out", str(tmp_path / "d"), "--no-filters"]) == 0
    assert f"exported {every['images']} images" in capsys.readouterr().out


def test_export_stac_catalogue_is_valid_and_lists_every_tile(exported):
    import pystac

    out, info = exported
    assert validate_tree(info["stac"]) >= info["images"]
    root = pystac.read_file(info["stac"])
    assert sorted(c.id for c in root.get_children()) == ["real", "synthetic-v1", "synthetic-v2"]
    items = list(root.get_items(recursive=True))
    assert len(items) == info["images"]
    item = next(i for i in items if i.id.endswith("_v2"))
    assert item.properties["groundsynth:split"] in ("train", "val", "test")
    assert Path(item.assets["image"].get_absolute_href()).resolve() == \
        (out / "synthetic/v2/images" / f"{item.id}.tif").resolve()
    assert item.assets["mask"].extra_fields["classification:classes"][6]["color_hint"] == "0000FF"


def test_job_without_valid_tiles_left_after_filters_is_an_error(job_dir, tmp_path):
    import shutil

    copy = tmp_path / "job"
    shutil.copytree(job_dir, copy)
    doc = json.loads((copy / "report.json").read_text())
    for t in doc["tiles"]:
        t["attributes"]["dropped_by"] = "water"
    (copy / "report.json").write_text(json.dumps(doc))
    with pytest.raises(FailedPrecondition, match="all filtered"):
        export_dataset(copy, tmp_path / "out")


@pytest.mark.parametrize("tile,overlap,block", [(32, 8, 2), (32, 16, 1), (64, 30, 3), (32, 0, 2)])
def test_assign_splits_buffer_leaves_no_shared_pixel_between_splits(tile, overlap, block):
    from shapely import box

    from groundsynth.tiling.grid import build_grid
    from groundsynth.tiling.splits import assign_splits

    grid = build_grid(box(0, 0, 400, 400), 400, 400, tile, overlap)
    split = assign_splits(((c.row, c.col) for c in grid.cells), (0.5, 0.25, 0.25), block, seed=2, tile_size=tile,
                          overlap=overlap)
    owner = np.full((400 + tile, 400 + tile), -1, int)       # which split owns each pixel
    for c in grid.cells:
        s = split[(c.row, c.col)]
        if s == "buffer":
            continue
        k = ("train", "val", "test").index(s)
        win = owner[c.row_off:c.row_off + c.height, c.col_off:c.col_off + c.width]
        assert ((win == -1) | (win == k)).all(), (c, s)
        win[:] = k
    base = assign_splits(((c.row, c.col) for c in grid.cells), (0.5, 0.25, 0.25), block, seed=2)
    assert all(split[k] in (v, "buffer") for k, v in base.items())       # buffering only removes tiles
    assert all(split[k] == "test" for k, v in base.items() if v == "test")   # test keeps every tile
    assert ("buffer" in split.values()) == (overlap > 0)
