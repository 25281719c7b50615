"""What both Lightning trainers share: accelerator, devices (DDP), precision, checkpoints, resume, CSV logs.

    precision "auto": bf16-mixed on a GPU that supports bf16, else 16-mixed on a GPU; 32-true on CPU/MPS
    devices N > 1:    DDP (strategy "ddp"; gloo on CPU, NCCL on GPUs), one process per device
    checkpoints:      OUT/checkpoints/last.ckpt after every epoch (+ best.ckpt when a metric is watched)
    resume:           "last" = OUT/checkpoints/last.ckpt, or a checkpoint path
    logs:             OUT/logs/<name>/version_<k>/metrics.csv (Lightning's CSVLogger)
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from groundsynth.request.errors import FailedPrecondition, InvalidArgument

PRECISIONS = ("auto", "32-true", "16-mixed", "bf16-mixed")
ACCELERATORS = {"auto": "auto", "cpu": "cpu", "cuda": "gpu", "mps": "mps"}


def lightning(with_torchgeo: bool = False):
    """The lightning.pytorch module (and torchgeo importable), or a clear error naming the extra to install."""
    try:
        import lightning.pytorch as pl

        if with_torchgeo:
            import torchgeo.trainers  # noqa: F401
    except ImportError as exc:
        raise FailedPrecondition(f"the trainers need Lightning and TorchGeo: pip install \"groundsynth[torchgeo]\" "
                                 f"({exc})", "train") from None
    return pl


def resolve_precision(precision: str, accelerator: str) -> str:
    if precision not in PRECISIONS:
        raise InvalidArgument(f"expected one of {', '.join(PRECISIONS)}, got {precision!r}", "--precision")
    import torch

    gpu = accelerator == "gpu" or (accelerator == "auto" and torch.cuda.is_available())
    if precision == "auto":
        if not gpu:
            return "32-true"
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    if precision != "32-true" and not gpu:
        raise InvalidArgument(f"{precision} needs a GPU (CUDA); use 32-true on the CPU", "--precision")
    return precision


def resume_path(out: Path, resume: str | None) -> str | None:
    if not resume:
        return None
    path = out / "checkpoints" / "last.ckpt" if resume == "last" else Path(resume)
    if not path.is_file():
        raise InvalidArgument(f"no checkpoint to resume from at {path.absolute()}", "--resume")
    return str(path)


def make_trainer(out: Path, name: str, device: str, devices: int, precision: str, epochs: int, max_steps: int,
                 monitor: str | None = None, patience: int = 0, callbacks: list[Any] | None = None,
                 seed: int = 0) -> tuple[Any, Any]:
    """(lightning Trainer, its ModelCheckpoint callback)."""
    pl = lightning()
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    if device not in ACCELERATORS:
        raise InvalidArgument(f"expected one of {', '.join(ACCELERATORS)}, got {device!r}", "--device")
    if devices < 1:
        raise InvalidArgument(f"expected at least 1 device, got {devices}", "--devices")
    accelerator = ACCELERATORS[device]
    # Lightning's info lines (GPU available ..., a cloud-logger tip) are replaced by the trainers' own summary
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    pl.seed_everything(seed, workers=True, verbose=False)
    ckpt = ModelCheckpoint(dirpath=out / "checkpoints", filename="best", monitor=monitor, mode="max",
                           save_last=True, save_top_k=1 if monitor else 0, enable_version_counter=False)
    cbs: list[Any] = [ckpt, *(callbacks or [])]
    if monitor and patience:
        cbs.append(EarlyStopping(monitor=monitor, mode="max", patience=patience, check_on_train_epoch_end=False))
    trainer = pl.Trainer(
        default_root_dir=str(out), accelerator=accelerator, devices=devices,
        strategy="ddp" if devices > 1 else "auto", precision=resolve_precision(precision, accelerator),
        max_epochs=epochs, max_steps=max_steps if max_steps > 0 else -1, callbacks=cbs,
        logger=CSVLogger(str(out / "logs"), name=name), num_sanity_val_steps=0, enable_progress_bar=False,
        enable_model_summary=False, deterministic=False, log_every_n_steps=1)
    return trainer, ckpt
