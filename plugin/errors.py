"""User-facing errors of the plugin and the text shown for backend failures.

Every failure the analyst can cause or meet ends up as one short message-bar
message: `user_message(exc)` turns plugin errors and gRPC errors into
(title, text). Titles are stable so tests and users can recognise them.
"""
from __future__ import annotations


class PluginError(Exception):
    """An error with a title for the message bar."""

    title = "GroundSynth"

    def __init__(self, text: str):
        super().__init__(text)
        self.text = text


class BandMappingError(PluginError):
    title = "Band mapping missing"


class AreaError(PluginError):
    title = "Invalid area"


class CrsMismatchError(PluginError):
    title = "CRS mismatch"


class InputError(PluginError):
    title = "Input missing"


class BackendNotRunning(PluginError):
    title = "Backend not running"


class BadToken(PluginError):
    title = "Bad token"


def _grpc_details(exc) -> tuple[object, str]:
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else str(exc)
    return code, details or ""


def user_message(exc: BaseException, address: str = "") -> tuple[str, str]:
    """(title, text) for the message bar, for any error the plugin meets."""
    if isinstance(exc, PluginError):
        return exc.title, exc.text
    try:
        import grpc
    except ImportError:         # the plugin's own dependencies are missing (plugin/deps.py)
        grpc = None
    if grpc is not None and isinstance(exc, grpc.RpcError):
        return _grpc_message(grpc, exc, address)
    return "GroundSynth error", f"{type(exc).__name__}: {exc}"


def _grpc_message(grpc, exc, address: str) -> tuple[str, str]:
    code, details = _grpc_details(exc)
    where = f" at {address}" if address else ""
    if code == grpc.StatusCode.UNAVAILABLE:
        return (BackendNotRunning.title,
                f"no GroundSynth backend answers{where}; start it from the dock (Start) "
                f"or check the address. ({details})")
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return (BadToken.title,
                f"the backend{where} refused the token; it must equal <workspace>/token of that backend "
                f"({details})")
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        field = details.split(":", 1)[0]
        if field.startswith("aoi") or "area" in details.lower():
            return AreaError.title, details
        if field.startswith("bands"):
            return BandMappingError.title, details
        return "Invalid input", details
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return ("Raster not allowed",
                f"{details}; the backend reads rasters only under its workspace and its allowed roots: "
                "a backend started from the dock allows the folders of the chosen raster and label layers "
                "(Stop and Start it again after choosing a raster elsewhere); start any other backend "
                "with --allow-root <folder>")
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        return "Backend cannot run this", details
    if code == grpc.StatusCode.NOT_FOUND:
        return "Not found", f"the backend{where} has no such job or file ({details})"
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return "Backend limit reached", details
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return "Backend timeout", f"the backend{where} did not answer in time ({details})"
    if code == grpc.StatusCode.CANCELLED:
        return "Cancelled", details or "the call was cancelled"
    name = code.name if code is not None else "ERROR"
    return f"Backend error ({name})", details
