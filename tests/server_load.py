"""A bounded load on a real server: concurrent submitters plus readers polling ListJobs/GetJob/Capabilities.

Used by tests/test_server_load.py (every job must end SUCCEEDED, no call may fail) and runnable by hand; it
prints the counts:

    PYTHONPATH=$PWD .venv/bin/python tests/server_load.py [--seconds 30] [--submitters 8] [--readers 4]

Counts are bounded: submitters stop starting jobs after `seconds` (and after `max_jobs` each), readers stop
then too, and every submitted job is followed to its end (`drain_s` at most).
"""
from __future__ import annotations

import argparse
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

if __name__ == "__main__":                       # run as a script: make the worktree importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from groundsynth.api.v1.contract import pb  # noqa: E402
from groundsynth.request.errors import GroundSynthError, ResourceExhausted  # noqa: E402


@dataclass
class LoadResult:
    submitted: int = 0
    succeeded: int = 0
    calls: int = 0                   # RPCs answered without error (Submit streams count once)
    errors: int = 0
    refused_busy: int = 0            # RESOURCE_EXHAUSTED "queue full" (back-pressure, retried; not an error)
    error_samples: list[str] = field(default_factory=list)
    states: Counter = field(default_factory=Counter)
    job_ids: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"jobs submitted: {self.submitted}  jobs SUCCEEDED: {self.succeeded}  calls served: {self.calls}  "
                f"errors: {self.errors}  (queue-full retries: {self.refused_busy}; final states: "
                f"{dict(self.states)})")


def job_spec(raster: str, tile: int = 64, bbox: tuple[float, float, float, float] | None = None):
    from tests.server_fixture import raster_bbox

    minx, miny, maxx, maxy = bbox or raster_bbox(512)
    spec = pb.JobSpec(raster_path=str(raster), tile_size=tile, name="load", stages=[
        pb.StageConfig(stage="segment", engine="test-bright"),
        pb.StageConfig(stage="synthesise", engine="test-palette"),
        pb.StageConfig(stage="caption", engine="test-count"),
        pb.StageConfig(stage="ground", engine="test-agree")])
    spec.aoi.bbox.CopyFrom(pb.BBox(minx=minx, miny=maxy - 4 * tile * 10, maxx=minx + 4 * tile * 10, maxy=maxy))
    return spec


def run_load(make_client, raster: str, *, seconds: float = 30.0, submitters: int = 8, readers: int = 4,
             max_jobs: int = 50, drain_s: float = 120.0) -> LoadResult:
    """Drive the server behind `make_client()` (a GroundSynthClient factory) and count what happened."""
    res = LoadResult()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def error(text: str) -> None:
        with lock:
            res.errors += 1
            if len(res.error_samples) < 10:
                res.error_samples.append(text)

    def served(n: int = 1) -> None:
        with lock:
            res.calls += n

    def submitter() -> None:
        with make_client() as c:
            for _ in range(max_jobs):
                if time.monotonic() > deadline:
                    return
                try:
                    events = list(c.submit(job_spec(raster)))
                except ResourceExhausted:
                    with lock:
                        res.refused_busy += 1
                    time.sleep(0.2)
                    continue
                except GroundSynthError as exc:
                    error(f"Submit: {exc.code.name}: {exc.message}")
                    continue
                served()
                with lock:
                    res.submitted += 1
                    res.job_ids.append(events[0].job_id)
                last = events[-1]
                if last.HasField("failed"):
                    error(f"job {last.job_id} failed: {last.failed.message}")

    def reader() -> None:
        with make_client() as c:
            while time.monotonic() < deadline:
                try:
                    jobs = c.list_jobs(20)
                    c.capabilities()
                    served(2)
                    for j in jobs[:3]:
                        c.get_job(j.job_id)
                        served()
                except GroundSynthError as exc:
                    error(f"reader: {exc.code.name}: {exc.message}")
                time.sleep(0.01)

    threads = [threading.Thread(target=submitter, name=f"submitter-{i}") for i in range(submitters)]
    threads += [threading.Thread(target=reader, name=f"reader-{i}") for i in range(readers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + drain_s)
    with make_client() as c:
        end = time.monotonic() + drain_s
        while True:
            infos = [c.get_job(j) for j in res.job_ids]
            if all(i.state not in (pb.QUEUED, pb.RUNNING) for i in infos) or time.monotonic() > end:
                break
            time.sleep(0.2)
    res.states = Counter(pb.JobState.Name(i.state) for i in infos)
    res.succeeded = res.states.get("SUCCEEDED", 0)
    for i in infos:
        if i.state != pb.SUCCEEDED:
            error(f"job {i.job_id} ended {pb.JobState.Name(i.state)}: {i.error}")
    return res


def main() -> int:
    import tempfile

    from tests.server_fixture import make_test_raster, start_server

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--submitters", type=int, default=8)
    ap.add_argument("--readers", type=int, default=4)
    ap.add_argument("--max-jobs", type=int, default=50, help="per submitter")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "workspace"
        raster = make_test_raster(ws / "data" / "src.tif", size=512)
        srv = start_server(ws, "--max-queued-jobs", "32", "--quiet")
        try:
            res = run_load(srv.client, str(raster), seconds=args.seconds, submitters=args.submitters,
                           readers=args.readers, max_jobs=args.max_jobs)
        finally:
            srv.kill()
    print(res.line())
    for s in res.error_samples:
        print("  error:", s)
    return 0 if res.errors == 0 and res.succeeded == res.submitted else 1


if __name__ == "__main__":
    sys.exit(main())
