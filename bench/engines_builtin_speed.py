"""Speed of the built-in CPU engines on the Sentinel-2 demo scene: ms per 256 x 256 tile.

    .venv/bin/python bench/engines_builtin_speed.py [--tiles 49] [--variants 2]

Prints ms/tile for segment/spectral, synthesise/exemplar (fit once, then per
synthetic tile) and the mask strategies, plus the fidelity mIoU of exemplar
under spectral. Budgets: spectral ~30 ms, exemplar ~60 ms per tile (2 cores).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from groundsynth.demo.scene import demo_raster  # noqa: E402
from groundsynth.engines.base import EngineContext  # noqa: E402
from groundsynth.engines.builtin.exemplar import Exemplar  # noqa: E402
from groundsynth.engines.builtin.spectral import Spectral  # noqa: E402
from groundsynth.engines.mask_strategies import AoiStats, condition_mask  # noqa: E402
from groundsynth.request.classes import NODATA  # noqa: E402
from groundsynth.tiling.source import Stretch  # noqa: E402

T = 256


def miou(a: np.ndarray, b: np.ndarray) -> float:
    ok = (a != NODATA) & (b != NODATA)
    ious = [((a == c) & (b == c) & ok).sum() / (((a == c) | (b == c)) & ok).sum()
            for c in range(7) if ((a == c) & ok).any() or ((b == c) & ok).any()]
    return float(np.mean(ious)) if ious else 1.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiles", type=int, default=49)
    ap.add_argument("--variants", type=int, default=2)
    args = ap.parse_args()
    import rasterio

    with tempfile.TemporaryDirectory() as tmp, rasterio.open(demo_raster(tmp)) as ds:
        raw = ds.read().astype(np.float32)
    valid = (raw > 0).all(0)
    stretch = Stretch.from_sample(raw[:, ::4, ::4], valid[::4, ::4])
    img = stretch.apply(raw)
    ctx = EngineContext(seed=1, extra={"stretch": stretch.to_dict()})
    pos = [(y, x) for y in range(0, raw.shape[1] - T + 1, T) for x in range(0, raw.shape[2] - T + 1, T)]
    pos = pos[:args.tiles]
    images = [img[:, y:y + T, x:x + T] for y, x in pos]
    valids = [valid[y:y + T, x:x + T] for y, x in pos]

    seg = Spectral({}, ctx)
    t = time.perf_counter()
    masks = [seg.classify(i, v) for i, v in zip(images, valids, strict=True)]
    t_seg = (time.perf_counter() - t) / len(images) * 1000

    ex = Exemplar({}, ctx)
    t = time.perf_counter()
    state = ex.fit(images, masks, valids)
    t_fit = time.perf_counter() - t

    conds = [m for m in masks for _ in range(args.variants)]
    seeds = list(range(len(conds)))
    t = time.perf_counter()
    syn = ex.synthesise(conds, seeds, state)
    t_syn = (time.perf_counter() - t) / len(conds) * 1000
    fid = [miou(c, seg.classify(s, np.ones((T, T), bool))) for c, s in zip(conds, syn, strict=True)]

    stats = AoiStats.from_masks(masks)
    timings = {}
    for strategy, targets in (("real", {}), ("boost", {"Built-up": 0.2}), ("layout", {})):
        t = time.perf_counter()
        for i, m in enumerate(masks):
            condition_mask(strategy, m, targets, stats, i)
        timings[strategy] = (time.perf_counter() - t) / len(masks) * 1000

    print(f"tiles: {len(images)} x {T}px, synthetic variants: {len(conds)}")
    print(f"segment/spectral:     {t_seg:7.1f} ms/tile   (budget ~30)")
    print(f"synthesise/exemplar:  {t_syn:7.1f} ms/tile   (budget ~60); fit {t_fit:.2f} s once per job")
    print(f"exemplar fidelity mIoU under spectral: mean {np.mean(fid):.3f}, median {np.median(fid):.3f}")
    for k, v in timings.items():
        print(f"mask strategy {k:7s} {v:7.1f} ms/tile")


if __name__ == "__main__":
    main()
