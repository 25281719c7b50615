"""JobSpec: everything that defines a job, as a plain dataclass.

Mirrors groundsynth.v1.JobSpec (protos/groundsynth/v1/groundsynth.proto;
conversions in groundsynth.api.v1.convert) and converts to and from JSON
(journal, report.json). `normalised()`
fills defaults and checks every field that can be checked without opening the
raster, raising InvalidArgument that names the field.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

from groundsynth.request.classes import CLASS_NAMES, class_index
from groundsynth.request.errors import InvalidArgument

STAGES: tuple[str, ...] = ("segment", "synthesise", "caption", "ground")   # in pipeline order
MASK_STRATEGIES = ("real", "boost", "layout")
MIN_TILE, MAX_TILE, DEFAULT_TILE = 32, 2048, 256
# Size limits of the spec's text fields (a job's spec is stored, listed and streamed back): INVALID_ARGUMENT beyond
MAX_NAME_CHARS = 200
MAX_PATH_CHARS = 4096
MAX_WKT_CHARS = 1024 * 1024
MAX_CRS_CHARS = 64 * 1024
MAX_PARAMS_PER_STAGE = 64
MAX_PARAM_NAME_CHARS = 64
MAX_PARAM_VALUE_CHARS = 4096
MAX_ENGINE_CHARS = 64
EXECUTOR_NAMES = ("inline", "process", "ray")   # groundsynth.pipeline.executors; "" = the backend's default


@dataclass
class BandMapping:
    red: int = 1
    green: int = 2
    blue: int = 3
    nir: int = 0   # 0 = default (4 if the raster has 4+ bands), -1 = none
    swir1: int = 0  # 0 = auto (the band described "swir1" or "B11", else none), -1 = none
    swir2: int = 0  # 0 = auto (the band described "swir2" or "B12", else none), -1 = none


REFERENCE_SPLITS = ("", "tune", "test")   # ReferenceSamples.split: "" = every feature


@dataclass
class ReferenceFeature:
    """One reference sample unit given inline: a point or polygon with its reference class."""

    wkt: str                   # POINT / POLYGON / MULTI* WKT in ReferenceSamples.crs
    class_value: str           # class name (Tree .. Water) or ESA WorldCover code ("80")
    id: str = ""
    split: str = ""            # the feature's split (e.g. "tune", "test"); "" = none
    stratum: str = ""          # stratum of a stratified sample ("" = unstratified)
    stratum_size: float = 0.0  # size of that stratum in the sampling frame (pixels or area; > 0 to weight)


@dataclass
class ReferenceSamples:
    """Reference data to assess the segmentation with (groundsynth.tiling.reference)."""

    path: str = ""             # GeoPackage / GeoJSON / shapefile / CSV of points or polygons
    features: list[ReferenceFeature] = field(default_factory=list)   # or inline
    crs: str = ""              # CRS of inline features and CSV coordinates; "" = EPSG:4326 (files carry theirs)
    class_field: str = ""      # attribute with the class; "" = the first of class, class_name, label, code
    layer: str = ""            # layer of a multi-layer file; "" = the first
    split: str = ""            # assess only the features of this split ("" = all; "test" = held-out part)

    @property
    def given(self) -> bool:
        return bool(self.path or self.features)


@dataclass
class Aoi:
    bbox: tuple[float, float, float, float] | None = None   # minx, miny, maxx, maxy
    polygon_wkt: str | None = None
    crs: str = ""    # "EPSG:<code>" or WKT; "" = raster CRS


@dataclass
class StageConfig:
    stage: str
    engine: str = ""
    params: dict[str, str] = field(default_factory=dict)


@dataclass
class SynthesisOptions:
    variants: int = -1          # -1 = default (1 if synthesise runs, else 0)
    mask_strategy: str = "real"
    boost_targets: dict[str, float] = field(default_factory=dict)


@dataclass
class SplitOptions:
    train: float = 0.8
    val: float = 0.1
    test: float = 0.1
    block_tiles: int = 4       # spatial blocks of block_tiles x block_tiles tiles go to one split

    def fractions(self) -> tuple[float, float, float]:
        return (self.train, self.val, self.test)


@dataclass
class JobSpec:
    aoi: Aoi
    raster_path: str | None = None
    upload_id: str | None = None
    bands: BandMapping = field(default_factory=BandMapping)
    tile_size: int = DEFAULT_TILE
    overlap: int = 0
    stages: list[StageConfig] = field(default_factory=list)
    synthesis: SynthesisOptions = field(default_factory=SynthesisOptions)
    seed: int = 0
    label_raster_path: str | None = None
    name: str = ""
    split: SplitOptions = field(default_factory=SplitOptions)
    executor: str = ""         # where the tile work runs: inline, process or ray; "" = the backend's default
    reference: ReferenceSamples = field(default_factory=ReferenceSamples)   # accuracy assessment sample

    # ---------------------------------------------------------------- helpers
    def stage(self, name: str) -> StageConfig | None:
        for s in self.stages:
            if s.stage == name:
                return s
        return None

    def normalised(self) -> JobSpec:
        """A copy with defaults filled in; raises InvalidArgument naming the bad field."""
        s = dataclasses.replace(self)
        _check_sizes(s)
        if bool(s.raster_path) == bool(s.upload_id):
            raise InvalidArgument("give exactly one of raster_path or upload_id", "source")
        if s.tile_size == 0:
            s.tile_size = DEFAULT_TILE
        if not MIN_TILE <= s.tile_size <= MAX_TILE:
            raise InvalidArgument(f"expected {MIN_TILE}..{MAX_TILE} pixels, got {s.tile_size}", "tile_size")
        if not 0 <= s.overlap <= s.tile_size // 2:
            raise InvalidArgument(f"expected 0..{s.tile_size // 2} pixels, got {s.overlap}", "overlap")
        if s.seed < 0 or s.seed >= 2**63:
            raise InvalidArgument(f"expected 0 <= seed < 2**63, got {s.seed}", "seed")
        b = s.bands
        for role in ("red", "green", "blue"):
            if getattr(b, role) < 1:
                raise InvalidArgument(f"expected a 1-based band index, got {getattr(b, role)}", f"bands.{role}")
        for role in ("nir", "swir1", "swir2"):
            if getattr(b, role) < -1:
                raise InvalidArgument(f"expected a 1-based band index, 0 (default) or -1 (none), "
                                      f"got {getattr(b, role)}", f"bands.{role}")
        a = s.aoi
        if a is None or (a.bbox is None) == (not a.polygon_wkt):
            raise InvalidArgument("give exactly one of a bbox or a polygon", "aoi")
        if a.bbox is not None:
            minx, miny, maxx, maxy = a.bbox
            if not (minx < maxx and miny < maxy):
                raise InvalidArgument(f"expected minx < maxx and miny < maxy, got {a.bbox}", "aoi.bbox")
        stages = s.stages or [StageConfig(st) for st in STAGES]
        seen = set()
        for i, st in enumerate(stages):
            if st.stage not in STAGES:
                raise InvalidArgument(f"expected one of {', '.join(STAGES)}, got {st.stage!r}", f"stages[{i}].stage")
            if st.stage in seen:
                raise InvalidArgument(f"stage {st.stage!r} given twice", f"stages[{i}].stage")
            seen.add(st.stage)
        s.stages = sorted((StageConfig(st.stage, st.engine, dict(st.params)) for st in stages),
                          key=lambda st: STAGES.index(st.stage))
        syn = dataclasses.replace(s.synthesis, boost_targets=dict(s.synthesis.boost_targets))
        if syn.variants < -1:
            raise InvalidArgument(f"expected 0..16 variants (or -1 for the default), got {syn.variants}",
                                  "synthesis.variants")
        if syn.variants < 0:
            syn.variants = 1 if "synthesise" in seen else 0
        if syn.variants > 0 and "synthesise" not in seen:
            raise InvalidArgument("variants > 0 needs the synthesise stage", "synthesis.variants")
        if syn.variants > 16:
            raise InvalidArgument(f"expected 0..16 variants, got {syn.variants}", "synthesis.variants")
        syn.mask_strategy = syn.mask_strategy or "real"
        if syn.mask_strategy not in MASK_STRATEGIES:
            raise InvalidArgument(f"expected one of {', '.join(MASK_STRATEGIES)}, got {syn.mask_strategy!r}",
                                  "synthesis.mask_strategy")
        targets = {}
        for name, share in syn.boost_targets.items():
            try:
                idx = class_index(name)
            except KeyError:
                raise InvalidArgument(f"unknown class {name!r}; expected one of {', '.join(CLASS_NAMES)}",
                                      "synthesis.boost_targets") from None
            if not 0 < share <= 1:
                raise InvalidArgument(f"expected a share in (0, 1] for {name}, got {share}", "synthesis.boost_targets")
            targets[CLASS_NAMES[idx]] = float(share)
        if syn.mask_strategy == "boost" and not targets:
            raise InvalidArgument("mask_strategy 'boost' needs at least one class target", "synthesis.boost_targets")
        if sum(targets.values()) > 1 + 1e-9:
            raise InvalidArgument(f"target shares add up to {sum(targets.values()):.2f}, expected <= 1",
                                  "synthesis.boost_targets")
        syn.boost_targets = targets
        s.synthesis = syn
        s.split = _normalised_split(s.split)
        s.executor = (s.executor or "").strip()
        if s.executor and s.executor not in EXECUTOR_NAMES:
            raise InvalidArgument(f"expected one of {', '.join(EXECUTOR_NAMES)} (or empty: the backend's default), "
                                  f"got {s.executor!r}", "executor")
        s.reference = _normalised_reference(s.reference)
        return s

    # ---------------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if d["aoi"]["bbox"] is not None:
            d["aoi"]["bbox"] = list(d["aoi"]["bbox"])
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> JobSpec:
        d = dict(d)
        aoi = dict(d.pop("aoi"))
        if aoi.get("bbox") is not None:
            aoi["bbox"] = tuple(float(v) for v in aoi["bbox"])
        return cls(
            aoi=Aoi(**aoi),
            bands=BandMapping(**d.pop("bands", {})),
            stages=[StageConfig(**st) for st in d.pop("stages", [])],
            synthesis=SynthesisOptions(**d.pop("synthesis", {})),
            split=SplitOptions(**d.pop("split", {})),
            reference=_reference_from_dict(d.pop("reference", None) or {}),
            **d,
        )

    @classmethod
    def from_json(cls, text: str) -> JobSpec:
        return cls.from_dict(json.loads(text))


def _too_long(value: str | None, limit: int, field: str) -> None:
    if value is not None and len(value) > limit:
        raise InvalidArgument(f"expected at most {limit} characters, got {len(value)}", field)


def _check_sizes(s: JobSpec) -> None:
    """Bounded text fields (module constants), checked before anything else looks at them."""
    _too_long(s.name, MAX_NAME_CHARS, "name")
    _too_long(s.raster_path, MAX_PATH_CHARS, "raster_path")
    _too_long(s.upload_id, MAX_PATH_CHARS, "upload_id")
    _too_long(s.label_raster_path, MAX_PATH_CHARS, "label_raster_path")
    if s.aoi is not None:
        _too_long(s.aoi.polygon_wkt, MAX_WKT_CHARS, "aoi.polygon_wkt")
        _too_long(s.aoi.crs, MAX_CRS_CHARS, "aoi.crs")
    for i, st in enumerate(s.stages):
        _too_long(st.stage, MAX_ENGINE_CHARS, f"stages[{i}].stage")
        _too_long(st.engine, MAX_ENGINE_CHARS, f"stages[{i}].engine")
        if len(st.params) > MAX_PARAMS_PER_STAGE:
            raise InvalidArgument(f"expected at most {MAX_PARAMS_PER_STAGE} parameters, got {len(st.params)}",
                                  f"stages[{i}].params")
        for key, value in st.params.items():
            _too_long(str(key), MAX_PARAM_NAME_CHARS, f"stages[{i}].params")
            _too_long(str(value), MAX_PARAM_VALUE_CHARS, f"stages[{i}].params.{str(key)[:MAX_PARAM_NAME_CHARS]}")
    if len(s.synthesis.boost_targets) > 64:
        raise InvalidArgument("expected at most one target per class", "synthesis.boost_targets")


def _normalised_split(split: SplitOptions) -> SplitOptions:
    out = dataclasses.replace(split)
    if out.train == out.val == out.test == 0:
        out.train, out.val, out.test = SplitOptions().fractions()
    fr = out.fractions()
    if any(not math.isfinite(v) or v < 0 for v in fr) or abs(sum(fr) - 1.0) > 1e-6:
        raise InvalidArgument(f"expected non-negative train, val, test shares summing to 1, got {fr}", "split")
    if out.block_tiles == 0:
        out.block_tiles = SplitOptions().block_tiles
    if not 1 <= out.block_tiles <= 64:
        raise InvalidArgument(f"expected 1..64 tiles, got {out.block_tiles}", "split.block_tiles")
    return out


def _reference_from_dict(d: dict[str, Any]) -> ReferenceSamples:
    d = dict(d)
    feats = [ReferenceFeature(**f) for f in d.pop("features", [])]
    return ReferenceSamples(features=feats, **d)


def _normalised_reference(ref: ReferenceSamples) -> ReferenceSamples:
    out = dataclasses.replace(ref, path=(ref.path or "").strip(), features=list(ref.features),
                              split=(ref.split or "").strip())
    if out.path and out.features:
        raise InvalidArgument("give a path or inline features, not both", "reference")
    if out.split not in REFERENCE_SPLITS:
        raise InvalidArgument(f"expected one of 'tune', 'test' or empty (all), got {out.split!r}", "reference.split")
    for i, f in enumerate(out.features):
        if not f.wkt.strip():
            raise InvalidArgument("expected a point or polygon as WKT", f"reference.features[{i}].wkt")
        if reference_class(f.class_value) is None:
            raise InvalidArgument(f"unknown class {f.class_value!r}; expected one of {', '.join(CLASS_NAMES)} or "
                                  "an ESA WorldCover code (10, 20, ..., 100)", f"reference.features[{i}].class_value")
        if not math.isfinite(f.stratum_size) or f.stratum_size < 0:
            raise InvalidArgument(f"expected a non-negative stratum size, got {f.stratum_size}",
                                  f"reference.features[{i}].stratum_size")
    return out


def reference_class(value: Any) -> int | None:
    """Class index of a reference label: a class name (case-insensitive) or an ESA WorldCover code; else None."""
    from groundsynth.request.classes import WORLDCOVER_TO_CLASS

    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return WORLDCOVER_TO_CLASS.get(int(value)) if float(value).is_integer() else None
    text = str(value).strip()
    if not text:
        return None
    try:
        return WORLDCOVER_TO_CLASS.get(int(float(text))) if float(text).is_integer() else None
    except ValueError:
        pass
    try:
        return class_index(text)
    except KeyError:
        return None
