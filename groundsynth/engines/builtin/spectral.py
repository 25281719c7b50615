"""segment/spectral: rule-based 7-class land cover from RGB-NIR, no model needed.

The default segmenter for CPU laptops. Per pixel it computes, on
top-of-atmosphere reflectance (the job stretch is undone first, see below):

    NDVI       = (NIR - R) / (NIR + R)           vegetation vigour
    NDWI       = (G - NIR) / (G + NIR)           open water (McFeeters)
    brightness = (R + G + B) / 3
    texture    = local standard deviation of brightness in a `texture_window` px window

and applies these rules, first match wins (thresholds are parameters):

    Water     NDWI > water_ndwi
    Tree      NDVI >= tree_ndvi and brightness < tree_brightness       dense, dark canopy
    Crop      NDVI >= crop_ndvi                                        dense, bright (vigorous fields)
    Grass     NDVI >= grass_ndvi                                       moderate vegetation
    Shrub     NDVI >= shrub_ndvi and brightness < shrub_brightness     sparse, dark vegetation
    --- the rest have NDVI < grass_ndvi (little vegetation) ---
    Built-up  texture > builtup_texture                                heterogeneous
    Barren    brightness >= barren_brightness, or stretched            bright bare ground, sand, snow
              brightness >= barren_relative
    Crop      otherwise (smooth, moderately dark: fallow fields)

then a majority (mode) filter of `smoothing` px removes salt-and-pepper
noise. Pixels that are not valid become 255.

Reflectance: the pipeline passes its stretch (raw DN low/high per band) in
ctx.extra["stretch"]; DN are turned into reflectance by `reflectance_scale`
(0 = auto: 10000 for Sentinel-2 style integers, 255 for 8-bit data, 1 when the
data are already reflectance). Without a stretch the [0, 1] values are taken
as reflectance over 0..0.3 (a typical land range); results are then rougher.

RGB-only jobs (no NIR) use the visible-band proxies VARI-like greenness
GRVI = (G - R) / (G + R) for NDVI (thresholds scaled by `rgb_greenness_scale`)
and, for water, "in the job stretch, blue exceeds red by more than
rgb_water_blue and exceeds green" (top-of-atmosphere blue is the largest band
over land too, so raw band order cannot be used). This is clearly less
accurate; it exists so 3-band rasters still get a usable mask.

The rules are tuned on the Sentinel-2 L1C demo scene (coastal farmland) and
are documented in docs/engines-builtin.md.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

from groundsynth.engines import register
from groundsynth.engines.base import Param, Segmenter, TileInput
from groundsynth.request.classes import NODATA, NUM_CLASSES

TREE, SHRUB, GRASS, CROP, BUILT, BARREN, WATER = range(7)
_EPS = 1e-6


def _auto_scale(high: float) -> float:
    if high > 300:
        return 10000.0
    if high > 1.5:
        return 255.0
    return 1.0


@register
class Spectral(Segmenter):
    name = "spectral"
    description = ("Rule-based land cover from spectral indices (NDVI, NDWI, brightness) and local texture, "
                   "with majority smoothing. No model, fast on CPU.")
    is_default = True
    params = (
        Param("water_ndwi", "float", 0.0, "NDWI above this is Water.", min=-1, max=1),
        Param("tree_ndvi", "float", 0.5, "NDVI at or above this, when dark, is Tree.", min=-1, max=1),
        Param("tree_brightness", "float", 0.072, "Dense vegetation darker than this mean RGB reflectance is Tree.",
              min=0, max=1),
        Param("crop_ndvi", "float", 0.45, "NDVI at or above this (and not Tree) is Crop.", min=-1, max=1),
        Param("grass_ndvi", "float", 0.3, "NDVI at or above this (and below crop_ndvi) is Grass.", min=-1, max=1),
        Param("shrub_ndvi", "float", 0.2, "NDVI at or above this, when dark, is Shrub.", min=-1, max=1),
        Param("shrub_brightness", "float", 0.07, "Sparse vegetation darker than this is Shrub.", min=0, max=1),
        Param("builtup_texture", "float", 0.014, "Low-vegetation pixels whose local brightness std exceeds this "
              "are Built-up.", min=0, max=1),
        Param("barren_brightness", "float", 0.16, "Low-vegetation pixels at least this bright (mean RGB "
              "reflectance) are Barren.", min=0, max=1),
        Param("barren_relative", "float", 0.92, "Low-vegetation pixels whose stretched brightness is at least this "
              "(near the job's 98th percentile) are Barren.", min=0, max=1.01),
        Param("texture_window", "int", 5, "Window (px) for the local texture measure.", min=3, max=31),
        Param("smoothing", "int", 5, "Majority filter size in px (1 = off).", min=1, max=31),
        Param("reflectance_scale", "float", 0.0, "DN per unit reflectance; 0 = auto (10000 for 16-bit, 255 for "
              "8-bit, 1 for float reflectance).", min=0, max=1e6),
        Param("rgb_water_blue", "float", 0.1, "RGB-only jobs: Water where stretched blue exceeds stretched red by "
              "more than this (and exceeds green).", min=0, max=1),
        Param("rgb_greenness_scale", "float", 0.35, "RGB-only jobs: NDVI thresholds are multiplied by this to "
              "apply to the GRVI greenness proxy.", min=0.01, max=2),
    )

    # ------------------------------------------------------------------ public
    def segment(self, tiles: Sequence[TileInput]) -> list[np.ndarray]:
        return [self.classify(t.image, t.valid) for t in tiles]

    def classify(self, image: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Class mask (uint8, 255 where not valid) of one (C, H, W) image in [0, 1]."""
        refl = self._reflectance(image)
        p = self.p
        r, g, b = refl[0], refl[1], refl[2]
        bright = (r + g + b) / 3.0
        if refl.shape[0] >= 4:
            nir = refl[3]
            ndvi = (nir - r) / (nir + r + _EPS)
            water = (g - nir) / (g + nir + _EPS) > p["water_ndwi"]
            k = 1.0
        else:   # RGB fallback
            ndvi = (g - r) / (g + r + _EPS)
            # in the job stretch the atmosphere's blue offset is gone: water is clearly bluer than red
            stretched = np.asarray(image, dtype=np.float32)
            water = (stretched[2] - stretched[0] > p["rgb_water_blue"]) & (stretched[2] > stretched[1])
            k = p["rgb_greenness_scale"]
        texture = self._texture(bright, p["texture_window"], np.asarray(valid, dtype=bool))

        low_veg = ndvi < p["grass_ndvi"] * k
        # stretched brightness near 1 = at or above the job's 98th percentile: the brightest ground
        saturated = np.asarray(image[:3], dtype=np.float32).mean(axis=0) >= p["barren_relative"]
        out = np.full(bright.shape, CROP, dtype=np.uint8)        # fallow default
        # apply in reverse priority so that earlier rules overwrite later ones
        out[low_veg & ((bright >= p["barren_brightness"]) | saturated)] = BARREN
        out[low_veg & (texture > p["builtup_texture"])] = BUILT
        out[low_veg & (ndvi >= p["shrub_ndvi"] * k) & (bright < p["shrub_brightness"])] = SHRUB
        out[ndvi >= p["grass_ndvi"] * k] = GRASS
        out[ndvi >= p["crop_ndvi"] * k] = CROP
        out[(ndvi >= p["tree_ndvi"] * k) & (bright < p["tree_brightness"])] = TREE
        out[water] = WATER

        if p["smoothing"] > 1:
            out = majority_filter(out, valid, p["smoothing"])
        out[~valid] = NODATA
        return out

    # ------------------------------------------------------------------ helpers
    def _reflectance(self, image: np.ndarray) -> np.ndarray:
        img = np.nan_to_num(np.asarray(image, dtype=np.float32), nan=0.0)
        stretch = (self.ctx.extra or {}).get("stretch")
        if not stretch:
            return img * 0.3
        low = np.asarray(stretch["low"], dtype=np.float32)[: img.shape[0], None, None]
        high = np.asarray(stretch["high"], dtype=np.float32)[: img.shape[0], None, None]
        scale = self.p["reflectance_scale"] or _auto_scale(float(np.max(high)))
        return (low + img * (high - low)) / scale

    @staticmethod
    def _texture(bright: np.ndarray, window: int, valid: np.ndarray | None = None) -> np.ndarray:
        """Local std of brightness; with nodata in the tile, over the valid pixels of each window only
        (the step to nodata is not texture)."""
        if valid is None or valid.all():
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


def majority_filter(mask: np.ndarray, valid: np.ndarray, size: int) -> np.ndarray:
    """Mode filter over a size x size window, counting only valid pixels.

    One box filter per class on the one-hot mask, then argmax: O(7 HW)
    whatever the window size."""
    votes = np.empty((NUM_CLASSES, *mask.shape), dtype=np.float32)
    for c in range(NUM_CLASSES):
        votes[c] = ndi.uniform_filter(((mask == c) & valid).astype(np.float32), size, mode="nearest")
    return votes.argmax(axis=0).astype(np.uint8)
