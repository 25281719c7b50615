"""JobTask against a fake stream: events relayed as signals, cancel asks the backend, gRPC errors reported."""
from pathlib import Path

from qgis.core import (
    QgsApplication,
)

from plugin.connection.api import pb
from plugin.tasks.job_task import JobTask
from tests.plugin_fixtures import FakeCall, FakeClient, FakeRpcError

ROOT = Path(__file__).resolve().parents[1]




# ------------------------------------------------------------------ task
def _events(n_tiles=3):
    evs = [pb.JobEvent(job_id="job1", seq=1, accepted=pb.Accepted(job_id="job1", tile_count=n_tiles,
                                                                   output_dir="/nowhere"))]
    for i in range(n_tiles):
        evs.append(pb.JobEvent(job_id="job1", seq=2 + i, progress=pb.Progress(stage="segment", done=i + 1,
                                                                              total=n_tiles)))
    evs.append(pb.JobEvent(job_id="job1", seq=10, done=pb.Done(state=pb.SUCCEEDED, real_tiles=n_tiles)))
    return evs


def test_task_relays_events_as_signals(qgis_app, qtbot):
    task = JobTask(FakeClient(FakeCall(_events())), spec=pb.JobSpec())
    got, progress = [], []
    task.job_event.connect(lambda ev: got.append(ev.WhichOneof("event")))
    task.stage_progress.connect(lambda *a: progress.append(a))
    with qtbot.waitSignal(task.taskCompleted, timeout=5000):
        QgsApplication.taskManager().addTask(task)
    qtbot.waitUntil(lambda: len(got) == 5, timeout=2000)
    assert got == ["accepted", "progress", "progress", "progress", "done"]
    assert progress[-1] == ("segment", 3, 3)
    assert task.final_state == "SUCCEEDED" and task.job_id == "job1"


def test_task_cancel_asks_the_backend_and_ends(qgis_app, qtbot):
    evs = _events(5)
    cancelled = pb.JobEvent(job_id="job1", seq=11, done=pb.Done(state=pb.CANCELLED))
    call = FakeCall(evs[:2] + [cancelled], block_after=2)
    client = FakeClient(call, on_cancel=call.release.set)   # the backend ends the stream when told to cancel
    task = JobTask(client, spec=pb.JobSpec())
    seen, ended = [], []
    task.job_event.connect(lambda ev: seen.append(ev.WhichOneof("event")))
    task.taskCompleted.connect(lambda: ended.append("completed"))
    task.taskTerminated.connect(lambda: ended.append("terminated"))
    QgsApplication.taskManager().addTask(task)
    qtbot.waitUntil(lambda: "progress" in seen, timeout=5000)
    task.cancel()
    qtbot.waitUntil(lambda: bool(ended), timeout=5000)
    assert seen[-1] == "done"
    assert client.cancelled_jobs == ["job1"]
    assert task.final_state == "CANCELLED"


def test_task_reports_grpc_errors(qgis_app, qtbot):
    import grpc

    class Failing(FakeClient):
        def submit(self, spec):
            raise FakeRpcError(grpc.StatusCode.UNAUTHENTICATED, "missing or bad token")

    task = JobTask(Failing(FakeCall([])), spec=pb.JobSpec())
    with qtbot.waitSignal(task.failed, timeout=5000) as sig:
        QgsApplication.taskManager().addTask(task)
    assert sig.args[0] == "Bad token"
