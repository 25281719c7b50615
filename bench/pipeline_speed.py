"""Pipeline speed on the Sentinel-2 demo scene: full pipeline, default engines, 2 variants.

    .venv/bin/python bench/pipeline_speed.py [--workspace DIR] [--variants 2] [--batch-size 8]

Prints tiles/s overall (real + synthetic tiles over wall time), seconds and
tiles/s per stage (from the timings run_job records in the journal), and the
report's share of the pipeline time. Targets: >= 5 tiles/s on 2 cores,
report < 10 %.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_TILES_PER_S = 5.0
TARGET_REPORT_SHARE = 0.10


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workspace", type=Path, default=None, help="default: a temporary folder")
    ap.add_argument("--variants", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()

    from groundsynth.cli.demo import demo_spec
    from groundsynth.demo.scene import demo_raster
    from groundsynth.pipeline.prepare import RunOptions, new_job_id
    from groundsynth.pipeline.runner import run_job
    from groundsynth.service.journal import Journal

    tmp = None
    if args.workspace is None:
        tmp = tempfile.TemporaryDirectory(prefix="gs-bench-")
        args.workspace = Path(tmp.name)
    ws = args.workspace.resolve()
    raster = demo_raster(ws / "data")
    spec = demo_spec(raster, args.variants)
    journal = Journal(ws / "journal.sqlite")
    job_id = new_job_id()
    counts = {"real": 0, "synthetic": 0}

    def emit(event):
        if event.kind == "tile":
            counts[event.record.kind] += 1

    t0 = time.perf_counter()
    state = run_job(job_id, spec, ws, journal, emit, lambda: False, RunOptions(batch_size=args.batch_size))
    wall = time.perf_counter() - t0
    timings = journal.get_meta(job_id, "timings", {})
    journal.close()

    n_real, n_syn = counts["real"], counts["synthetic"]
    total = n_real + n_syn
    print(f"job {job_id}: {state}, {n_real} real + {n_syn} synthetic tiles of {spec.tile_size} px in {wall:.1f} s")
    print(f"overall: {total / wall:.2f} tiles/s (target >= {TARGET_TILES_PER_S:g})")
    units = {"segment": total, "synthesise": n_syn, "caption": total, "ground": total, "read": total,
             "write": total, "mask_strategy": n_syn}
    print(f"{'stage':<16}{'seconds':>10}{'share':>8}{'tiles/s':>10}")
    for stage, secs in sorted(timings.items(), key=lambda kv: -kv[1]):
        if stage == "total":
            continue
        rate = f"{units[stage] / secs:10.1f}" if stage in units and secs > 0 else f"{'':>10}"
        print(f"{stage:<16}{secs:>10.2f}{100 * secs / wall:>7.1f}%{rate}")
    report_share = timings.get("report", 0.0) / wall
    print(f"report: {timings.get('report', 0.0):.2f} s = {100 * report_share:.1f}% of pipeline time "
          f"(target < {100 * TARGET_REPORT_SHARE:g}%)")
    ok = total / wall >= TARGET_TILES_PER_S and report_share < TARGET_REPORT_SHARE
    print("targets met" if ok else "targets NOT met")
    if tmp:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
