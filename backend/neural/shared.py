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


class WeightsEngine:
    """Mixin for neural engines whose weights live at `<models dir>/<engine name>` unless the `weights`
    param says otherwise. The model loads (or is reused) when the engine is built, so missing or corrupt
    weights fail before any tile runs. Subclasses define `_model()` and may override `check_weights`."""

    name: str

    def __init__(self, params=None, ctx=None):
        super().__init__(params, ctx)
        self._model()

    @staticmethod
    def check_weights(path: Path) -> tuple[bool, str]:
        from .weights import check_hf_dir

        return check_hf_dir(path)

    @classmethod
    def availability(cls, models_dir: str | None = None) -> tuple[bool, str]:
        from .weights import default_weights_path

        return cls.check_weights(default_weights_path(cls.name, models_dir))
