"""Errors that carry a gRPC status code and name the field at fault.

Every user-facing failure raises one of these; the server maps `.code` to the
gRPC status and the CLI prints `.message`. Messages name the bad field and the
value expected, e.g. "aoi.bbox: minx (5) must be < maxx (3)".
"""
from __future__ import annotations

import grpc


class GroundSynthError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str, field: str | None = None):
        self.field = field
        self.message = f"{field}: {message}" if field else message
        super().__init__(self.message)


class InvalidArgument(GroundSynthError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(GroundSynthError):
    code = grpc.StatusCode.NOT_FOUND


class FailedPrecondition(GroundSynthError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhausted(GroundSynthError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class PermissionDenied(GroundSynthError):
    code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(GroundSynthError):
    code = grpc.StatusCode.UNAUTHENTICATED


class Cancelled(GroundSynthError):
    """Raised inside a job when its cancel flag is set."""
    code = grpc.StatusCode.CANCELLED


class DiskFull(ResourceExhausted):
    """No space left on the device a file or the journal is written to (ENOSPC, EDQUOT, SQLITE_FULL)."""


class DeadlineExceeded(GroundSynthError):
    """A server-side deadline passed (e.g. an upload idle for too long)."""
    code = grpc.StatusCode.DEADLINE_EXCEEDED
