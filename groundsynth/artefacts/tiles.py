"""Tile GeoTIFFs: image tiles (uint8 R, G, B(, NIR), 0 = nodata, 1..255 = the job stretch) and class
masks (uint8 with the 7-class colour table, 255 = nodata). Every file is written through
groundsynth.artefacts.atomic (temp file, then rename).

Tiles are Cloud-Optimised GeoTIFFs (GDAL's COG driver through rasterio): DEFLATE, 256 px internal
tiles, overviews inside the file when a tile is larger than one internal tile (average for images,
nearest for masks, so overview pixels stay class indices), colour interpretation, band names and the
mask colour table kept. `cog=False` writes the plain tiled-less DEFLATE GeoTIFF of earlier versions
(bench/cog_write.py compares the two).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import ColorInterp

from groundsynth.artefacts.atomic import atomic_path
from groundsynth.request.classes import NODATA, gdal_colormap

BAND_NAMES = ("red", "green", "blue", "nir")
GTIFF_OPTS = dict(driver="GTiff", compress="deflate", zlevel=1)           # plain GeoTIFF (cog=False)
COG_OPTS = dict(driver="COG", compress="deflate", level=1, blocksize=256, overviews="AUTO", bigtiff="NO")


def to_uint8(image: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """float [0, 1] (C, H, W) -> uint8 1..255, 0 where not valid."""
    out = (1 + np.rint(np.clip(image, 0, 1) * 254)).astype(np.uint8)
    out[:, ~valid] = 0
    return out


def from_uint8(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    valid = data.any(axis=0)
    image = np.clip((data.astype(np.float32) - 1) / 254, 0, 1)
    image[:, ~valid] = 0
    return image, valid


def block_size(width: int, height: int) -> int:
    """Internal tile size: 256 px, or the tile rounded up to a multiple of 16 when smaller (the COG
    driver's minimum is 128)."""
    return min(256, max(128, -(-max(width, height) // 16) * 16))


def _profile(transform: Affine, crs: Any, width: int, height: int, count: int, nodata: int, cog: bool,
             photometric: str, resampling: str) -> dict[str, Any]:
    prof: dict[str, Any] = dict(COG_OPTS if cog else GTIFF_OPTS, width=width, height=height, count=count,
                                dtype="uint8", crs=crs, transform=transform, nodata=nodata)
    if cog:      # the COG driver derives the photometric tag from the colour interpretation set below
        prof["overview_resampling"] = resampling
        prof["blocksize"] = block_size(width, height)
    else:
        prof["photometric"] = photometric
    return prof


def write_image_tile(path: str | Path, image: np.ndarray, valid: np.ndarray, transform: Affine, crs: Any,
                     cog: bool = True, sync: bool = True) -> None:
    """uint8 GeoTIFF R, G, B(, NIR): 0 = nodata, 1..255 = the job stretch; displays as RGB.
    `sync=False`: no fsync of its own (the caller syncs a batch with atomic.sync_files)."""
    data = to_uint8(image, valid)
    write_image_data(path, data, transform, crs, cog, sync)


def write_image_data(path: str | Path, data: np.ndarray, transform: Affine, crs: Any, cog: bool = True,
                     sync: bool = True) -> None:
    """An image tile from its uint8 (C, H, W) pixels (bands 1-3 R, G, B; band 4, if any, NIR)."""
    c, h, w = data.shape
    # bands 1-3 are R, G, B; band 4 (NIR) is an extra sample
    prof = _profile(transform, crs, w, h, c, 0, cog, "RGB", "average")
    with atomic_path(path, sync=sync) as tmp:
        with rasterio.open(tmp, "w", **prof) as dst:
            dst.write(data)
            dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.undefined][:c]
            for i in range(c):
                dst.set_band_description(i + 1, BAND_NAMES[i])


def write_mask_tile(path: str | Path, mask: np.ndarray, transform: Affine, crs: Any, cog: bool = True,
                    sync: bool = True) -> None:
    """uint8 class-index GeoTIFF with the 7-class colour table; 255 = nodata (`sync` as write_image_tile)."""
    h, w = mask.shape
    prof = _profile(transform, crs, w, h, 1, NODATA, cog, "PALETTE", "nearest")
    with atomic_path(path, sync=sync) as tmp:
        with rasterio.open(tmp, "w", **prof) as dst:
            dst.write(mask.astype(np.uint8, copy=False), 1)
            dst.write_colormap(1, gdal_colormap())
            dst.set_band_description(1, "class")


def read_image_tile(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(image float32 (C, H, W) in [0, 1], valid bool (H, W)) from an image tile."""
    return from_uint8(read_image_data(path))


def read_image_data(path: str | Path) -> np.ndarray:
    """An image tile's uint8 (C, H, W) pixels as stored (0 = nodata, 1..255 the job stretch)."""
    with rasterio.open(path) as src:
        return src.read()


def read_mask_tile(path: str | Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)
