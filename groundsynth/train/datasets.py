"""Reading a dataset in the export layout (also the original ARAS400k layout).

    DIR/dataset.csv              filename,split,Tree,...,Water,caption_1..caption_5[,kind]
    DIR/images/<tile_id>.png     RGB uint8
    DIR/masks/<tile_id>.png      uint8 class index, 255 = nodata
    DIR/real/images/<id>.tif, DIR/synthetic/v<N>/images/<id>.tif   RGB-NIR uint8 COGs (export layout 2;
                                 used for 4-channel training), masks beside them in .../masks/
    DIR/geotiff/images/<id>.tif  (export layout 1: the same GeoTIFFs in one folder; still read)

Synthetic rows are those with kind == "synthetic", or, without a kind column,
whose tile id ends with "_v<N>" (groundsynth.artefacts.records.synthetic_tile_id).
"""
from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from groundsynth.export.layout import image_rel, mask_rel
from groundsynth.request.errors import InvalidArgument

SYNTHETIC_ID = re.compile(r"_v(\d+)$")
SELECTIONS = ("all", "real", "real+synthetic", "synthetic")


@dataclass
class Sample:
    tile_id: str
    split: str
    kind: str
    image_path: Path
    mask_path: Path


class ExportDataset:
    """Rows of an export directory with their image/mask files, loaded on demand."""

    def __init__(self, root: str | Path, channels: int | None = None, field: str = "--data"):
        self.root = Path(root).absolute()
        csv_path = self.root / "dataset.csv"
        if not csv_path.is_file():
            raise InvalidArgument(f"no dataset.csv in {self.root} (expected the export layout: dataset.csv, "
                                  "images/, masks/)", field)
        geotiff = (self.root / "real" / "images").is_dir() or (self.root / "geotiff" / "images").is_dir()
        if channels is None:
            channels = 4 if geotiff else 3
        if channels not in (3, 4):
            raise InvalidArgument(f"expected 3 or 4 channels, got {channels}", "--channels")
        if channels == 4 and not geotiff:
            raise InvalidArgument(f"4-channel training needs {self.root / 'real' / 'images'} (RGB-NIR GeoTIFFs); "
                                  "use --channels 3 for the PNGs", field)
        self.channels = channels
        self.samples: list[Sample] = []
        with open(csv_path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = {"filename", "split"} - set(reader.fieldnames or [])
            if missing:
                raise InvalidArgument(f"{csv_path} lacks column(s) {', '.join(sorted(missing))}", field)
            for row in reader:
                tile_id = Path(row["filename"]).stem
                kind = (row.get("kind") or "").strip().lower() or \
                    ("synthetic" if SYNTHETIC_ID.search(tile_id) else "real")
                if channels == 4:
                    img, msk = self._geotiffs(tile_id, kind)
                else:
                    img = self.root / "images" / f"{tile_id}.png"
                    msk = self.root / "masks" / f"{tile_id}.png"
                self.samples.append(Sample(tile_id, row["split"].strip().lower(), kind, img, msk))
        if not self.samples:
            raise InvalidArgument(f"{csv_path} has no rows", field)

    def _geotiffs(self, tile_id: str, kind: str) -> tuple[Path, Path]:
        m = SYNTHETIC_ID.search(tile_id)
        variant = int(m.group(1)) if m and kind == "synthetic" else 0
        img, msk = self.root / image_rel(kind, variant, tile_id), self.root / mask_rel(kind, variant, tile_id)
        if not img.is_file():                                     # layout 1
            img = self.root / "geotiff" / "images" / f"{tile_id}.tif"
            msk = self.root / "geotiff" / "masks" / f"{tile_id}.tif"
        if not msk.is_file():
            msk = self.root / "masks" / f"{tile_id}.png"
        return img, msk

    def select(self, split: str, selection: str = "all") -> list[Sample]:
        """Rows of one split; `selection` picks real and/or synthetic rows."""
        if selection not in SELECTIONS:
            raise InvalidArgument(f"expected one of {', '.join(SELECTIONS)}, got {selection!r}", "selection")
        kinds = {"all": ("real", "synthetic"), "real": ("real",), "real+synthetic": ("real", "synthetic"),
                 "synthetic": ("synthetic",)}[selection]
        return [s for s in self.samples if s.split == split and s.kind in kinds]

    def load(self, sample: Sample) -> tuple[np.ndarray, np.ndarray]:
        """(image float32 (C, H, W) in [0, 1], mask uint8 (H, W))."""
        for p in (sample.image_path, sample.mask_path):
            if not p.is_file():
                raise InvalidArgument(f"missing file {p} for row {sample.tile_id}", "--data")
        image = read_array(sample.image_path)
        if image.ndim == 2:
            image = image[None]
        if image.shape[0] < self.channels:
            raise InvalidArgument(f"{sample.image_path} has {image.shape[0]} bands, expected {self.channels}",
                                  "--data")
        scale = float(np.iinfo(image.dtype).max) if np.issubdtype(image.dtype, np.integer) else 1.0
        image = image[:self.channels].astype(np.float32) / scale
        mask = read_array(sample.mask_path)
        mask = (mask[0] if mask.ndim == 3 else mask).astype(np.uint8)
        if mask.shape != image.shape[1:]:
            raise InvalidArgument(f"{sample.mask_path} is {mask.shape}, image is {image.shape[1:]}", "--data")
        return image, mask

    def arrays(self, samples: Sequence[Sample]) -> tuple[np.ndarray, np.ndarray]:
        pairs = [self.load(s) for s in samples]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def read_array(path: Path) -> np.ndarray:
    """A PNG as (H, W) or (C, H, W); a GeoTIFF with rasterio as (C, H, W)."""
    if path.suffix.lower() in (".tif", ".tiff"):
        import rasterio

        with rasterio.open(path) as src:
            return src.read()
    from PIL import Image

    with Image.open(path) as im:
        arr = np.asarray(im)
    return arr.transpose(2, 0, 1) if arr.ndim == 3 else arr
