"""Item 1 of issue 9: the journal under concurrent access.

- Many threads sharing one Journal (plus the EventLog's own connection to the same file) never see an sqlite
  error: every query's rows are read under the journal's lock and multi-statement writes are transactions.
- A bounded load (about 30 s) through a real server: 8 submitters and 4 readers polling ListJobs/GetJob/
  Capabilities; every job ends SUCCEEDED and no call fails (tests/server_load.py prints the same counts).
"""
import threading
import time

from groundsynth.api.v1.contract import pb
from groundsynth.artefacts.records import TileRecord
from groundsynth.request.spec import Aoi, JobSpec
from groundsynth.service.event_log import EventLog
from groundsynth.service.journal import Journal
from tests.server_fixture import make_test_raster, start_server
from tests.server_load import run_load


def test_journal_shared_by_threads_never_fails(tmp_path):
    db = tmp_path / "journal.sqlite"
    journal, events = Journal(db), EventLog(db)
    spec = JobSpec(aoi=Aoi(bbox=(0, 0, 1, 1)), raster_path="/x.tif")
    for i in range(16):
        journal.create_job(f"j{i}", spec, "/tmp/out")
    errors: list[str] = []
    stop = time.monotonic() + 4
    done = {"writes": 0, "reads": 0}

    def writer(k: int) -> None:
        n = 0
        while time.monotonic() < stop:
            try:
                journal.set_meta(f"j{k}", "layers", [{"layer": "real_image", "path": "a.vrt", "format": "vrt"}])
                assert journal.record_tile(f"j{k}", TileRecord(f"r{n:04d}_c0000", "real", n, 0))
                journal.set_state(f"j{k}", "RUNNING")
                events.append(f"j{k}", "progress", pb.Progress(stage="segment", done=n))
                assert len(journal.tile_ids(f"j{k}")) == n + 1
                n += 1
                done["writes"] += 1
            except Exception as exc:  # noqa: BLE001 - every error is a failure of the test
                errors.append(f"writer: {exc!r}")

    def reader() -> None:
        while time.monotonic() < stop:
            try:
                for row in journal.list_jobs():
                    journal.get_meta(row.job_id, "layers")
                    journal.get_meta(row.job_id, "report")
                assert journal.get_job("j1") is not None
                events.events("j1")
                done["reads"] += 1
            except Exception as exc:  # noqa: BLE001
                errors.append(f"reader: {exc!r}")

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    threads += [threading.Thread(target=reader) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    journal.close()
    events.close()
    assert errors == [], f"{len(errors)} errors, e.g. {sorted(set(errors))[:3]}"
    assert done["writes"] > 50 and done["reads"] > 20


def test_bounded_load_through_a_real_server_leaves_every_job_succeeded(tmp_path):
    ws = tmp_path / "workspace"
    raster = make_test_raster(ws / "data" / "src.tif", size=512)
    srv = start_server(ws, "--max-queued-jobs", "32", "--quiet")
    try:
        res = run_load(srv.client, str(raster), seconds=25, submitters=8, readers=4, max_jobs=40)
        assert srv.alive()
    finally:
        srv.kill()
    print(res.line())
    assert res.errors == 0, res.error_samples
    assert res.submitted >= 8 and res.succeeded == res.submitted, res.line()
    assert res.calls > 100
