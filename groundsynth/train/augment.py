"""Training augmentations of the original recipe: flips, rot90, brightness/contrast."""
from __future__ import annotations

import torch


def augment(images: torch.Tensor, masks: torch.Tensor, generator: torch.Generator,
            brightness: float = 0.2, contrast: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample: random h/v flip and k*90 degree rotation (image and mask together),
    then brightness/contrast jitter on the image only (clamped to [0, 1]).
    images (N, C, H, W) float in [0, 1]; masks (N, H, W). Square tiles only for rot90."""
    out_i, out_m = [], []
    for img, msk in zip(images, masks, strict=True):
        r = torch.rand(5, generator=generator)
        if r[0] < 0.5:
            img, msk = img.flip(-1), msk.flip(-1)
        if r[1] < 0.5:
            img, msk = img.flip(-2), msk.flip(-2)
        if img.shape[-1] == img.shape[-2]:
            k = int(r[2] * 4) % 4
            img, msk = torch.rot90(img, k, (-2, -1)), torch.rot90(msk, k, (-2, -1))
        b = (r[3] * 2 - 1) * brightness
        c = 1 + (r[4] * 2 - 1) * contrast
        mean = img.mean(dim=(-2, -1), keepdim=True)
        img = ((img - mean) * c + mean + b).clamp(0, 1)
        out_i.append(img)
        out_m.append(msk)
    return torch.stack(out_i), torch.stack(out_m)
