"""`groundsynth export --job-dir DIR --out DIR [--no-filters] [--splits 0.8,0.1,0.1 --seed S (old jobs only)]`.

Writes a finished job's tiles as a training set (see groundsynth.export): real and synthetic COGs in
folders of their own, splits/<split>.txt, the PNG + CSV layout, a STAC catalogue, export.json.
"""
from __future__ import annotations

import argparse
import sys

from groundsynth.request.errors import InvalidArgument


def _splits(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise InvalidArgument(f"expected three comma-separated fractions like 0.8,0.1,0.1, got {text!r}",
                              "splits") from None


def run(args: argparse.Namespace) -> int:
    from groundsynth.export.dataset import export_dataset

    splits = _splits(args.splits) if args.splits is not None else None
    out = export_dataset(args.job_dir, args.out, splits, args.seed, filters=not args.no_filters)
    s = out["splits"]
    for w in out["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    left = [f"{n} by filter {k}" for k, n in out["filtered"].items()]
    if out["filtered_derived"]:
        left.append(f"{out['filtered_derived']} synthetic tiles of filtered tiles")
    if out["buffer"]:
        left.append(f"{out['buffer']} in the buffer between splits")
    print(f"exported {out['images']} images ({out['real']} real, {out['synthetic']} synthetic) to {out['out_dir']}: "
          f"train {s['train']}, val {s['val']}, test {s['test']} (split: {out['split_source']})"
          + (f"; left out: {', '.join(left)}" if left else ""))
    return 0


def register(sub) -> None:
    p = sub.add_parser("export", help="write a finished job's tiles as a training dataset (COG + STAC, PNG + CSV)",
                       description="Write a finished job's tiles as a training dataset: real/ and synthetic/v<N>/ "
                                   "Cloud-Optimised GeoTIFFs (a TorchGeo RasterDataset per folder never mixes them), "
                                   "splits/<split>.txt, the ARAS400k PNG + CSV layout, a STAC catalogue. The split "
                                   "is the job's own spatial block split.")
    p.add_argument("--job-dir", required=True, help="a finished job directory (with report.json)")
    p.add_argument("--out", required=True, help="output directory for the dataset")
    p.add_argument("--no-filters", action="store_true",
                   help="keep tiles the pipeline's dataset filters dropped (attribute dropped_by: nodata, water...)")
    p.add_argument("--splits", default=None,
                   help="train,val,test fractions, only for jobs made before splits were recorded (a job's own "
                        "split cannot be changed at export: submit a new job)")
    p.add_argument("--seed", type=int, default=None, help="seed of that legacy hash split (default 0)")
    p.set_defaults(func=run)
