"""JobManager: validates, queues, runs, cancels and resumes jobs, off the RPC threads.

- `submit` checks the spec synchronously (spec.normalised(), source under the
  allowed roots or a known upload, engines available, `pipeline.prepare_job`,
  the tile and queue limits), so bad input fails the Submit call itself with
  the right status code. It then records the job in the journal (QUEUED),
  emits the `accepted` event and queues the job.
- `max_concurrent_jobs` threads run queued jobs with `pipeline.run_job`: each is a job's head (it
  hands out batches, records them, emits events), the tile work itself runs on the configured
  executor (`executor`: a pool of worker processes by default, or Ray), shared by all running jobs;
  a job's `JobSpec.executor` picks another one. Every event the pipeline emits is numbered and stored by
  the EventLog; `layer` and `report` events are also kept in the journal's job
  meta, so GetJob can list them after a restart.
- A job error (GroundSynthError) becomes a `failed` event with its status code
  and state FAILED; any other exception becomes `failed` INTERNAL. Neither
  stops the manager.
- `start()` resumes: jobs left QUEUED/RUNNING by a dead process, and jobs that a
  graceful shutdown marked INTERRUPTED, are queued again; the pipeline skips
  tiles the journal already holds, so every tile is written exactly once.
- `shutdown()` asks running jobs to stop at their next batch boundary (their
  `cancelled()` callback raises a BaseException the pipeline does not catch, so
  no final state is written), waits up to `shutdown_grace_s`, and leaves every
  unfinished job INTERRUPTED (resumed on the next start).
"""
from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from groundsynth.api.v1.contract import pb
from groundsynth.api.v1.convert import event_to_proto, spec_to_proto
from groundsynth.pipeline.events import Accepted, Event, TileDone
from groundsynth.request.errors import (
    FailedPrecondition,
    GroundSynthError,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
)
from groundsynth.request.spec import JobSpec
from groundsynth.service.config import ServerConfig
from groundsynth.service.event_log import EventLog
from groundsynth.service.job_checks import check_job_files, source_file, upload_file
from groundsynth.service.journal import FINAL_STATES, JobRow, Journal
from groundsynth.service.storage import disk_full_error, is_disk_full, sweep_unrecorded

log = logging.getLogger("groundsynth.jobs")


class _ShutdownInterrupt(BaseException):
    """Raised by a job's `cancelled()` callback when the server stops. A BaseException, so the
    pipeline's `except Exception` does not turn it into FAILED; the worker marks the job INTERRUPTED."""


@dataclass
class _Active:
    job_id: str
    cancel: threading.Event = field(default_factory=threading.Event)
    started: bool = False


class JobManager:
    def __init__(self, config: ServerConfig, journal: Journal, events: EventLog):
        self.config = config
        self.journal = journal
        self.events = events
        self._active: dict[str, _Active] = {}
        self._lock = threading.RLock()
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> list[str]:
        """Start the workers and re-queue interrupted jobs; returns the resumed job ids."""
        from groundsynth.service.storage import sweep_deleted

        sweep_deleted(self.config.workspace)         # job folders a DeleteJob cut short (crash) go now
        self.journal.mark_interrupted()
        resumed = []
        for row in sorted(self.journal.list_jobs(), key=lambda r: r.created):
            if row.state != "INTERRUPTED":
                continue
            try:
                self._source_path(row.spec)
            except GroundSynthError as exc:
                self._fail(row.job_id, exc.code.value[0], f"cannot resume: {exc.message}")
                continue
            self._report_unreported_tiles(row.job_id)
            self.journal.set_state(row.job_id, "QUEUED")
            with self._lock:
                self._active[row.job_id] = _Active(row.job_id)
            self._queue.put(row.job_id)
            resumed.append(row.job_id)
            log.info("resuming job %s (%d of %d tiles done)", row.job_id, row.tiles_done, row.tiles_total)
        for i in range(self.config.max_concurrent_jobs):
            t = threading.Thread(target=self._worker, name=f"job-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        return resumed

    def _report_unreported_tiles(self, job_id: str) -> None:
        """A crash between recording a tile (journal) and storing its `tile` event (event log) leaves
        a finished tile that no stream ever reports, and the resumed run skips it. Store those
        events now, from the journal's records, so every tile is reported exactly once."""
        reported = self.events.tile_ids(job_id)
        for rec in self.journal.tiles(job_id):
            if rec.tile_id not in reported:
                self.events.append(job_id, *event_to_proto(TileDone(rec)))
                log.info("job %s: tile %s was recorded but not reported before the crash; reported now",
                         job_id, rec.tile_id)

    def shutdown(self, grace_s: float | None = None) -> None:
        """Stop taking jobs, ask running ones to stop, leave the rest INTERRUPTED."""
        grace = self.config.shutdown_grace_s if grace_s is None else grace_s
        self._stopping.set()
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join(max(grace, 0.0) / max(len(self._threads), 1))
        for job_id in self.journal.mark_interrupted():
            log.info("job %s interrupted; it resumes on the next start", job_id)
        with self._lock:
            self._active.clear()        # open Submit/Watch streams end now (their job is no longer active)
        self.events.wake_all()

    # ---------------------------------------------------------------- queries
    def is_active(self, job_id: str) -> bool:
        with self._lock:
            return job_id in self._active

    def active_jobs(self) -> list[str]:
        """Ids of the jobs queued or running in this process."""
        with self._lock:
            return sorted(self._active)

    def active_count(self) -> int:
        with self._lock:
            return len(self._active)

    def get(self, job_id: str) -> JobRow:
        if not job_id:
            raise InvalidArgument("expected a job id as returned by Submit", "job_id")
        row = self.journal.get_job(job_id)
        if row is None:
            raise NotFound(f"unknown job {job_id!r}; expected an id listed by ListJobs", "job_id")
        return row

    def info(self, job_id: str) -> Any:
        return self.to_info(self.get(job_id))

    def list(self, limit: int = 0) -> list[Any]:
        if limit < 0:
            raise InvalidArgument(f"expected 0 (all) or a positive number, got {limit}", "limit")
        return [self.to_info(row) for row in self.journal.list_jobs(limit)]

    def list_page(self, limit: int = 0, page_token: str = "") -> Any:
        """A ListJobsResponse: one bounded page of abbreviated entries (service.listing)."""
        from groundsynth.service.listing import list_page

        return list_page(self.journal, limit, page_token, self.config.max_message_bytes)

    def check_after_seq(self, job_id: str, after_seq: int) -> None:
        last = self.events.last_seq(job_id)
        if after_seq > last:
            raise InvalidArgument(f"expected 0..{last} (the job's last event seq), got {after_seq}", "after_seq")

    def delete(self, job_id: str) -> tuple[int, int]:
        """Remove a finished job's directory, journal rows and events; (files removed, bytes freed)."""
        from groundsynth.service.storage import remove_job_dir

        row = self.get(job_id)
        with self._lock:
            if job_id in self._active or row.state not in FINAL_STATES:
                raise FailedPrecondition(f"job {job_id} is {row.state}; only a finished job (SUCCEEDED, FAILED, "
                                         "CANCELLED) can be deleted: cancel it first, then delete it", "job_id")
            tomb = remove_job_dir(self.config.workspace, job_id, row.output_dir)
            try:
                self.journal.delete_job(job_id)
            except BaseException:
                if tomb:
                    tomb.restore()         # rows kept (e.g. disk full): so are the files
                raise
            self.events.delete(job_id)
        files, size = tomb.finish() if tomb else (0, 0)
        log.info("job %s deleted (%d files, %d bytes)", job_id, files, size)
        return files, size

    def to_info(self, row: JobRow) -> Any:
        info = pb.JobInfo(job_id=row.job_id, state=pb.JobState.Value(row.state), spec=spec_to_proto(row.spec),
                          tiles_total=row.tiles_total, tiles_done=row.tiles_done,
                          synthetic_total=row.synthetic_total, synthetic_done=row.synthetic_done,
                          created=row.created, updated=row.updated, error=row.error, output_dir=row.output_dir,
                          name=row.spec.name)
        for layer in self.journal.get_meta(row.job_id, "layers", []):
            info.layers.add(layer=layer["layer"], path=layer["path"], format=layer["format"])
        report = self.journal.get_meta(row.job_id, "report")
        if report:
            info.report.CopyFrom(pb.ReportReady(json_path=report["json_path"], html_path=report["html_path"],
                                                summary=report.get("summary", {})))
        return info

    # ---------------------------------------------------------------- submit
    def submit(self, spec: JobSpec) -> str:
        """Validate and queue a job; returns its id. Raises GroundSynthError naming the bad field."""
        from groundsynth.pipeline.prepare import job_dir, new_job_id, prepare_job

        if self._stopping.is_set():
            raise FailedPrecondition("the server is shutting down; submit again after it restarts", "server")
        spec = spec.normalised()
        # every file the job opens is checked (allowed roots, VRT members, no network); the spec records the
        # checked, resolved paths, so the pipeline opens exactly what was checked (no symlink swap)
        spec, source = check_job_files(spec, self.config)
        with self._lock:
            self._check_capacity()
        options = self.run_options()
        prepared = prepare_job(spec, self.config.workspace, options, source_path=source)
        if prepared.tile_count > self.config.max_tiles_per_job:
            raise ResourceExhausted(
                f"the AOI covers {prepared.tile_count} tiles; this server takes at most "
                f"{self.config.max_tiles_per_job} per job (shrink the AOI or raise tile_size)", "aoi")
        spec = prepared.spec
        job_id = new_job_id()
        output_dir = str(job_dir(self.config.workspace, job_id))
        with self._lock:
            self._check_capacity()
            self.journal.create_job(job_id, spec, output_dir)
            variants = max(spec.synthesis.variants, 0)
            self.journal.set_totals(job_id, prepared.tile_count, prepared.tile_count * variants)
            self.events.append(job_id, *event_to_proto(Accepted(
                job_id=job_id, tile_count=prepared.tile_count, skipped_tiles=prepared.skipped_tiles,
                output_dir=output_dir, spec=spec)))
            self._active[job_id] = _Active(job_id)
        self._queue.put(job_id)
        log.info("job %s accepted: %d tiles", job_id, prepared.tile_count)
        return job_id

    def run_options(self) -> Any:
        from groundsynth.pipeline.prepare import RunOptions

        return RunOptions(max_tiles=self.config.max_tiles_per_job, batch_size=self.config.batch_size,
                          device=self.config.device, executor=self.config.executor,
                          workers=self.config.executor_workers, ray_address=self.config.ray_address)

    def _check_capacity(self) -> None:
        limit = self.config.max_concurrent_jobs + self.config.max_queued_jobs
        if len(self._active) >= limit:
            raise ResourceExhausted(
                f"{len(self._active)} jobs are queued or running; this server takes at most {limit} "
                f"(max_concurrent_jobs {self.config.max_concurrent_jobs} + max_queued_jobs "
                f"{self.config.max_queued_jobs}); retry when one has finished", "jobs")

    def _source_path(self, spec: JobSpec) -> Path:
        return source_file(self.config, spec, blocks=False)

    def upload_path(self, upload_id: str) -> Path:
        """The file of an upload id (see service.uploads)."""
        return upload_file(self.config, upload_id)

    # ---------------------------------------------------------------- cancel
    def cancel(self, job_id: str) -> Any:
        row = self.get(job_id)
        with self._lock:
            act = self._active.get(job_id)
            if act is not None:
                act.cancel.set()
                if not act.started:          # still queued: it ends now; the worker skips it
                    del self._active[job_id]
                    self._finish_cancelled(job_id)
            elif row.state not in FINAL_STATES:
                self._finish_cancelled(job_id)
        log.info("job %s: cancel requested", job_id)
        return self.info(job_id)

    def _finish_cancelled(self, job_id: str) -> None:
        row = self.get(job_id)
        self.journal.set_state(job_id, "CANCELLED")
        self.events.append(job_id, "done", pb.Done(state=pb.CANCELLED, real_tiles=row.tiles_done,
                                                   synthetic_tiles=row.synthetic_done, output_dir=row.output_dir))

    def _fail(self, job_id: str, code: int, message: str, tile_id: str = "") -> None:
        """Record a job's failure (event + state); a failure to record it (disk full) is logged, never raised:
        the job then stays RUNNING in the journal and is resumed at the next start."""
        try:
            self.events.append(job_id, "failed", pb.Failed(code=code, message=message, tile_id=tile_id))
            self.journal.set_state(job_id, "FAILED", error=message)
        except Exception:  # noqa: BLE001 - the worker must survive
            log.exception("job %s: could not record its failure (%s)", job_id, message)

    def _disk_full(self, job_id: str, exc: BaseException) -> None:
        """No space left: remove the tile files the journal does not list (written before the record that
        failed), then fail the job RESOURCE_EXHAUSTED "disk full" naming the workspace."""
        err = disk_full_error(self.config.workspace, exc)
        try:
            row = self.get(job_id)
            recorded = [p for rec in self.journal.tiles(job_id) for p in rec.artefacts.values()]
            removed = sweep_unrecorded(row.output_dir, recorded)
            log.warning("job %s: %s; removed %d unrecorded file(s)", job_id, err.message, len(removed))
        except Exception:  # noqa: BLE001
            log.exception("job %s: disk full, and the clean-up failed", job_id)
        self._fail(job_id, err.code.value[0], err.message)

    # ---------------------------------------------------------------- workers
    def _worker(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None or self._stopping.is_set():
                return
            with self._lock:
                act = self._active.get(job_id)
                if act is None or act.cancel.is_set():
                    continue
                act.started = True
            try:
                self._run(act)
            finally:
                with self._lock:
                    self._active.pop(job_id, None)
                self.events.wake_all()

    def _run(self, act: _Active) -> None:
        from groundsynth.pipeline.runner import run_job

        job_id = act.job_id
        try:
            row = self.get(job_id)
            self.journal.set_state(job_id, "RUNNING")
            source = self._source_path(row.spec)

            def cancelled() -> bool:
                if act.cancel.is_set():
                    return True
                if self._stopping.is_set():
                    raise _ShutdownInterrupt     # not a cancel: unwinds run_job without a final state
                return False

            def emit(event: Event) -> None:
                self._emit(act, event)

            state = run_job(job_id, row.spec, self.config.workspace, self.journal, emit, cancelled,
                             self.run_options(), source_path=source)
            self.journal.set_state(job_id, state)
            log.info("job %s %s", job_id, state.lower())
        except _ShutdownInterrupt:
            self._interrupted(job_id)
        except GroundSynthError as exc:
            if self._stopping.is_set():
                return self._interrupted(job_id)
            if is_disk_full(exc):
                return self._disk_full(job_id, exc)
            log.warning("job %s failed: %s", job_id, exc.message)
            self._fail(job_id, exc.code.value[0], exc.message, getattr(exc, "tile_id", "") or "")
        except Exception as exc:  # noqa: BLE001 - a job must never take the server down
            if self._stopping.is_set():
                return self._interrupted(job_id)
            if is_disk_full(exc):
                return self._disk_full(job_id, exc)
            log.exception("job %s: internal error", job_id)
            self._fail(job_id, pb_code_internal(), f"internal error: {type(exc).__name__}: {exc}")

    def _interrupted(self, job_id: str) -> None:
        """A job stopped by shutdown: INTERRUPTED, resumed on the next start (the journal may be closed
        already when a job overran the grace period; mark_interrupted has then set the state)."""
        try:
            self.journal.set_state(job_id, "INTERRUPTED")
        except Exception:  # noqa: BLE001
            pass
        log.info("job %s interrupted by shutdown; it resumes on the next start", job_id)

    def _emit(self, act: _Active, event: Event) -> None:
        """Store a pipeline event as the job's next groundsynth.v1 JobEvent (the pipeline has already
        recorded layers and the report in the journal's job meta)."""
        if isinstance(event, Accepted) and self.events.last_seq(act.job_id) > 0:
            return          # the manager already emitted `accepted` at submit time
        self.events.append(act.job_id, *event_to_proto(event))


def pb_code_internal() -> int:
    import grpc

    return grpc.StatusCode.INTERNAL.value[0]
