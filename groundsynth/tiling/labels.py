"""Label rasters: a user's ESA WorldCover raster as class masks on the tile grid.

`read_labels(path, dst_crs, dst_transform, shape)` reads the part of the label
raster under one tile, reprojects it by nearest neighbour (categorical data:
never interpolate codes) from the raster's own CRS onto the tile grid with
rasterio.warp.reproject, and remaps WorldCover codes to the 7 classes
(groundsynth.request.classes.remap_worldcover). Pixels outside the label raster, its
nodata, WorldCover 0 and unknown codes become 255.

Errors name `label_raster_path`: NotFound when the file is missing,
InvalidArgument when it is not a readable single-band integer raster or has
no CRS.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from groundsynth.request.classes import NODATA, remap_worldcover
from groundsynth.request.errors import InvalidArgument, NotFound

FIELD = "label_raster_path"


def check_label_raster(path: str | os.PathLike) -> None:
    """At Submit: the label raster exists, is a raster of integer codes with a CRS, and its pixels read."""
    import rasterio
    from rasterio.errors import RasterioIOError

    from groundsynth.tiling.source import check_blocks_readable

    path = os.fspath(path or "")
    if not os.path.exists(path):
        raise NotFound(f"no such label raster: {path}", FIELD)
    try:
        src = rasterio.open(path)
    except RasterioIOError:
        raise InvalidArgument(f"expected a raster file GDAL can read (an ESA WorldCover GeoTIFF), got {path!r}",
                              FIELD) from None
    with src:
        _check_label_dataset(src, path)
        check_blocks_readable(src, os.path.basename(path), FIELD)


def _check_label_dataset(src: Any, path: str) -> None:
    """An open label raster has a band of integer codes and a CRS (InvalidArgument naming the problem)."""
    if src.count < 1:
        raise InvalidArgument(f"{path!r} has no bands", FIELD)
    if not np.issubdtype(np.dtype(src.dtypes[0]), np.integer):
        raise InvalidArgument(f"expected integer WorldCover codes, got {src.dtypes[0]} values in {path!r}", FIELD)
    if src.crs is None:
        raise InvalidArgument(f"{path!r} has no CRS; the labels cannot be placed on the tile grid", FIELD)


def read_labels(path: str | os.PathLike, dst_crs: Any, dst_transform: Any, shape: tuple[int, int]) -> np.ndarray:
    """uint8 class mask of `shape` (H, W) on the grid (dst_crs, dst_transform); 255 = nodata."""
    import rasterio
    from rasterio.errors import RasterioIOError
    from rasterio.warp import Resampling, reproject

    path = os.fspath(path or "")
    if not path:
        raise InvalidArgument("no label raster given", FIELD)
    if not os.path.exists(path):
        raise NotFound(f"label raster {path!r} does not exist", FIELD)
    h, w = (int(v) for v in shape)
    if h <= 0 or w <= 0:
        raise InvalidArgument(f"expected a positive tile shape, got {shape}", "shape")
    try:
        src = rasterio.open(path)
    except RasterioIOError as exc:
        raise InvalidArgument(f"cannot read {path!r} as a raster ({exc})", FIELD) from None
    with src:
        _check_label_dataset(src, path)
        codes = np.zeros((h, w), dtype=np.int32)
        reproject(source=rasterio.band(src, 1), destination=codes,
                  src_nodata=src.nodata if src.nodata is not None else 0,
                  dst_transform=dst_transform, dst_crs=dst_crs, dst_nodata=0,
                  resampling=Resampling.nearest)
    out = np.full((h, w), NODATA, dtype=np.uint8)
    in_range = (codes >= 0) & (codes <= 255)
    out[in_range] = remap_worldcover(codes[in_range].astype(np.uint8))
    return out
