"""Device and precision choice for neural engines and trainers.

`resolve_device("auto")` picks cuda, then mps, then cpu; an explicit name is
checked and refused with a clear error when that device is not there.
Half precision (fp16) is used on GPUs only, never on the CPU.
"""
from __future__ import annotations

import os

from groundsynth.request.errors import FailedPrecondition, InvalidArgument

DEVICES = ("auto", "cpu", "cuda", "mps")
ENV_DEVICE = "GROUNDSYNTH_DEVICE"


def resolve_device(requested: str | None = None, field: str = "device") -> str:
    """'auto'/''/None -> best available (or $GROUNDSYNTH_DEVICE); otherwise check and return it."""
    import torch

    req = (requested or "").strip().lower() or os.environ.get(ENV_DEVICE, "").strip().lower() or "auto"
    base = req.split(":", 1)[0]
    if base not in DEVICES:
        raise InvalidArgument(f"expected one of {', '.join(DEVICES)}, got {requested!r}", field)
    if base == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    if base == "cuda" and not torch.cuda.is_available():
        raise FailedPrecondition("device 'cuda' requested but no CUDA GPU is available", field)
    if base == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise FailedPrecondition("device 'mps' requested but Apple MPS is not available", field)
    return req


def resolve_dtype(device: str, precision: str = "auto"):
    """torch dtype: fp16 on cuda/mps when precision is 'auto' or 'fp16', fp32 on the CPU always."""
    import torch

    precision = (precision or "auto").lower()
    if precision not in ("auto", "fp16", "fp32"):
        raise InvalidArgument(f"expected auto, fp16 or fp32, got {precision!r}", "precision")
    if device.startswith("cpu") or precision == "fp32":
        return torch.float32
    return torch.float16


def dtype_name(dtype) -> str:
    return str(dtype).replace("torch.", "")


def engine_device(ctx_device: str | None, param: str | None = None) -> str:
    """The device an engine runs on: its own `device` param unless "auto", else the job's
    (EngineContext.device: the server's `device` setting, "auto" by default)."""
    if param and param != "auto":
        return resolve_device(param, "device")
    return resolve_device(ctx_device or "auto", "device")
