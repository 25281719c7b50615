"""Where the dataset export puts each file (shared by the export, GroundSynthDataset and the trainers).

    out/real/images/<tile_id>.tif              COG, uint8 R, G, B, NIR (0 = nodata), georeferenced
    out/real/masks/<tile_id>.tif               COG, uint8 classes 0..6, 255 = nodata, colour table
    out/synthetic/v<N>/images/<tile_id>.tif    synthetic variant N, at its source tile's footprint
    out/synthetic/v<N>/masks/<tile_id>.tif
    out/splits/<split>.txt                     one image path per line (relative to out/), every kind
    out/images/, out/masks/, out/dataset.csv   the original's PNG + CSV layout (ARAS400k)
    out/stac/catalog.json                      STAC catalogue: one collection per kind and variant
    out/export.json                            counts, split source, filters, warnings

Real tiles and each synthetic variant live in folders of their own because they share
footprints: a TorchGeo RasterDataset over a folder that mixed them would mosaic a synthetic
tile over the real one at the same place.
"""
from __future__ import annotations

import re
from pathlib import Path

SPLITS = ("train", "val", "test")
LAYOUT_VERSION = 2
VARIANT_DIR = re.compile(r"^synthetic/v(\d+)/")


def kind_dir(kind: str, variant: int) -> str:
    """'real' or 'synthetic/v<N>' (relative to the export root)."""
    return "real" if kind == "real" else f"synthetic/v{int(variant)}"


def image_rel(kind: str, variant: int, tile_id: str) -> str:
    return f"{kind_dir(kind, variant)}/images/{tile_id}.tif"


def mask_rel(kind: str, variant: int, tile_id: str) -> str:
    return f"{kind_dir(kind, variant)}/masks/{tile_id}.tif"


def mask_for(image_path: str) -> str:
    """The mask path of an image path of the layout (.../images/<id>.tif -> .../masks/<id>.tif)."""
    head, sep, name = image_path.replace("\\", "/").rpartition("/images/")
    if not sep:
        raise ValueError(f"{image_path} is not an image path of the export layout")
    return f"{head}/masks/{name}"


def kind_of(image_path: str) -> tuple[str, int]:
    """('real', 0) or ('synthetic', N) from a relative image path of the layout."""
    p = image_path.replace("\\", "/")
    if p.startswith("real/"):
        return "real", 0
    m = VARIANT_DIR.match(p)
    if m:
        return "synthetic", int(m.group(1))
    raise ValueError(f"{image_path} is neither under real/ nor under synthetic/v<N>/")


def split_file(root: str | Path, split: str) -> Path:
    return Path(root) / "splits" / f"{split}.txt"


def read_split(root: str | Path, split: str) -> list[str]:
    """Relative image paths of one split (every kind), in file order."""
    path = split_file(root, split)
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
