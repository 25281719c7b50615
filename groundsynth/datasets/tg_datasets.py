"""TorchGeo datasets over a GroundSynth export (imported lazily by groundsynth.datasets).

GroundSynthDataset is a NonGeoDataset (one sample per exported tile, the usual way to train on
chips); GroundSynthGeoDataset pairs two RasterDatasets (GroundSynthImages & GroundSynthMasks) in an
IntersectionDataset for TorchGeo's geo samplers. Both open only the files of one split and kind
(groundsynth.datasets.index), so real and synthetic tiles at the same footprint are never merged.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torchgeo.datasets import IntersectionDataset, NonGeoDataset, RasterDataset

from groundsynth.datasets.index import TileFiles, dataset_files
from groundsynth.request.classes import CLASS_NAMES, NODATA, gdal_colormap
from groundsynth.request.errors import FailedPrecondition, InvalidArgument

BANDS = ("red", "green", "blue", "nir")
RGB = ("red", "green", "blue")
Transform = Callable[[dict[str, Any]], dict[str, Any]]


def _band_indexes(bands: Sequence[str]) -> list[int]:
    bad = [b for b in bands if b not in BANDS]
    if bad or not bands:
        raise InvalidArgument(f"expected bands among {', '.join(BANDS)}, got {list(bands)}", "bands")
    return [BANDS.index(b) + 1 for b in bands]


def _files(root: str | Path, split: str, kind: str, variants: tuple[int, ...] | None) -> list[TileFiles]:
    files = dataset_files(root, split, kind, variants)
    if not files:
        raise FailedPrecondition(f"{root} has no {kind} tiles in the {split} split", "split")
    return files


class GroundSynthImages(RasterDataset):
    """Image COGs (uint8 R, G, B, NIR) of one split and kind; samples hold float32 image / 255."""

    filename_glob = "*.tif"
    is_image = True
    all_bands = BANDS
    rgb_bands = RGB

    def __getitem__(self, query: Any) -> dict[str, Any]:
        sample = super().__getitem__(query)
        sample["image"] = sample["image"] / 255.0
        return sample


class GroundSynthMasks(RasterDataset):
    """Class-mask COGs (0..6, 255 = nodata) of one split and kind; samples hold long masks."""

    filename_glob = "*.tif"
    is_image = False
    cmap: ClassVar[dict[int, tuple[int, int, int, int]]] = gdal_colormap()


class GroundSynthGeoDataset(IntersectionDataset):
    """Images & masks of one split and kind of an export, for TorchGeo's samplers (RandomGeoSampler ...)."""

    all_bands = BANDS
    rgb_bands = RGB
    classes = CLASS_NAMES
    cmap = gdal_colormap()
    ignore_index = NODATA

    def __init__(self, root: str | Path, split: str = "train", kind: str = "real",
                 variants: tuple[int, ...] | None = None, bands: Sequence[str] = BANDS,
                 transforms: Transform | None = None, cache: bool = True) -> None:
        _band_indexes(bands)
        self.tiles = _files(root, split, kind, variants)
        self.split, self.kind = split, kind
        images = GroundSynthImages([str(t.image) for t in self.tiles], bands=list(bands), cache=cache)
        masks = GroundSynthMasks([str(t.mask) for t in self.tiles], cache=cache)
        super().__init__(images, masks, transforms=transforms)


class GroundSynthDataset(NonGeoDataset):
    """One sample per exported tile of a split and kind: {"image": float32 (C, H, W) in [0, 1],
    "mask": long (H, W), 255 = nodata}."""

    all_bands = BANDS
    rgb_bands = RGB
    classes = CLASS_NAMES
    cmap = gdal_colormap()
    ignore_index = NODATA

    def __init__(self, root: str | Path, split: str = "train", kind: str = "real",
                 variants: tuple[int, ...] | None = None, bands: Sequence[str] = BANDS,
                 transforms: Transform | None = None) -> None:
        self.band_indexes = _band_indexes(bands)
        self.bands = tuple(bands)
        self.tiles = _files(root, split, kind, variants)
        self.split, self.kind, self.transforms = split, kind, transforms

    def __len__(self) -> int:
        return len(self.tiles)

    def __getitem__(self, index: int) -> dict[str, Any]:
        import rasterio

        t = self.tiles[index]
        with rasterio.open(t.image) as src:
            image = src.read(self.band_indexes)
        with rasterio.open(t.mask) as src:
            mask = src.read(1)
        sample: dict[str, Any] = {"image": torch.from_numpy(image.astype(np.float32) / 255.0),
                                  "mask": torch.from_numpy(mask.astype(np.int64))}
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample

    def plot(self, sample: dict[str, Any], show_titles: bool = True, suptitle: str | None = None):
        """RGB image beside the mask in the class palette (and the prediction, if the sample has one)."""
        from matplotlib.figure import Figure

        rgb = [self.bands.index(b) for b in RGB if b in self.bands]
        panels = [("image", sample["image"][rgb].permute(1, 2, 0).numpy() if len(rgb) == 3 else
                   sample["image"][0].numpy())]
        lut = np.zeros((256, 3), np.uint8)
        for k, (r, g, b, _) in self.cmap.items():
            lut[k] = (r, g, b)
        panels += [(key, lut[sample[key].numpy().astype(np.uint8)]) for key in ("mask", "prediction") if key in sample]
        fig = Figure(figsize=(4 * len(panels), 4))
        for i, (title, arr) in enumerate(panels):
            ax = fig.add_subplot(1, len(panels), i + 1)
            ax.imshow(np.clip(arr, 0, 1) if title == "image" else arr)
            ax.axis("off")
            if show_titles:
                ax.set_title(title)
        if suptitle:
            fig.suptitle(suptitle)
        return fig
