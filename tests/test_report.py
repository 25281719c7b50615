"""groundsynth.report: report.json contents and round trip, self-contained report.html."""
import base64
import io
import json
import re

import pytest
from PIL import Image

from groundsynth.report import read_report, write_report
from groundsynth.request.classes import CLASS_NAMES
from groundsynth.request.spec import JobSpec
from tests.helpers_jobdir import build_job_dir, context, make_spec


@pytest.fixture(scope="module")
def finished_job(tmp_path_factory):
    job_dir = tmp_path_factory.mktemp("job")
    records = build_job_dir(job_dir)
    spec = make_spec()
    summary = write_report(job_dir, spec, records, context())
    return job_dir, spec, records, summary


def test_summary_headline_numbers(finished_job):
    _, _, _, s = finished_job
    assert s["tiles_real"] == 5 and s["tiles_synthetic"] == 5 and s["tiles_nodata"] == 1
    assert s["grounding_mean"] == pytest.approx(86.0)              # (90..94 + 5 x 80) / 10
    assert s["grounding_mean_real"] == pytest.approx(92.0)
    assert s["fidelity_miou_mean"] == pytest.approx(0.58)          # 0.5, 0.6, 0.7, 0.5, 0.6
    assert 0 <= s["redundancy"] < 0.0801
    assert s["composition_js"] > 0                                 # synthetic masks gained crop
    # labels differ from the masks on the top 4 rows (hand count: 556 of 5120 pixels)
    assert s["seg_accuracy"] == pytest.approx(1 - 556 / 5120)
    assert all(isinstance(v, float) for v in s.values())


def test_report_json_contents(finished_job):
    job_dir, spec, records, summary = finished_job
    doc = read_report(job_dir)
    assert doc["schema_version"] == 1 and doc["job_id"] == "job-test" and doc["seed"] == 7
    assert doc["summary"] == summary
    assert doc["engines"]["caption"]["name"] == "composition"
    assert doc["versions"]["numpy"] and doc["versions"]["rasterio"] and doc["versions"]["python"]
    assert doc["crs"] == "EPSG:32618"
    assert len(doc["tiles"]) == len(records) == 11
    t = next(t for t in doc["tiles"] if t["tile_id"] == "r0000_c0001_v1")
    assert t["kind"] == "synthetic" and t["source_tile_id"] == "r0000_c0001"
    assert t["artefacts"]["cond_mask"] == "synthetic/cond_mask/r0000_c0001_v1.tif"
    assert set(t["composition"]) == set(CLASS_NAMES) and len(t["captions"]) == 5
    assert t["metrics"]["fidelity_miou"] == pytest.approx(0.6)
    real = next(t for t in doc["tiles"] if t["tile_id"] == "r0000_c0000")
    assert real["dominant_class"] == "Tree" and real["label_metrics"]["accuracy"] == pytest.approx(1 - 128 / 1024)
    agg = doc["aggregates"]
    assert agg["real"]["grounding"]["mean"] == pytest.approx(92.0) and agg["real"]["grounding"]["n"] == 5
    assert agg["synthetic"]["fidelity_miou"]["max"] == pytest.approx(0.7)
    # set metrics were computed from the records (the context passed none)
    assert doc["set_metrics"]["counts"]["tiles_nodata"] == 1
    assert doc["set_metrics"]["distributions"]["fidelity_iou_by_class"]["Water"]["mean"] == 1.0


def test_label_evaluation_hand_computed(finished_job):
    doc = read_report(finished_job[0])
    lab = doc["label_evaluation"]
    assert lab["tiles"] == 5 and lab["pixels"] == 5120
    grass = lab["per_class"]["Grass"]
    # truth Grass 1228 px (top rows of 5 tiles + the grass tile's left part), predicted 672, all correct
    assert grass["iou"] == pytest.approx(672 / 1228)
    assert grass["f1"] == pytest.approx(1344 / 1900)
    assert lab["per_class"]["Barren"]["f1"] is None              # in neither labels nor masks
    assert "Barren" not in lab["classes_scored"]
    assert sum(map(sum, lab["confusion_matrix"])) == 5120


def test_spec_round_trips_from_report(finished_job):
    job_dir, spec, _, _ = finished_job
    doc = read_report(job_dir)
    again = JobSpec.from_dict(doc["spec"])
    assert again == spec
    assert again.normalised() == spec


def test_report_html_is_self_contained(finished_job):
    job_dir = finished_job[0]
    text = (job_dir / "report.html").read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)     # nothing to fetch
    assert "<script" not in text
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    # composition, histograms, per-class fidelity, grounding by class, and 4 x 5 thumbnails
    assert len(images) >= 4 + 5 * 4
    for data in images:
        with Image.open(io.BytesIO(base64.b64decode(data))) as im:
            im.verify()
    # the strip shows the best and worst synthetic tiles by fidelity, with a caption
    assert "Best 2 by fidelity_miou" in text and "Worst 2 by fidelity_miou" in text
    assert "r0000_c0002_v1" in text                                   # best fidelity (0.7)
    doc = read_report(job_dir)
    first_caption = next(t for t in doc["tiles"] if t["tile_id"] == "r0000_c0002_v1")["captions"][0]
    assert first_caption.split()[0] in text
    assert "Segmenter vs labels" in text


def test_outputs_are_atomic_and_rewritable(finished_job):
    job_dir, spec, records, _ = finished_job
    write_report(job_dir, spec, records, context(job_id="again"))
    assert read_report(job_dir)["job_id"] == "again"
    assert not list(job_dir.glob(".tmp-*"))


def test_report_without_labels_synthetic_or_ground_stage(tmp_path):
    records = build_job_dir(tmp_path, with_labels=False, with_synthetic=False)
    for r in records:
        r.metrics = {}
    summary = write_report(tmp_path, make_spec(), records, context(set_metrics={}))
    assert summary["tiles_synthetic"] == 0 and "grounding_mean" not in summary
    assert "seg_accuracy" not in summary and "fidelity_miou_mean" not in summary
    assert "composition_js" not in summary                          # nothing to compare against
    doc = json.loads((tmp_path / "report.json").read_text())
    assert doc["label_evaluation"] is None
    html = (tmp_path / "report.html").read_text()
    assert "No scored tiles to show" in html and "No synthetic tiles" in html


def test_set_metrics_from_the_context_are_kept(tmp_path):
    records = build_job_dir(tmp_path, with_labels=False)
    given = {"redundancy": {"all": 0.5, "real": 0.5, "synthetic": 0.5}, "composition_shift": {"js_divergence": 0.25}}
    summary = write_report(tmp_path, make_spec(), records, context(set_metrics=given))
    assert summary["redundancy"] == 0.5 and summary["composition_js"] == 0.25


def test_missing_report_is_not_found(tmp_path):
    from groundsynth.request.errors import NotFound

    with pytest.raises(NotFound, match="report.json"):
        read_report(tmp_path)


def test_report_of_a_job_without_tiles(tmp_path):
    summary = write_report(tmp_path, make_spec(), [], context())
    assert summary == {"tiles_real": 0.0, "tiles_synthetic": 0.0, "tiles_nodata": 0.0}
    assert read_report(tmp_path)["tiles"] == []
    assert "No composition data" in (tmp_path / "report.html").read_text()


def test_per_class_plot_accepts_a_mean_outside_p10_p90():
    from groundsynth.report.html import plot_per_class

    # 19 zeros and a one: mean 0.05 above p90 0.0 (matplotlib refuses negative error bars)
    skewed = {"n": 20, "mean": 0.05, "median": 0.0, "p10": 0.0, "p90": 0.0, "min": 0.0, "max": 1.0}
    assert plot_per_class({"Tree": skewed}, "t", "IoU").startswith("<img")


def test_report_html_from_pieces_rendered_elsewhere_is_the_same_page(finished_job, monkeypatch):
    """The pipeline renders report.html's slow pieces on its workers; the head assembles the page from them
    without drawing anything again."""
    from groundsynth.report import html as page
    from groundsynth.report import report_html_piece

    job_dir = finished_job[0]
    doc = read_report(job_dir)
    whole = page.render_html(doc, job_dir)
    pieces = {}
    for name in page.PIECES:
        got = report_html_piece(job_dir, name)
        assert set(got) == set(page.PIECE_KEYS[name])
        pieces.update(got)

    def no_drawing(*_a, **_k):
        raise AssertionError("drawn again although its piece was given")

    for fn in ("plot_histograms", "plot_composition", "plot_per_class", "thumbnail_strip"):
        monkeypatch.setattr(page, fn, no_drawing)
    assert page.render_html(doc, job_dir, pieces) == whole
    with pytest.raises(ValueError, match="unknown report.html piece 'charts'"):
        page.render_piece(doc, job_dir, "charts")
