"""Job report: report.json (every metric, reproducible) and report.html (self-contained page).

    from groundsynth.report import write_report
    summary = write_report(job_dir, spec, records, context)

`context` (from the pipeline): job_id, engines {stage: {name, params}},
set_metrics (grounder.summarise(records); may be {}: then computed here from
the records), stretch, timings, raster, seed, and optionally grid, layers,
warnings. Both files are written atomically. Returns the headline numbers
(floats) for ReportReady.summary: tiles_real, tiles_synthetic, tiles_nodata,
grounding_mean (+ _real/_synthetic), fidelity_miou_mean, redundancy,
composition_js and, with labels, seg_macro_f1, seg_miou, seg_accuracy.
Undefined numbers are left out.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from groundsynth.artefacts.atomic import write_text
from groundsynth.artefacts.records import TileRecord
from groundsynth.report.json_report import build_report
from groundsynth.request.spec import JobSpec

REPORT_JSON = "report.json"
REPORT_HTML = "report.html"


def write_report(job_dir: str | Path, spec: JobSpec, records: Sequence[TileRecord], context: dict,
                 html: bool = True) -> dict:
    """report.json, then (`html`) report.html from it; returns the report's summary."""
    job_dir = Path(job_dir)
    doc = build_report(job_dir, spec, list(records), dict(context or {}))
    write_text(job_dir / REPORT_JSON, json.dumps(doc, indent=1, sort_keys=False, allow_nan=False))
    if html:
        _write_html(job_dir, doc)
    return dict(doc["summary"])


def write_report_html(job_dir: str | Path, pieces: dict[str, str | None] | None = None) -> None:
    """report.html from the job's report.json (the same page write_report writes); `pieces`: the page's
    slow parts rendered elsewhere (report_html_piece), the missing ones are rendered here."""
    _write_html(Path(job_dir), read_report(job_dir), pieces)


def report_html_piece(job_dir: str | Path, piece: str) -> dict[str, str | None]:
    """One slow part of report.html (groundsynth.report.html.PIECES), from the job's report.json: the
    pipeline renders them on its workers side by side."""
    from groundsynth.report.html import render_piece

    return render_piece(read_report(job_dir), job_dir, piece)


def _write_html(job_dir: Path, doc: dict, pieces: dict[str, str | None] | None = None) -> None:
    from groundsynth.report.html import render_html

    write_text(job_dir / REPORT_HTML, render_html(doc, job_dir, pieces))


def read_report(job_dir: str | Path) -> dict:
    """The report.json document of a finished job dir."""
    from groundsynth.request.errors import NotFound

    path = Path(job_dir) / REPORT_JSON
    if not path.exists():
        raise NotFound(f"no {REPORT_JSON} in {job_dir}: is this a finished job directory?", "job_dir")
    return json.loads(path.read_text(encoding="utf-8"))


__all__ = ["write_report", "read_report", "build_report", "REPORT_JSON", "REPORT_HTML"]
