"""Which files of an export make up one split of one kind (no TorchGeo needed)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from groundsynth.export.layout import SPLITS, kind_of, mask_for, read_split, split_file
from groundsynth.request.errors import InvalidArgument, NotFound

KINDS = ("real", "synthetic", "real+synthetic")


@dataclass(frozen=True)
class TileFiles:
    tile_id: str
    kind: str          # "real" or "synthetic"
    variant: int       # 0 for real tiles
    image: Path
    mask: Path


def dataset_files(root: str | Path, split: str = "train", kind: str = "real",
                  variants: tuple[int, ...] | None = None) -> list[TileFiles]:
    """The tiles of `split` in an export, real and/or synthetic (all variants, or only `variants`)."""
    root = Path(root)
    if split not in SPLITS:
        raise InvalidArgument(f"expected one of {', '.join(SPLITS)}, got {split!r}", "split")
    if kind not in KINDS:
        raise InvalidArgument(f"expected one of {', '.join(KINDS)}, got {kind!r}", "kind")
    if not split_file(root, split).is_file():
        raise NotFound(f"{split_file(root, split)} not found: {root} is not a dataset export (layout 2: "
                       "groundsynth export --job-dir JOB --out DIR)", "root")
    out = []
    for rel in read_split(root, split):
        k, v = kind_of(rel)
        if kind != "real+synthetic" and k != kind:
            continue
        if k == "synthetic" and variants is not None and v not in variants:
            continue
        out.append(TileFiles(Path(rel).stem, k, v, root / rel, root / mask_for(rel)))
    return out
