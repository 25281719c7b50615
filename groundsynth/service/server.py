"""The gRPC server: groundsynth.v1.GroundSynth, Health, reflection, token auth.

`GroundSynthServer(config).start()` binds the address (TLS when a certificate
and key are configured), writes the token file, resumes interrupted jobs and
serves until `stop()`. Every call to GroundSynth needs the metadata
`authorization: Bearer <token>`; only Health is open; reflection is off unless
`config.reflection` (then it needs the token too). RPCs are limited per class
(service.interceptors): the thread pool holds every class's slots plus
HEALTH_THREADS, so Health always answers. Errors are GroundSynthError
subclasses mapped to their gRPC status codes; an unexpected exception in a
handler is reported as INTERNAL and never stops the server.
"""
from __future__ import annotations

import functools
import importlib
import logging
import os
import sys
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from groundsynth import API_VERSION, __version__
from groundsynth.api.v1.auth import create_token
from groundsynth.api.v1.contract import pb, rpc
from groundsynth.api.v1.convert import spec_from_proto
from groundsynth.request.errors import GroundSynthError, InvalidArgument, NotFound
from groundsynth.service.config import MiB, ServerConfig
from groundsynth.service.event_log import EventLog
from groundsynth.service.interceptors import HEALTH_THREADS, AuthInterceptor, RpcLimiter
from groundsynth.service.jobs import JobManager
from groundsynth.service.journal import Journal
from groundsynth.service.security import safe_join
from groundsynth.service.uploads import receive_upload

log = logging.getLogger("groundsynth.server")
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["GroundSynth"].full_name
CHUNK_BYTES = 1 * MiB


# ------------------------------------------------------------------ error mapping

def _status(exc: Exception, method: str) -> tuple[grpc.StatusCode, str]:
    if isinstance(exc, GroundSynthError):
        return exc.code, exc.message
    log.exception("%s: internal error", method)
    return grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}"


def unary(fn: Callable) -> Callable:
    @functools.wraps(fn)
    def wrapper(self, request, context):
        try:
            return fn(self, request, context)
        except Exception as exc:  # noqa: BLE001 - mapped to a status, server keeps running
            code, message = _status(exc, fn.__name__)
        context.abort(code, message)
    return wrapper


def streaming(fn: Callable) -> Callable:
    @functools.wraps(fn)
    def wrapper(self, request, context):
        try:
            yield from fn(self, request, context)
            return
        except Exception as exc:  # noqa: BLE001
            code, message = _status(exc, fn.__name__)
        context.abort(code, message)
    return wrapper


# ------------------------------------------------------------------ servicer

class GroundSynthServicer(rpc.GroundSynthServicer):
    def __init__(self, config: ServerConfig, manager: JobManager):
        self.config = config
        self.manager = manager

    # ---------------------------------------------------------------- jobs
    @streaming
    def Submit(self, request, context) -> Iterator[Any]:
        if not request.HasField("spec"):
            raise InvalidArgument("expected a JobSpec", "spec")
        job_id = self.manager.submit(spec_from_proto(request.spec))
        yield from self._follow(job_id, 0, context)

    @streaming
    def Watch(self, request, context) -> Iterator[Any]:
        self.manager.get(request.job_id)
        self.manager.check_after_seq(request.job_id, request.after_seq)
        yield from self._follow(request.job_id, request.after_seq, context)

    def _follow(self, job_id: str, after_seq: int, context) -> Iterator[Any]:
        yield from self.manager.events.follow(
            job_id, after_seq, finished=lambda: not self.manager.is_active(job_id), active=context.is_active)

    @unary
    def Cancel(self, request, context):
        return self.manager.cancel(request.job_id)

    @unary
    def GetJob(self, request, context):
        return self.manager.info(request.job_id)

    @unary
    def ListJobs(self, request, context):
        return self.manager.list_page(request.limit, request.page_token)

    @unary
    def DeleteJob(self, request, context):
        files, size = self.manager.delete(request.job_id)
        return pb.DeleteJobResponse(job_id=request.job_id, files_removed=files, bytes_freed=size)

    # ---------------------------------------------------------------- capabilities
    @unary
    def Capabilities(self, request, context):
        return capabilities(self.config)

    # ---------------------------------------------------------------- artefacts
    @streaming
    def FetchArtefact(self, request, context) -> Iterator[Any]:
        row = self.manager.get(request.job_id)
        path = safe_join(row.output_dir, request.path, "path")
        if not path.is_file():
            raise NotFound(f"job {request.job_id} has no file {request.path!r}; expected a path listed in its "
                           f"events (Artefact.path, LayerReady.path, ReportReady.json_path)", "path")
        with open(path, "rb") as fh:
            total = os.fstat(fh.fileno()).st_size
            offset = 0
            while True:
                data = fh.read(CHUNK_BYTES)
                if not data and offset > 0:
                    break
                yield pb.ArtefactChunk(data=data, offset=offset, total_size=total)
                offset += len(data)
                if not data or not context.is_active():
                    break

    @unary
    def UploadRaster(self, request_iterator, context):
        return receive_upload(request_iterator, context, self.config)


def capabilities(config: ServerConfig) -> Any:
    from groundsynth.engines import default_engine, engines
    from groundsynth.models.weights import default_models_dir
    from groundsynth.pipeline.executors import available_executors
    from groundsynth.request.classes import CLASS_NAMES, hex_color
    from groundsynth.request.spec import MASK_STRATEGIES, STAGES

    big = sys.float_info.max
    models_dir = default_models_dir(str(config.workspace))
    resp = pb.CapabilitiesResponse(
        api_version=API_VERSION, server_version=__version__, mask_strategies=list(MASK_STRATEGIES),
        classes=[pb.ClassInfo(index=i, name=n, color=hex_color(i)) for i, n in enumerate(CLASS_NAMES)],
        limits=pb.Limits(max_tiles_per_job=config.max_tiles_per_job, max_concurrent_jobs=config.max_concurrent_jobs,
                         max_message_bytes=config.max_message_bytes, max_upload_bytes=config.max_upload_bytes,
                         default_executor=config.executor),
        executors=available_executors())
    for stage in STAGES:
        found = engines(stage)
        default = default_engine(stage) if found else None
        info = resp.stages.add(stage=stage)
        for name, cls in sorted(found.items()):
            try:
                ok, reason = cls.availability(models_dir)
            except Exception as exc:  # noqa: BLE001 - a broken engine must not break Capabilities
                ok, reason = False, f"availability check failed: {exc}"
            e = info.engines.add(name=name, description=cls.description, available=ok, unavailable_reason=reason,
                                 is_default=cls is default)
            for p in cls.params:
                e.params.add(name=p.name, type=p.type, default=_param_text(p.default), help=p.help,
                             has_range=p.min is not None or p.max is not None,
                             min=-big if p.min is None else float(p.min), max=big if p.max is None else float(p.max),
                             choices=list(p.choices))
    return resp


def _param_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# ------------------------------------------------------------------ server

def load_engine_modules(names: list[str]) -> None:
    """Import engine plugin modules so their @register runs (e.g. "tests.server_engines")."""
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise InvalidArgument(f"cannot import {name!r}: {exc}", "engine_modules") from None


class GroundSynthServer:
    """Owns the gRPC server, the journal, the event log and the job manager."""

    def __init__(self, config: ServerConfig):
        self.config = config
        self.port = 0
        self._server: grpc.Server | None = None
        self.health = health.HealthServicer()

    @property
    def address(self) -> str:
        host = self.config.host
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    def start(self) -> GroundSynthServer:
        cfg = self.config
        Path(cfg.workspace).mkdir(parents=True, exist_ok=True)
        self._lock_workspace()
        load_engine_modules(cfg.engine_modules)
        self.token = create_token(cfg.token_path)
        self.journal = Journal.for_workspace(cfg.workspace)
        self.events = EventLog(self.journal.path)
        self.manager = JobManager(cfg, self.journal, self.events)
        options = [("grpc.max_receive_message_length", cfg.max_message_bytes),
                   ("grpc.max_send_message_length", cfg.max_message_bytes),
                   ("grpc.so_reuseport", 0)]
        limits = cfg.rpc_limits()
        self.limiter = RpcLimiter(limits)
        threads = sum(limits.values()) + HEALTH_THREADS
        # calls beyond the threads wait in a bounded queue (a burst of quick calls), beyond it RESOURCE_EXHAUSTED
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="rpc"),
                             interceptors=[AuthInterceptor(self.token), self.limiter], options=options,
                             maximum_concurrent_rpcs=4 * threads)
        rpc.add_GroundSynthServicer_to_server(GroundSynthServicer(cfg, self.manager), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        if cfg.reflection:
            reflection.enable_server_reflection(
                (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
                server)
        if cfg.tls_key is not None and cfg.tls_cert is not None:
            creds = grpc.ssl_server_credentials([(Path(cfg.tls_key).read_bytes(), Path(cfg.tls_cert).read_bytes())])
            self.port = server.add_secure_port(cfg.address, creds)
        else:
            self.port = server.add_insecure_port(cfg.address)
        if not self.port:
            from groundsynth.request.errors import FailedPrecondition
            raise FailedPrecondition(f"cannot listen on {cfg.address} (port in use or address not local)", "address")
        resumed = self.manager.start()
        server.start()
        self._server = server
        for name in ("", SERVICE_NAME):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("serving on %s (workspace %s, %d job(s) resumed)", self.address, cfg.workspace, len(resumed))
        return self

    def _lock_workspace(self) -> None:
        """One server per workspace: two would both resume the same jobs. The lock dies with the process."""
        from groundsynth.service.workspace_lock import lock_workspace

        self._lock_fd: int | None = lock_workspace(self.config.workspace, "server")

    def wait(self, timeout: float | None = None) -> bool:
        return self._server.wait_for_termination(timeout) if self._server else True

    def stop(self, grace_s: float | None = None) -> None:
        """Graceful stop: NOT_SERVING, running jobs asked to stop and left INTERRUPTED, streams closed."""
        if self._server is None:
            return
        self.health.enter_graceful_shutdown()
        self.manager.shutdown(grace_s)
        self._server.stop(grace=2).wait(5)
        self._server = None
        self.events.close()
        self.journal.close()
        from groundsynth.service.workspace_lock import unlock_workspace

        unlock_workspace(getattr(self, "_lock_fd", None))
        self._lock_fd = None
        log.info("stopped")

