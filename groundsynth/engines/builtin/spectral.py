"""segment/spectral: rule-based 7-class land cover from RGB-NIR (optionally SWIR), no model needed.

The default segmenter for CPU laptops. Per pixel it computes, on
top-of-atmosphere reflectance (the job stretch is undone first, see below):

    NDVI       = (NIR - R) / (NIR + R)           vegetation vigour
    NDWI       = (G - NIR) / (G + NIR)           open water (McFeeters)
    MNDWI      = (G - SWIR1) / (G + SWIR1)       open water (Xu 2006), only with a SWIR1 band
    brightness = (R + G + B) / 3
    texture    = local standard deviation of brightness in a `texture_window` px window

and applies these rules, first match wins (thresholds are parameters):

    Water     MNDWI > water_mndwi (with SWIR1: marsh and wet soil stay below it, sea foam
              above it), else NDWI > water_ndwi
    Tree      NDVI >= tree_ndvi and brightness < tree_brightness       dense, dark canopy
    Tree      with SWIR1: NDVI >= tree_swir_ndvi, SWIR1 < tree_swir1 and brightness < tree_swir_brightness
              (moist canopy, also leafless winter woods, absorbs SWIR; fields and lawns do not)
    Crop      NDVI >= crop_ndvi                                        dense, bright (vigorous fields)
    Shrub     shrub_ndvi <= NDVI < shrub_max_ndvi, shrub_min_brightness <= brightness < shrub_brightness,
              texture < shrub_texture (and with SWIR1: SWIR1 >= tree_swir1)    sparse woody regrowth
    Grass     NDVI >= grass_ndvi                                       moderate vegetation
    --- the rest have NDVI < grass_ndvi (little vegetation) ---
    Built-up  texture > builtup_texture, unless a Barren pixel at least builtup_max_brightness bright
    Barren    (brightness >= barren_brightness, or stretched brightness >= barren_relative),
              and NDWI < barren_max_ndwi, and with SWIR1: SWIR1 >= barren_swir1
              (bright bare ground, sand; sea foam is bright but wet: not Barren)
    Water     bright and wet (the foam the Barren guard refused)
    Grass     wet: NDWI > wet_ndwi (and with SWIR1: MNDWI > wet_mndwi)   herbaceous wetland / marsh
              (WorldCover 90, which the 7 classes count as Grass)
    Tree      dark: brightness < tree_brightness and NDVI >= dark_tree_ndvi   shaded, leafless woods
    Crop      otherwise (smooth, dry, moderately bright: fallow and bare fields)

then a majority (mode) filter of `smoothing` px removes salt-and-pepper
noise. Pixels that are not valid become 255. The thresholds were fixed against the
"tune" split of the demo reference sample only (docs/reference-sample.md; bench/accuracy.py prints
the accuracy on its "test" split before and after; the rules before are in bench/spectral_legacy.py).

Reflectance: the pipeline passes its stretch (raw DN low/high per band, image bands first, then
the SWIR bands) in ctx.extra["stretch"] and the SWIR roles in ctx.extra["swir_roles"]; DN are turned
into reflectance by `reflectance_scale` (0 = auto: 10000 for Sentinel-2 style integers, 255 for 8-bit
data, 1 when the data are already reflectance). Without a stretch the [0, 1] values are taken
as reflectance over 0..0.3 (a typical land range); results are then rougher. SWIR arrives as
TileInput.swir; tiles without it (RGB-NIR jobs, synthetic tiles) use the NDWI rules.

RGB-only jobs (no NIR) use the visible-band proxies VARI-like greenness
GRVI = (G - R) / (G + R) for NDVI (thresholds scaled by `rgb_greenness_scale`)
and, for water, "in the job stretch, blue exceeds red by more than
rgb_water_blue and exceeds green" (top-of-atmosphere blue is the largest band
over land too, so raw band order cannot be used). This is clearly less
accurate; it exists so 3-band rasters still get a usable mask.

Documented in docs/engines-builtin.md.
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
        Param("water_ndwi", "float", 0.1, "Without SWIR1: NDWI above this is Water.", min=-1, max=1),
        Param("tree_ndvi", "float", 0.5, "NDVI at or above this, when dark, is Tree.", min=-1, max=1),
        Param("tree_brightness", "float", 0.072, "Dense vegetation darker than this mean RGB reflectance is Tree.",
              min=0, max=1),
        Param("crop_ndvi", "float", 0.3, "NDVI at or above this (and not Tree) is Crop.", min=-1, max=1),
        Param("grass_ndvi", "float", 0.3, "NDVI at or above this (and below crop_ndvi) is Grass.", min=-1, max=1),
        Param("shrub_ndvi", "float", 0.3, "Shrub needs NDVI at least this.", min=-1, max=1),
        Param("shrub_brightness", "float", 0.09, "Shrub needs brightness below this.", min=0, max=1),
        Param("builtup_texture", "float", 0.014, "Low-vegetation pixels whose local brightness std exceeds this "
              "are Built-up.", min=0, max=1),
        Param("builtup_max_brightness", "float", 0.15, "Textured ground at least this bright (and dry) is Barren, not "
              "Built-up (rippled sand, dunes).", min=0, max=1),
        Param("barren_brightness", "float", 0.13, "Low-vegetation pixels at least this bright (mean RGB "
              "reflectance) are Barren.", min=0, max=1),
        Param("barren_relative", "float", 0.92, "Low-vegetation pixels whose stretched brightness is at least this "
              "(near the job's 98th percentile) are Barren.", min=0, max=1.01),
        Param("water_mndwi", "float", 0.45, "With a SWIR1 band: MNDWI above this is Water (NDWI is then unused "
              "for water).", min=-1, max=1),
        Param("tree_swir1", "float", 0.14, "With SWIR1: vegetation with SWIR1 reflectance below this (and NDVI >= "
              "tree_swir_ndvi) is Tree.", min=0, max=1),
        Param("tree_swir_ndvi", "float", 0.2, "With SWIR1: least NDVI of the SWIR Tree rule.", min=-1, max=1),
        Param("tree_swir_brightness", "float", 0.1, "With SWIR1: the SWIR Tree rule needs brightness below this.",
              min=0, max=1),
        Param("shrub_max_ndvi", "float", 0.4, "Shrub needs NDVI below this.", min=-1, max=1),
        Param("shrub_min_brightness", "float", 0.078, "Shrub needs brightness at least this (darker is Tree).",
              min=0, max=1),
        Param("shrub_texture", "float", 1.0, "Shrub needs texture below this (1 = no texture condition: a smoothness "
              "test made Shrub vanish from synthetic textures).", min=0, max=1),
        Param("barren_max_ndwi", "float", -0.02, "Bright low-vegetation pixels are Barren only with NDWI below this "
              "(sea foam is wetter).", min=-1, max=1),
        Param("barren_swir1", "float", 0.12, "With SWIR1: Barren needs SWIR1 reflectance at least this (foam and "
              "wet sand absorb SWIR).", min=0, max=1),
        Param("wet_ndwi", "float", -0.05, "Low-vegetation pixels with NDWI above this are wet: Grass (herbaceous "
              "wetland), not Crop.", min=-1, max=1),
        Param("wet_mndwi", "float", -0.1, "With SWIR1: the wet rule also needs MNDWI above this.", min=-1, max=1),
        Param("dark_tree_ndvi", "float", 0.15, "Low-vegetation pixels darker than tree_brightness with NDVI at least "
              "this are Tree (shaded or leafless woods), not Crop.", min=-1, max=1),
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
        return [self.classify(t.image, t.valid, t.swir) for t in tiles]

    def classify(self, image: np.ndarray, valid: np.ndarray, swir: np.ndarray | None = None) -> np.ndarray:
        """Class mask (uint8, 255 where not valid) of one (C, H, W) image in [0, 1] (and optional SWIR)."""
        refl = self._reflectance(image)
        s1 = self._swir1(swir, image.shape[0])
        p = self.p
        r, g, b = refl[0], refl[1], refl[2]
        bright = (r + g + b) / 3.0
        if refl.shape[0] >= 4:
            nir = refl[3]
            ndvi = (nir - r) / (nir + r + _EPS)
            ndwi = (g - nir) / (g + nir + _EPS)
            k = 1.0
        else:   # RGB fallback
            ndvi = (g - r) / (g + r + _EPS)
            # in the job stretch the atmosphere's blue offset is gone: water is clearly bluer than red
            stretched = np.asarray(image, dtype=np.float32)
            rgb_water = (stretched[2] - stretched[0] > p["rgb_water_blue"]) & (stretched[2] > stretched[1])
            ndwi = np.where(rgb_water, 1.0, -1.0).astype(np.float32)
            k = p["rgb_greenness_scale"]
        mndwi = None if s1 is None else (g - s1) / (g + s1 + _EPS)
        water = ndwi > p["water_ndwi"] if mndwi is None else mndwi > p["water_mndwi"]
        texture = self._texture(bright, p["texture_window"], np.asarray(valid, dtype=bool))
        out = self._land(p, k, ndvi, ndwi, mndwi, s1, bright, texture,
                         np.asarray(image[:3], dtype=np.float32).mean(axis=0))
        out[water] = WATER
        if p["smoothing"] > 1:
            out = majority_filter(out, valid, p["smoothing"])
        out[~valid] = NODATA
        return out

    @staticmethod
    def _land(p: dict, k: float, ndvi: np.ndarray, ndwi: np.ndarray, mndwi: np.ndarray | None,
              s1: np.ndarray | None, bright: np.ndarray, texture: np.ndarray, stretched: np.ndarray) -> np.ndarray:
        """The land rules (module doc), applied in reverse priority so that earlier rules overwrite later ones."""
        low_veg = ndvi < p["grass_ndvi"] * k
        out = np.full(bright.shape, CROP, dtype=np.uint8)        # dry, smooth: fallow default
        out[low_veg & (bright < p["tree_brightness"]) & (ndvi >= p["dark_tree_ndvi"] * k)] = TREE
        wet = ndwi > p["wet_ndwi"]
        if mndwi is not None:
            wet &= mndwi > p["wet_mndwi"]
        out[low_veg & wet] = GRASS
        # stretched brightness near 1 = at the top of the job stretch (bright land): the brightest ground
        bright_ground = low_veg & ((bright >= p["barren_brightness"]) | (stretched >= p["barren_relative"]))
        dry = ndwi < p["barren_max_ndwi"]
        if s1 is not None:
            dry &= s1 >= p["barren_swir1"]
        out[bright_ground & ~dry] = WATER                         # foam: bright and wet
        out[bright_ground & dry] = BARREN
        out[low_veg & (texture > p["builtup_texture"]) & ~(bright_ground & dry & (bright >= p["builtup_max_brightness"]))] \
            = BUILT
        out[ndvi >= p["grass_ndvi"] * k] = GRASS
        out[ndvi >= p["crop_ndvi"] * k] = CROP
        shrub = ((ndvi >= p["shrub_ndvi"] * k) & (ndvi < p["shrub_max_ndvi"] * k) & (bright < p["shrub_brightness"])
                 & (bright >= p["shrub_min_brightness"]) & (texture < p["shrub_texture"]))
        if s1 is not None:
            shrub &= s1 >= p["tree_swir1"]
        out[shrub] = SHRUB
        if s1 is not None:
            out[(ndvi >= p["tree_swir_ndvi"] * k) & (s1 < p["tree_swir1"]) & (bright < p["tree_swir_brightness"])] = TREE
        out[(ndvi >= p["tree_ndvi"] * k) & (bright < p["tree_brightness"])] = TREE
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

    def _swir1(self, swir: np.ndarray | None, channels: int) -> np.ndarray | None:
        """SWIR1 reflectance (H, W) from TileInput.swir, or None."""
        roles = list((self.ctx.extra or {}).get("swir_roles") or [])
        stretch = (self.ctx.extra or {}).get("stretch")
        if swir is None or "swir1" not in roles or not stretch or len(stretch["low"]) < channels + len(roles):
            return None
        j = roles.index("swir1")
        lo, hi = float(stretch["low"][channels + j]), float(stretch["high"][channels + j])
        scale = self.p["reflectance_scale"] or _auto_scale(hi)
        return (lo + np.nan_to_num(np.asarray(swir[j], np.float32), nan=0.0) * (hi - lo)) / scale

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
