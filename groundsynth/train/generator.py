"""Train the SPADE generator on an exported dataset (the original recipe).

Adam (lr 2e-4, betas 0.5/0.999) for generator and discriminator, hinge GAN
loss plus 10 x perceptual loss: VGG19 features when `vgg19` points to a local
torchvision VGG19 state dict, else discriminator feature matching (pix2pixHD),
because no VGG19 weights can be downloaded here. Real training rows only (a
generator learns from real imagery). Writes a checkpoint directory the
synthesise/spade engine loads (config.json + generator.safetensors +
discriminator.safetensors) after every epoch.

Progress is also measured by `recon_l1`: the L1 distance between generated
and real images of a fixed batch under fixed noise (lower = closer to the
data), logged before training and after every epoch.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from groundsynth.request.errors import InvalidArgument
from groundsynth.train.datasets import ExportDataset


@dataclass
class GeneratorTrainConfig:
    data: str
    out: str
    epochs: int = 20
    batch_size: int = 50
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    lambda_perceptual: float = 10.0
    channels: int | None = None     # None = 4 when geotiff/ exists, else 3
    ngf: int = 64
    ndf: int = 64
    z_dim: int = 64
    num_blocks: int = 4
    spade_hidden: int = 128
    vgg19: str | None = None        # local torchvision VGG19 state dict for the perceptual loss
    device: str = "auto"
    max_steps: int = 0
    seed: int = 0


@dataclass
class GeneratorTrainResult:
    out: Path
    d_losses: list[float] = field(default_factory=list)
    g_losses: list[float] = field(default_factory=list)
    perceptual: list[float] = field(default_factory=list)
    recon_l1: list[float] = field(default_factory=list)    # before training, then per epoch


def train_generator(cfg: GeneratorTrainConfig, log: Callable[[str], None] = print) -> GeneratorTrainResult:
    import torch

    from groundsynth.models.device import resolve_device
    from groundsynth.models.spade import (
        PatchDiscriminator,
        SpadeConfig,
        SpadeGenerator,
        VGGLoss,
        feature_matching_loss,
        hinge_d_loss,
        hinge_g_loss,
        one_hot,
        save_checkpoint,
    )

    device = resolve_device(cfg.device, "--device")
    torch.manual_seed(cfg.seed)
    gen_rng = torch.Generator().manual_seed(cfg.seed)
    ds = ExportDataset(cfg.data, cfg.channels)
    rows = ds.select("train", "real")
    if not rows:
        raise InvalidArgument(f"no real training rows in {ds.root}", "--data")
    x, y = ds.arrays(rows)
    size = x.shape[-1]
    factor = 2 ** cfg.num_blocks
    if x.shape[-2] % factor or x.shape[-1] % factor:
        raise InvalidArgument(f"tiles are {x.shape[-2]}x{x.shape[-1]}; the generator needs multiples of {factor}",
                              "--data")
    scfg = SpadeConfig(out_channels=ds.channels, ngf=cfg.ngf, ndf=cfg.ndf, z_dim=cfg.z_dim,
                       num_blocks=cfg.num_blocks, spade_hidden=cfg.spade_hidden, tile_size=size)
    G, D = SpadeGenerator(scfg).to(device), PatchDiscriminator(scfg).to(device)
    perceptual = None
    if cfg.vgg19:
        if not Path(cfg.vgg19).is_file():
            raise InvalidArgument(f"VGG19 weights not found at {Path(cfg.vgg19).absolute()}", "--vgg19")
        perceptual = VGGLoss(cfg.vgg19).to(device)
    log(f"training SPADE on {len(rows)} real tiles ({ds.channels} channels, {size} px), perceptual loss: "
        f"{'VGG19' if perceptual else 'discriminator feature matching'}, device {device}")
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=cfg.betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=cfg.betas)
    images = torch.from_numpy(x) * 2 - 1
    segs = one_hot(torch.from_numpy(y))
    n_fix = min(len(rows), 8)
    fixed_z = G.noise(n_fix, x.shape[-2:], seeds=range(n_fix))
    result = GeneratorTrainResult(Path(cfg.out).absolute())

    def recon() -> float:
        G.eval()
        with torch.no_grad():
            fake = G(segs[:n_fix].to(device), fixed_z.to(device))
        G.train()
        return float((fake.cpu() - images[:n_fix]).abs().mean())

    result.recon_l1.append(recon())
    log(f"start: recon L1 {result.recon_l1[0]:.4f}")
    step = 0
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.time()
        order = torch.randperm(len(rows), generator=gen_rng)
        for i in range(0, len(rows), cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            real, seg = images[idx].to(device), segs[idx].to(device)
            z = G.noise(len(idx), real.shape[-2:], device=device)
            # discriminator step
            with torch.no_grad():
                fake = G(seg, z)
            d_loss = hinge_d_loss(D(seg, real)[-1], D(seg, fake)[-1])
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            # generator step
            fake = G(seg, z)
            fake_feats = D(seg, fake)
            if perceptual is not None:
                p_loss = perceptual(fake, real)
            else:
                with torch.no_grad():
                    real_feats = D(seg, real)
                p_loss = feature_matching_loss(real_feats, fake_feats)
            g_loss = hinge_g_loss(fake_feats[-1]) + cfg.lambda_perceptual * p_loss
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
            step += 1
            result.d_losses.append(d_loss.item())
            result.g_losses.append(g_loss.item())
            result.perceptual.append(p_loss.item())
            if cfg.max_steps and step >= cfg.max_steps:
                break
        result.recon_l1.append(recon())
        k = max(1, min(len(result.d_losses), (len(rows) + cfg.batch_size - 1) // cfg.batch_size))
        log(f"epoch {epoch}: D {np.mean(result.d_losses[-k:]):.4f}  G {np.mean(result.g_losses[-k:]):.4f}  "
            f"perceptual {np.mean(result.perceptual[-k:]):.4f}  recon L1 {result.recon_l1[-1]:.4f} "
            f"({time.time() - t0:.1f}s)")
        save_checkpoint(result.out, G, D, extra={"epochs": epoch, "steps": step, "data": str(ds.root),
                                                 "perceptual": "vgg19" if perceptual else "feature_matching"})
        if cfg.max_steps and step >= cfg.max_steps:
            break
    (result.out / "training.json").write_text(json.dumps({
        "steps": step, "recon_l1": result.recon_l1, "d_loss": result.d_losses[-1:], "g_loss": result.g_losses[-1:]},
        indent=2))
    log(f"saved generator to {result.out}")
    return result
