"""Tiny, randomly initialised models and datasets for the neural-engine tests.

Everything is built offline from configs and saved to a temporary directory in
the formats users bring (HF directories, OpenAI .pt, open_clip checkpoints,
SPADE checkpoint directories), so the engines run through their real load path.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from groundsynth.request.classes import CLASS_NAMES

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
    from groundsynth.engines.base import TileInput

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


def tiny_tokenizer(add_eos: bool = True):
    """A word-level fast tokenizer built offline (ids: 0 pad, 1 unk, 2 bos, 3 eos).
    add_eos: append [EOS] to every text (CLIP pools there); generation prompts must not end with it."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(SPECIALS)}
    for w in list(WORDS) + [str(d) for d in range(10)] + ["%", ".", ",", ":", "-", "(", ")"] + \
            [c.lower() for c in CLASS_NAMES]:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.Digits(True)])
    tok.post_processor = processors.TemplateProcessing(single="[BOS] $A" + (" [EOS]" if add_eos else ""),
                                                       special_tokens=[("[BOS]", 2), ("[EOS]", 3)])
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


# ------------------------------------------------------------------ export-layout dataset
# A per-class R, G, B, NIR signature (0..255): images are learnable from masks and vice versa.
SIGNATURE = np.array([[30, 80, 30, 200], [200, 150, 160, 150], [150, 200, 60, 180], [230, 200, 40, 160],
                      [140, 70, 20, 90], [210, 210, 210, 120], [10, 20, 220, 10]], dtype=np.float32)


def _tile(rng, size):
    mask = np.full((size, size), rng.integers(0, 7), np.uint8)
    for _ in range(rng.integers(1, 4)):
        y0, x0 = rng.integers(0, size - 8, 2)
        h, w = rng.integers(8, size // 2 + 8, 2)
        mask[y0:y0 + h, x0:x0 + w] = rng.integers(0, 7)
    image = SIGNATURE[mask].transpose(2, 0, 1) + rng.normal(0, 12, (4, size, size))
    return np.clip(image, 0, 255).astype(np.uint8), mask


def tiny_export(dest: Path, size: int = 32, n_train: int = 8, n_val: int = 3, n_test: int = 3,
                n_synthetic: int = 4, seed: int = 0) -> Path:
    """A dataset in the export layout: images/ masks/ PNGs, geotiff/ RGB-NIR, dataset.csv."""
    import rasterio
    from PIL import Image
    from rasterio.transform import from_origin

    rng = np.random.default_rng(seed)
    for sub in ("images", "masks", "geotiff/images", "geotiff/masks"):
        (dest / sub).mkdir(parents=True, exist_ok=True)
    rows = []
    ids = [(f"r{i:04d}_c0000", split) for i, split in
           enumerate(["train"] * n_train + ["val"] * n_val + ["test"] * n_test)]
    ids += [(f"r{i:04d}_c0000_v1", "train") for i in range(n_synthetic)]
    for tile_id, split in ids:
        image, mask = _tile(rng, size)
        if tile_id.endswith("_v1"):
            mask[:4, :4] = 255     # some nodata
        Image.fromarray(image[:3].transpose(1, 2, 0)).save(dest / "images" / f"{tile_id}.png")
        Image.fromarray(mask).save(dest / "masks" / f"{tile_id}.png")
        profile = dict(driver="GTiff", width=size, height=size, crs="EPSG:32618",
                       transform=from_origin(500000, 4000000, 10, 10))
        with rasterio.open(dest / "geotiff" / "images" / f"{tile_id}.tif", "w", count=4, dtype="uint8",
                           **profile) as dst:
            dst.write(image)
        with rasterio.open(dest / "geotiff" / "masks" / f"{tile_id}.tif", "w", count=1, dtype="uint8", nodata=255,
                           **profile) as dst:
            dst.write(mask[None])
        comp = np.bincount(mask[mask != 255].ravel(), minlength=7)[:7]
        pct = np.round(100 * comp / max(comp.sum(), 1)).astype(int)
        rows.append([f"{tile_id}.png", split, *pct, *[f"caption {k} of {tile_id}" for k in range(1, 6)]])
    header = ["filename", "split", *CLASS_NAMES, *[f"caption_{k}" for k in range(1, 6)]]
    import csv

    with open(dest / "dataset.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([header, *rows])
    return dest


TINY_SEGFORMER_CONFIG = dict(num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[8, 16],
                             patch_sizes=[7, 3], strides=[4, 2], num_attention_heads=[1, 1], mlp_ratios=[2, 2],
                             decoder_hidden_size=16)


# ------------------------------------------------------------------ captioning models

# What the tiny captioners are taught to say: land-cover words with percentages (label leakage), so
# forbid_percentages has something to forbid.
CORPUS = ("the satellite image shows crop fields 40 % and trees 30 % near the river",
          "farmland 55 % with some water 20 % and small village 5 %",
          "the area is mostly forest 70 % with grass 20 % and roads",
          "green fields 35 % along the coastal lake 25 % and buildings 10 %")


def _teach(model, tok, steps: int = 40, pixel_values=None) -> None:
    """A few Adam steps on CORPUS so greedy decoding produces words (and digits), not [EOS] at once."""
    import torch

    batch = tok([c + " [EOS]" for c in CORPUS], return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        if pixel_values is None:
            loss = model(**batch, labels=labels).loss
        else:
            loss = model(pixel_values=pixel_values, labels=labels[:, 1:],
                         decoder_attention_mask=batch["attention_mask"][:, 1:]).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


def tiny_causal_lm(dest: Path, seed: int = 0) -> Path:
    """A tiny GPT-2 with the offline tokenizer (the 'text' mode model), taught CORPUS."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    tok = tiny_tokenizer(add_eos=False)
    cfg = GPT2Config(vocab_size=len(tok), n_positions=256, n_embd=32, n_layer=1, n_head=2,
                     bos_token_id=2, eos_token_id=3, pad_token_id=0)
    model = GPT2LMHeadModel(cfg)
    _teach(model, tok)
    model.save_pretrained(str(dest))
    tok.save_pretrained(str(dest))
    return dest


def tiny_vision_encoder_decoder(dest: Path, seed: int = 0, image_size: int = 32) -> Path:
    """A tiny ViT encoder + GPT-2 decoder captioner with its image processor and tokenizer."""
    import torch
    from transformers import (
        GPT2Config,
        VisionEncoderDecoderConfig,
        VisionEncoderDecoderModel,
        ViTConfig,
        ViTImageProcessor,
    )

    torch.manual_seed(seed)
    tok = tiny_tokenizer(add_eos=False)
    enc = ViTConfig(image_size=image_size, patch_size=16, hidden_size=32, num_hidden_layers=1,
                    num_attention_heads=2, intermediate_size=64)
    dec = GPT2Config(vocab_size=len(tok), n_positions=256, n_embd=32, n_layer=1, n_head=2, bos_token_id=2,
                     eos_token_id=3, pad_token_id=0, add_cross_attention=True, is_decoder=True)
    cfg = VisionEncoderDecoderConfig.from_encoder_decoder_configs(enc, dec)
    cfg.decoder_start_token_id, cfg.pad_token_id, cfg.eos_token_id = 2, 0, 3
    model = VisionEncoderDecoderModel(cfg)
    _teach(model, tok, pixel_values=torch.rand(len(CORPUS), 3, image_size, image_size))
    model.save_pretrained(str(dest))
    ViTImageProcessor(size={"height": image_size, "width": image_size}).save_pretrained(str(dest))
    tok.save_pretrained(str(dest))
    return dest


def tiny_spade(dest: Path, out_channels: int = 4, seed: int = 0) -> Path:
    """A tiny SPADE generator checkpoint directory (ngf 8) as the trainer writes it."""
    import torch

    from groundsynth.models.spade import PatchDiscriminator, SpadeConfig, SpadeGenerator, save_checkpoint

    torch.manual_seed(seed)
    cfg = SpadeConfig(out_channels=out_channels, ngf=8, ndf=8, z_dim=8, spade_hidden=16, tile_size=32)
    save_checkpoint(dest, SpadeGenerator(cfg), PatchDiscriminator(cfg))
    return dest


def random_masks(n: int, size: int = 32, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [_tile(rng, size)[1] for _ in range(n)]


LLAVA_TEMPLATE = ("{% for m in messages %}{% if m['content'] is string %}{{ m['content'] }}{% else %}"
                  "{% for c in m['content'] %}{% if c['type'] == 'image' %}<image> {% else %}{{ c['text'] }}"
                  "{% endif %}{% endfor %}{% endif %}{% endfor %}{% if add_generation_prompt %} :{% endif %}")


def tiny_llava(dest: Path, seed: int = 0) -> Path:
    """A tiny LLaVA (CLIP vision tower + Llama) with a processor and a chat template: the path real
    chat VLMs (LLaVA, Qwen-VL, SmolVLM...) take through AutoModelForImageTextToText + AutoProcessor."""
    import torch
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    torch.manual_seed(seed)
    tok = tiny_tokenizer(add_eos=False)
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    vision = CLIPVisionConfig(image_size=32, patch_size=16, hidden_size=32, intermediate_size=64,
                              num_hidden_layers=1, num_attention_heads=2, projection_dim=16)
    text = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                       num_attention_heads=2, num_key_value_heads=2, bos_token_id=2, eos_token_id=3, pad_token_id=0,
                       max_position_embeddings=512)
    cfg = LlavaConfig(vision_config=vision, text_config=text, image_token_index=tok.convert_tokens_to_ids("<image>"),
                      vision_feature_layer=-1)
    LlavaForConditionalGeneration(cfg).save_pretrained(str(dest))
    LlavaProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
                   tokenizer=tok, patch_size=16, vision_feature_select_strategy="default",
                   chat_template=LLAVA_TEMPLATE, num_additional_image_tokens=1).save_pretrained(str(dest))
    return dest


def tiny_blip(dest: Path, seed: int = 0) -> Path:
    """A tiny BLIP captioner (processor without a chat template; the prompt is a text prefix)."""
    import torch
    from transformers import BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    torch.manual_seed(seed)
    tok = tiny_tokenizer(add_eos=True)       # like BERT's [SEP], which BLIP drops from the prompt
    cfg = BlipConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, encoder_hidden_size=32, bos_token_id=2, eos_token_id=3,
                         pad_token_id=0, sep_token_id=3, max_position_embeddings=256),
        vision_config=dict(image_size=32, patch_size=16, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=2),
        projection_dim=16)
    BlipForConditionalGeneration(cfg).save_pretrained(str(dest))
    BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}),
                  tokenizer=tok).save_pretrained(str(dest))
    return dest
