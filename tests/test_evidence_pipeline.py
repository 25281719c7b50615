"""The evidence sections end to end with the default engines on a piece of the demo scene: the grounding
control (self-consistency and label-raster families) recorded per tile, report.json/html, the tile grid,
and the dataset filters (dropped_by per tile, counts, dropped tiles not synthesised)."""
import json

import numpy as np
import pytest
import rasterio

from groundsynth.artefacts.tiles import read_mask_tile
from groundsynth.engines.base import GroundInput, engine_key
from groundsynth.engines.builtin.composition_ground import CompositionGrounder
from groundsynth.engines.builtin.spectral import Spectral
from groundsynth.metrics import dataset_filters
from groundsynth.metrics import grounding_control as control
from groundsynth.pipeline.prepare import RunOptions
from groundsynth.pipeline.runner import run_job
from groundsynth.request.spec import Aoi, DatasetFilters, JobSpec, StageConfig, SynthesisOptions
from groundsynth.service.journal import Journal

WATER = 6


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """256 x 256 px of the demo scene (farmland by the lagoon), its top-left 40 x 40 px set to nodata, and a
    WorldCover label raster on the same grid (west half tree cover, east half water)."""
    from groundsynth.demo.scene import demo_raster

    root = tmp_path_factory.mktemp("evidence")
    with rasterio.open(demo_raster(root / "data")) as ds:
        window = rasterio.windows.Window(768, 512, 256, 256)
        data = ds.read(window=window)
        profile = ds.profile | {"width": 256, "height": 256, "transform": ds.window_transform(window)}
    nodata = profile.get("nodata")
    nodata = 0 if nodata is None else nodata
    data[:, :40, :40] = nodata
    path = root / "scene.tif"
    with rasterio.open(path, "w", **(profile | {"nodata": nodata})) as out:
        out.write(data)
    codes = np.full((256, 256), 10, np.uint8)
    codes[:, 128:] = 80
    labels = root / "wc.tif"
    with rasterio.open(labels, "w", driver="GTiff", width=256, height=256, count=1, dtype="uint8",
                       crs=profile["crs"], transform=profile["transform"], nodata=0) as out:
        out.write(codes, 1)
    with rasterio.open(path) as ds:
        bbox = tuple(ds.bounds)
    return path, labels, bbox


def _run(tmp_path, scene, job_id, **kw):
    path, _, bbox = scene
    spec = JobSpec(aoi=Aoi(bbox=bbox), raster_path=str(path), tile_size=64, seed=5,
                   synthesis=SynthesisOptions(variants=1), **kw)
    journal = Journal(tmp_path / "journal.sqlite")
    try:
        state = run_job(job_id, spec, tmp_path, journal, lambda *a: None, lambda: False,
                        RunOptions(batch_size=4, workers=2))
        assert state == "SUCCEEDED"
        return journal.tiles(job_id), tmp_path / "jobs" / job_id
    finally:
        journal.close()


@pytest.fixture(scope="module")
def job(scene, tmp_path_factory):
    return _run(tmp_path_factory.mktemp("ws"), scene, "ev", label_raster_path=str(scene[1]))


def test_every_captioned_tile_is_scored_against_itself_and_a_partner(job):
    records, job_dir = job
    by_id = {r.tile_id: r for r in records}
    scored = [r for r in records if r.captions and not r.nodata]
    assert len(scored) >= 20
    for r in scored:
        partner = by_id[r.attributes["control_partner"]]
        assert partner.tile_id != r.tile_id and partner.kind == r.kind
        if r.kind == "synthetic":
            assert partner.source_tile_id != r.source_tile_id
        m = r.metrics
        assert m["self_consistency_margin"] == pytest.approx(m["self_consistency"] - m["self_consistency_mismatched"])
        # recompute the mismatched score from the files: the same captions against the partner's mask
        _, mis = control.score_pair(r.captions, read_mask_tile(job_dir / r.artefacts["mask"]),
                                    read_mask_tile(job_dir / partner.artefacts["mask"]))
        assert m["self_consistency_mismatched"] == pytest.approx(mis)
        if r.kind == "real":        # the label family: against the label tiles
            assert "grounding_labels_margin" in m and 0 <= m["grounding_labels"] <= 100
    margins = [r.metrics["self_consistency_margin"] for r in scored]
    assert np.mean(margins) > 10 and len(set(np.round(margins, 3))) > 3
    # the real tiles were scored beside the synthesis fit (the workers it leaves idle), the rest at the end
    journal = Journal(job_dir.parent.parent / "journal.sqlite")
    try:
        assert journal.get_meta(job_dir.name, "grounding_control_done") == ["real"]
    finally:
        journal.close()


def test_report_says_self_consistency_and_shows_the_control(job):
    records, job_dir = job
    doc = json.loads((job_dir / "report.json").read_text())
    gc = doc["grounding_control"]
    assert set(gc["families"]) == {"self_consistency", "grounding_labels"}
    assert gc["engine_grounding_is_self_consistency"] is True
    block = gc["self_consistency"]["by_kind"]["all"]
    scored = [r for r in records if "self_consistency_margin" in r.metrics]
    assert block["n"] == len(scored)
    assert block["margin"]["mean"] == pytest.approx(np.mean([r.metrics["self_consistency_margin"] for r in scored]))
    assert gc["self_consistency"]["by_dominant_class"]
    assert doc["summary"]["self_consistency_margin_mean"] == pytest.approx(block["margin"]["mean"])
    assert doc["tile_grid"]["default_score"] == "grounding_labels_margin"
    assert "canonical" in doc["set_metrics"]["caption_diversity"]["all"]
    html = (job_dir / "report.html").read_text()
    assert "Grounding with a control" in html and "self-consistency" in html.lower()
    assert "Caption self-consistency by the tile" in html or "Self-consistency by dominant class" in html
    assert "Dataset filters" in html and "Caption diversity" in html
    # the page is report.json's: its pieces rendered on the workers side by side (while the head wrote the STAC
    # collection), assembled by the head, are the page rendered in one go
    from groundsynth.report.html import render_html

    assert render_html(doc, job_dir) == html
    journal = Journal(job_dir.parent.parent / "journal.sqlite")
    try:
        assert journal.get_meta(job_dir.name, "timings")["report_html"] > 0
    finally:
        journal.close()


def test_tile_grid_carries_the_control_scores(job):
    _, job_dir = job
    import fiona

    with fiona.open(job_dir / "tiles.gpkg") as src:
        rows = [dict(f["properties"]) for f in src]
    margins = {round(r["self_consistency_margin"], 3) for r in rows if r.get("self_consistency_margin") is not None}
    assert len(margins) > 3                               # the default score of the tile grid varies
    assert any(r.get("dropped_by") for r in rows)


def test_dataset_filters_flag_count_and_keep_dropped_tiles_out_of_synthesis(job):
    records, job_dir = job
    real = [r for r in records if r.kind == "real"]
    for r in real:
        names = set(filter(None, r.attributes.get("dropped_by", "").split(",")))
        assert ("nodata" in names) == (float(r.attributes["valid_share"]) < 1.0)
        assert ("water" in names) == (len(r.composition) == 7 and r.composition[WATER] > 0.9)
    assert any("nodata" in r.attributes.get("dropped_by", "") for r in real)
    kept = {r.tile_id for r in real if dataset_filters.is_kept(r)}
    synth = [r for r in records if r.kind == "synthetic"]
    assert synth and {r.source_tile_id for r in synth} == {t for t in kept
                                                           if not next(x for x in real if x.tile_id == t).nodata}
    doc = json.loads((job_dir / "report.json").read_text())
    counts = doc["dataset_filters"]["real"]
    assert counts["tiles"] == len(real) and counts["kept"] == len(kept)
    assert counts["by_filter"]["nodata"] == sum("nodata" in r.attributes.get("dropped_by", "") for r in real)
    assert doc["summary"]["tiles_dropped_real"] == len(real) - len(kept)


def test_filters_off_drop_nothing_and_synthesise_every_tile(scene, tmp_path):
    records, _ = _run(tmp_path, scene, "nofilt",
                      filters=DatasetFilters(keep_nodata=True, max_water_share=1.0, synthesise_dropped=True),
                      stages=[StageConfig("segment"), StageConfig("synthesise")])
    real = [r for r in records if r.kind == "real"]
    assert real and not any(r.attributes.get("dropped_by") for r in records)
    assert len([r for r in records if r.kind == "synthetic"]) == sum(not r.nodata for r in real)


def test_caption_naming_an_absent_class_lowers_the_tiles_grounding(job):
    records, job_dir = job
    rec = next(r for r in records if r.kind == "real" and not r.nodata and r.captions
               and r.composition[1] == 0.0)                     # no Shrub on this tile
    mask = read_mask_tile(job_dir / rec.artefacts["mask"])
    seg = Spectral({})
    image = np.zeros((4, *mask.shape), np.float32)
    g = CompositionGrounder({})

    def grounding(captions):
        it = GroundInput(rec.tile_id, "real", image, mask != 255, mask, captions,
                         mask_source=engine_key(Spectral, seg.p))
        return g.ground([it])[0]["grounding"]

    base = grounding(rec.captions)
    assert base == pytest.approx(rec.metrics["grounding"])
    assert grounding(rec.captions[:-1] + [rec.captions[-1] + "; shrubland covers the south."]) < base - 5

