"""The SPADE generator's LightningModule (manual optimisation: one discriminator step, then one
generator step per batch), so the generator trainer gets Lightning's precision, DDP, checkpoints
and CSV log like the segmenter.

Losses (the original recipe): hinge GAN loss + lambda x perceptual loss, where the perceptual
loss is VGG19 features when a local VGG19 state dict is given, else discriminator feature matching.
Batches are (images in [-1, 1], one-hot masks).
"""
from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import LightningModule

from groundsynth.models.spade import (
    PatchDiscriminator,
    SpadeConfig,
    SpadeGenerator,
    VGGLoss,
    feature_matching_loss,
    hinge_d_loss,
    hinge_g_loss,
)


class GeneratorTask(LightningModule):
    def __init__(self, spade: dict, lr: float = 2e-4, betas: tuple[float, float] = (0.5, 0.999),
                 lambda_perceptual: float = 10.0, vgg19: str | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        cfg = SpadeConfig.from_dict(spade)
        self.G, self.D = SpadeGenerator(cfg), PatchDiscriminator(cfg)
        self.perceptual = VGGLoss(vgg19) if vgg19 else None
        self.d_losses: list[float] = []
        self.g_losses: list[float] = []
        self.p_losses: list[float] = []

    def configure_optimizers(self) -> Any:
        h = self.hparams
        return (torch.optim.Adam(self.G.parameters(), lr=h["lr"], betas=h["betas"]),
                torch.optim.Adam(self.D.parameters(), lr=h["lr"], betas=h["betas"]))

    def training_step(self, batch: Any, batch_idx: int) -> None:
        real, seg = batch
        opt_g, opt_d = self.optimizers()
        z = self.G.noise(len(real), real.shape[-2:], device=real.device)
        with torch.no_grad():                                   # discriminator step
            fake = self.G(seg, z)
        d_loss = hinge_d_loss(self.D(seg, real)[-1], self.D(seg, fake)[-1])
        opt_d.zero_grad()
        self.manual_backward(d_loss)
        opt_d.step()
        fake = self.G(seg, z)                                   # generator step
        fake_feats = self.D(seg, fake)
        if self.perceptual is not None:
            p_loss = self.perceptual(fake, real)
        else:
            with torch.no_grad():
                real_feats = self.D(seg, real)
            p_loss = feature_matching_loss(real_feats, fake_feats)
        g_loss = hinge_g_loss(fake_feats[-1]) + self.hparams["lambda_perceptual"] * p_loss
        opt_g.zero_grad()
        self.manual_backward(g_loss)
        opt_g.step()
        for store, v in ((self.d_losses, d_loss), (self.g_losses, g_loss), (self.p_losses, p_loss)):
            store.append(float(v.detach()))
        self.log_dict({"d_loss": d_loss.detach(), "g_loss": g_loss.detach(), "perceptual": p_loss.detach()},
                      batch_size=len(real))
