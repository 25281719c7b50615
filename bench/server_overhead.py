"""What the gRPC server adds on top of the in-process pipeline (prints numbers, asserts nothing).

Starts `groundsynth serve` on 127.0.0.1 with the cheap test engines and measures:
- Submit -> `accepted` latency (synchronous validation incl. prepare_job),
- wall time of the same job through the server vs in-process (`pipeline.run_job`), per tile,
- FetchArtefact throughput for a 64 MiB file, UploadRaster throughput,
- restart-to-SERVING time.

    .venv/bin/python bench/server_overhead.py [--size 1024] [--tile 64]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=1024, help="test raster edge in pixels")
    ap.add_argument("--tile", type=int, default=64)
    args = ap.parse_args()

    from groundsynth.pipeline.prepare import RunOptions, new_job_id
    from groundsynth.pipeline.runner import run_job
    from groundsynth.request.spec import Aoi, JobSpec
    from groundsynth.service.journal import Journal
    from tests.helpers_engines import TEST_STAGES, test_engines
    from tests.server_fixture import make_test_raster, raster_bbox, start_server

    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "workspace"
        raster = make_test_raster(ws / "data" / "src.tif", size=args.size)
        spec = JobSpec(aoi=Aoi(bbox=raster_bbox(args.size)), raster_path=str(raster), tile_size=args.tile,
                       stages=TEST_STAGES(("segment", "caption", "ground")))
        t0 = time.perf_counter()
        srv = start_server(ws)
        print(f"start to SERVING: {time.perf_counter() - t0:.2f} s")
        try:
            with srv.client() as c:
                t0 = time.perf_counter()
                stream = iter(c.submit(spec))
                first = next(stream)
                t_acc = time.perf_counter() - t0
                n_events = 1 + sum(1 for _ in stream)
                t_srv = time.perf_counter() - t0
                tiles = first.accepted.tile_count
                print(f"submit -> accepted: {1000 * t_acc:.1f} ms")
                print(f"job through server: {t_srv:.2f} s for {tiles} tiles, {n_events} events "
                      f"({1000 * t_srv / tiles:.2f} ms/tile)")

                big = Path(first.accepted.output_dir) / "bench.bin"
                big.write_bytes(os.urandom(64 << 20))
                t0 = time.perf_counter()
                data = c.fetch_bytes(first.job_id, "bench.bin")
                dt = time.perf_counter() - t0
                print(f"FetchArtefact: {len(data) / dt / 2**20:.0f} MiB/s")
                up = Path(tmp) / "up.tif"
                make_test_raster(up, size=2048)
                t0 = time.perf_counter()
                c.upload(up)
                dt = time.perf_counter() - t0
                print(f"UploadRaster: {up.stat().st_size / dt / 2**20:.0f} MiB/s ({up.stat().st_size >> 20} MiB)")
            t0 = time.perf_counter()
            srv = srv.restart()
            print(f"graceful restart to SERVING: {time.perf_counter() - t0:.2f} s")
        finally:
            srv.kill()

        ws2 = Path(tmp) / "inproc"
        ws2.mkdir()
        with test_engines():
            journal = Journal.for_workspace(ws2)
            t0 = time.perf_counter()
            run_job(new_job_id(), spec, ws2, journal, lambda k, m: None, lambda: False, RunOptions())
            t_in = time.perf_counter() - t0
            journal.close()
        print(f"same job in-process: {t_in:.2f} s ({1000 * t_in / tiles:.2f} ms/tile); "
              f"server overhead {1000 * (t_srv - t_in) / tiles:+.2f} ms/tile")


if __name__ == "__main__":
    main()
