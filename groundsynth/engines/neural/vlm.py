"""caption/vlm: captions from a local vision-language model or text LLM (transformers).

The original work's three prompt modes:
- vision: the VLM sees the image and is asked for 1-2 sentences on land use
  and features;
- text: a causal LM sees only the tile's class composition (integer
  percentages of the classes present), no image;
- hybrid: the VLM sees the image plus that composition.
Greedy decoding (so each prompt gives one caption): the n captions of a tile
come from n differently worded prompts, as in the original. Generation is
batched across tiles and prompts.

forbid_percentages (default on) fights the original's label leakage: tokens
containing digits or "%" are banned during generation (bad_words_ids) and any
number/percentage left is removed from the text afterwards.

Weights: a local directory (or a hub id already in the local cache). vision
and hybrid load AutoModelForImageTextToText (LLaVA/Qwen-VL/SmolVLM/BLIP/...,
and VisionEncoderDecoder captioners, whose prompt becomes the decoder prefix)
with its AutoProcessor, or AutoImageProcessor + AutoTokenizer; text loads
AutoModelForCausalLM + AutoTokenizer. Chat templates are used when the
tokenizer/processor has one.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from groundsynth.engines import register
from groundsynth.engines.base import Captioner, Param
from groundsynth.engines.neural.common import DEVICE_PARAM, WeightsEngine
from groundsynth.request.classes import CLASS_NAMES, composition

VISION_PROMPTS = (
    "Describe the land use and the main features of this satellite image in one or two sentences.",
    "In one or two sentences, what land cover and land use does this satellite image show?",
    "Write a short caption (one or two sentences) describing this aerial scene: its land cover and notable "
    "features.",
    "Summarise in one or two sentences what this satellite tile shows: vegetation, water, fields, buildings.",
    "Briefly describe the landscape in this remote sensing image in one or two sentences.",
)
TEXT_PROMPTS = (
    "A satellite image tile has this land cover composition: {comp}. Describe the scene in one or two sentences.",
    "Land cover of a satellite image: {comp}. Write a one or two sentence caption of what the image shows.",
    "Using only this land cover breakdown of a satellite image ({comp}), describe the landscape in one or two "
    "sentences.",
    "The classes in this aerial scene are {comp}. Write a short, natural caption of the scene.",
    "Given the land cover shares {comp}, describe in one or two sentences what a satellite image of this area "
    "looks like.",
)
HYBRID_PROMPTS = (
    "This satellite image has the land cover composition {comp}. Describe the land use and features you see "
    "in one or two sentences.",
    "Land cover of this satellite image: {comp}. Write a one or two sentence caption of the image.",
    "Look at this satellite image; its land cover is {comp}. Describe the landscape in one or two sentences.",
    "The classes present in this aerial image are {comp}. Describe where and how they appear, in one or two "
    "sentences.",
    "Caption this remote sensing image in one or two sentences. For reference, its land cover is {comp}.",
)
PROMPTS = {"vision": VISION_PROMPTS, "text": TEXT_PROMPTS, "hybrid": HYBRID_PROMPTS}
VARIANT_SUFFIX = ("", " Be concise.", " Use plain language.", " Mention the dominant cover first.",
                  " Avoid repeating yourself.")

_NUMBER = re.compile(r"\s*[\(\[]?\s*(?:about |around |roughly |approximately |~)?\d+(?:[.,]\d+)?\s*"
                     r"(?:%|percent|per cent|pct)?[\)\]]?", re.IGNORECASE)
_PERCENT = re.compile(r"\s*%|\bpercent\b|\bper cent\b", re.IGNORECASE)


def composition_text(mask: np.ndarray) -> str:
    """'Tree 40%, Crop 35%, Water 25%': integer percentages of the classes present, largest first."""
    shares = composition(np.asarray(mask))
    pct = np.round(100 * shares).astype(int)
    items = sorted(((p, n) for p, n in zip(pct, CLASS_NAMES, strict=True) if p > 0), reverse=True)
    return ", ".join(f"{n} {p}%" for p, n in items) if items else "no valid land cover"


def prompts_for(mode: str, n: int, mask: np.ndarray | None) -> list[str]:
    pool = PROMPTS[mode]
    comp = composition_text(mask) if mask is not None and mode != "vision" else ""
    out = []
    for i in range(n):
        base = pool[i % len(pool)] + VARIANT_SUFFIX[(i // len(pool)) % len(VARIANT_SUFFIX)]
        out.append(base.format(comp=comp))
    return out


def strip_numbers(text: str) -> str:
    """Remove numbers and percentages (label leakage) and tidy the spacing."""
    text = _NUMBER.sub(" ", text)
    text = _PERCENT.sub(" ", text)
    text = re.sub(r"\s+([,.;:])", r"\1", text)
    text = re.sub(r"\(\s*\)", "", text)
    return re.sub(r"\s{2,}", " ", text).strip(" ,;:")


def clean_caption(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def to_pil(image: np.ndarray):
    from PIL import Image

    rgb = np.clip(np.nan_to_num(np.asarray(image, np.float32)[:3]) * 255 + 0.5, 0, 255).astype(np.uint8).transpose(1, 2, 0)
    return Image.fromarray(rgb)


class LoadedModel:
    """A generation model with what it needs to turn prompts (+ images) into text."""

    def __init__(self, model, tokenizer, processor, image_processor, kind: str):
        self.model, self.tokenizer, self.processor, self.image_processor = model, tokenizer, processor, image_processor
        self.kind = kind       # "causal", "encoder-decoder" (VisionEncoderDecoder) or "vlm"
        self._bad_words: list[list[int]] | None = None

    def bad_words(self) -> list[list[int]]:
        if self._bad_words is None:
            vocab = self.tokenizer.get_vocab()
            special = set(getattr(self.tokenizer, "all_special_ids", []) or [])
            self._bad_words = [[i] for tok, i in vocab.items()
                               if i not in special and (any(c.isdigit() for c in tok) or "%" in tok)]
        return self._bad_words


def _chat(template_owner, text: str, with_image: bool) -> str:
    content: Any = ([{"type": "image"}, {"type": "text", "text": text}] if with_image else text)
    messages = [{"role": "user", "content": content}]
    return template_owner.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def _has_chat_template(obj) -> bool:
    return bool(getattr(obj, "chat_template", None))


def load_vlm(path: Path, mode: str, device: str, dtype_name: str) -> LoadedModel:
    from groundsynth.models.weights import check_hf_dir, load_or_fail, require

    require(check_hf_dir(path))

    def _load() -> LoadedModel:
        import torch
        import transformers as tf

        dtype = getattr(torch, dtype_name)
        kw = dict(local_files_only=True)
        if mode == "text":
            tok = tf.AutoTokenizer.from_pretrained(str(path), **kw)  # nosec B615 # local files only (local_files_only=True): nothing is downloaded
            model = tf.AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype, **kw)  # nosec B615 # local files only (local_files_only=True): nothing is downloaded
            loaded = LoadedModel(model, tok, None, None, "causal")
        else:
            config = tf.AutoConfig.from_pretrained(str(path), **kw)  # nosec B615 # local files only (local_files_only=True): nothing is downloaded
            model = tf.AutoModelForImageTextToText.from_pretrained(str(path), dtype=dtype, **kw)  # nosec B615 # local files only (local_files_only=True): nothing is downloaded
            processor = None
            try:
                processor = tf.AutoProcessor.from_pretrained(str(path), **kw)  # nosec B615 # local files only (local_files_only=True): nothing is downloaded
            except Exception:   # noqa: BLE001 - fall back to image processor + tokenizer below
                processor = None
            tok = getattr(processor, "tokenizer", None)
            image_processor = getattr(processor, "image_processor", None)
            if tok is None or image_processor is None:
                tok = tok or tf.AutoTokenizer.from_pretrained(str(path), **kw)  # nosec B615 # local files only (local_files_only=True): nothing is downloaded
                image_processor = image_processor or tf.AutoImageProcessor.from_pretrained(str(path), **kw)  # nosec B615 # local files only (local_files_only=True): nothing is downloaded
                processor = None
            kind = "encoder-decoder" if config.model_type == "vision-encoder-decoder" else "vlm"
            loaded = LoadedModel(model, tok, processor, image_processor, kind)
        tok = loaded.tokenizer
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        tok.padding_side = "left"
        gc = getattr(loaded.model, "generation_config", None)
        if gc is not None and gc.pad_token_id is None:   # set here: some models (BLIP) pass it themselves
            gc.pad_token_id = tok.pad_token_id
        loaded.model.eval().to(device)
        return loaded

    return load_or_fail(path, f"{mode} captioning", _load)


@register
class VlmCaptioner(WeightsEngine, Captioner):
    name = "vlm"
    num_gpus = 1.0             # Ray actor share of a GPU when run on one: a VLM takes a whole GPU
    memory_mb = 16384
    description = ("Captions from a local vision-language model (vision/hybrid) or text LLM (text), "
                   "the original work's three prompt modes; greedy, batched, percentages forbidden by default.")
    params = (
        Param("weights", "path", "", "Local transformers model directory (or cached hub id); "
                                     "empty = <models dir>/vlm"),
        Param("mode", "choice", "vision", "vision: image only; text: composition only (causal LM); "
                                          "hybrid: image + composition", choices=("vision", "text", "hybrid")),
        Param("max_new_tokens", "int", 100, "Longest caption in tokens", min=1, max=1024),
        Param("n_captions", "int", 5, "Captions per tile (one per prompt wording)", min=1, max=20),
        Param("forbid_percentages", "bool", True, "Ban digits and % in the output (avoids label leakage)"),
        Param("batch_size", "int", 8, "Prompts per generate() call", min=1, max=512),
        DEVICE_PARAM,
        Param("precision", "choice", "auto", "auto = fp16 on GPU, fp32 on CPU", choices=("auto", "fp32", "fp16")),
    )

    def _model(self) -> LoadedModel:
        from groundsynth.models.cache import load_shared

        return load_shared(self, load_vlm, "text" if self.p["mode"] == "text" else "vision")[0]

    def caption(self, images: Sequence[np.ndarray], masks: Sequence[np.ndarray],
                seeds: Sequence[int]) -> list[list[str]]:
        if not len(images):
            return []
        mode, n = self.p["mode"], self.p["n_captions"]
        lm = self._model()
        jobs = []   # (tile index, prompt)
        for i, mask in enumerate(masks):
            for prompt in prompts_for(mode, n, mask):
                jobs.append((i, prompt))
        if lm.kind == "encoder-decoder":   # a decoder prefix is shared by a batch: group jobs by prompt
            groups: dict[str, list] = {}
            for job in jobs:
                groups.setdefault(job[1], []).append(job)
            job_groups = list(groups.values())
        else:
            job_groups = [jobs]
        texts: dict[tuple[int, str], str] = {}
        bs = self.p["batch_size"]
        for group in job_groups:
            for start in range(0, len(group), bs):
                chunk = group[start:start + bs]
                outs = self._generate(lm, [images[i] for i, _ in chunk], [p for _, p in chunk])
                texts.update(zip(chunk, outs, strict=True))
        result = []
        for i, mask in enumerate(masks):
            caps = [texts[(i, p)] for p in prompts_for(mode, n, mask)]
            if self.p["forbid_percentages"]:
                caps = [strip_numbers(c) for c in caps]
            result.append([clean_caption(c) for c in caps])
        return result

    def _generate(self, lm: LoadedModel, images: list, prompts: list[str]) -> list[str]:
        import torch

        model, tok = lm.model, lm.tokenizer
        p = next(model.parameters())
        gen: dict[str, Any] = dict(max_new_tokens=self.p["max_new_tokens"], do_sample=False, num_beams=1)
        if self.p["forbid_percentages"] and lm.bad_words():
            gen["bad_words_ids"] = lm.bad_words()
        if lm.kind == "causal":
            texts = [_chat(tok, pr, False) if _has_chat_template(tok) else pr for pr in prompts]
            inputs = tok(texts, return_tensors="pt", padding=True)
        elif lm.kind == "encoder-decoder":
            pixel = lm.image_processor([to_pil(im) for im in images], return_tensors="pt")["pixel_values"]
            prefix = tok([prompts[0]] * len(images), return_tensors="pt")
            inputs = {"pixel_values": pixel.to(p.dtype), "decoder_input_ids": prefix["input_ids"]}
        else:
            pil = [to_pil(im) for im in images]
            owner = lm.processor if lm.processor is not None and _has_chat_template(lm.processor) else None
            owner = owner or (tok if _has_chat_template(tok) else None)
            texts = [_chat(owner, pr, True) if owner is not None else pr for pr in prompts]
            if lm.processor is not None:
                inputs = dict(lm.processor(images=pil, text=texts, return_tensors="pt", padding=True))
            else:
                inputs = dict(tok(texts, return_tensors="pt", padding=True))
                inputs["pixel_values"] = lm.image_processor(pil, return_tensors="pt")["pixel_values"]
            if "pixel_values" in inputs:
                inputs["pixel_values"] = inputs["pixel_values"].to(p.dtype)
        inputs = {k: v.to(p.device) if hasattr(v, "to") else v for k, v in dict(inputs).items()}
        prompt_ids = inputs.get("decoder_input_ids", inputs.get("input_ids"))
        with torch.inference_mode():
            out = model.generate(**inputs, **gen)
        if prompt_ids is not None and out.shape[1] >= prompt_ids.shape[1] and \
                bool((out[:, :prompt_ids.shape[1]].cpu() == prompt_ids.cpu()).all()):
            out = out[:, prompt_ids.shape[1]:]          # decoder-only models echo the prompt ids
            prompt_ids = None
        texts = tok.batch_decode(out, skip_special_tokens=True)
        if prompt_ids is not None:                      # others (BLIP) echo an edited prompt: strip its text
            echoed = tok.batch_decode(prompt_ids, skip_special_tokens=True)
            texts = [t[len(e):] if e.strip() and t.startswith(e) else t for t, e in zip(texts, echoed, strict=True)]
        return [t.strip() for t in texts]
