"""The `segment/spectral` rules and the job stretch as they were before issue 11 (commit 1cc7fbd), frozen.

Kept verbatim so that bench/accuracy.py can print the "before" accuracy from code, not from a
remembered number, and so that scripts/reference_sample.py can rebuild the map the demo reference
sample was stratified by. Not used by the package.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from groundsynth.engines.builtin.spectral import majority_filter
from groundsynth.request.classes import NODATA

TREE, SHRUB, GRASS, CROP, BUILT, BARREN, WATER = range(7)
_EPS = 1e-6
DEFAULTS = {"water_ndwi": 0.0, "tree_ndvi": 0.5, "tree_brightness": 0.072, "crop_ndvi": 0.45, "grass_ndvi": 0.3,
            "shrub_ndvi": 0.2, "shrub_brightness": 0.07, "builtup_texture": 0.014, "barren_brightness": 0.16,
            "barren_relative": 0.92, "texture_window": 5, "smoothing": 5}


def legacy_stretch(data: np.ndarray, valid: np.ndarray, pct: tuple[float, float] = (2.0, 98.0)
                   ) -> tuple[list[float], list[float]]:
    """Stretch.from_sample before issue 11: per band 2/98 % of all valid non-zero pixels."""
    lows, highs = [], []
    for band in data:
        vals = band[valid & (band != 0)]
        lo, hi = (0.0, 1.0) if vals.size == 0 else (float(v) for v in np.percentile(vals, pct))
        if hi <= lo:
            hi = lo + 1.0
        lows.append(lo)
        highs.append(hi)
    return lows, highs


def _texture(bright: np.ndarray, window: int, valid: np.ndarray) -> np.ndarray:
    if valid.all():
        mean = ndi.uniform_filter(bright, window, mode="reflect")
        sq = ndi.uniform_filter(bright * bright, window, mode="reflect")
        return np.sqrt(np.maximum(sq - mean * mean, 0.0))
    v = valid.astype(np.float32)
    b = np.where(valid, bright, 0.0).astype(np.float32)
    n = ndi.uniform_filter(v, window, mode="reflect")
    safe = np.maximum(n, 1e-6)
    mean = ndi.uniform_filter(b, window, mode="reflect") / safe
    sq = ndi.uniform_filter(b * b, window, mode="reflect") / safe
    return np.where(n > 1e-6, np.sqrt(np.maximum(sq - mean * mean, 0.0)), 0.0)


def legacy_classify(image: np.ndarray, valid: np.ndarray, low: list[float], high: list[float],
                    scale: float = 10000.0) -> np.ndarray:
    """The 4-band rules of segment/spectral at commit 1cc7fbd (defaults), on a stretched (4, H, W) image."""
    p = DEFAULTS
    img = np.nan_to_num(np.asarray(image, dtype=np.float32), nan=0.0)
    lo = np.asarray(low, np.float32)[:4, None, None]
    hi = np.asarray(high, np.float32)[:4, None, None]
    refl = (lo + img[:4] * (hi - lo)) / scale
    r, g, b, nir = refl[0], refl[1], refl[2], refl[3]
    bright = (r + g + b) / 3.0
    ndvi = (nir - r) / (nir + r + _EPS)
    water = (g - nir) / (g + nir + _EPS) > p["water_ndwi"]
    valid = np.asarray(valid, dtype=bool)
    texture = _texture(bright, int(p["texture_window"]), valid)
    low_veg = ndvi < p["grass_ndvi"]
    saturated = np.asarray(image[:3], dtype=np.float32).mean(axis=0) >= p["barren_relative"]
    out = np.full(bright.shape, CROP, dtype=np.uint8)
    out[low_veg & ((bright >= p["barren_brightness"]) | saturated)] = BARREN
    out[low_veg & (texture > p["builtup_texture"])] = BUILT
    out[low_veg & (ndvi >= p["shrub_ndvi"]) & (bright < p["shrub_brightness"])] = SHRUB
    out[ndvi >= p["grass_ndvi"]] = GRASS
    out[ndvi >= p["crop_ndvi"]] = CROP
    out[(ndvi >= p["tree_ndvi"]) & (bright < p["tree_brightness"])] = TREE
    out[water] = WATER
    out = majority_filter(out, valid, int(p["smoothing"]))
    out[~valid] = NODATA
    return out
