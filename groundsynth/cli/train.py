"""`groundsynth train segmenter|generator --data DIR --out DIR`: train the neural engines with Lightning.

    segmenter   TorchGeo SemanticSegmentationTask (SegFormer by default), Dice loss, AdamW 1e-3,
                early stop on val macro-F1; prints per-class and macro F1 / IoU on the test split
                (or against --labels RASTER). --real-only (default), --with-synthetic or
                --synthetic-only picks the training rows; --compare trains all three arms over
                --seeds and prints macro F1 and mIoU with 95 % confidence intervals.
    generator   SPADE generator + PatchGAN, hinge + 10x perceptual loss, Adam 2e-4.

Both: --devices N (DDP), --precision auto (mixed precision on a GPU), checkpoints in
OUT/checkpoints (--resume last or a .ckpt), CSV logs in OUT/logs.

--data is a directory in the export layout (dataset.csv, images/, masks/,
optional geotiff/ for RGB-NIR). The output directory is what the
segment/segformer or synthesise/spade engine loads (copy it to
<models dir>/segformer or <models dir>/spade, or pass it as `weights`).
"""
from __future__ import annotations

import argparse

from groundsynth.request.errors import InvalidArgument


def _common(p: argparse.ArgumentParser, epochs: int, batch: int) -> None:
    p.add_argument("--data", required=True, help="dataset directory in the export layout")
    p.add_argument("--out", required=True, help="output directory for the trained weights")
    p.add_argument("--epochs", type=int, default=epochs, help=f"epochs (default {epochs})")
    p.add_argument("--batch-size", type=int, default=batch, help=f"batch size (default {batch})")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"),
                   help="auto = cuda, then mps, then cpu")
    p.add_argument("--max-steps", type=int, default=0, help="stop after N optimiser steps (0 = no limit)")
    p.add_argument("--channels", type=int, choices=(3, 4), default=None,
                   help="4 = RGB-NIR from geotiff/, 3 = RGB PNGs (default: 4 when geotiff/ exists)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the recipe's)")
    p.add_argument("--devices", type=int, default=1, help="devices (processes) to train on; > 1 uses DDP")
    p.add_argument("--precision", default="auto", choices=("auto", "32-true", "16-mixed", "bf16-mixed"),
                   help="auto = bf16/16-bit mixed precision on a GPU, 32-bit on the CPU")
    p.add_argument("--resume", help="resume from OUT/checkpoints/last.ckpt ('last') or a checkpoint path")


def register(sub) -> None:
    train = sub.add_parser("train", help="train the SegFormer segmenter or the SPADE generator",
                           description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = train.add_subparsers(dest="what", metavar="MODEL", required=True)

    seg = what.add_parser("segmenter", help="SegFormer on an exported dataset")
    _common(seg, 20, 24)
    arm = seg.add_mutually_exclusive_group()
    arm.add_argument("--real-only", action="store_const", const="real", dest="selection",
                     help="train on real tiles only (default)")
    arm.add_argument("--with-synthetic", action="store_const", const="real+synthetic", dest="selection",
                     help="train on real + synthetic tiles (val/test stay real)")
    arm.add_argument("--synthetic-only", action="store_const", const="synthetic", dest="selection",
                     help="train on synthetic tiles only (val/test stay real)")
    arm.add_argument("--compare", action="store_const", const="compare", dest="selection",
                     help="train real, real+synthetic and synthetic-only arms over --seeds into OUT/<arm>/seed<k> "
                          "and print macro F1 / mIoU with 95%% confidence intervals")
    seg.add_argument("--seeds", default="0,1,2", help="seeds of --compare (default 0,1,2)")
    seg.add_argument("--arch", default="hf-segformer",
                     help="hf-segformer (default; the segformer engine loads it) or a TorchGeo/smp model: unet, "
                          "deeplabv3+, fpn, upernet ... (no pretrained weights are downloaded)")
    seg.add_argument("--backbone", default="resnet18", help="smp encoder for a TorchGeo model (default resnet18)")
    seg.add_argument("--labels", help="label raster (ESA WorldCover codes) to evaluate against instead of the "
                                      "test masks")
    seg.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (default 0)")
    seg.add_argument("--patience", type=int, default=5, help="early-stop patience in epochs (default 5)")
    seg.add_argument("--model-config", help="JSON of SegformerConfig fields (default: the B0 shape)")
    seg.add_argument("--init", help="local SegFormer directory to start from (e.g. pretrained weights)")
    seg.add_argument("--no-augment", action="store_true", help="turn augmentation off")
    seg.set_defaults(func=run_segmenter, selection="real")

    g = what.add_parser("generator", help="SPADE generator on an exported dataset")
    _common(g, 20, 50)
    g.add_argument("--ngf", type=int, default=64, help="generator width (blocks 16*ngf -> ngf; default 64)")
    g.add_argument("--ndf", type=int, default=64, help="discriminator width (default 64)")
    g.add_argument("--z-dim", type=int, default=64, help="noise channels (default 64)")
    g.add_argument("--num-blocks", type=int, default=4, help="SPADE residual blocks (default 4)")
    g.add_argument("--spade-hidden", type=int, default=128, help="SPADE modulation width (default 128)")
    g.add_argument("--vgg19", help="local torchvision VGG19 state dict for the perceptual loss "
                                   "(default: discriminator feature matching)")
    g.set_defaults(func=run_generator)


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InvalidArgument(f"expected comma-separated integers like 0,1,2, got {text!r}", "--seeds") from None
    if not seeds:
        raise InvalidArgument("expected at least one seed", "--seeds")
    return seeds


def run_segmenter(args) -> int:
    from groundsynth.train.segmenter import SegmenterTrainConfig, train_segmenter

    cfg = SegmenterTrainConfig(
        data=args.data, out=args.out, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr if args.lr is not None else 1e-3, patience=args.patience, selection=args.selection,
        channels=args.channels, device=args.device, max_steps=args.max_steps, seed=args.seed,
        model_config=args.model_config, init=args.init, augment=not args.no_augment, arch=args.arch,
        backbone=args.backbone, devices=args.devices, precision=args.precision, resume=args.resume,
        labels=args.labels, workers=args.workers)
    if args.selection != "compare":
        train_segmenter(cfg)
        return 0
    from groundsynth.train.compare import compare

    if args.resume:
        raise InvalidArgument("--compare trains fresh runs; resume one arm with --real-only/--with-synthetic/"
                              "--synthetic-only --out OUT/<arm>/seed<k> --resume last", "--resume")
    compare(cfg, _seeds(args.seeds))
    return 0


def run_generator(args) -> int:
    from groundsynth.train.generator import GeneratorTrainConfig, train_generator

    train_generator(GeneratorTrainConfig(
        data=args.data, out=args.out, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr if args.lr is not None else 2e-4, channels=args.channels, ngf=args.ngf, ndf=args.ndf,
        z_dim=args.z_dim, num_blocks=args.num_blocks, spade_hidden=args.spade_hidden, vgg19=args.vgg19,
        device=args.device, max_steps=args.max_steps, seed=args.seed, devices=args.devices,
        precision=args.precision, resume=args.resume))
    return 0
