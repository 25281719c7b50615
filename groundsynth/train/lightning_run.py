"""What both Lightning trainers share: accelerator, devices (DDP), precision, checkpoints, resume, CSV logs.

    precision "auto": bf16-mixed on a GPU that supports bf16, else 16-mixed on a GPU; 32-true on CPU/MPS
    devices N > 1:    DDP (strategy "ddp"; gloo on CPU, NCCL on GPUs), one process per device
    checkpoints:      OUT/checkpoints/last.ckpt at the end of every epoch, whatever the metric did (its own
                      ModelCheckpoint: Lightning 2.6's save_last only rewrites last.ckpt in an epoch that also
                      saved a top-k checkpoint), + best.ckpt when a metric is watched
    resume:           "last" = OUT/checkpoints/last.ckpt, or a checkpoint path; training continues with the
                      epoch after the last completed one, with the same data order (epoch_shuffle) and global
                      RNG state (RngState: dropout, drop path) as a run that was never interrupted
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


class Checkpoints:
    """The trainers' two ModelCheckpoint callbacks: `last` (every epoch) and `best` (None without a metric)."""

    def __init__(self, last: Any, best: Any | None) -> None:
        self.last, self.best = last, best

    @property
    def last_model_path(self) -> str:
        return str(self.last.best_model_path)      # the "last" callback keeps one file: the latest epoch's

    @property
    def best_model_path(self) -> str:
        return str(self.best.best_model_path) if self.best else ""


def checkpoint_callbacks(dirpath: Path, monitor: str | None) -> Checkpoints:
    """best.ckpt (when a metric is watched) and last.ckpt, which is rewritten at the end of every epoch.
    Order matters: `best` saves first, so last.ckpt carries the best callback's updated state."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    best = ModelCheckpoint(dirpath=dirpath, filename="best", monitor=monitor, mode="max", save_top_k=1,
                           enable_version_counter=False) if monitor else None
    last = ModelCheckpoint(dirpath=dirpath, filename="last", monitor=None, save_top_k=1, every_n_epochs=1,
                           enable_version_counter=False)
    return Checkpoints(last, best)


def rng_state_callback():
    """Saves torch's global RNG states (CPU, CUDA) in every checkpoint and restores them on resume, so that
    dropout / drop path continue as in an uninterrupted run (Lightning does not checkpoint them)."""
    import torch
    from lightning.pytorch.callbacks import Callback

    class RngState(Callback):
        @property
        def state_key(self) -> str:
            return "RngState"

        def state_dict(self) -> dict[str, Any]:
            cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
            return {"torch": torch.get_rng_state(), "torch.cuda": cuda}

        def load_state_dict(self, state_dict: dict[str, Any]) -> None:
            torch.set_rng_state(state_dict["torch"])
            cuda = state_dict.get("torch.cuda") or []
            if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(cuda)

    return RngState()


def epoch_shuffle(n: int, seed: int):
    """A sampler whose order depends only on (seed, epoch): Lightning calls set_epoch before every epoch (also
    through DDP's DistributedSamplerWrapper), so a resumed run sees the same batches as an uninterrupted one
    (a RandomSampler with a seeded generator would start its sequence again on resume)."""
    import torch
    from torch.utils.data import Sampler

    class EpochShuffle(Sampler[int]):
        def __init__(self) -> None:
            self.epoch = 0

        def set_epoch(self, epoch: int) -> None:
            self.epoch = epoch

        def __len__(self) -> int:
            return n

        def __iter__(self):
            gen = torch.Generator().manual_seed(seed * 1_000_003 + self.epoch)
            return iter(torch.randperm(n, generator=gen).tolist())

    return EpochShuffle()


def make_trainer(out: Path, name: str, device: str, devices: int, precision: str, epochs: int, max_steps: int,
                 monitor: str | None = None, patience: int = 0, callbacks: list[Any] | None = None,
                 seed: int = 0) -> tuple[Any, Checkpoints]:
    """(lightning Trainer, its checkpoint callbacks). Seeds everything: build the model after this call."""
    pl = lightning()
    from lightning.pytorch.callbacks import EarlyStopping
    from lightning.pytorch.loggers import CSVLogger

    if device not in ACCELERATORS:
        raise InvalidArgument(f"expected one of {', '.join(ACCELERATORS)}, got {device!r}", "--device")
    if devices < 1:
        raise InvalidArgument(f"expected at least 1 device, got {devices}", "--devices")
    accelerator = ACCELERATORS[device]
    # Lightning's info lines (GPU available ..., a cloud-logger tip) are replaced by the trainers' own summary
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    pl.seed_everything(seed, workers=True, verbose=False)
    ckpt = checkpoint_callbacks(out / "checkpoints", monitor)
    cbs: list[Any] = [*(callbacks or []), rng_state_callback(), *([ckpt.best] if ckpt.best else []), ckpt.last]
    if monitor and patience:
        cbs.append(EarlyStopping(monitor=monitor, mode="max", patience=patience, check_on_train_epoch_end=False))
    trainer = pl.Trainer(
        default_root_dir=str(out), accelerator=accelerator, devices=devices,
        strategy="ddp" if devices > 1 else "auto", precision=resolve_precision(precision, accelerator),
        max_epochs=epochs, max_steps=max_steps if max_steps > 0 else -1, callbacks=cbs,
        logger=CSVLogger(str(out / "logs"), name=name), num_sanity_val_steps=0, enable_progress_bar=False,
        enable_model_summary=False, deterministic=False, log_every_n_steps=1)
    return trainer, ckpt
