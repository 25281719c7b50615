"""What the head sends to the workers and what comes back: all small and picklable.

- `JobContext`: the job as a worker needs it (source, band mapping, stretch, grid transform, CRS, the
  engine plan, seeds and options); never the whole grid or the journal. Built once per job by the head.
- Tasks: `RealTask` (a batch of grid cells), `SyntheticTask` (a batch of (real tile, variant)),
  `FitTask` (the synthesiser's fit on a sample of real tiles), `ControlTask` (captions scored against
  their own and a mismatched tile's reference: groundsynth.pipeline.grounding_control) and `SummaryTask`
  (the grounder's set metrics). A worker computes a task, writes its files and returns a `TaskResult`; the head records it.
- `TaskFailure`: an exception raised on a worker, carried back intact (type, message, field, tile id).
"""
from __future__ import annotations

import os
import socket
import time
import traceback
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from groundsynth.artefacts.records import TileRecord
from groundsynth.request.errors import GroundSynthError
from groundsynth.request.spec import BandMapping, DatasetFilters
from groundsynth.tiling.grid import Cell

MiB = 1024 * 1024


class StageTimer:
    """Seconds spent per named step, summed over the job."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - t0

    def add(self, seconds: dict[str, float]) -> None:
        for k, v in seconds.items():
            self.seconds[k] += v


class EngineFailed(GroundSynthError):
    """An engine raised something other than a GroundSynthError (INTERNAL, names engine and tile)."""

    def __init__(self, message: str, tile_id: str = ""):
        super().__init__(message)
        self.tile_id = tile_id


@dataclass(frozen=True)
class StagePlanRef:
    """One stage of the job's engine plan: the engine class (pickled by reference) and its parameters."""

    stage: str
    cls: type
    raw_params: dict[str, str]
    params: dict[str, Any]


@dataclass
class JobContext:
    job_id: str
    job_dir: str
    workspace: str
    models_dir: str
    source_path: str
    source_field: str                       # raster_path or upload_id (names errors)
    bands: BandMapping
    crs_wkt: str
    transform: tuple[float, ...]            # the raster's affine (a, b, c, d, e, f)
    has_nir: bool
    stretch: dict[str, list[float]]
    seed: int
    plans: tuple[StagePlanRef, ...]
    label_raster_path: str = ""
    swir_roles: tuple[str, ...] = ()        # SWIR channels read after the image bands ("swir1", "swir2")
    # the reference sample on the raster grid (row, col, cls, owner = index of the grid cell owning the pixel;
    # groundsynth.tiling.reference): workers count the sample pixels and the agreement per tile
    reference: dict[str, Any] | None = None
    min_valid: float = 0.01
    device: str = "cpu"
    mask_strategy: str = "real"
    boost_targets: dict[str, float] = field(default_factory=dict)
    tile_cache_bytes: int = 96 * MiB        # real tiles kept in a worker's memory for fit and synthesis
    gdal_cache_bytes: int = 64 * MiB        # GDAL block cache cap while a worker runs a task
    resources: dict[str, float] = field(default_factory=dict)   # what one worker needs (Ray actor options)
    # engines the head has registered beyond the built-in packages (plugin modules, tests): registered on the
    # workers too, so that lookups by name there (a grounder's reference segmenter) find the same engines
    extra_engines: tuple[type, ...] = ()
    filters: DatasetFilters = field(default_factory=DatasetFilters)   # flags TileRecord.attributes["dropped_by"]

    def plan(self, stage: str) -> StagePlanRef | None:
        return next((p for p in self.plans if p.stage == stage), None)

    @property
    def stages(self) -> tuple[str, ...]:
        return tuple(p.stage for p in self.plans)


@dataclass(frozen=True)
class SourceTile:
    """A finished real tile as the synthetic phase needs it (not the whole TileRecord)."""

    tile_id: str
    cell: Cell
    split: str
    image: str                              # artefact paths relative to the job directory
    mask: str

    @classmethod
    def of(cls, rec: TileRecord) -> SourceTile:
        return cls(rec.tile_id, Cell(rec.row, rec.col, rec.col_off, rec.row_off, rec.width, rec.height),
                   rec.attributes.get("split", ""), rec.artefacts["image"], rec.artefacts["mask"])


@dataclass(frozen=True)
class RealTask:
    cells: tuple[Cell, ...]
    splits: tuple[str, ...]

    def label(self) -> str:
        if not self.cells:
            return "real tiles (none)"
        return f"real tiles r{self.cells[0].row:04d}_c{self.cells[0].col:04d}..(+{len(self.cells) - 1})"


@dataclass(frozen=True)
class SyntheticTask:
    items: tuple[tuple[SourceTile, int], ...]      # (real tile, variant)

    def label(self) -> str:
        if not self.items:
            return "synthetic tiles (none)"
        return f"synthetic tiles {self.items[0][0].tile_id}_v{self.items[0][1]}..(+{len(self.items) - 1})"


@dataclass(frozen=True)
class FitTask:
    sample: tuple[SourceTile, ...]
    state_path: str                                # where the worker writes the pickled state (job dir)

    def label(self) -> str:
        return f"synthesis fit on {len(self.sample)} tiles"


@dataclass(frozen=True)
class SummaryTask:
    records: tuple[TileRecord, ...]

    def label(self) -> str:
        return "set metrics"


@dataclass(frozen=True)
class RealismTask:
    """One part ("synthetic", "real" or "copies") of the report's realism section (groundsynth.report.realism)."""

    part: str
    plan: Any              # groundsynth.report.realism.RealismPlan
    seed: int

    def label(self) -> str:
        return f"realism {self.part}"


@dataclass(frozen=True)
class ControlPair:
    """One tile of the grounding-control pass: its captions, its reference and its partner's (artefact
    paths relative to the job directory), and the metric prefix of the reference's family."""

    tile_id: str
    partner_id: str
    prefix: str
    captions: tuple[str, ...]
    own: str
    partner: str


@dataclass(frozen=True)
class ControlTask:
    pairs: tuple[ControlPair, ...]

    def label(self) -> str:
        return f"grounding control of {len(self.pairs)} tiles"


@dataclass(frozen=True)
class HtmlTask:
    """One slow piece of report.html (groundsynth.report.html.PIECES: figures, thumbnails), rendered on a
    worker from the job's report.json; the head writes the page from the pieces."""

    piece: str

    def label(self) -> str:
        return f"report.html {self.piece}"


Task = RealTask | SyntheticTask | FitTask | SummaryTask | ControlTask | RealismTask | HtmlTask


@dataclass(frozen=True)
class StateFile:
    """The shipped synthesis state as a file in the job directory (workers load it once per process)."""

    path: str
    sha256: str


@dataclass(frozen=True)
class SharedState:
    """The shipped synthesis state as the object itself (a Ray object-store copy), with its file's digest."""

    sha256: str
    payload: Any


@dataclass
class TaskFailure:
    """An exception from a worker, rebuilt on the head as the same type with the same message and fields."""

    exc_type: type[BaseException]
    args: tuple
    state: dict[str, Any]
    text: str                               # the worker's traceback, for logs
    new_args: tuple = ()                    # what the type's constructor takes (OSError: errno, text, filename)

    @classmethod
    def of(cls, exc: BaseException) -> TaskFailure:
        text = "".join(traceback.format_exception(exc))
        new_args = tuple(exc.args)
        if isinstance(exc, OSError) and exc.filename is not None:
            new_args = (exc.errno, exc.strerror, exc.filename) + ((exc.filename2,) if exc.filename2 else ())
        return cls(type(exc), tuple(exc.args), dict(getattr(exc, "__dict__", {})), text, new_args)

    def rebuild(self) -> BaseException:
        try:
            exc: BaseException
            if issubclass(self.exc_type, OSError):
                exc = self.exc_type(*self.new_args)
            else:
                exc = self.exc_type.__new__(self.exc_type, *self.args)
                exc.args = self.args
            exc.__dict__.update(self.state)
        except Exception:  # noqa: BLE001 - an exotic exception type: keep its text
            exc = RuntimeError(f"{self.exc_type.__name__}: {self.args}")
        return exc


@dataclass
class TaskResult:
    records: list[TileRecord] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    value: Any = None                      # fit: StateFile (+ the state in-process); summary: the set metrics
    failure: TaskFailure | None = None
    worker: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
