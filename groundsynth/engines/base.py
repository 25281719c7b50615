"""The small interfaces every stage engine implements, and their parameters.

A stage engine is a class with a `stage`, a `name`, a `description` and a list
of declared `params` (`Param`). It is registered by name with
`groundsynth.engines.register` and constructed per job as `Engine(params, ctx)`,
where `params` holds values already parsed and validated against the declared
`Param`s. Capabilities (gRPC) is built from these declarations.

Data conventions (shared by all engines):
- image: float32 array (C, H, W), C = 4 (R, G, B, NIR) or 3 (R, G, B),
  values in [0, 1] after the job's single radiometric stretch.
- valid: bool array (H, W); False where the source had nodata.
- mask: uint8 array (H, W) of class indices 0..6 (groundsynth.request.classes), 255 nodata.
- Everything random takes an explicit integer `seed`, derived by the pipeline
  from the job seed and the tile id, so runs and resumed runs are reproducible.

Heavy libraries (torch, transformers, open_clip) are imported lazily inside
the engines that need them, never at module import time. Models that are
expensive to load are shared across jobs through `groundsynth.models.cache`.

Engines are built on the workers that compute tiles (groundsynth.pipeline.executors): once per job and
worker process, and their weights once per worker process. Each engine declares what one worker needs
to run it (`num_cpus`, `num_gpus`, `memory_mb`); the Ray executor turns the job's engines into actor
options, so several small models share a GPU (0.25 each) and a VLM gets a whole one (1.0). `num_gpus`
only counts when the job runs on a GPU device.
"""
from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from groundsynth.request.errors import InvalidArgument

PARAM_TYPES = ("int", "float", "bool", "str", "choice", "path")


@dataclass(frozen=True)
class Param:
    """A declared engine parameter (shown in Capabilities and the plugin UI)."""

    name: str
    type: str                      # one of PARAM_TYPES
    default: Any
    help: str
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.type not in PARAM_TYPES:
            raise ValueError(f"param {self.name}: unknown type {self.type!r}")

    def parse(self, value: Any, field: str) -> Any:
        """Parse a value (text from the wire or a Python value) and check it."""
        try:
            if self.type == "int":
                out: Any = int(value) if not isinstance(value, str) else int(value.strip())
            elif self.type == "float":
                out = float(value)
                if not math.isfinite(out):
                    raise InvalidArgument(f"expected a finite number, got {value!r}", field)
            elif self.type == "bool":
                if isinstance(value, bool):
                    out = value
                elif str(value).strip().lower() in ("true", "1", "yes", "on"):
                    out = True
                elif str(value).strip().lower() in ("false", "0", "no", "off"):
                    out = False
                else:
                    raise ValueError
            else:
                out = str(value)
        except (TypeError, ValueError):
            raise InvalidArgument(f"expected a {self.type}, got {value!r}", field) from None
        if self.type in ("int", "float"):
            if self.min is not None and out < self.min or self.max is not None and out > self.max:
                raise InvalidArgument(f"expected a value in [{self.min}, {self.max}], got {out}", field)
        if self.type == "choice" and out not in self.choices:
            raise InvalidArgument(f"expected one of {', '.join(self.choices)}, got {out!r}", field)
        return out


@dataclass
class EngineContext:
    """What the job gives an engine besides its parameters."""

    seed: int = 0
    device: str = "cpu"             # resolved device for neural engines
    workspace: str | None = None    # backend workspace
    models_dir: str | None = None   # where neural engines look for weights by default (see default_models_dir)
    has_nir: bool = True            # False for RGB-only jobs (images have 3 channels)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class TileInput:
    """One tile handed to an engine."""

    tile_id: str
    image: np.ndarray              # float32 (C, H, W) in [0, 1]
    valid: np.ndarray              # bool (H, W)
    labels: np.ndarray | None = None   # uint8 (H, W) label mask on the tile grid, if a label raster was given
    kind: str = "real"             # "real" or "synthetic"
    # optional SWIR channels, float32 (S, H, W) in [0, 1] through the job stretch, roles in
    # ctx.extra["swir_roles"] ("swir1", "swir2"); None when the job maps no SWIR band (or synthetic tiles)
    swir: np.ndarray | None = None


@dataclass
class GroundInput:
    """One tile to ground: its image, captions, and the masks it came with."""

    tile_id: str
    kind: str                      # "real" or "synthetic"
    image: np.ndarray              # float32 (C, H, W) in [0, 1]
    valid: np.ndarray              # bool (H, W)
    mask: np.ndarray               # the tile's mask (real: segmenter output; synthetic: re-segmented)
    captions: list[str]
    cond_mask: np.ndarray | None = None  # synthetic only: the mask the image was generated from
    # engine_key() of the segmenter that made `mask` from this very image and valid map ("" when the mask
    # came from elsewhere, e.g. a label raster): a grounder whose reference segmenter has the same key may
    # use `mask` instead of segmenting the image again (the result is the same).
    mask_source: str = ""


def engine_key(cls: type[Engine], params: dict[str, Any]) -> str:
    """Identity of an engine with its parsed parameters, e.g. 'segment/spectral:{"smoothing": 5, ...}'.
    Two engines with the same key give the same output for the same input (engines are deterministic)."""
    return f"{cls.stage}/{cls.name}:{json.dumps(params, sort_keys=True, default=str)}"


class Engine(ABC):
    """Base of all stage engines."""

    stage: ClassVar[str]
    name: ClassVar[str]
    description: ClassVar[str] = ""
    params: ClassVar[Sequence[Param]] = ()
    is_default: ClassVar[bool] = False
    # What one worker needs to run this engine (Ray actor options; groundsynth.pipeline.executors.resources).
    num_cpus: ClassVar[float] = 1.0       # CPU cores a batch keeps busy
    num_gpus: ClassVar[float] = 0.0       # share of one GPU when the job runs on a GPU (0.25: four per GPU)
    memory_mb: ClassVar[int] = 0          # resident memory it adds to a worker (model weights, buffers)

    def __init__(self, params: dict[str, Any] | None = None, ctx: EngineContext | None = None):
        self.p = self.parse_params(params or {})
        self.ctx = ctx or EngineContext()

    @classmethod
    def parse_params(cls, raw: dict[str, Any], field_prefix: str | None = None) -> dict[str, Any]:
        """Fill defaults and parse/validate given values; unknown names are errors."""
        prefix = field_prefix or f"{cls.stage}.{cls.name}.params"
        known = {p.name: p for p in cls.params}
        for key in raw:
            if key not in known:
                names = ", ".join(sorted(known)) or "none"
                raise InvalidArgument(f"unknown parameter {key!r}; this engine takes: {names}", f"{prefix}.{key}")
        return {name: (p.parse(raw[name], f"{prefix}.{name}") if name in raw else p.default)
                for name, p in known.items()}

    @classmethod
    def job_params(cls, spec: Any) -> dict[str, Any]:
        """This engine's parsed parameters in a job (its stage's params in `spec`), for `check_job`."""
        st = spec.stage(cls.stage) if spec is not None else None
        return cls.parse_params(dict(st.params) if st else {}, field_prefix=f"stages[{cls.stage}].params")

    @classmethod
    def check_job(cls, spec: Any) -> None:
        """Refuse a job this engine cannot serve before it is accepted (raise a GroundSynthError).
        Called by the pipeline while it validates the job (`spec` is the normalised JobSpec).
        The default accepts every job."""
        return None

    @classmethod
    def availability(cls, models_dir: str | None = None) -> tuple[bool, str]:
        """(available, reason). Neural engines check their default weights under
        `models_dir` (see default_models_dir) and say why not, naming the path."""
        return True, ""


class Segmenter(Engine):
    stage = "segment"

    @abstractmethod
    def segment(self, tiles: Sequence[TileInput]) -> list[np.ndarray]:
        """Class masks (uint8 (H, W), 255 where not valid), one per tile."""


class Synthesiser(Engine):
    stage = "synthesise"

    def fit(self, images: Sequence[np.ndarray], masks: Sequence[np.ndarray], valids: Sequence[np.ndarray]) -> Any:
        """Called once per job with (a sample of) the AOI's real tiles before any `synthesise`; returns the
        fitted state, which every `synthesise` call of the job receives. The state must be picklable (it
        is stored with the job, so a resumed job does not fit again, and sent to workers) and `fit` must
        not change the engine itself. Exemplar engines gather per-class texture here; neural engines
        return None."""
        return None

    @abstractmethod
    def synthesise(self, masks: Sequence[np.ndarray], seeds: Sequence[int], state: Any = None) -> list[np.ndarray]:
        """New images (float32 (C, H, W) in [0, 1], C = 4 or 3 per ctx.has_nir), one per mask."""


class Captioner(Engine):
    stage = "caption"

    @abstractmethod
    def caption(self, images: Sequence[np.ndarray], masks: Sequence[np.ndarray], seeds: Sequence[int]) -> list[list[str]]:
        """Captions for each tile (the engine's `n_captions`, 5 by default)."""


class Grounder(Engine):
    stage = "ground"

    @abstractmethod
    def ground(self, items: Sequence[GroundInput]) -> list[dict[str, float]]:
        """Per-tile scores, e.g. {"grounding": 0..100, "fidelity_miou": 0..1}."""

    def summarise(self, records: Sequence[Any]) -> dict[str, Any]:
        """Set-level metrics over all TileRecords of the job (see groundsynth.artefacts.records)."""
        return {}
