"""The 7 land-cover classes, their colours and the ESA WorldCover remap.

Source: ../shared/REFERENCE.md (ARAS400k). Masks are uint8 with class index
0..6 and NODATA = 255.
"""
from __future__ import annotations

import numpy as np

CLASS_NAMES: tuple[str, ...] = ("Tree", "Shrub", "Grass", "Crop", "Built-up", "Barren", "Water")
CLASS_COLORS: tuple[tuple[int, int, int], ...] = (
    (0, 100, 0),
    (255, 182, 193),
    (154, 205, 50),
    (255, 215, 0),
    (139, 69, 19),
    (211, 211, 211),
    (0, 0, 255),
)
NUM_CLASSES = len(CLASS_NAMES)
NODATA = 255

# ESA WorldCover 2021 code -> class index (0 = WorldCover nodata -> NODATA).
WORLDCOVER_TO_CLASS: dict[int, int] = {
    10: 0, 95: 0,           # tree cover, mangroves
    20: 1,                  # shrubland
    30: 2, 90: 2, 100: 2,   # grassland, herbaceous wetland, moss and lichen
    40: 3,                  # cropland
    50: 4,                  # built-up
    60: 5, 70: 5,           # bare/sparse vegetation, snow and ice
    80: 6,                  # permanent water bodies
}


def class_index(name: str) -> int:
    """Index of a class by name (case-insensitive; "builtup"/"built_up" accepted)."""
    key = name.strip().lower().replace("_", "-").replace(" ", "-")
    for i, n in enumerate(CLASS_NAMES):
        if n.lower() == key or n.lower().replace("-", "") == key.replace("-", ""):
            return i
    raise KeyError(name)


def hex_color(index: int) -> str:
    r, g, b = CLASS_COLORS[index]
    return f"#{r:02x}{g:02x}{b:02x}"


def gdal_colormap() -> dict[int, tuple[int, int, int, int]]:
    """Colour table for uint8 mask GeoTIFFs (rasterio's write_colormap format)."""
    cmap = {i: (*CLASS_COLORS[i], 255) for i in range(NUM_CLASSES)}
    cmap[NODATA] = (0, 0, 0, 0)
    return cmap


def worldcover_lut() -> np.ndarray:
    """256-entry lookup table mapping WorldCover codes to class indices (else NODATA)."""
    lut = np.full(256, NODATA, dtype=np.uint8)
    for code, idx in WORLDCOVER_TO_CLASS.items():
        lut[code] = idx
    return lut


def remap_worldcover(codes: np.ndarray) -> np.ndarray:
    """Map an array of WorldCover codes to class indices; unknown codes become NODATA."""
    return worldcover_lut()[np.asarray(codes).astype(np.uint8, copy=False)]


def composition(mask: np.ndarray) -> np.ndarray:
    """Share (0..1) of each class among valid (non-NODATA) pixels; zeros if none valid."""
    counts = np.bincount(mask[mask != NODATA].ravel(), minlength=NUM_CLASSES)[:NUM_CLASSES]
    total = counts.sum()
    return counts / total if total else np.zeros(NUM_CLASSES, dtype=float)
