"""Small test rasters on the demo scene's georeference (EPSG:32618, 10 m, origin 435730, 4179460)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

DEMO_CRS = "EPSG:32618"
DEMO_TRANSFORM = Affine(10.0, 0.0, 435730.0, 0.0, -10.0, 4179460.0)


def px_to_world(col: float, row: float, transform: Affine = DEMO_TRANSFORM) -> tuple[float, float]:
    return transform @ (col, row)


def px_bbox(col0: float, row0: float, col1: float, row1: float, transform: Affine = DEMO_TRANSFORM):
    """World bbox (minx, miny, maxx, maxy) of a pixel box of a north-up raster."""
    x0, y0 = transform @ (col0, row0)
    x1, y1 = transform @ (col1, row1)
    return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def write_raster(path: Path, width: int = 320, height: int = 256, count: int = 4, transform: Affine = DEMO_TRANSFORM,
                 crs: str = DEMO_CRS, nodata: float | None = 0, seed: int = 0, data: np.ndarray | None = None,
                 dtype: str = "uint16") -> Path:
    """A smooth random-ish uint16 raster (values 500..4500) so brightness classes form regions."""
    if data is None:
        rng = np.random.default_rng(seed)
        yy, xx = np.mgrid[0:height, 0:width]
        base = 2500 + 1800 * np.sin(xx / 23.0 + seed) * np.cos(yy / 31.0)
        data = np.stack([base + rng.normal(0, 60, base.shape) + 100 * b for b in range(count)])
        data = np.clip(data, 1, 65535).astype(dtype)
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=count, dtype=dtype,
                       crs=crs, transform=transform, nodata=nodata) as dst:
        dst.write(data)
    return path
