"""JobTask: consumes a job's event stream in a QgsTask (a worker thread).

The task never touches layers or widgets: it re-emits every JobEvent as a Qt
signal, which Qt delivers (queued) on the main thread where the dock and
JobResults act on it. Cancelling the task asks the backend to cancel the job
(Cancel RPC) and then waits for the stream to end with Done(CANCELLED); if the
backend does not end it within `cancel_grace_s`, the stream is closed.
"""
from __future__ import annotations

import threading
import time

import grpc
from qgis.core import QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from ..connection.api import pb, state_name
from ..errors import user_message


class JobTask(QgsTask):
    job_event = pyqtSignal(object)      # every groundsynth.v1.JobEvent, in order
    stage_progress = pyqtSignal(str, int, int)   # stage, done, total
    failed = pyqtSignal(str, str)       # message-bar title, text

    def __init__(self, client, spec=None, job_id: str = "", after_seq: int = 0, description: str = "GroundSynth job",
                 cancel_grace_s: float = 20.0, upload: str = ""):
        super().__init__(description, QgsTask.Flag.CanCancel)
        if spec is None and not job_id:
            raise ValueError("JobTask needs a spec to submit or a job_id to watch")
        self.client = client
        self.spec = spec
        self.job_id = job_id
        self.after_seq = after_seq
        self.upload = upload             # a raster file to send with UploadRaster before submitting
        self.cancel_grace_s = cancel_grace_s
        self.final_state = ""            # SUCCEEDED / CANCELLED / FAILED when the stream ended with it
        self.error_title = ""
        self.error_text = ""
        self.last_seq = after_seq
        self._call = None
        self._lock = threading.Lock()
        self._cancel_requested = threading.Event()
        self._cancel_sent = False

    # ------------------------------------------------------------ worker thread
    def run(self) -> bool:
        try:
            if self.upload and self.spec is not None:
                self.setProgress(0)
                self.spec.upload_id = self.client.upload_raster(self.upload)   # replaces raster_path (oneof)
                if self._cancel_requested.is_set():
                    self.final_state = "CANCELLED"
                    return True
            call = self.client.submit(self.spec) if self.spec is not None else self.client.watch(self.job_id,
                                                                                                 self.after_seq)
            with self._lock:
                self._call = call
            if self._cancel_requested.is_set() and self.job_id:
                self._send_cancel()
            for ev in call:
                self.last_seq = ev.seq
                which = ev.WhichOneof("event")
                if which == "accepted":
                    self.job_id = ev.accepted.job_id or ev.job_id
                    if self._cancel_requested.is_set():
                        self._start_cancel_thread()
                elif which == "progress":
                    p = ev.progress
                    self.stage_progress.emit(p.stage, p.done, p.total)
                    if p.total:
                        self.setProgress(100.0 * p.done / p.total)
                elif which == "failed" and not ev.failed.tile_id:
                    self.final_state = "FAILED"
                    self.error_title, self.error_text = "Job failed", ev.failed.message
                elif which == "done":
                    self.final_state = state_name(ev.done.state)
                self.job_event.emit(ev)
            if not self.final_state and self._cancel_requested.is_set():
                self.final_state = "CANCELLED"
            return self.final_state in ("SUCCEEDED", "CANCELLED") or (not self.final_state and not self.error_text)
        except grpc.RpcError as exc:
            if self._cancel_requested.is_set() and exc.code() == grpc.StatusCode.CANCELLED:
                self.final_state = "CANCELLED"
                return True
            self.error_title, self.error_text = user_message(exc, getattr(self.client, "address", ""))
            self.final_state = "FAILED"
            return False
        except Exception as exc:  # noqa: BLE001  (report, never crash QGIS)
            self.error_title, self.error_text = user_message(exc)
            self.final_state = "FAILED"
            return False

    # ------------------------------------------------------------ cancel
    def cancel(self) -> None:
        """Ask the backend to cancel the job; the stream then ends with Done(CANCELLED)."""
        if not self._cancel_requested.is_set():
            self._cancel_requested.set()
            if self.job_id:
                self._start_cancel_thread()
        super().cancel()

    def _start_cancel_thread(self) -> None:
        threading.Thread(target=self._send_cancel, name="groundsynth-cancel", daemon=True).start()

    def _send_cancel(self) -> None:
        with self._lock:
            if self._cancel_sent:
                return
            self._cancel_sent = True
        try:
            self.client.cancel(self.job_id)
        except grpc.RpcError:
            pass
        deadline = time.monotonic() + self.cancel_grace_s
        while time.monotonic() < deadline:
            if self.final_state or self.status() in (QgsTask.TaskStatus.Complete, QgsTask.TaskStatus.Terminated):
                return
            time.sleep(0.1)
        self.close_stream()

    def cancel_now(self) -> None:
        """Cancel the job on the backend synchronously (unload), then close the stream."""
        self._cancel_requested.set()
        with self._lock:
            send = not self._cancel_sent and bool(self.job_id)
            self._cancel_sent = True
        if send:
            try:
                self.client.cancel(self.job_id)
            except grpc.RpcError:
                pass
        self.close_stream()
        super().cancel()

    def close_stream(self) -> None:
        """Close the gRPC stream now (used on unload and as the cancel fallback)."""
        self._cancel_requested.set()
        with self._lock:
            call = self._call
        if call is not None:
            call.cancel()

    # ------------------------------------------------------------ main thread
    def finished(self, result: bool) -> None:
        if not result and self.error_text:
            self.failed.emit(self.error_title, self.error_text)


def job_state(client, job_id: str) -> str:
    """The backend's current state name for a job (e.g. 'CANCELLED')."""
    return state_name(client.get_job(job_id).state)


__all__ = ["JobTask", "job_state", "pb"]
