"""Locating and validating weight directories of neural engines.

An engine's `weights` parameter is a local path (directory or file), a Hugging
Face repo id that is already in the local cache, or empty, meaning
`<models_dir>/<engine name>`. Nothing is ever downloaded. Missing or broken
weights raise FailedPrecondition naming the absolute path.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from groundsynth.request.errors import FailedPrecondition, GroundSynthError

T = TypeVar("T")

HF_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                   "pytorch_model.bin.index.json")


def default_models_dir(workspace: str | None = None) -> str:
    """$GROUNDSYNTH_MODELS if set, else <workspace>/models, else ./models."""
    import os

    env = os.environ.get("GROUNDSYNTH_MODELS")
    if env:
        return env
    return os.path.join(workspace, "models") if workspace else os.path.abspath("models")


def default_weights_path(engine_name: str, models_dir: str | None = None, workspace: str | None = None) -> Path:
    base = models_dir or default_models_dir(workspace)
    return Path(base, engine_name).absolute()


def weights_location(value: str, engine_name: str, ctx) -> Path:
    """Resolve the `weights` param of an engine (see module doc) to an absolute local path.

    A value that is not an existing path but looks like a hub repo id ("org/name")
    is looked up in the local Hugging Face cache only."""
    if not value:
        return default_weights_path(engine_name, getattr(ctx, "models_dir", None), getattr(ctx, "workspace", None))
    p = Path(os.path.expanduser(value))
    if p.exists() or p.is_absolute() or value.startswith("."):
        return p.absolute()
    cached = hf_cache_snapshot(value)
    return cached if cached is not None else p.absolute()


def hf_cache_snapshot(repo_id: str) -> Path | None:
    """The local snapshot directory of a hub repo already in the HF cache, else None (never downloads)."""
    if repo_id.count("/") != 1:
        return None
    cache_dir = os.environ.get("HF_HUB_CACHE") or (
        os.path.join(os.environ["HF_HOME"], "hub") if os.environ.get("HF_HOME") else None)
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, local_files_only=True, cache_dir=cache_dir))  # nosec B615 # local files only (local_files_only=True): nothing is downloaded
    except Exception:   # not cached / hub library missing: treat as a missing path
        return None


def missing_reason(path: Path, need: str) -> str:
    return f"weights not found at {path} (expected {need})"


def check_hf_dir(path: Path, extra: Iterable[str] = ()) -> tuple[bool, str]:
    """Is `path` a Hugging Face model directory (config.json + weights)?"""
    need = "config.json + model.safetensors or pytorch_model.bin"
    if not path.is_dir():
        return False, missing_reason(path, need)
    if not (path / "config.json").is_file():
        return False, missing_reason(path, need) + ": config.json is missing"
    if not any((path / f).is_file() for f in HF_WEIGHT_FILES):
        return False, missing_reason(path, need) + ": no weight file"
    for f in extra:
        if not (path / f).exists():
            return False, missing_reason(path, need) + f": {f} is missing"
    return True, ""


def require(ok_reason: tuple[bool, str]) -> None:
    ok, reason = ok_reason
    if not ok:
        raise FailedPrecondition(reason, "weights")


def load_or_fail(path: Path, what: str, loader: Callable[[], T]) -> T:
    """Run `loader`; turn any failure (corrupt file, wrong format, hub lookup) into
    FailedPrecondition naming the path, never a traceback."""
    try:
        return loader()
    except GroundSynthError:
        raise
    except Exception as exc:  # noqa: BLE001 - every loader error becomes a user-facing message
        detail = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise FailedPrecondition(f"could not load {what} weights at {path}: {type(exc).__name__}: {detail}",
                                 "weights") from None
