"""synthesise/spade: the original work's SPADE generator, with a noise input.

Loads a checkpoint directory written by `groundsynth train generator`
(config.json + generator.safetensors, see groundsynth.models.spade). Each
tile's seed draws the noise map, so variants of one mask differ and the same
seed always gives the same image. A 4-band generator serves RGB-only jobs by
dropping NIR; a 3-band generator refuses RGB-NIR jobs (FAILED_PRECONDITION).
Tiles whose size is not a multiple of 16 are padded (edge replication) and cropped back.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from groundsynth.engines import register
from groundsynth.engines.base import Param, Synthesiser
from groundsynth.engines.neural.common import DEVICE_PARAM, WeightsEngine
from groundsynth.request.errors import FailedPrecondition

NEED = "config.json + generator.safetensors from `groundsynth train generator`"


def check_spade_dir(path: Path) -> tuple[bool, str]:
    from groundsynth.models.weights import missing_reason

    if not path.is_dir():
        return False, missing_reason(path, NEED)
    for f in ("config.json", "generator.safetensors"):
        if not (path / f).is_file():
            return False, missing_reason(path, NEED) + f": {f} is missing"
    return True, ""


def load_spade(path: Path, device: str, dtype_name: str):
    from groundsynth.models.weights import load_or_fail, require

    require(check_spade_dir(path))

    def _load():
        import torch

        from groundsynth.models.spade import load_generator

        return load_generator(path).to(device=device, dtype=getattr(torch, dtype_name))

    return load_or_fail(path, "SPADE generator", _load)


@register
class SpadeSynthesiser(WeightsEngine, Synthesiser):
    name = "spade"
    num_gpus = 0.25             # Ray actor share of a GPU when run on one: a SPADE generator fits four to a GPU
    memory_mb = 1536
    description = ("SPADE conditional generator (the original work's design) with a noise input so variants "
                   "differ; 4-band or 3-band output. Train one with `groundsynth train generator`.")
    params = (
        Param("weights", "path", "", "SPADE checkpoint directory (config.json + generator.safetensors); "
                                     "empty = <models dir>/spade"),
        DEVICE_PARAM,
        Param("batch_size", "int", 8, "Masks per forward pass", min=1, max=256),
        Param("precision", "choice", "auto", "auto = fp16 on GPU, fp32 on CPU", choices=("auto", "fp32", "fp16")),
        Param("noise_scale", "float", 1.0, "Scale of the noise map: 0 = one image per mask, larger = more varied",
              min=0.0, max=10.0),
    )

    check_weights = staticmethod(check_spade_dir)

    def _model(self):
        from groundsynth.models.cache import load_shared

        return load_shared(self, load_spade)[0]

    def synthesise(self, masks: Sequence[np.ndarray], seeds: Sequence[int], state: Any = None,
                   source_ids: Sequence[str] | None = None) -> list[np.ndarray]:
        # a generator copies no pixels: source_ids needs no handling
        if len(masks) != len(seeds):
            raise ValueError(f"{len(masks)} masks but {len(seeds)} seeds")
        if not len(masks):
            return []
        import torch

        from groundsynth.models.spade import one_hot

        gen = self._model()
        want = 4 if self.ctx.has_nir else 3
        if gen.cfg.out_channels < want:
            raise FailedPrecondition(
                f"the SPADE generator makes {gen.cfg.out_channels} bands but this job has NIR; "
                "train a 4-band generator or run the job RGB-only (bands.nir = -1)", "weights")
        p = next(gen.parameters())
        from groundsynth.models.batching import shape_batches

        f = gen.factor
        sizes, arrays = [], []
        for m in masks:
            a = np.asarray(m)
            if a.ndim != 2:
                raise FailedPrecondition(f"expected a 2-D class mask, got shape {a.shape}", "masks")
            sizes.append(a.shape)
            # the generator works on multiples of 2**num_blocks: pad by edge replication, crop after
            a = np.pad(a, ((0, -a.shape[0] % f), (0, -a.shape[1] % f)), mode="edge")
            arrays.append(a)
        out: list[np.ndarray | None] = [None] * len(arrays)
        for idx in shape_batches([a.shape for a in arrays], self.p["batch_size"]):
            h, w = arrays[idx[0]].shape
            seg = one_hot(torch.from_numpy(np.stack([arrays[i] for i in idx]))).to(p.device, p.dtype)
            z = gen.noise(len(idx), (h, w), [seeds[i] for i in idx], p.device) * self.p["noise_scale"]
            with torch.inference_mode():
                img = gen(seg, z.to(p.dtype)).float()
            img = ((img + 1) / 2).clamp(0, 1)[:, :want].cpu().numpy().astype(np.float32)
            for i, im in zip(idx, img, strict=True):
                out[i] = np.ascontiguousarray(im[:, :sizes[i][0], :sizes[i][1]])
        return cast(list[np.ndarray], out)   # every index was filled
