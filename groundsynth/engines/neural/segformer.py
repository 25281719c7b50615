"""segment/segformer: SegFormer semantic segmentation from a local directory.

Loads `transformers.SegformerForSemanticSegmentation` with
`from_pretrained(dir, local_files_only=True)`: 7 labels (groundsynth.request.classes
order) and 4 input channels (R, G, B, NIR) or 3 (RGB). Logits are upsampled
to the tile size and arg-maxed; pixels that are not valid become 255.
Train one with `groundsynth train segmenter --data DIR --out DIR`.

torch/transformers are imported only when the engine runs.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np

from groundsynth.engines import register
from groundsynth.engines.base import Param, Segmenter, TileInput
from groundsynth.engines.neural.common import DEVICE_PARAM, WeightsEngine
from groundsynth.models.segformer import load_segformer
from groundsynth.request.classes import NODATA
from groundsynth.request.errors import FailedPrecondition


@register
class SegformerSegmenter(WeightsEngine, Segmenter):
    name = "segformer"
    num_gpus = 0.25             # Ray actor share of a GPU when run on one: a SegFormer-b0..b2 fits four to a GPU
    memory_mb = 1024
    description = ("SegFormer (transformers) from local weights; 7 classes, RGB-NIR or RGB input. "
                   "Train one with `groundsynth train segmenter`.")
    params = (
        Param("weights", "path", "", "Local SegFormer directory (config.json + model.safetensors) or a cached "
                                     "hub id; empty = <models dir>/segformer"),
        DEVICE_PARAM,
        Param("batch_size", "int", 8, "Tiles per forward pass", min=1, max=256),
        Param("precision", "choice", "auto", "auto = fp16 on GPU, fp32 on CPU", choices=("auto", "fp32", "fp16")),
    )

    def _model(self):
        from groundsynth.models.cache import load_shared

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
        from groundsynth.models.batching import shape_batches

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
            for i, p in zip(idx, pred, strict=True):
                p[~np.asarray(tiles[i].valid, dtype=bool)] = NODATA
                out[i] = p
        return cast(list[np.ndarray], out)   # every index was filled
