"""Train the SPADE generator on an exported dataset (the original recipe) with Lightning.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    devices: int = 1                # > 1: DDP
    precision: str = "auto"         # auto (mixed on a GPU), 32-true, 16-mixed, bf16-mixed
    resume: str | None = None       # "last" or a checkpoint path


@dataclass
class GeneratorTrainResult:
    out: Path
    d_losses: list[float] = field(default_factory=list)
    g_losses: list[float] = field(default_factory=list)
    perceptual: list[float] = field(default_factory=list)
    recon_l1: list[float] = field(default_factory=list)    # before training, then per epoch
    checkpoint: str = ""
    rank: int = 0


def epoch_callback(result: GeneratorTrainResult, recon: Callable[[Any], float], extra: dict,
                   log: Callable[[str], None]):
    """Per epoch (rank 0): recon L1 under fixed noise, and the spade engine's checkpoint directory."""
    from lightning.pytorch.callbacks import Callback

    from groundsynth.models.spade import save_checkpoint

    class EpochEnd(Callback):
        def on_train_epoch_end(self, trainer, task) -> None:
            if not trainer.is_global_zero:
                return
            result.recon_l1.append(recon(task))
            k = max(1, trainer.num_training_batches)
            log(f"epoch {trainer.current_epoch + 1}: D {np.mean(task.d_losses[-k:]):.4f}  "
                f"G {np.mean(task.g_losses[-k:]):.4f}  perceptual {np.mean(task.p_losses[-k:]):.4f}  "
                f"recon L1 {result.recon_l1[-1]:.4f}")
            save_checkpoint(result.out, task.G, task.D,
                            extra={**extra, "epochs": trainer.current_epoch + 1, "steps": len(task.g_losses)})

    return EpochEnd()


def load_rows(cfg: GeneratorTrainConfig) -> tuple[ExportDataset, np.ndarray, np.ndarray]:
    ds = ExportDataset(cfg.data, cfg.channels)
    rows = ds.select("train", "real")
    if not rows:
        raise InvalidArgument(f"no real training rows in {ds.root}", "--data")
    x, y = ds.arrays(rows)
    factor = 2 ** cfg.num_blocks
    if x.shape[-2] % factor or x.shape[-1] % factor:
        raise InvalidArgument(f"tiles are {x.shape[-2]}x{x.shape[-1]}; the generator needs multiples of {factor}",
                              "--data")
    if cfg.vgg19 and not Path(cfg.vgg19).is_file():
        raise InvalidArgument(f"VGG19 weights not found at {Path(cfg.vgg19).absolute()}", "--vgg19")
    return ds, x, y


def train_generator(cfg: GeneratorTrainConfig, log: Callable[[str], None] = print) -> GeneratorTrainResult:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from groundsynth.models.spade import SpadeConfig, one_hot
    from groundsynth.train.lightning_run import lightning, make_trainer, resume_path

    lightning()
    from groundsynth.train.gan_task import GeneratorTask

    ds, x, y = load_rows(cfg)
    out = Path(cfg.out).absolute()
    resume = resume_path(out, cfg.resume)
    scfg = SpadeConfig(out_channels=ds.channels, ngf=cfg.ngf, ndf=cfg.ndf, z_dim=cfg.z_dim,
                       num_blocks=cfg.num_blocks, spade_hidden=cfg.spade_hidden, tile_size=int(x.shape[-1]))
    torch.manual_seed(cfg.seed)
    task = GeneratorTask(scfg.to_dict(), cfg.lr, cfg.betas, cfg.lambda_perceptual,
                         str(Path(cfg.vgg19).absolute()) if cfg.vgg19 else None)
    images, segs = torch.from_numpy(x) * 2 - 1, one_hot(torch.from_numpy(y))
    n_fix = min(len(x), 8)
    fixed_z = task.G.noise(n_fix, (int(x.shape[-2]), int(x.shape[-1])), seeds=range(n_fix))

    def recon(t) -> float:
        t.G.eval()
        with torch.no_grad():
            fake = t.G(segs[:n_fix].to(t.device), fixed_z.to(t.device))
        t.G.train()
        return float((fake.float().cpu() - images[:n_fix]).abs().mean())

    result = GeneratorTrainResult(out)
    extra = {"data": str(ds.root), "perceptual": "vgg19" if cfg.vgg19 else "feature_matching"}
    # manual optimisation: Lightning counts both optimisers' steps, so one batch is 2 steps
    trainer, ckpt = make_trainer(out, "generator", cfg.device, cfg.devices, cfg.precision, cfg.epochs,
                                 2 * cfg.max_steps, callbacks=[epoch_callback(result, recon, extra, log)],
                                 seed=cfg.seed)
    result.rank = trainer.global_rank
    if trainer.is_global_zero:
        result.recon_l1.append(recon(task))
        log(f"training SPADE on {len(x)} real tiles ({ds.channels} channels, {x.shape[-1]} px), perceptual loss: "
            f"{'VGG19' if cfg.vgg19 else 'discriminator feature matching'}, {trainer.num_devices} x "
            f"{type(trainer.accelerator).__name__.replace('Accelerator', '')}, precision {trainer.precision}; "
            f"start: recon L1 {result.recon_l1[0]:.4f}")
    loader = DataLoader(TensorDataset(images, segs), batch_size=cfg.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(cfg.seed))
    trainer.fit(task, loader, ckpt_path=resume)
    result.d_losses, result.g_losses, result.perceptual = task.d_losses, task.g_losses, task.p_losses
    result.checkpoint = ckpt.last_model_path
    if trainer.is_global_zero:
        (out / "training.json").write_text(json.dumps({
            "steps": len(task.g_losses), "recon_l1": result.recon_l1, "d_loss": result.d_losses[-1:],
            "g_loss": result.g_losses[-1:], "checkpoint": result.checkpoint, "precision": str(trainer.precision),
            "devices": trainer.num_devices}, indent=2))
        log(f"saved generator to {result.out}")
    return result
