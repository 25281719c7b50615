"""GroundSynthClient: a small, GUI-free gRPC client for the GroundSynth backend.

Used by `groundsynth submit` / `jobs` and by the QGIS plugin (no QGIS or
Qt imports here). Every call carries `authorization: Bearer <token>`; errors
come back as groundsynth.request.errors.GroundSynthError subclasses (InvalidArgument,
NotFound, Unauthenticated, ...) whose `.code` is the gRPC status and whose
`.message` is the server's text (it names the bad field).

    from groundsynth.api.v1.client import GroundSynthClient
    with GroundSynthClient("127.0.0.1:50051", token_file="workspace/token") as c:
        stream = c.submit(spec)                # spec: groundsynth.request.spec.JobSpec or pb.JobSpec
        for event in stream:                   # pb.JobEvent; stream.cancel() stops listening
            print(event.WhichOneof("event"))
        c.fetch(job_id, "report.json", "out/report.json")

Streams (`submit`, `watch`) are `EventStream`s: iterate them for events and
call `.cancel()` from another thread (e.g. a QgsTask being cancelled) to stop
listening; that does not cancel the job, `cancel(job_id)` does.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import grpc

from groundsynth.api.v1.contract import pb, rpc
from groundsynth.api.v1.convert import spec_to_proto
from groundsynth.artefacts.atomic import atomic_path
from groundsynth.request import errors
from groundsynth.request.spec import JobSpec

MiB = 1024 * 1024
CHUNK_BYTES = 1 * MiB
DEFAULT_MAX_MESSAGE_BYTES = 64 * MiB

_BY_CODE = {cls.code: cls for cls in (errors.InvalidArgument, errors.NotFound, errors.FailedPrecondition,
                                     errors.ResourceExhausted, errors.PermissionDenied, errors.Unauthenticated,
                                     errors.Cancelled)}


class RpcFailed(errors.GroundSynthError):
    """A gRPC error without a more specific class (UNAVAILABLE, INTERNAL, DEADLINE_EXCEEDED...)."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code


def translate(exc: grpc.RpcError) -> errors.GroundSynthError:
    """A GroundSynthError subclass carrying the status code and message of a gRPC error."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = (exc.details() if hasattr(exc, "details") else "") or (code.name if code else "error")
    if code == grpc.StatusCode.UNAVAILABLE:
        details = f"backend unavailable ({details}); is `groundsynth serve` running at that address?"
    cls = _BY_CODE.get(code)
    err = cls(details) if cls else RpcFailed(code, details)
    return err


class EventStream:
    """An iterable of pb.JobEvent from Submit/Watch; `cancel()` stops it (not the job)."""

    def __init__(self, call: Any):
        self._call = call
        self.job_id = ""
        self.last_seq = 0

    def __iter__(self) -> Iterator[Any]:
        try:
            for event in self._call:
                self.job_id = event.job_id or self.job_id
                self.last_seq = event.seq
                yield event
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.CANCELLED and self._call.cancelled():
                return
            raise translate(exc) from None

    def cancel(self) -> None:
        self._call.cancel()


class GroundSynthClient:
    """Connection to one backend. Thread-safe (one gRPC channel)."""

    def __init__(self, address: str, token: str | None = None, token_file: str | os.PathLike | None = None,
                 tls_ca: str | os.PathLike | None = None, tls_server_name: str | None = None,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, timeout_s: float = 60.0):
        if token is None and token_file is None:
            raise errors.InvalidArgument("give the server's token or the path of its token file "
                                         "(<workspace>/token)", "token_file")
        if token is None:
            from groundsynth.api.v1.auth import read_token

            token = read_token(token_file)  # type: ignore[arg-type]  # not None: checked above
        self.address = address
        self.timeout_s = timeout_s
        self._metadata = (("authorization", f"Bearer {token}"),)
        options: list[tuple[str, Any]] = [("grpc.max_receive_message_length", max_message_bytes),
                   ("grpc.max_send_message_length", max_message_bytes)]
        if tls_ca is not None:
            creds = grpc.ssl_channel_credentials(root_certificates=Path(tls_ca).read_bytes())
            if tls_server_name:
                options.append(("grpc.ssl_target_name_override", tls_server_name))
            self.channel = grpc.secure_channel(address, creds, options=options)
        else:
            self.channel = grpc.insecure_channel(address, options=options)
        self.stub = rpc.GroundSynthStub(self.channel)

    # ---------------------------------------------------------------- plumbing
    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> GroundSynthClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _unary(self, method: Callable, request: Any, timeout: float | None = None) -> Any:
        try:
            return method(request, metadata=self._metadata, timeout=timeout or self.timeout_s)
        except grpc.RpcError as exc:
            raise translate(exc) from None

    def wait_ready(self, timeout_s: float = 10.0) -> None:
        """Block until the channel connects; raises RpcFailed(UNAVAILABLE) after `timeout_s`."""
        try:
            grpc.channel_ready_future(self.channel).result(timeout=timeout_s)
        except grpc.FutureTimeoutError:
            raise RpcFailed(grpc.StatusCode.UNAVAILABLE,
                            f"no backend answered at {self.address} within {timeout_s:g} s; "
                            "is `groundsynth serve` running there?") from None

    def health(self, service: str = "", timeout_s: float = 5.0) -> str:
        """Health status name ("SERVING", "NOT_SERVING", ...); needs no token."""
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        stub = health_pb2_grpc.HealthStub(self.channel)
        try:
            resp = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
        except grpc.RpcError as exc:
            raise translate(exc) from None
        return health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)

    # ---------------------------------------------------------------- jobs
    def submit(self, spec: Any) -> EventStream:
        """Submit a job (JobSpec dataclass or pb.JobSpec); iterate the result for its events."""
        if isinstance(spec, JobSpec):
            # normalise first: defaults such as "variants = 1 when synthesising" only exist on the
            # dataclass side (and bad fields fail here, with the same message the server would give)
            spec = spec_to_proto(spec.normalised())
        return EventStream(self.stub.Submit(pb.SubmitRequest(spec=spec), metadata=self._metadata))

    def watch(self, job_id: str, after_seq: int = 0) -> EventStream:
        return EventStream(self.stub.Watch(pb.WatchRequest(job_id=job_id, after_seq=after_seq),
                                           metadata=self._metadata))

    def cancel(self, job_id: str) -> Any:
        return self._unary(self.stub.Cancel, pb.CancelRequest(job_id=job_id))

    def get_job(self, job_id: str) -> Any:
        return self._unary(self.stub.GetJob, pb.GetJobRequest(job_id=job_id))

    def list_jobs_page(self, limit: int = 0, page_token: str = "") -> Any:
        """One ListJobsResponse page (`.jobs` abbreviated entries, `.next_page_token`, `.total_jobs`)."""
        return self._unary(self.stub.ListJobs, pb.ListJobsRequest(limit=limit, page_token=page_token))

    def list_jobs(self, limit: int = 0) -> list[Any]:
        """Jobs, newest first (abbreviated JobInfo entries: `get_job` has the full spec); limit 0 = all,
        fetched page by page."""
        jobs: list[Any] = []
        token = ""
        while True:
            want = limit - len(jobs) if limit > 0 else 0
            page = self.list_jobs_page(want, token)
            jobs.extend(page.jobs)
            token = page.next_page_token
            if not token or not page.jobs or (limit > 0 and len(jobs) >= limit):
                return jobs[:limit] if limit > 0 else jobs

    def delete_job(self, job_id: str) -> Any:
        """Remove a finished job (files, journal rows, events); a DeleteJobResponse."""
        return self._unary(self.stub.DeleteJob, pb.DeleteJobRequest(job_id=job_id))

    def capabilities(self) -> Any:
        return self._unary(self.stub.Capabilities, pb.CapabilitiesRequest())

    # ---------------------------------------------------------------- artefacts
    def fetch_chunks(self, job_id: str, path: str) -> Iterator[Any]:
        """pb.ArtefactChunk messages of one job file, in order."""
        call = self.stub.FetchArtefact(pb.FetchArtefactRequest(job_id=job_id, path=path), metadata=self._metadata)
        try:
            yield from call
        except grpc.RpcError as exc:
            raise translate(exc) from None

    def fetch(self, job_id: str, path: str, dest: str | os.PathLike,
              progress: Callable[[int, int], None] | None = None) -> Path:
        """Download a job file (path relative to the job directory) to `dest`, atomically."""
        dest = Path(dest)
        received = 0
        total = -1
        with atomic_path(dest) as tmp, open(tmp, "wb") as out:
            for chunk in self.fetch_chunks(job_id, path):
                if chunk.offset != received:
                    raise RpcFailed(grpc.StatusCode.DATA_LOSS, f"chunk at offset {chunk.offset}, expected {received}")
                out.write(chunk.data)
                received += len(chunk.data)
                total = chunk.total_size
                if progress:
                    progress(received, total)
            if total >= 0 and received != total:
                raise RpcFailed(grpc.StatusCode.DATA_LOSS, f"received {received} of {total} bytes of {path}")
        return dest

    def fetch_bytes(self, job_id: str, path: str) -> bytes:
        return b"".join(c.data for c in self.fetch_chunks(job_id, path))

    def upload(self, path: str | os.PathLike, filename: str | None = None,
               progress: Callable[[int, int], None] | None = None) -> str:
        """Upload a local raster; returns the upload id to use as JobSpec.upload_id."""
        path = Path(path)
        try:
            total = path.stat().st_size
        except FileNotFoundError:
            raise errors.NotFound(f"no such file {path}", "raster") from None

        def chunks() -> Iterable[Any]:
            yield pb.UploadChunk(header=pb.UploadHeader(filename=filename or path.name, total_size=total))
            sent = 0
            with open(path, "rb") as fh:
                while data := fh.read(CHUNK_BYTES):
                    sent += len(data)
                    yield pb.UploadChunk(data=data)
                    if progress:
                        progress(sent, total)

        try:
            resp = self.stub.UploadRaster(chunks(), metadata=self._metadata)
        except grpc.RpcError as exc:
            raise translate(exc) from None
        return resp.upload_id
