"""Domain events of a job, in the order the pipeline emits them:

    Accepted -> (TileDone, Progress)* -> LayerReady* -> ReportReady -> Done

Plain dataclasses: the pipeline knows nothing of the transport. The service
turns them into groundsynth.v1 messages (groundsynth.api.v1.convert); the
in-process CLI reads them directly (progress bar).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from groundsynth.artefacts.records import TileRecord


@dataclass(frozen=True)
class Accepted:
    kind: ClassVar[str] = "accepted"
    job_id: str
    tile_count: int
    skipped_tiles: int
    output_dir: str
    spec: Any                      # the normalised groundsynth.request.spec.JobSpec


@dataclass(frozen=True)
class Progress:
    kind: ClassVar[str] = "progress"
    stage: str                     # segment, synthesise, caption, ground, outputs, report
    done: int
    total: int


@dataclass(frozen=True)
class TileDone:
    kind: ClassVar[str] = "tile"
    record: TileRecord             # recorded in the journal just before


@dataclass(frozen=True)
class LayerReady:
    kind: ClassVar[str] = "layer"
    layer: str                     # e.g. real_image, synthetic_mask_v1, tiles
    path: str                      # relative to the job directory
    format: str                    # vrt or gpkg


@dataclass(frozen=True)
class ReportReady:
    kind: ClassVar[str] = "report"
    json_path: str
    html_path: str
    summary: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Done:
    kind: ClassVar[str] = "done"
    state: str                     # SUCCEEDED or CANCELLED
    real_tiles: int
    synthetic_tiles: int
    output_dir: str


Event = Accepted | Progress | TileDone | LayerReady | ReportReady | Done
Emit = Callable[[Event], None]
