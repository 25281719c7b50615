"""Tiny, randomly initialised models and datasets for the neural-engine tests.

Everything is built offline from configs and saved to a temporary directory in
the formats users bring (HF directories, OpenAI .pt, open_clip checkpoints,
SPADE checkpoint directories), so the engines run through their real load path.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from backend.palette import CLASS_NAMES

WORDS = ("a an the of with and in on is are area areas land field fields crop crops farmland tree trees forest "
         "shrub shrubs grass grassland water river lake built-up buildings village town barren bare soil "
         "satellite image shows covered by mostly some small large green brown blue patches road roads "
         "near along coastal rural scene this").split()


def tiny_segformer(dest: Path, channels: int = 4, seed: int = 0) -> Path:
    import torch
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    torch.manual_seed(seed)
    cfg = SegformerConfig(num_channels=channels, num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1],
                          hidden_sizes=[8, 16], patch_sizes=[7, 3], strides=[4, 2], num_attention_heads=[1, 1],
                          mlp_ratios=[2, 2], decoder_hidden_size=16, num_labels=len(CLASS_NAMES),
                          id2label=dict(enumerate(CLASS_NAMES)), label2id={n: i for i, n in enumerate(CLASS_NAMES)})
    model = SegformerForSemanticSegmentation(cfg)
    model.save_pretrained(str(dest))
    return dest


def random_tiles(n: int, size: int = 32, channels: int = 4, seed: int = 0):
    from backend.engines.base import TileInput

    rng = np.random.default_rng(seed)
    tiles = []
    for i in range(n):
        img = rng.random((channels, size, size), dtype=np.float32)
        valid = np.ones((size, size), bool)
        valid[:2, :] = False
        tiles.append(TileInput(f"r0000_c{i:04d}", img, valid))
    return tiles


# ------------------------------------------------------------------ tokenizer
SPECIALS = ("[PAD]", "[UNK]", "[BOS]", "[EOS]")


def tiny_tokenizer():
    """A word-level fast tokenizer built offline (ids: 0 pad, 1 unk, 2 bos, 3 eos)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(SPECIALS)}
    for w in list(WORDS) + [str(d) for d in range(10)] + ["%", ".", ",", ":", "-", "(", ")"] + \
            [c.lower() for c in CLASS_NAMES]:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.Digits(True)])
    tok.post_processor = processors.TemplateProcessing(single="[BOS] $A [EOS]", special_tokens=[("[BOS]", 2), ("[EOS]", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   bos_token="[BOS]", eos_token="[EOS]")


# ------------------------------------------------------------------ CLIP
TINY_CLIP_CFG = {
    "embed_dim": 32,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 1},
}


def _tiny_open_clip(seed: int = 0):
    import torch
    from open_clip.model import CLIP

    torch.manual_seed(seed)
    return CLIP(**TINY_CLIP_CFG).eval()


def tiny_clip_openai(dest: Path, seed: int = 0) -> Path:
    """OpenAI-format state dict saved with torch.save (the architecture is read back from it)."""
    import torch

    torch.save(_tiny_open_clip(seed).state_dict(), dest)
    return dest


def tiny_clip_checkpoint(dest: Path, seed: int = 0, arch: str = "tiny-test-clip") -> tuple[Path, str]:
    """An open_clip training checkpoint ({'state_dict': {'module.*': ...}}) plus a registered architecture."""
    import open_clip
    import torch

    cfg_path = dest.parent / f"{arch}.json"
    cfg_path.write_text(json.dumps(TINY_CLIP_CFG))
    open_clip.add_model_config(cfg_path)
    sd = {f"module.{k}": v for k, v in _tiny_open_clip(seed).state_dict().items()}
    torch.save({"epoch": 1, "state_dict": sd}, dest)
    return dest, arch


def tiny_clip_local_dir(dest: Path, seed: int = 0) -> Path:
    """open_clip's hub layout: open_clip_config.json + open_clip_model.safetensors."""
    from safetensors.torch import save_file

    dest.mkdir(parents=True, exist_ok=True)
    (dest / "open_clip_config.json").write_text(json.dumps({
        "model_cfg": TINY_CLIP_CFG,
        "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]},
    }))
    sd = {k: v.contiguous() for k, v in _tiny_open_clip(seed).state_dict().items()}
    save_file(sd, str(dest / "open_clip_model.safetensors"))
    return dest


def tiny_clip_hf(dest: Path, seed: int = 0) -> Path:
    """A transformers CLIPModel directory with an offline tokenizer."""
    import torch
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(seed)
    tok = tiny_tokenizer()
    cfg = CLIPConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=64, pad_token_id=0, bos_token_id=2,
                         eos_token_id=3),
        vision_config=dict(image_size=32, patch_size=16, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=2),
        projection_dim=16)
    CLIPModel(cfg).save_pretrained(str(dest))
    tok.save_pretrained(str(dest))
    return dest
