"""COG vs plain DEFLATE GeoTIFF tiles on the Sentinel-2 demo scene: write time and size, and how fast a
zoomed-out view of the mosaic reads with and without the VRT's overviews.

    .venv/bin/python bench/cog_write.py [--tiles 49] [--runs 5] [--mosaic 12]

Per run, every tile is written once in each format (interleaved: COG, plain, COG, plain ...), image
(R, G, B, NIR) and class mask (the spectral segmenter's). Prints per format the median and min-max
over runs of ms per tile and bytes per tile. Then builds a mosaic of --mosaic x --mosaic COG tiles
(256 px, repeated from the scene), and times reading the whole mosaic at 1024 px (what QGIS draws
zoomed out) through the VRT without and with its .ovr. Numbers taken on a shared machine are
indicative.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from groundsynth.artefacts.tiles import write_image_tile, write_mask_tile  # noqa: E402
from groundsynth.artefacts.vrt import VrtTile, build_overviews, ovr_path, write_vrt  # noqa: E402
from groundsynth.demo.scene import demo_raster  # noqa: E402
from groundsynth.engines.base import EngineContext  # noqa: E402
from groundsynth.engines.builtin.spectral import Spectral  # noqa: E402
from groundsynth.tiling.source import Stretch  # noqa: E402

T = 256


def spread(values: list[float], unit: str, scale: float = 1.0) -> str:
    v = [x * scale for x in values]
    return f"median {statistics.median(v):8.2f} {unit}  (min {min(v):.2f}, max {max(v):.2f}, n={len(v)})"


def scene_tiles(n: int):
    import rasterio

    with tempfile.TemporaryDirectory() as tmp, rasterio.open(demo_raster(tmp)) as ds:
        raw, transform, crs = ds.read().astype(np.float32), ds.transform, ds.crs
    valid = (raw > 0).all(0)
    stretch = Stretch.from_sample(raw[:, ::4, ::4], valid[::4, ::4])
    img = stretch.apply(raw)
    seg = Spectral({}, EngineContext(seed=1, extra={"stretch": stretch.to_dict()}))
    pos = [(y, x) for y in range(0, raw.shape[1] - T + 1, T) for x in range(0, raw.shape[2] - T + 1, T)][:n]
    out = []
    for y, x in pos:
        image, v = img[:, y:y + T, x:x + T], valid[y:y + T, x:x + T]
        out.append((image, v, seg.classify(image, v), transform * transform.translation(x, y)))
    return out, crs


def write_bench(tiles, crs, runs: int, folder: Path) -> None:
    times: dict[str, list[float]] = {"cog": [], "plain": []}
    sizes: dict[str, list[float]] = {"cog": [], "plain": []}
    for run in range(runs):
        for fmt in ("cog", "plain") if run % 2 == 0 else ("plain", "cog"):
            d = folder / f"{fmt}{run}"
            t0 = time.perf_counter()
            for i, (image, valid, mask, transform) in enumerate(tiles):
                write_image_tile(d / f"i{i}.tif", image, valid, transform, crs, cog=fmt == "cog")
                write_mask_tile(d / f"m{i}.tif", mask, transform, crs, cog=fmt == "cog")
            times[fmt].append((time.perf_counter() - t0) / len(tiles))
            sizes[fmt].append(sum(p.stat().st_size for p in d.iterdir()) / len(tiles))
    print(f"{len(tiles)} tiles of {T} px (image R,G,B,NIR + class mask per tile), {runs} runs, interleaved")
    for fmt in ("plain", "cog"):
        label = "plain DEFLATE GeoTIFF" if fmt == "plain" else "COG (DEFLATE)       "
        print(f"  {label} write: {spread(times[fmt], 'ms/tile', 1000)}")
        print(f"  {label} size:  {spread(sizes[fmt], 'KiB/tile', 1 / 1024)}")


def mosaic_bench(tiles, crs, n: int, runs: int, folder: Path) -> None:
    import rasterio
    from rasterio.crs import CRS

    vt = []
    base = tiles[0][3]
    for r in range(n):
        for c in range(n):
            image, valid, _, _ = tiles[(r * n + c) % len(tiles)]
            write_image_tile(folder / f"m/{r}_{c}.tif", image, valid, base * base.translation(c * T, r * T), crs)
            vt.append(VrtTile(f"m/{r}_{c}.tif", c * T, r * T, T, T))
    vrt = folder / "mosaic.vrt"
    wkt = CRS.from_user_input(crs).to_wkt()
    t0 = time.perf_counter()
    write_vrt(vrt, vt, base, wkt, ("red", "green", "blue", "nir"), 0, colorinterp=("Red", "Green", "Blue", "Undefined"))
    t_build = time.perf_counter()
    factors = build_overviews(vrt)
    t_ovr = time.perf_counter() - t_build
    ovr = ovr_path(vrt)
    hidden = ovr.with_name("hidden.ovr")
    reads: dict[str, list[float]] = {"without": [], "with": []}
    for run in range(runs):
        for mode in ("without", "with") if run % 2 == 0 else ("with", "without"):
            if mode == "without":
                ovr.rename(hidden)
            t0 = time.perf_counter()
            with rasterio.open(vrt) as src:
                src.read(out_shape=(src.count, 1024, 1024))
            reads[mode].append(time.perf_counter() - t0)
            if mode == "without":
                hidden.rename(ovr)
    print(f"mosaic of {n} x {n} = {n * n} COG tiles ({n * T} px a side): overviews {factors} built in "
          f"{t_ovr:.2f} s ({ovr.stat().st_size / 2**20:.1f} MiB .ovr)")
    for mode in ("without", "with"):
        print(f"  whole mosaic read at 1024 px {mode:>7} overviews: {spread(reads[mode], 'ms', 1000)}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiles", type=int, default=49)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--mosaic", type=int, default=12, help="mosaic of N x N tiles for the overview read test")
    args = ap.parse_args()
    tiles, crs = scene_tiles(args.tiles)
    with tempfile.TemporaryDirectory() as tmp:
        write_bench(tiles, crs, args.runs, Path(tmp))
        mosaic_bench(tiles, crs, args.mosaic, args.runs, Path(tmp))


if __name__ == "__main__":
    main()
