"""JobRequest: what the dock (or a Processing algorithm) asks the backend to do.

A plain dataclass, independent of widgets. `check()` catches what can be
caught before anything is sent (band mapping beyond the raster's bands, an
empty area); `to_proto()` builds the groundsynth.v1 JobSpec.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .connection.api import STAGES, pb
from .errors import AreaError, BandMappingError, InputError


@dataclass
class StageChoice:
    engine: str = ""                                   # "" = the backend's default engine
    params: dict[str, str] = field(default_factory=dict)


@dataclass
class JobRequest:
    raster_path: str = ""                              # set by the Input panel (or Processing)
    # 1-based band of each role. nir: 0 = backend default, -1 = no NIR band.
    red: int = 1
    green: int = 2
    blue: int = 3
    nir: int = 0
    band_count: int = 0                                # bands of the raster (0 = unknown, not checked)
    # Area of interest: a bbox (minx, miny, maxx, maxy) or a WKT polygon, in `aoi_crs`.
    bbox: tuple[float, float, float, float] | None = None
    polygon_wkt: str = ""
    aoi_crs: str = ""
    label_path: str = ""
    tile_size: int = 256
    overlap: int = 0
    stages: dict[str, StageChoice] = field(default_factory=lambda: {s: StageChoice() for s in STAGES})
    variants: int = 1
    seed: int = 0
    mask_strategy: str = "real"
    boost_targets: dict[str, float] = field(default_factory=dict)
    name: str = ""
    # Reference samples for the accuracy assessment: a GeoJSON/GeoPackage/CSV path the backend reads, or inline
    # features (dicts of wkt in EPSG:4326, class_value, id, split, stratum, stratum_size; plugin/reference.py).
    reference_path: str = ""
    reference_features: list[dict] = field(default_factory=list)

    def check(self) -> JobRequest:
        """Raise a PluginError naming the problem; return self when fine."""
        if not self.raster_path:
            raise InputError("choose a raster layer (a file-based raster the backend can read)")
        roles = {"red": self.red, "green": self.green, "blue": self.blue}
        for role, band in roles.items():
            if band < 1:
                raise BandMappingError(f"band mapping: {role} band is not set (choose a band 1..{self.band_count or 'n'})")
            if self.band_count and band > self.band_count:
                raise BandMappingError(
                    f"band mapping: {role} is band {band} but the raster has only {self.band_count} band(s)")
        if self.nir > 0 and self.band_count and self.nir > self.band_count:
            raise BandMappingError(
                f"band mapping: NIR is band {self.nir} but the raster has only {self.band_count} band(s)")
        if self.bbox is None and not self.polygon_wkt:
            raise AreaError("no area of interest: draw a rectangle, use the map extent or select polygons")
        if self.bbox is not None:
            minx, miny, maxx, maxy = self.bbox
            if not (minx < maxx and miny < maxy):
                raise AreaError(f"the area of interest is empty ({minx:.3f}, {miny:.3f}, {maxx:.3f}, {maxy:.3f})")
        if not self.stages:
            raise InputError("choose at least one stage")
        for stage in self.stages:
            if stage not in STAGES:
                raise InputError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
        if "synthesise" not in self.stages:
            self.variants = 0
        elif not 1 <= self.variants <= 16:
            raise InputError(f"variants per tile must be 1..16 when synthesising, got {self.variants}")
        if self.mask_strategy == "boost" and not self.boost_targets:
            raise InputError("mask strategy 'boost' needs at least one class with a target share")
        return self

    def to_proto(self):
        spec = pb.JobSpec(
            raster_path=self.raster_path,
            bands=pb.BandMapping(red=self.red, green=self.green, blue=self.blue, nir=self.nir),
            tile_size=self.tile_size, overlap=self.overlap, seed=self.seed,
            label_raster_path=self.label_path, name=self.name,
            stages=[pb.StageConfig(stage=s, engine=c.engine, params={k: str(v) for k, v in c.params.items()})
                    for s, c in sorted(self.stages.items(), key=lambda kv: STAGES.index(kv[0]))],
        )
        spec.aoi.crs = self.aoi_crs
        if self.bbox is not None:
            minx, miny, maxx, maxy = self.bbox
            spec.aoi.bbox.CopyFrom(pb.BBox(minx=minx, miny=miny, maxx=maxx, maxy=maxy))
        else:
            spec.aoi.polygon_wkt = self.polygon_wkt
        if "synthesise" in self.stages:
            spec.synthesis.CopyFrom(pb.SynthesisOptions(
                variants=self.variants, mask_strategy=self.mask_strategy,
                boost_targets={k: float(v) for k, v in self.boost_targets.items()}))
        if self.reference_path:
            spec.reference.path = self.reference_path
        elif self.reference_features:
            spec.reference.crs = "EPSG:4326"
            for f in self.reference_features:
                spec.reference.features.add(**f)
        return spec


def parse_params(text: str) -> dict[str, dict[str, str]]:
    """Parse 'stage.param=value; stage.param=value' (Processing's engine-parameter string).

    Returns {stage: {param: value}}. Separators: ';' or newlines.
    """
    out: dict[str, dict[str, str]] = {}
    for part in text.replace("\n", ";").split(";"):
        part = part.strip()
        if not part:
            continue
        if "=" not in part or "." not in part.split("=", 1)[0]:
            raise InputError(f"engine parameter {part!r}: expected stage.param=value")
        key, value = part.split("=", 1)
        stage, name = key.strip().split(".", 1)
        if stage not in STAGES:
            raise InputError(f"engine parameter {part!r}: unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
        out.setdefault(stage, {})[name.strip()] = value.strip()
    return out


def parse_engines(text: str) -> dict[str, str]:
    """Parse 'stage=engine; stage=engine' into {stage: engine}."""
    out: dict[str, str] = {}
    for part in text.replace("\n", ";").replace(",", ";").split(";"):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise InputError(f"engine choice {part!r}: expected stage=engine")
        stage, engine = (x.strip() for x in part.split("=", 1))
        if stage not in STAGES:
            raise InputError(f"engine choice {part!r}: unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
        out[stage] = engine
    return out


def parse_targets(text: str) -> dict[str, float]:
    """Parse 'Shrub=0.3, Water=0.1' into {class: share}."""
    out: dict[str, float] = {}
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise InputError(f"boost target {part!r}: expected Class=share")
        name, share = (x.strip() for x in part.split("=", 1))
        try:
            out[name] = float(share)
        except ValueError:
            raise InputError(f"boost target {part!r}: share must be a number in (0, 1]") from None
    return out
