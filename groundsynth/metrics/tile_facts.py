"""What a class mask shows, measured the same way for the captioner (which states it) and the grounder
(which checks it): regions, enrichment, patches, linear features, parcel sizes and the shoreline.

Pure numpy + scipy.ndimage; every threshold is a module constant documented here.

- Regions: north/south/west/east = image halves, north-west etc. = quadrants, centre = the middle
  half on each axis, all = the whole tile (`region_mask`).
- Enrichment of a class in a region = (share of the class's pixels inside the region) / (share of
  valid pixels inside it); 1 = spread as if evenly (`enrichment`).
- Patches: 8-connected components of one class (`scipy.ndimage.label`). A patch is *sizeable* when it
  holds at least SIZEABLE_SHARE of the tile's pixels (and at least 4 pixels): 0.2 %, i.e. 131 px or
  1.3 ha for a 256 px tile at 10 m.
- Structure of a class: contiguous (largest patch >= 85 % of the class, no other sizeable patch),
  main (largest patch >= 85 %, other sizeable patches too: "one main block with a few outliers"),
  few (<= 4 sizeable patches holding >= 70 %), else scattered.
- Parcel size (classes with >= 3 sizeable patches): the median sizeable patch as a share of the
  valid pixels: small < 1 %, medium 1-4 %, large >= 4 % (at 10 m and 256 px, 1 % = 6.6 ha).
- Linear feature: a patch of >= 30 px whose principal length (4 standard deviations along its main
  axis) is >= 15 % of the tile side (and >= 20 px) and whose mean width (pixels / length) is <= 3 px
  -- a road, a hedgerow or tree line, a creek at 10 m.
- Shoreline: water pixels 4-adjacent to valid non-water pixels. A tile *has a shoreline* when both
  water and land cover >= 2 % and the shoreline is at least 25 % of the tile side long. Its
  orientation is the principal axis of the shoreline pixels (degrees from east, counter-clockwise,
  0..180; north-south = 90), stated only when the axis is clear (elongation = sqrt of the eigenvalue
  ratio >= 2). Straightness = principal length / shoreline length: straight >= 0.6, indented <= 0.35.
- Water look (needs the tile's image: float (C, H, W) in [0, 1], the job's stretched bands, red, green,
  blue first; `water_look`): over the water pixels (at least WATER_LOOK_MIN_SHARE of the valid pixels and
  WATER_LOOK_MIN_PX), brightness = the mean of red, green and blue. Tone: *dark* when the median brightness
  is below TONE_DARK (0.17), *pale* at or above TONE_PALE (0.235), else none is stated; on the demo scene
  this tells the dark estuary and creek water from the paler, more turbid sea. Gradient: a least-squares
  plane of brightness over the water pixels (coordinates in tile sides); its *change* across one tile side
  and the compass direction (8 sectors) toward which the water grows paler, stated when the change is at
  least GRADIENT_MIN (0.04, about 10 grey levels of 255): sediment plumes, shallows, depth.
- No data: where the tile's nodata pixels (outside the scene or its AOI) lie, when they cover at least
  NODATA_MIN_SHARE (2 %) of the tile and less than all of it: their centroid region, if they are
  concentrated there (enrichment over the whole tile >= 1.2; "centre" is not stated).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from groundsynth.request.classes import CLASS_NAMES, NODATA, composition

WATER = CLASS_NAMES.index("Water")
SIZEABLE_SHARE = 0.002
PARCEL_BUCKETS = (("small", 0.0), ("medium", 0.01), ("large", 0.04))     # (name, lower bound)
LINEAR_MIN_PX, LINEAR_MIN_LENGTH, LINEAR_MAX_WIDTH = 30, 0.15, 3.0
SHORE_MIN_SHARE, SHORE_MIN_LENGTH, SHORE_MIN_ELONGATION = 0.02, 0.25, 2.0
ORIENTATIONS = {"east-west": 0.0, "north-east to south-west": 45.0, "north-south": 90.0,
                "north-west to south-east": 135.0}
WATER_LOOK_MIN_SHARE, WATER_LOOK_MIN_PX = 0.2, 1000
TONE_DARK, TONE_PALE = 0.17, 0.235
GRADIENT_MIN = 0.04
NODATA_MIN_SHARE = 0.02
COMPASS = {"east": 0.0, "north-east": 45.0, "north": 90.0, "north-west": 135.0, "west": 180.0,
           "south-west": 225.0, "south": 270.0, "south-east": 315.0}
REGIONS = ("north-west", "north-east", "south-west", "south-east", "north", "south", "west", "east",
           "centre", "all")
_S8 = np.ones((3, 3), dtype=bool)


def region_mask(region: str, height: int, width: int) -> np.ndarray:
    """Bool (H, W) mask of the pixels a region name denotes."""
    if region not in REGIONS:
        raise ValueError(f"unknown region {region!r}; expected one of {', '.join(REGIONS)}")
    out = np.zeros((height, width), dtype=bool)
    h2, w2 = height // 2, width // 2
    rows = {"north": slice(0, h2), "south": slice(h2, height)}
    cols = {"west": slice(0, w2), "east": slice(w2, width)}
    if region == "all":
        out[:] = True
    elif region == "centre":
        out[height // 4: height - height // 4, width // 4: width - width // 4] = True
    elif "-" in region:
        ns, ew = region.split("-")
        out[rows[ns], cols[ew]] = True
    elif region in rows:
        out[rows[region], :] = True
    else:
        out[:, cols[region]] = True
    return out


def enrichment(mask: np.ndarray, cls: int, region: str) -> float:
    """(share of the class's pixels inside the region) / (share of valid pixels inside it).

    1.0 means the class is spread as if evenly; > 1 means it is concentrated in
    the region. NaN when the class or the region has no valid pixels.
    """
    valid = mask != NODATA
    inside = region_mask(region, *mask.shape)
    is_cls = mask == cls
    n_cls, n_valid = int(is_cls.sum()), int(valid.sum())
    n_region = int((valid & inside).sum())
    if n_cls == 0 or n_region == 0:
        return float("nan")
    return (int((is_cls & inside).sum()) / n_cls) / (n_region / n_valid)


def centroid_region(mask: np.ndarray, cls: int, centre_radius: float = 0.1) -> str | None:
    """The compass region (or "centre") the class's centroid falls in; None if the class is absent.

    Offsets are measured from the tile centre as fractions of the tile size;
    within `centre_radius` on an axis counts as central on that axis.
    """
    ys, xs = np.nonzero(mask == cls)
    if ys.size == 0:
        return None
    h, w = mask.shape
    dy = (ys.mean() + 0.5) / h - 0.5
    dx = (xs.mean() + 0.5) / w - 0.5
    ns = "north" if dy < -centre_radius else "south" if dy > centre_radius else ""
    ew = "west" if dx < -centre_radius else "east" if dx > centre_radius else ""
    if ns and ew:
        return f"{ns}-{ew}"
    return ns or ew or "centre"


def angle_difference(a: float, b: float) -> float:
    """Smallest difference between two axis orientations in degrees (0..90)."""
    d = abs(a - b) % 180.0
    return min(d, 180.0 - d)


def _principal(ys: np.ndarray, xs: np.ndarray) -> tuple[float, float, float]:
    """(length = 4 sd along the main axis, elongation = sd ratio, angle from east in degrees 0..180)."""
    if ys.size < 3:
        return 0.0, 1.0, 0.0
    cov = np.cov(np.vstack([xs.astype(float), -ys.astype(float)]))     # x east, y north
    vals, vecs = np.linalg.eigh(cov)
    major, minor = max(vals[1], 0.0), max(vals[0], 1e-12)
    vx, vy = vecs[0, 1], vecs[1, 1]
    return 4.0 * math.sqrt(major), math.sqrt(major / minor), math.degrees(math.atan2(vy, vx)) % 180.0


def direction_difference(a: float, b: float) -> float:
    """Smallest difference between two compass directions in degrees (0..180)."""
    d = abs(a - b) % 360.0
    return min(d, 360.0 - d)


@dataclass
class WaterLook:
    brightness: float       # median brightness of the water pixels (0..1)
    change: float           # brightness change across one tile side along the gradient (plane fit)
    angle: float            # direction toward which the water grows paler, degrees from east (ccw, 0..360)

    @property
    def tone(self) -> str | None:
        return "dark" if self.brightness < TONE_DARK else "pale" if self.brightness >= TONE_PALE else None

    @property
    def paler_toward(self) -> str | None:
        """The compass direction (COMPASS) toward which the water grows paler, when the change is clear."""
        if self.change < GRADIENT_MIN:
            return None
        return min(COMPASS, key=lambda k: direction_difference(COMPASS[k], self.angle))


def water_look(image: np.ndarray | None, mask: np.ndarray) -> WaterLook | None:
    """Tone and brightness gradient of the tile's water (module doc); None without an image of 3+ bands or
    with too little water."""
    if image is None:
        return None
    image = np.asarray(image)
    mask = np.asarray(mask)
    if image.ndim != 3 or image.shape[0] < 3 or image.shape[1:] != mask.shape:
        return None
    water = mask == WATER
    n = int(water.sum())
    n_valid = int((mask != NODATA).sum())
    if n < WATER_LOOK_MIN_PX or n < WATER_LOOK_MIN_SHARE * n_valid:
        return None
    scale = 255.0 if np.issubdtype(image.dtype, np.integer) else 1.0
    ys, xs = np.nonzero(water)
    b = image[:3, ys, xs].astype(np.float64).mean(axis=0) / scale
    h, w = mask.shape
    x = xs / w - xs.mean() / w                     # east, in tile sides
    y = ys.mean() / h - ys / h                     # north, in tile sides
    bc = b - b.mean()
    sxx, syy, sxy = float(x @ x), float(y @ y), float(x @ y)
    det = sxx * syy - sxy * sxy
    if det <= 1e-12 * max(1.0, sxx * syy):        # water on one line: no plane
        gx = gy = 0.0
    else:
        sxb, syb = float(x @ bc), float(y @ bc)
        gx, gy = (syy * sxb - sxy * syb) / det, (sxx * syb - sxy * sxb) / det
    return WaterLook(float(np.median(b)), math.hypot(gx, gy), math.degrees(math.atan2(gy, gx)) % 360.0)


@dataclass
class Shoreline:
    length: int             # shoreline pixels
    angle: float            # principal axis, degrees from east (0..180)
    elongation: float
    straightness: float     # principal length / shoreline length

    @property
    def orientation(self) -> str | None:
        """The nearest named orientation, or None when the shoreline has no clear direction."""
        if self.elongation < SHORE_MIN_ELONGATION:
            return None
        return min(ORIENTATIONS, key=lambda k: angle_difference(ORIENTATIONS[k], self.angle))

    @property
    def shape(self) -> str | None:
        return "straight" if self.straightness >= 0.6 else "indented" if self.straightness <= 0.35 else None


class TileFacts:
    """Measurements of one class mask (computed lazily, cached)."""

    def __init__(self, mask: np.ndarray, image: np.ndarray | None = None):
        self.mask = np.asarray(mask)
        self.image = image          # the tile's image, for the water look (None: not known)
        self.height, self.width = self.mask.shape
        self.valid = self.mask != NODATA
        self.n_valid = int(self.valid.sum())
        self.shares = composition(self.mask)
        self.sizeable_px = max(4.0, SIZEABLE_SHARE * self.mask.size)
        self._patches: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    # ------------------------------------------------------------ patches
    def patches(self, cls: int) -> tuple[np.ndarray, np.ndarray]:
        """(label image, sizes of components 1..n) of a class."""
        if cls not in self._patches:
            from scipy import ndimage

            labels, _ = ndimage.label(self.mask == cls, structure=_S8)
            self._patches[cls] = (labels, np.bincount(labels.ravel())[1:])
        return self._patches[cls]

    def patch_count(self, cls: int) -> int:
        """Sizeable patches of the class."""
        return int((self.patches(cls)[1] >= self.sizeable_px).sum())

    def structure(self, cls: int) -> str | None:
        sizes = self.patches(cls)[1]
        if not sizes.size:
            return None
        big = sizes[sizes >= self.sizeable_px]
        if sizes.max() / sizes.sum() >= 0.85:
            return "contiguous" if big.size <= 1 else "main"
        if 0 < big.size <= 4 and big.sum() >= 0.7 * sizes.sum():
            return "few"
        return "scattered"

    def parcel_share(self, cls: int) -> float | None:
        """Median sizeable patch as a share of the valid pixels (None with fewer than 3 sizeable patches)."""
        sizes = self.patches(cls)[1]
        big = sizes[sizes >= self.sizeable_px]
        if big.size < 3 or self.n_valid == 0:
            return None
        return float(np.median(big)) / self.n_valid

    def parcel_size(self, cls: int) -> str | None:
        share = self.parcel_share(cls)
        if share is None:
            return None
        return [name for name, lo in PARCEL_BUCKETS if share >= lo][-1]

    def linear_count(self, cls: int) -> int:
        """Thin elongated patches of the class (see module doc)."""
        labels, sizes = self.patches(cls)
        cand = np.nonzero(sizes >= LINEAR_MIN_PX)[0] + 1
        if not cand.size:
            return 0
        from scipy import ndimage

        min_len = max(20.0, LINEAR_MIN_LENGTH * max(self.height, self.width))
        n = 0
        objects = ndimage.find_objects(labels)
        for k in cand:
            sl = objects[k - 1]
            if sl is None or max(sl[0].stop - sl[0].start, sl[1].stop - sl[1].start) < min_len:
                continue
            ys, xs = np.nonzero(labels[sl] == k)
            length, _, _ = _principal(ys, xs)
            if length >= min_len and sizes[k - 1] / max(length, 1.0) <= LINEAR_MAX_WIDTH:
                n += 1
        return n

    # ------------------------------------------------------------ places
    def enrichment(self, cls: int, region: str) -> float:
        return enrichment(self.mask, cls, region)

    def centroid_region(self, cls: int) -> str | None:
        return centroid_region(self.mask, cls)

    def local_shares(self, region: str) -> np.ndarray:
        return composition(np.where(region_mask(region, self.height, self.width), self.mask, NODATA))

    def place(self, cls: int) -> str | None:
        """"all" for a class covering >= 80 %, else its centroid region if it is concentrated there
        (enrichment >= 1.2), else None (spread unevenly)."""
        if self.shares[cls] >= 0.8:
            return "all"
        region = self.centroid_region(cls)
        if region is None:
            return None
        return region if self.enrichment(cls, region) >= 1.2 else None

    def near_edge(self, cls: int, region: str) -> bool:
        """The class's centroid lies in the outer fifth of the tile toward that half's edge."""
        ys, xs = np.nonzero(self.mask == cls)
        if not ys.size or region not in ("north", "south", "west", "east"):
            return False
        off = {"north": 0.5 - ys.mean() / self.height, "south": ys.mean() / self.height - 0.5,
               "west": 0.5 - xs.mean() / self.width, "east": xs.mean() / self.width - 0.5}[region]
        return bool(off > 0.3)

    # ------------------------------------------------------------ shoreline
    @cached_property
    def shoreline(self) -> Shoreline | None:
        water = self.mask == WATER
        land = self.valid & ~water
        if self.n_valid == 0 or min(water.sum(), land.sum()) < SHORE_MIN_SHARE * self.n_valid:
            return None
        near_land = np.zeros_like(land)
        near_land[1:, :] |= land[:-1, :]
        near_land[:-1, :] |= land[1:, :]
        near_land[:, 1:] |= land[:, :-1]
        near_land[:, :-1] |= land[:, 1:]
        ys, xs = np.nonzero(water & near_land)
        if ys.size < SHORE_MIN_LENGTH * max(self.height, self.width):
            return None
        length, elongation, angle = _principal(ys, xs)
        return Shoreline(int(ys.size), angle, elongation, length / ys.size)

    # ------------------------------------------------------------ no data
    def nodata_concentration(self, region: str) -> float:
        """(share of the nodata pixels inside the region) / (region's share of the tile); NaN without nodata."""
        nodata = ~self.valid
        n = int(nodata.sum())
        if n == 0:
            return float("nan")
        inside = region_mask(region, self.height, self.width)
        return (int((nodata & inside).sum()) / n) / (inside.sum() / self.mask.size)

    @property
    def nodata_share(self) -> float:
        """Share of the tile's pixels that are nodata."""
        return 1.0 - self.n_valid / self.mask.size

    @cached_property
    def nodata_side(self) -> str | None:
        """Where the tile's nodata lies (module doc), or None."""
        if self.nodata_share < NODATA_MIN_SHARE or self.n_valid == 0:
            return None
        region = centroid_region(np.where(self.valid, 0, 1).astype(np.uint8), 1)
        if region in (None, "centre") or self.nodata_concentration(region) < 1.2:
            return None
        return region

    @cached_property
    def water_look(self) -> WaterLook | None:
        return water_look(self.image, self.mask)

    def water_side(self) -> str | None:
        """Where the water lies (its centroid region), if the water is concentrated there (enrichment >= 1.2)."""
        place = self.place(WATER)
        return place if place not in (None, "all", "centre") else None
