"""The shared model cache: a model loads once per backend process (or worker) and is shared across jobs,
keyed by weights, device and precision."""
from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

_models: dict[tuple, Any] = {}
_models_lock = threading.Lock()


def shared_model(key: tuple, loader: Callable[[], Any]) -> Any:
    """Load a model once per backend process and share it across jobs.

    `key` must identify the weights and device, e.g. ("segformer", path, "cuda", "fp16").
    """
    with _models_lock:
        if key not in _models:
            _models[key] = loader()
        return _models[key]


def clear_shared_models() -> None:
    with _models_lock:
        _models.clear()


def load_shared(engine: Any, loader: Callable[..., Any], *variant: Any, path: Path | None = None) -> tuple[Any, str]:
    """(model, device) for `engine`: its weights (the `weights` param, else <models>/<engine name>, unless
    `path` is given), device (`device` param over the job's) and precision (`precision` param).
    `loader(path, *variant, device, dtype)` runs once per (engine, path, variant, device, dtype) and the
    result is shared across jobs."""
    from groundsynth.models.device import dtype_name, engine_device, resolve_dtype
    from groundsynth.models.weights import weights_location

    path = path or weights_location(engine.p["weights"], engine.name, engine.ctx)
    device = engine_device(engine.ctx.device, engine.p["device"])
    dtype = dtype_name(resolve_dtype(device, engine.p["precision"]))
    key = (engine.name, str(path), *variant, device, dtype)
    return shared_model(key, lambda: loader(path, *variant, device, dtype)), device
