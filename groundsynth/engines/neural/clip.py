"""ground/clip: CLIPScore of captions and real-vs-synthetic separability.

CLIPScore = 100 * max(cos(image, caption), 0) (the original work's 0-100 scale),
averaged over a tile's captions ("clipscore") and its best caption
("clipscore_max"). RGB-NIR tiles are scored on bands 1-3 of the job-stretched
image (the stretch the report uses), resized and normalised with the model's
own preprocessing constants.

Weights (all local, nothing downloaded):
- a file (.pt/.pth/.bin/.safetensors) in OpenAI format (TorchScript archive or
  state dict; the architecture is read from the weights) when `model` is empty;
- a file holding an open_clip checkpoint when `model` names its open_clip
  architecture (e.g. "ViT-B-32"): this covers RemoteCLIP, GeoRSCLIP, SkyCLIP;
- a directory with open_clip_config.json (open_clip's hub format, loaded as
  "local-dir:"), or a transformers CLIPModel directory (config.json);
- a hub id already in the local Hugging Face cache.

With `with_composition` (default) the built-in ground/composition metrics
(claim score "grounding", fidelity_miou, redundancy, composition shift) are
computed too and merged, so reports keep their headline numbers.

summarise() adds the silhouette score of real vs synthetic image embeddings
(cosine geometry, computed in numpy) and the CLIPScore means per kind.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from groundsynth.engines import register
from groundsynth.engines.base import Grounder, GroundInput, Param
from groundsynth.engines.neural.common import DEVICE_PARAM
from groundsynth.request.errors import FailedPrecondition

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")


def clipscore(cos: np.ndarray | float) -> np.ndarray | float:
    """The original work's CLIPScore: 100 * max(cos, 0)."""
    return 100.0 * np.maximum(cos, 0.0)


def silhouette(x: np.ndarray, labels: Sequence[Any], max_samples: int | None = None, seed: int = 0) -> float:
    """Mean silhouette coefficient of `x` (n, d) under `labels`, Euclidean distance
    (same definition as sklearn.metrics.silhouette_score, singletons score 0). NaN if
    fewer than two labels or as many labels as samples. With `max_samples`, a random
    subset of that size (fixed `seed`) is scored, like sklearn's `sample_size`."""
    x = np.asarray(x, dtype=np.float64)
    lab = np.asarray(labels)
    if max_samples is not None and len(x) > max_samples:
        keep = np.sort(np.random.default_rng(seed).choice(len(x), max_samples, replace=False))
        x, lab = x[keep], lab[keep]
    uniq, inv = np.unique(lab, return_inverse=True)
    n, k = len(x), len(uniq)
    if k < 2 or k >= n:
        return float("nan")
    sq = (x * x).sum(1)
    d = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0.0))
    np.fill_diagonal(d, 0.0)
    onehot = np.eye(k)[inv]                       # (n, k)
    sums = d @ onehot                             # distance sums from each sample to each cluster
    counts = onehot.sum(0)
    own = counts[inv]
    a = sums[np.arange(n), inv] / np.maximum(own - 1, 1)
    means = sums / counts
    means[np.arange(n), inv] = np.inf
    b = means.min(1)
    denom = np.maximum(a, b)
    s = np.where((own > 1) & (denom > 0), (b - a) / np.where(denom > 0, denom, 1), 0.0)
    return float(s.mean())


class ClipEncoder:
    """One loaded CLIP (open_clip or transformers) with a common interface."""

    def __init__(self, model, tokenize, size: tuple[int, int], mean, std, kind: str):
        import torch

        self.model, self.tokenize, self.size, self.kind = model, tokenize, size, kind
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        p = next(model.parameters())
        self.device, self.dtype = p.device, p.dtype

    def preprocess(self, images: Sequence[np.ndarray]):
        """(C, H, W) float [0, 1] -> normalised (N, 3, h, w): bands 1-3, bicubic resize."""
        import torch
        import torch.nn.functional as F

        resized = []
        for im in images:
            t = torch.from_numpy(np.nan_to_num(np.asarray(im, np.float32)[:3]))[None]
            if t.shape[1] != 3:
                raise FailedPrecondition(f"CLIP needs 3 colour bands, got {t.shape[1]}", "image")
            if tuple(t.shape[-2:]) != tuple(self.size):
                t = F.interpolate(t, size=self.size, mode="bicubic", align_corners=False, antialias=True)
            resized.append(t.clamp(0, 1))
        x = torch.cat(resized)
        return ((x - self.mean) / self.std).to(self.device, self.dtype)

    def encode_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            x = self.preprocess(images)
            if self.kind == "hf":
                f = self.model.get_image_features(pixel_values=x)
                f = getattr(f, "pooler_output", f)
            else:
                f = self.model.encode_image(x)
            f = torch.nn.functional.normalize(f.float(), dim=-1)
        return f.cpu().numpy()

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            if self.kind == "hf":
                tok = self.tokenize(list(texts), padding=True, truncation=True, return_tensors="pt")
                f = self.model.get_text_features(**{k: v.to(self.device) for k, v in tok.items()})
                f = getattr(f, "pooler_output", f)
            else:
                f = self.model.encode_text(self.tokenize(list(texts)).to(self.device))
            f = torch.nn.functional.normalize(f.float(), dim=-1)
        return f.cpu().numpy()


def _size2(size) -> tuple[int, int]:
    if isinstance(size, (list, tuple)):
        return (int(size[0]), int(size[-1]))
    return (int(size), int(size))


def _open_clip_encoder(model, tokenizer) -> ClipEncoder:
    import open_clip

    cfg = open_clip.get_model_preprocess_cfg(model)
    mean = cfg.get("mean") or open_clip.OPENAI_DATASET_MEAN
    std = cfg.get("std") or open_clip.OPENAI_DATASET_STD
    return ClipEncoder(model.eval(), tokenizer, _size2(cfg.get("size") or model.visual.image_size), mean, std,
                       "open_clip")


def load_clip(path: Path, arch: str, device: str, dtype_name: str) -> ClipEncoder:
    from groundsynth.models.weights import load_or_fail, missing_reason

    need = ("an OpenAI-format .pt, an open_clip checkpoint (+ model name), a directory with "
            "open_clip_config.json, or a transformers CLIP directory")
    if not path.exists():
        raise FailedPrecondition(missing_reason(path, need), "weights")

    def _load() -> ClipEncoder:
        import torch

        dtype = getattr(torch, dtype_name)
        if path.is_file():
            import open_clip

            if path.suffix not in CHECKPOINT_SUFFIXES:
                raise ValueError(f"unknown checkpoint type {path.suffix!r}; expected one of {CHECKPOINT_SUFFIXES}")
            if arch:
                model = open_clip.create_model(arch, pretrained=str(path), device="cpu", load_weights=True)
                tokenizer = open_clip.get_tokenizer(arch)
            else:
                import warnings

                with warnings.catch_warnings():   # torch.jit.load deprecation (OpenAI archives are TorchScript)
                    warnings.simplefilter("ignore")
                    model = open_clip.load_openai_model(str(path), precision="fp32", device="cpu")
                tokenizer = open_clip.tokenize
        elif (path / "open_clip_config.json").is_file():
            import open_clip

            model = open_clip.create_model(f"local-dir:{path}", device="cpu")
            if not open_clip.factory._find_checkpoint_in_dir(path):
                raise FileNotFoundError(f"no weight file (.safetensors/.bin/.pth) in {path}")
            tokenizer = open_clip.get_tokenizer(f"local-dir:{path}")
        elif (path / "config.json").is_file():
            from transformers import AutoTokenizer, CLIPModel

            model = CLIPModel.from_pretrained(str(path), local_files_only=True)  # nosec B615 # local files only (local_files_only=True): nothing is downloaded
            tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)  # nosec B615 # local files only (local_files_only=True): nothing is downloaded
            mean, std, size = _hf_preprocess(path, model)
            model.eval().to(device=device, dtype=dtype)
            return ClipEncoder(model, tokenizer, size, mean, std, "hf")
        else:
            raise FileNotFoundError(f"{path} has neither open_clip_config.json nor config.json")
        model.to(device=device, dtype=dtype)
        return _open_clip_encoder(model, tokenizer)

    return load_or_fail(path, "CLIP", _load)


def _hf_preprocess(path: Path, model):
    import json

    mean, std = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
    size = model.config.vision_config.image_size
    pre = path / "preprocessor_config.json"
    if pre.is_file():
        d = json.loads(pre.read_text())
        mean, std = d.get("image_mean", mean), d.get("image_std", std)
    return mean, std, _size2(size)


@register
class ClipGrounder(Grounder):
    name = "clip"
    num_gpus = 0.25             # Ray actor share of a GPU when run on one: a CLIP ViT-B fits four to a GPU
    memory_mb = 1536
    description = ("CLIPScore (100 * max(cos, 0)) of each caption against its tile with a local CLIP "
                   "(OpenAI .pt, open_clip checkpoint or Hugging Face directory), plus real-vs-synthetic "
                   "separability (silhouette of image embeddings).")
    params = (
        Param("weights", "path", "", "CLIP weights: OpenAI .pt, open_clip checkpoint file (set model), "
                                     "open_clip or transformers directory, or a cached hub id; "
                                     "empty = <models dir>/clip"),
        Param("model", "str", "", "open_clip architecture of a checkpoint file (e.g. ViT-B-32); empty = read "
                                  "the architecture from an OpenAI-format file"),
        DEVICE_PARAM,
        Param("batch_size", "int", 32, "Images per forward pass", min=1, max=1024),
        Param("precision", "choice", "auto", "auto = fp16 on GPU, fp32 on CPU", choices=("auto", "fp32", "fp16")),
        Param("with_composition", "bool", True, "Also run ground/composition (caption claim score 'grounding', "
                                                "fidelity_miou, redundancy, composition shift) and merge its metrics"),
        Param("silhouette_samples", "int", 4000, "Tiles scored for real-vs-synthetic separability (a random "
                                                 "subset when there are more)", min=10, max=100000),
        Param("reference_segmenter", "str", "spectral", "Segment engine ground/composition re-segments images "
                                                        "with (when with_composition is on)"),
    )

    @classmethod
    def check_job(cls, spec) -> None:
        from groundsynth.engines.builtin.composition_ground import check_reference_segmenter

        check_reference_segmenter(cls.job_params(spec)["reference_segmenter"])

    def __init__(self, params=None, ctx=None):
        super().__init__(params, ctx)
        self._embeddings: dict[str, tuple[str, np.ndarray]] = {}
        self._composition = None
        self.composition_note = ""
        if self.p["with_composition"]:
            from groundsynth.engines.builtin.composition_ground import CompositionGrounder
            from groundsynth.request.errors import GroundSynthError

            try:
                comp = CompositionGrounder({"reference_segmenter": self.p["reference_segmenter"]}, self.ctx)
                comp.reference()          # its reference segmenter must exist and load
                self._composition = comp
            except GroundSynthError as exc:   # e.g. the reference segmenter is not installed
                self.composition_note = f"per-tile composition metrics skipped: {exc.message}"
        self._encoder()   # load (or reuse) now: missing/corrupt weights fail before any tile runs

    @classmethod
    def availability(cls, models_dir: str | None = None) -> tuple[bool, str]:
        from groundsynth.models.weights import default_weights_path, missing_reason

        path = default_weights_path(cls.name, models_dir)
        if path.is_dir() and ((path / "open_clip_config.json").is_file() or (path / "config.json").is_file()):
            return True, ""
        for suffix in CHECKPOINT_SUFFIXES:
            if path.with_suffix(suffix).is_file():
                return True, ""
        return False, missing_reason(path, "a directory with open_clip_config.json or config.json, or "
                                           f"{path}.pt in OpenAI format")

    def _encoder(self) -> ClipEncoder:
        from groundsynth.models.cache import load_shared
        from groundsynth.models.weights import weights_location

        path = weights_location(self.p["weights"], self.name, self.ctx)
        if not self.p["weights"] and not path.exists():
            for suffix in CHECKPOINT_SUFFIXES:   # default location may be a single file clip.pt
                if path.with_suffix(suffix).is_file():
                    path = path.with_suffix(suffix)
                    break
        return load_shared(self, load_clip, self.p["model"].strip(), path=path)[0]

    def embed_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        enc = self._encoder()
        bs = self.p["batch_size"]
        return np.concatenate([enc.encode_images(images[i:i + bs]) for i in range(0, len(images), bs)]) \
            if len(images) else np.zeros((0, 0), np.float32)

    def ground(self, items: Sequence[GroundInput]) -> list[dict[str, float]]:
        if not items:
            return []
        enc = self._encoder()
        img = self.embed_images([it.image for it in items])
        texts = [c for it in items for c in it.captions]
        bs = self.p["batch_size"]
        txt = np.concatenate([enc.encode_texts(texts[i:i + bs]) for i in range(0, len(texts), bs)]) \
            if texts else np.zeros((0, img.shape[1]), np.float32)
        base = self._composition.ground(items) if self._composition is not None else [{} for _ in items]
        out, k = [], 0
        for it, e, extra in zip(items, img, base, strict=True):
            self._embeddings[it.tile_id] = (it.kind, e)
            n = len(it.captions)
            scores = np.asarray(clipscore(txt[k:k + n] @ e))
            k += n
            res = dict(extra)
            if n:
                res.update(clipscore=float(scores.mean()), clipscore_max=float(scores.max()),
                           clipscore_min=float(scores.min()))
            out.append(res)
        return out

    def _embed_missing(self, records: Sequence[Any]) -> None:
        """Embeddings of the grounded tiles this process did not ground itself (with several workers each
        grounded a share of the tiles), from their image files in the job folder (ctx.extra["job_dir"])."""
        job_dir = (self.ctx.extra or {}).get("job_dir")
        todo = [r for r in records if r.tile_id not in self._embeddings and "clipscore" in r.metrics
                and not r.nodata and r.artefacts.get("image")]
        if not job_dir or not todo:
            return
        from groundsynth.artefacts.tiles import read_image_tile

        for i in range(0, len(todo), self.p["batch_size"]):
            part = todo[i:i + self.p["batch_size"]]
            emb = self.embed_images([read_image_tile(Path(job_dir) / r.artefacts["image"])[0] for r in part])
            for r, e in zip(part, emb, strict=True):
                self._embeddings[r.tile_id] = (r.kind, e)

    def summarise(self, records: Sequence[Any]) -> dict[str, Any]:
        summary: dict[str, Any] = {}
        if self.p["with_composition"]:
            from groundsynth.engines.builtin.composition_ground import summarise_records

            summary.update(summarise_records(records))   # redundancy, composition shift: no model needed
            if self.composition_note:
                summary["composition_note"] = self.composition_note
        for kind in ("real", "synthetic", None):
            vals = [r.metrics["clipscore"] for r in records
                    if "clipscore" in r.metrics and (kind is None or r.kind == kind)]
            if vals:
                summary["clipscore_mean" + (f"_{kind}" if kind else "")] = float(np.mean(vals))
        self._embed_missing(records)
        ids = [r.tile_id for r in records if r.tile_id in self._embeddings]
        if ids:
            kinds = [self._embeddings[i][0] for i in ids]
            emb = np.stack([self._embeddings[i][1] for i in ids])
            sil = silhouette(emb, kinds, max_samples=self.p["silhouette_samples"], seed=self.ctx.seed)
            if np.isfinite(sil):
                summary["separability_silhouette"] = sil
        return summary
