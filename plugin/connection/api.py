"""The plugin's one door to the backend's gRPC contract and client.

The plugin carries its own generated copy of the groundsynth.v1 contract
(`connection/_generated`, made by scripts/gen_proto.py and shipped in the zip),
so it needs no backend package in QGIS's Python: only gRPC and protobuf (see
docs/plugin.md).
"""
from __future__ import annotations

import os
from pathlib import Path

import grpc  # noqa: E402

from ._generated import groundsynth_pb2 as pb
from ._generated import groundsynth_pb2_grpc as rpc

STAGES = ("segment", "synthesise", "caption", "ground")
JOB_STATES = {v: k for k, v in pb.JobState.items()}


def state_name(value: int) -> str:
    return JOB_STATES.get(value, str(value))


def read_token(workspace: str | os.PathLike) -> str:
    """The bearer token the backend wrote to <workspace>/token ('' if absent)."""
    path = Path(workspace) / "token"
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return ""


class BackendClient:
    """A small synchronous client for the GroundSynth service.

    Wraps the channel, the `authorization: Bearer <token>` metadata and the
    calls the plugin needs. Streaming calls return the grpc call object, which
    is an iterator of JobEvent and has `.cancel()`.
    """

    def __init__(self, address: str, token: str, timeout: float = 10.0):
        self.address = address
        self.token = token
        self.timeout = timeout
        options = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]
        self.channel = grpc.insecure_channel(address, options=options)
        self.stub = rpc.GroundSynthStub(self.channel)

    # ------------------------------------------------------------ helpers
    @property
    def metadata(self):
        return (("authorization", f"Bearer {self.token}"),)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------ calls
    def health(self, timeout: float = 2.0) -> bool | None:
        """True if the server answers Health with SERVING (no token needed); None if
        grpcio-health-checking is not installed (state unknown)."""
        try:
            from grpc_health.v1 import health_pb2, health_pb2_grpc
        except ImportError:
            return None

        stub = health_pb2_grpc.HealthStub(self.channel)
        try:
            resp = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.RpcError:
            return False
        return resp.status == health_pb2.HealthCheckResponse.SERVING

    def capabilities(self):
        return self.stub.Capabilities(pb.CapabilitiesRequest(), metadata=self.metadata, timeout=self.timeout)

    def submit(self, spec):
        """Start a job; returns the event stream (iterate it; `.cancel()` closes it)."""
        return self.stub.Submit(pb.SubmitRequest(spec=spec), metadata=self.metadata)

    def watch(self, job_id: str, after_seq: int = 0):
        return self.stub.Watch(pb.WatchRequest(job_id=job_id, after_seq=after_seq), metadata=self.metadata)

    def cancel(self, job_id: str):
        return self.stub.Cancel(pb.CancelRequest(job_id=job_id), metadata=self.metadata, timeout=self.timeout)

    def get_job(self, job_id: str):
        return self.stub.GetJob(pb.GetJobRequest(job_id=job_id), metadata=self.metadata, timeout=self.timeout)

    def list_jobs(self, limit: int = 0, max_jobs: int = 1000):
        """Jobs, newest first (abbreviated entries: `get_job` has the full spec), page by page; `limit` 0 = up to
        `max_jobs`."""
        want = min(limit, max_jobs) if limit > 0 else max_jobs
        jobs: list = []
        token = ""
        while len(jobs) < want:
            page = self.stub.ListJobs(pb.ListJobsRequest(limit=want - len(jobs), page_token=token),
                                      metadata=self.metadata, timeout=self.timeout)
            jobs.extend(page.jobs)
            token = page.next_page_token
            if not token or not page.jobs:
                break
        return jobs[:want]

    def delete_job(self, job_id: str):
        """Remove a finished job's files and rows on the backend; a DeleteJobResponse (files_removed,
        bytes_freed). FAILED_PRECONDITION for a queued or running job, NOT_FOUND for an unknown id."""
        return self.stub.DeleteJob(pb.DeleteJobRequest(job_id=job_id), metadata=self.metadata, timeout=60)

    def upload_raster(self, path: str | os.PathLike, chunk_bytes: int = 1024 * 1024) -> str:
        """Send a raster file with UploadRaster (for a backend on another machine); returns its upload id."""
        path = Path(path)
        total = path.stat().st_size

        def chunks():
            yield pb.UploadChunk(header=pb.UploadHeader(filename=path.name, total_size=total))
            with open(path, "rb") as fh:
                while True:
                    data = fh.read(chunk_bytes)
                    if not data:
                        break
                    yield pb.UploadChunk(data=data)

        return self.stub.UploadRaster(chunks(), metadata=self.metadata, timeout=3600).upload_id

    def fetch_artefact(self, job_id: str, path: str, dest: str | os.PathLike) -> Path:
        """Download one job file to `dest` (written to a temp name, then renamed)."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        with open(tmp, "wb") as fh:
            for chunk in self.stub.FetchArtefact(pb.FetchArtefactRequest(job_id=job_id, path=path),
                                                 metadata=self.metadata, timeout=300):
                fh.seek(chunk.offset)
                fh.write(chunk.data)
        os.replace(tmp, dest)
        return dest
