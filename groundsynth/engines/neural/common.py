"""What the neural engines share: the device parameter and the weights mixin."""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from groundsynth.engines.base import Param

DEVICE_PARAM = Param("device", "choice", "auto", "Where the model runs: auto picks cuda, then mps, then cpu",
                     choices=("auto", "cpu", "cuda", "mps"))


class WeightsEngine:
    """Mixin for neural engines whose weights live at `<models dir>/<engine name>` unless the `weights`
    param says otherwise. The model loads (or is reused) when the engine is built, so missing or corrupt
    weights fail before any tile runs. Subclasses define `_model()` and may override `check_weights`."""

    name: ClassVar[str]

    def __init__(self, params=None, ctx=None):
        super().__init__(params, ctx)
        self._model()

    @staticmethod
    def check_weights(path: Path) -> tuple[bool, str]:
        from groundsynth.models.weights import check_hf_dir

        return check_hf_dir(path)

    @classmethod
    def availability(cls, models_dir: str | None = None) -> tuple[bool, str]:
        from groundsynth.models.weights import default_weights_path

        return cls.check_weights(default_weights_path(cls.name, models_dir))
