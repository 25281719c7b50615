"""SegFormer model code shared by the segment/segformer engine and the segmenter trainer:
loading a local SegFormer directory and its per-channel normalisation."""
from __future__ import annotations

import json
from pathlib import Path

from groundsynth.request.classes import NUM_CLASSES
from groundsynth.request.errors import FailedPrecondition

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NIR_MEAN, NIR_STD = 0.5, 0.25

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
    from groundsynth.models.weights import check_hf_dir, load_or_fail, require

    require(check_hf_dir(path))

    def _load():
        import torch
        from transformers import SegformerForSemanticSegmentation

        model = SegformerForSemanticSegmentation.from_pretrained(str(path), local_files_only=True)  # nosec B615 # local files only (local_files_only=True): nothing is downloaded
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
