"""Tile images as 8-bit arrays for thumbnails and PNG export.

Image tiles written by the pipeline are uint8 GeoTIFFs (0 = nodata, 1..255 =
the job's single radiometric stretch), so RGB is bands 1-3 as stored: no
per-tile rescaling (the original scaled each patch by its own maximum, which
made brightness incomparable between tiles). Other dtypes are mapped to 0..255
linearly: floats in [0, 1] by x255, integers by their dtype range.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from groundsynth.request.classes import CLASS_COLORS, NODATA, NUM_CLASSES


def to_rgb8(data: np.ndarray) -> np.ndarray:
    """(C >= 3, H, W) array of any dtype -> (H, W, 3) uint8 RGB from the first three bands."""
    data = np.asarray(data)
    if data.ndim != 3 or data.shape[0] < 3:
        raise ValueError(f"expected an image of shape (C >= 3, H, W), got {data.shape}")
    rgb = data[:3]
    if rgb.dtype == np.uint8:
        out = rgb
    elif np.issubdtype(rgb.dtype, np.floating):
        out = np.rint(np.clip(np.nan_to_num(rgb), 0, 1) * 255).astype(np.uint8)
    else:
        top = float(np.iinfo(rgb.dtype).max)
        out = np.rint(np.clip(rgb, 0, top) / top * 255).astype(np.uint8)
    return np.ascontiguousarray(np.moveaxis(out, 0, -1))


def read_rgb8(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB from bands 1-3 of an image GeoTIFF."""
    import rasterio

    with rasterio.open(path) as src:
        if src.count < 3:
            raise ValueError(f"{path}: expected at least 3 bands (R, G, B), found {src.count}")
        return to_rgb8(src.read([1, 2, 3]))


def read_mask(path: str | Path) -> np.ndarray:
    import rasterio

    with rasterio.open(path) as src:
        return src.read(1)


def palette_lut() -> np.ndarray:
    """256 x 3 uint8 colour table: class colours, black elsewhere (255 = nodata)."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[:NUM_CLASSES] = np.asarray(CLASS_COLORS, dtype=np.uint8)
    return lut


def colour_mask(mask: np.ndarray) -> np.ndarray:
    """(H, W) class mask -> (H, W, 3) uint8 RGB with the palette colours; nodata black."""
    return palette_lut()[np.asarray(mask, dtype=np.uint8)]


def png_bytes(rgb: np.ndarray, max_size: int | None = None) -> bytes:
    """PNG of an (H, W, 3) uint8 array, optionally shrunk (nearest) so its longer side <= max_size."""
    from PIL import Image

    im = Image.fromarray(np.asarray(rgb, dtype=np.uint8), "RGB")
    if max_size and max(im.size) > max_size:
        scale = max_size / max(im.size)
        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def palette_png_bytes(mask: np.ndarray) -> bytes:
    """Single-band palette PNG of a class mask: pixel values are class indices (255 nodata)."""
    from PIL import Image

    im = Image.fromarray(np.asarray(mask, dtype=np.uint8), "P")
    im.putpalette(palette_lut().ravel().tolist())
    buf = io.BytesIO()
    im.save(buf, format="PNG", transparency=NODATA)   # nodata shows as transparent
    return buf.getvalue()


__all__ = ["to_rgb8", "read_rgb8", "read_mask", "colour_mask", "png_bytes", "palette_png_bytes", "NODATA"]
