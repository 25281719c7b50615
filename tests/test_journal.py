"""Job journal: states, meta, tiles exactly once, persistence across reopen, threads."""
import threading

import pytest

from groundsynth.api.v1.contract import pb
from groundsynth.artefacts.records import TileRecord
from groundsynth.request.errors import NotFound
from groundsynth.request.spec import Aoi, JobSpec
from groundsynth.service.journal import JOB_STATES, Journal


def _spec(seed=3):
    return JobSpec(aoi=Aoi(bbox=(0, 0, 10, 10)), raster_path="/data/x.tif", seed=seed).normalised()


def test_states_match_proto_enum():
    assert JOB_STATES == tuple(pb.JobState.Name(v) for v in pb.JobState.values() if v)


def test_job_lifecycle_meta_and_tiles_survive_reopen(tmp_path):
    path = tmp_path / "journal.sqlite"
    j = Journal(path)
    spec = _spec()
    j.create_job("j1", spec, str(tmp_path / "jobs" / "j1"))
    row = j.get_job("j1")
    assert row.state == "QUEUED" and row.spec == spec and row.tiles_done == 0
    j.set_totals("j1", 4, 8)
    j.set_state("j1", "RUNNING")
    j.set_meta("j1", "stretch", {"low": [1.0, 2.0], "high": [3.0, 4.0]})
    rec = TileRecord("r0000_c0001", "real", 0, 1, bounds=(0, 0, 1, 1), geotransform=(0, 1, 0, 1, 0, -1),
                     artefacts={"image": "real/image/r0000_c0001.tif"}, composition=[1, 0, 0, 0, 0, 0, 0])
    assert j.record_tile("j1", rec) is True
    assert j.record_tile("j1", rec) is False          # exactly once
    syn = TileRecord("r0000_c0001_v1", "synthetic", 0, 1, variant=1, source_tile_id="r0000_c0001")
    assert j.record_tile("j1", syn)
    rec.captions = ["a caption"]
    j.update_tile("j1", rec)
    j.close()

    j = Journal(path)        # a restarted backend
    row = j.get_job("j1")
    assert (row.state, row.tiles_total, row.tiles_done, row.synthetic_total, row.synthetic_done) == \
        ("RUNNING", 4, 1, 8, 1)
    assert j.get_meta("j1", "stretch") == {"low": [1.0, 2.0], "high": [3.0, 4.0]}
    assert j.get_meta("j1", "nope", 7) == 7
    assert [t.tile_id for t in j.tiles("j1", "real")] == ["r0000_c0001"]
    assert j.tiles("j1", "real")[0].captions == ["a caption"]
    assert j.tiles("j1", "real")[0].bounds == (0, 0, 1, 1)
    assert j.tile_ids("j1") == {"r0000_c0001", "r0000_c0001_v1"}
    assert j.mark_interrupted() == ["j1"]
    assert j.get_job("j1").state == "INTERRUPTED"
    assert j.mark_interrupted() == []
    j.close()


def test_list_newest_first_and_errors(tmp_path):
    j = Journal(tmp_path / "journal.sqlite")
    for i in range(3):
        j.create_job(f"j{i}", _spec(i), "")
    j.set_state("j1", "FAILED", "aoi: outside")
    assert [r.job_id for r in j.list_jobs()] == ["j2", "j1", "j0"]
    assert [r.job_id for r in j.list_jobs(limit=2)] == ["j2", "j1"]
    assert j.get_job("j1").error == "aoi: outside"
    assert j.get_job("missing") is None
    with pytest.raises(NotFound, match="job_id"):
        j.set_state("missing", "RUNNING")
    with pytest.raises(ValueError, match="unknown job state"):
        j.set_state("j0", "DONE")
    with pytest.raises(NotFound):
        j.update_tile("j0", TileRecord("r0000_c0000", "real", 0, 0))
    j.close()


def test_concurrent_record_tile_is_exactly_once(tmp_path):
    j = Journal(tmp_path / "journal.sqlite")
    j.create_job("j", _spec(), "")
    wins = []

    def worker():
        for i in range(50):
            if j.record_tile("j", TileRecord(f"r0000_c{i:04d}", "real", 0, i)):
                wins.append(i)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == list(range(50))
    assert j.get_job("j").tiles_done == 50
    j.close()
