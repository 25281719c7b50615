"""`groundsynth export --job-dir DIR --out DIR [--splits 0.8,0.1,0.1] [--seed S]`.

Writes a finished job's tiles as a training set (see groundsynth.export).
"""
from __future__ import annotations

import argparse

from groundsynth.request.errors import InvalidArgument


def _splits(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise InvalidArgument(f"expected three comma-separated fractions like 0.8,0.1,0.1, got {text!r}",
                              "splits") from None


def run(args: argparse.Namespace) -> int:
    from groundsynth.export.dataset import export_dataset

    out = export_dataset(args.job_dir, args.out, _splits(args.splits), args.seed)
    s = out["splits"]
    print(f"exported {out['images']} images ({out['real']} real, {out['synthetic']} synthetic) to {out['out_dir']}: "
          f"train {s['train']}, val {s['val']}, test {s['test']}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("export", help="write a finished job's tiles as a training dataset (PNG + CSV + GeoTIFF)",
                       description="Write a finished job's tiles as a training dataset: images/ and masks/ PNGs "
                                   "with dataset.csv (the ARAS400k layout) and georeferenced GeoTIFFs under "
                                   "geotiff/. The train/val/test split is deterministic per real tile.")
    p.add_argument("--job-dir", required=True, help="a finished job directory (with report.json)")
    p.add_argument("--out", required=True, help="output directory for the dataset")
    p.add_argument("--splits", default="0.8,0.1,0.1", help="train,val,test fractions (default 0.8,0.1,0.1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
    p.set_defaults(func=run)
