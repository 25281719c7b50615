"""Datasets over an export (groundsynth.export): TorchGeo's pair of dataset kinds, under the
optional `torchgeo` extra (pip install "groundsynth[torchgeo]").

    GroundSynthDataset(root, split="train", kind="real")      NonGeoDataset: one sample per tile
    GroundSynthGeoDataset(root, split="train", kind="real")   RasterDataset images & masks (an
                                                              IntersectionDataset) for TorchGeo's samplers

Bands red, green, blue, nir; images are float32 in [0, 1] (the exported uint8 / 255; 0 =
nodata), masks long class indices 0..6 with 255 = nodata (`ignore_index`); `cmap` is the class
palette. Only files listed in the export's splits/<split>.txt of the asked kind are opened, so a
sampler over the real split never sees a synthetic pixel. torchgeo is imported only when one of
these classes is first used: `import groundsynth.datasets` works without it.
"""
from __future__ import annotations

from typing import Any

from groundsynth.datasets.index import KINDS, TileFiles, dataset_files

__all__ = ["KINDS", "TileFiles", "dataset_files", "GroundSynthDataset", "GroundSynthGeoDataset",
           "GroundSynthImages", "GroundSynthMasks"]
_TORCHGEO = ("GroundSynthDataset", "GroundSynthGeoDataset", "GroundSynthImages", "GroundSynthMasks")


def __getattr__(name: str) -> Any:
    if name in _TORCHGEO:
        try:
            from groundsynth.datasets import tg_datasets
        except ImportError as exc:
            raise ImportError(f"groundsynth.datasets.{name} needs TorchGeo: pip install \"groundsynth[torchgeo]\" "
                              f"({exc})") from exc
        return getattr(tg_datasets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
