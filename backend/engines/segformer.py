"""segment/segformer: SegFormer semantic segmentation from a local directory.

Loads `transformers.SegformerForSemanticSegmentation` with
`from_pretrained(dir, local_files_only=True)`: 7 labels (backend.palette
order) and 4 input channels (R, G, B, NIR) or 3 (RGB). Logits are upsampled
to the tile size and arg-maxed; pixels that are not valid become 255.
Train one with `python -m backend train segmenter --data DIR --out DIR`.

torch/transformers are imported only when the engine runs.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import FailedPrecondition
from ..palette import NODATA, NUM_CLASSES
from . import register
from ..neural.shared import WeightsEngine
from .base import Param, Segmenter, TileInput

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NIR_MEAN, NIR_STD = 0.5, 0.25

DEVICE_PARAM = Param("device", "choice", "auto", "Where the model runs: auto picks cuda, then mps, then cpu",
                     choices=("auto", "cpu", "cuda", "mps"))


def normalisation(path: Path | None, config, channels: int) -> tuple[list[float], list[float]]:
    """Per-channel mean/std: config.image_mean/std (written by our trainer), else
    preprocessor_config.json, else ImageNet; a NIR channel gets 0.5/0.25 when not given."""
    mean = getattr(config, "image_mean", None)
    std = getattr(config, "image_std", None)
    if mean is None and path is not None and (path / "preprocessor_config.json").is_file():
        pre = json.loads((path / "preprocessor_config.json").read_text())
        mean, std = pre.get("image_mean"), pre.get("image_std")
    mean = list(mean or IMAGENET_MEAN)
    std = list(std or IMAGENET_STD)
    while len(mean) < channels:
        mean.append(NIR_MEAN)
    while len(std) < channels:
        std.append(NIR_STD)
    return mean[:channels], std[:channels]


def load_segformer(path: Path, device: str, dtype_name: str):
    """(model, mean, std) from a local SegFormer directory; FailedPrecondition if unusable."""
    from ..neural.weights import check_hf_dir, load_or_fail, require

    require(check_hf_dir(path))

    def _load():
        import torch
        from transformers import SegformerForSemanticSegmentation

        model = SegformerForSemanticSegmentation.from_pretrained(str(path), local_files_only=True)
        model.eval().to(device=device, dtype=getattr(torch, dtype_name))
        return model

    model = load_or_fail(path, "SegFormer", _load)
    cfg = model.config
    if cfg.num_labels != NUM_CLASSES:
        raise FailedPrecondition(f"the SegFormer at {path} has {cfg.num_labels} labels, expected {NUM_CLASSES} "
                                 "(Tree, Shrub, Grass, Crop, Built-up, Barren, Water)", "weights")
    if cfg.num_channels not in (3, 4):
        raise FailedPrecondition(f"the SegFormer at {path} takes {cfg.num_channels} channels, expected 3 or 4",
                                 "weights")
    mean, std = normalisation(path, cfg, cfg.num_channels)
    return model, mean, std


@register
class SegformerSegmenter(WeightsEngine, Segmenter):
    name = "segformer"
    description = ("SegFormer (transformers) from local weights; 7 classes, RGB-NIR or RGB input. "
                   "Train one with `python -m backend train segmenter`.")
    params = (
        Param("weights", "path", "", "Local SegFormer directory (config.json + model.safetensors) or a cached "
                                     "hub id; empty = <models dir>/segformer"),
        DEVICE_PARAM,
        Param("batch_size", "int", 8, "Tiles per forward pass", min=1, max=256),
        Param("precision", "choice", "auto", "auto = fp16 on GPU, fp32 on CPU", choices=("auto", "fp32", "fp16")),
    )

    def _model(self):
        from ..neural.shared import load_shared

        return load_shared(self, load_segformer)

    def segment(self, tiles: Sequence[TileInput]) -> list[np.ndarray]:
        if not tiles:
            return []
        import torch

        (model, mean, std), device = self._model()
        want = model.config.num_channels
        param = next(model.parameters())
        m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        from ..neural.batching import shape_batches

        arrays = []
        for t in tiles:
            img = np.asarray(t.image, dtype=np.float32)
            if img.shape[0] < want:
                raise FailedPrecondition(
                    f"the SegFormer expects {want} bands (R, G, B, NIR) but tile {t.tile_id} has "
                    f"{img.shape[0]}; use a 3-channel model for RGB-only rasters", "weights")
            arrays.append(np.nan_to_num(img[:want]))
        out: list[np.ndarray | None] = [None] * len(tiles)
        for idx in shape_batches([a.shape for a in arrays], self.p["batch_size"]):
            x = (torch.from_numpy(np.stack([arrays[i] for i in idx])) - m) / s
            with torch.inference_mode():
                logits = model(pixel_values=x.to(device=param.device, dtype=param.dtype)).logits
                logits = torch.nn.functional.interpolate(logits.float(), size=x.shape[-2:],
                                                         mode="bilinear", align_corners=False)
                pred = logits.argmax(1).to("cpu").numpy().astype(np.uint8)
            for i, p in zip(idx, pred):
                p[~np.asarray(tiles[i].valid, dtype=bool)] = NODATA
                out[i] = p
        return out
