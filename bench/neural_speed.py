"""Neural engine speed: tiles/s of segment/segformer, synthesise/spade, caption/vlm, ground/clip, and of a
full neural pipeline on the Sentinel-2 demo scene, on the CPU and on a GPU when there is one.

    .venv/bin/python bench/neural_speed.py [--devices cpu,cuda] [--tiles 8] [--tile-size 256]
                                           [--batch-size 8] [--models-dir DIR] [--pipeline-px 512]

Weights: engines whose weights exist under --models-dir (<dir>/segformer, <dir>/spade, <dir>/vlm,
<dir>/clip) are timed with them. The others get randomly initialised models of a realistic shape,
built offline into a temporary folder (speed does not depend on the weight values):
SegFormer-B0 (4 channels), SPADE at the original width (ngf 64: 1024 -> 64 channels), open_clip
ViT-B-32, and a small ViT-S/16 + 6-layer GPT-2 captioner forced to write --caption-tokens tokens
per caption (a real 4-8B VLM is far slower; pass its directory with --models-dir).
GPU runs use fp16 (precision "auto"). Numbers only: nothing is asserted.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WORDS = ("a the of with and in on is area land field fields crop farmland trees forest shrub grass water river "
         "lake buildings village town bare soil satellite image shows mostly some small large green patches "
         "road near coastal rural scene").split()


# ------------------------------------------------------------------ random models of realistic shape

def build_segformer(dest: Path) -> Path:
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    from groundsynth.request.classes import CLASS_NAMES
    from groundsynth.train.segmenter import B0

    SegformerForSemanticSegmentation(SegformerConfig(num_channels=4, num_labels=len(CLASS_NAMES), **B0)) \
        .save_pretrained(str(dest))
    return dest


def build_spade(dest: Path, ngf: int, tile: int) -> Path:
    from groundsynth.models.spade import SpadeConfig, SpadeGenerator, save_checkpoint

    save_checkpoint(dest, SpadeGenerator(SpadeConfig(out_channels=4, ngf=ngf, tile_size=tile)))
    return dest


def build_clip(dest: Path) -> Path:
    import json as _json

    import open_clip
    from open_clip.factory import get_model_config
    from safetensors.torch import save_file

    dest.mkdir(parents=True, exist_ok=True)
    model = open_clip.create_model("ViT-B-32", pretrained=None)
    (dest / "open_clip_config.json").write_text(_json.dumps({"model_cfg": get_model_config("ViT-B-32"),
                                                              "preprocess_cfg": {}}))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(dest / "open_clip_model.safetensors"))
    return dest


def build_captioner(dest: Path, tokens: int) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        GenerationConfig,
        GPT2Config,
        PreTrainedTokenizerFast,
        VisionEncoderDecoderConfig,
        VisionEncoderDecoderModel,
        ViTConfig,
        ViTImageProcessor,
    )

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[BOS]", "[EOS]", *WORDS])}
    raw = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]", pad_token="[PAD]", bos_token="[BOS]",
                                  eos_token="[EOS]")
    enc = ViTConfig(image_size=224, patch_size=16, hidden_size=384, num_hidden_layers=12, num_attention_heads=6,
                    intermediate_size=1536)
    dec = GPT2Config(vocab_size=len(vocab), n_positions=512, n_embd=384, n_layer=6, n_head=6, bos_token_id=2,
                     eos_token_id=3, pad_token_id=0, add_cross_attention=True, is_decoder=True)
    cfg = VisionEncoderDecoderConfig.from_encoder_decoder_configs(enc, dec)
    cfg.decoder_start_token_id, cfg.pad_token_id, cfg.eos_token_id = 2, 0, 3
    model = VisionEncoderDecoderModel(cfg)
    model.generation_config = GenerationConfig(decoder_start_token_id=2, pad_token_id=0, eos_token_id=3,
                                               min_new_tokens=tokens)
    model.save_pretrained(str(dest))
    ViTImageProcessor(size={"height": 224, "width": 224}).save_pretrained(str(dest))
    tok.save_pretrained(str(dest))
    return dest


# ------------------------------------------------------------------ timing

def timed(fn, repeat: int = 1) -> float:
    fn()                                    # warm-up (load, kernels, caches)
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def engine_rates(weights: dict[str, Path], device: str, args) -> dict[str, float]:
    from groundsynth.engines import get_engine
    from groundsynth.engines.base import EngineContext, GroundInput, TileInput

    rng = np.random.default_rng(0)
    n, s = args.tiles, args.tile_size
    images = [rng.random((4, s, s), dtype=np.float32) for _ in range(n)]
    valid = np.ones((s, s), bool)
    masks = [np.repeat(np.arange(7, dtype=np.uint8), -(-s // 7))[:s][None].repeat(s, 0) for _ in range(n)]
    ctx = EngineContext(device=device)
    common = {"device": device, "batch_size": str(args.batch_size)}
    out = {}

    seg = get_engine("segment", "segformer")({**common, "weights": str(weights["segformer"])}, ctx)
    tiles = [TileInput(f"t{i}", im, valid) for i, im in enumerate(images)]
    out["segment/segformer"] = n / timed(lambda: (seg.segment(tiles), sync(device)))

    syn = get_engine("synthesise", "spade")({**common, "weights": str(weights["spade"])}, ctx)
    out["synthesise/spade"] = n / timed(lambda: (syn.synthesise(masks, list(range(n))), sync(device)))

    cap = get_engine("caption", "vlm")({**common, "weights": str(weights["vlm"]), "mode": args.caption_mode,
                                        "max_new_tokens": str(args.caption_tokens)}, ctx)
    out[f"caption/vlm ({args.caption_mode}, 5 captions)"] = n / timed(
        lambda: (cap.caption(images, masks, list(range(n))), sync(device)))

    clip = get_engine("ground", "clip")({**common, "weights": str(weights["clip"]), "with_composition": "false"}, ctx)
    items = [GroundInput(f"t{i}", "real", im, valid, m, [f"caption {k} of a rural scene" for k in range(5)])
             for i, (im, m) in enumerate(zip(images, masks, strict=True))]
    out["ground/clip (5 captions)"] = n / timed(lambda: (clip.ground(items), sync(device)))
    return out


def pipeline_rate(weights: dict[str, Path], device: str, args, workspace: Path) -> tuple[float, int, dict]:
    import os

    import rasterio

    from groundsynth.demo.scene import demo_raster
    from groundsynth.pipeline.prepare import RunOptions, new_job_id
    from groundsynth.pipeline.runner import run_job
    from groundsynth.request.spec import Aoi, JobSpec, StageConfig, SynthesisOptions
    from groundsynth.service.journal import Journal

    # the pipeline checks each engine's default weights location: point it at the weights in use
    models = workspace / "models"
    models.mkdir(parents=True, exist_ok=True)
    for name, path in weights.items():
        if not (models / name).exists():
            (models / name).symlink_to(path.resolve(), target_is_directory=path.is_dir())
    os.environ["GROUNDSYNTH_MODELS"] = str(models)
    raster = demo_raster(workspace / "data")
    with rasterio.open(raster) as src:
        t = src.transform
        px = min(args.pipeline_px, src.width, src.height)
        bbox = (t.c, t.f + px * t.e, t.c + px * t.a, t.f)
    common = {"device": device, "batch_size": str(args.batch_size)}
    stages = [StageConfig("segment", "segformer", {**common, "weights": str(weights["segformer"])}),
              StageConfig("synthesise", "spade", {**common, "weights": str(weights["spade"])}),
              StageConfig("caption", "vlm", {**common, "weights": str(weights["vlm"]), "mode": args.caption_mode,
                                             "max_new_tokens": str(args.caption_tokens)}),
              StageConfig("ground", "clip", {**common, "weights": str(weights["clip"]),
                                             "reference_segmenter": "segformer"})]
    spec = JobSpec(aoi=Aoi(bbox=bbox), raster_path=str(raster), tile_size=args.tile_size, stages=stages,
                   synthesis=SynthesisOptions(variants=1), name="neural bench")
    journal = Journal(workspace / "journal.sqlite")
    counts = {"n": 0}

    def emit(event):
        if event.kind == "tile":
            counts["n"] += 1

    t0 = time.perf_counter()
    run_job(new_job_id(), spec, workspace, journal, emit, lambda: False,
            RunOptions(batch_size=args.batch_size, device=device))
    wall = time.perf_counter() - t0
    journal.close()
    return counts["n"] / wall, counts["n"], {"wall_s": wall}


def main() -> int:
    import torch

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_devices = "cpu,cuda" if torch.cuda.is_available() else "cpu"
    ap.add_argument("--devices", default=default_devices, help=f"comma-separated (default {default_devices})")
    ap.add_argument("--tiles", type=int, default=8)
    ap.add_argument("--tile-size", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--models-dir", type=Path, default=None, help="use real weights found here")
    ap.add_argument("--spade-ngf", type=int, default=64)
    ap.add_argument("--caption-mode", default="vision", choices=("vision", "hybrid", "text"))
    ap.add_argument("--caption-tokens", type=int, default=30)
    ap.add_argument("--pipeline-px", type=int, default=512, help="AOI edge in pixels for the pipeline run "
                                                                 "(0 = skip the pipeline)")
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="gs-neural-bench-") as tmp:
        tmp = Path(tmp)
        weights: dict[str, Path] = {}
        builders = {"segformer": lambda p: build_segformer(p),
                    "spade": lambda p: build_spade(p, args.spade_ngf, args.tile_size),
                    "vlm": lambda p: build_captioner(p, args.caption_tokens),
                    "clip": lambda p: build_clip(p)}
        for name, build in builders.items():
            real = args.models_dir / name if args.models_dir else None
            if real is not None and real.exists():
                weights[name] = real
                print(f"{name}: weights from {real}")
            else:
                weights[name] = build(tmp / "models" / name)
                print(f"{name}: random weights, realistic shape")
        results = {}
        for device in [d.strip() for d in args.devices.split(",") if d.strip()]:
            name = torch.cuda.get_device_name(0) if device.startswith("cuda") else f"{torch.get_num_threads()} CPU threads"
            print(f"\n== {device} ({name}), {args.tiles} tiles of {args.tile_size} px, batch {args.batch_size} ==")
            rates = engine_rates(weights, device, args)
            for k, v in rates.items():
                print(f"{k:<36}{v:10.2f} tiles/s")
            if args.pipeline_px:
                ws = tmp / f"ws-{device}"
                rate, n, info = pipeline_rate(weights, device, args, ws)
                rates["pipeline (all four neural engines)"] = rate
                print(f"{'pipeline (all four neural engines)':<36}{rate:10.2f} tiles/s "
                      f"({n} real + synthetic tiles in {info['wall_s']:.1f} s)")
            results[device] = rates
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
