"""Server interceptors: the token check and the per-class RPC slots.

- `AuthInterceptor`: every call but Health needs `authorization: Bearer <token>`; a call without it is
  answered UNAUTHENTICATED by a handler that returns at once (it never reads a request stream), so
  callers without the token cannot hold an RPC thread. Reflection, when enabled, needs the token too.
- `RpcLimiter`: RPCs are grouped in classes, each with its own number of slots:
  "streams" (Submit, Watch, FetchArtefact), "uploads" (UploadRaster), "calls" (the unary calls),
  "reflection". A call beyond its class's slots is refused at once with RESOURCE_EXHAUSTED naming the
  class and its limit, so one class (idle Watch streams, stalled uploads) can never take the threads of
  another. Health is not limited and has threads of its own (the pool holds HEALTH_THREADS beyond the
  slots), so it always answers. Interceptors run on gRPC's polling thread: nothing here blocks; a slot is
  taken in the handler's own thread and given back when the RPC ends (context callback, idempotent).
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import grpc

from groundsynth.api.v1.auth import bearer_token, check_token
from groundsynth.request.errors import Unauthenticated

HEALTH_PREFIX = "/grpc.health.v1.Health/"
REFLECTION_PREFIX = "/grpc.reflection."
GROUNDSYNTH_PREFIX = "/groundsynth.v1.GroundSynth/"
HEALTH_THREADS = 4           # pool threads beyond every class's slots: Health always finds one
REFLECTION_SLOTS = 2
STREAM_METHODS = ("Submit", "Watch", "FetchArtefact")
UPLOAD_METHODS = ("UploadRaster",)


def rpc_class(method: str) -> str | None:
    """The slot class of a full method name, or None (Health: not limited)."""
    if method.startswith(HEALTH_PREFIX):
        return None
    if method.startswith(REFLECTION_PREFIX):
        return "reflection"
    name = method[len(GROUNDSYNTH_PREFIX):] if method.startswith(GROUNDSYNTH_PREFIX) else ""
    if name in STREAM_METHODS:
        return "streams"
    if name in UPLOAD_METHODS:
        return "uploads"
    return "calls"


# ------------------------------------------------------------------ auth

class AuthInterceptor(grpc.ServerInterceptor):
    """Refuses calls without the right bearer token (UNAUTHENTICATED); only Health is open."""

    def __init__(self, token: str):
        self._token = token

    def intercept_service(self, continuation, handler_call_details):
        if handler_call_details.method.startswith(HEALTH_PREFIX):
            return continuation(handler_call_details)
        try:
            check_token(bearer_token(handler_call_details.invocation_metadata), self._token)
        except Unauthenticated as exc:
            handler = continuation(handler_call_details)
            return _refusing(handler, grpc.StatusCode.UNAUTHENTICATED, exc.message) if handler is not None else None
        return continuation(handler_call_details)


def _with_behavior(handler: grpc.RpcMethodHandler, behavior: Callable) -> grpc.RpcMethodHandler:
    args = (behavior, handler.request_deserializer, handler.response_serializer)
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(*args)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(*args)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(*args)
    return grpc.unary_unary_rpc_method_handler(*args)


def _refusing(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    def refuse(_request, context):
        context.abort(code, message)

    return _with_behavior(handler, refuse)


def _behavior(handler: grpc.RpcMethodHandler) -> Callable:
    return (handler.stream_stream or handler.stream_unary or handler.unary_stream
            or handler.unary_unary)


# ------------------------------------------------------------------ slots

class RpcLimiter(grpc.ServerInterceptor):
    """Per-class RPC slots (see the module doc); `limits` maps class -> slots."""

    def __init__(self, limits: dict[str, int]):
        self.limits = dict(limits)
        self._lock = threading.Lock()
        self._used = {name: 0 for name in self.limits}

    def in_use(self) -> dict[str, int]:
        with self._lock:
            return dict(self._used)

    def _acquire(self, cls: str, context: Any) -> Callable[[], None]:
        with self._lock:
            if self._used[cls] >= self.limits[cls]:
                full = True
            else:
                full = False
                self._used[cls] += 1
        if full:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                          f"{cls}: {self.limits[cls]} {cls} RPCs are already open, the server's limit "
                          f"(max_{cls} / workers); retry when one has ended")
        released = [False]

        def release() -> None:
            with self._lock:
                if not released[0]:
                    released[0] = True
                    self._used[cls] -= 1

        if not context.add_callback(release):      # the RPC already ended
            release()
        return release

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        cls = rpc_class(handler_call_details.method)
        if handler is None or cls is None or cls not in self.limits:
            return handler
        inner = _behavior(handler)
        if handler.response_streaming:
            def streaming(request, context):
                release = self._acquire(cls, context)
                try:
                    yield from inner(request, context)
                finally:
                    release()
            return _with_behavior(handler, streaming)

        def unary(request, context):
            release = self._acquire(cls, context)
            try:
                return inner(request, context)
            finally:
                release()
        return _with_behavior(handler, unary)
