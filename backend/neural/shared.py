"""Loading a neural engine's model once per backend process, on the engine's device and precision."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ..engines.base import shared_model


def load_shared(engine: Any, loader: Callable[..., Any], *variant: Any, path: Path | None = None) -> tuple[Any, str]:
    """(model, device) for `engine`: its weights (the `weights` param, else <models>/<engine name>, unless
    `path` is given), device (`device` param over the job's) and precision (`precision` param).
    `loader(path, *variant, device, dtype)` runs once per (engine, path, variant, device, dtype) and the
    result is shared across jobs."""
    from .device import dtype_name, engine_device, resolve_dtype
    from .weights import weights_location

    path = path or weights_location(engine.p["weights"], engine.name, engine.ctx)
    device = engine_device(engine.ctx.device, engine.p["device"])
    dtype = dtype_name(resolve_dtype(device, engine.p["precision"]))
    key = (engine.name, str(path), *variant, device, dtype)
    return shared_model(key, lambda: loader(path, *variant, device, dtype)), device
