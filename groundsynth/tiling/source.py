"""The job's source raster: band mapping, pixel windows with validity, and the job stretch.

- `SourceRaster` opens the job's source, maps bands to R, G, B(, NIR) and reads
  pixel windows (also past the raster edge) with a validity mask.
- `Stretch`: one radiometric stretch per job so brightness is comparable between
  tiles, from a decimated read of the AOI window: per band low = 1st percentile of
  the valid pixels, high = 99.5th percentile of the valid LAND pixels (NIR above
  green) when the job has NIR. (Before issue 11 it was 2/98 % of all valid pixels:
  on a scene that is mostly water, the 98th percentile fell inside the land's range
  and clipped 96 % of bare ground at 255.) The SWIR bands, when mapped, are
  stretched like the others and follow the image bands.
(Tile GeoTIFFs the pipeline writes are in groundsynth.artefacts.tiles.)

Broken files: `check_blocks_readable` reads the first and the last pixel block of every band (a truncated
file fails there) when a SourceRaster opens, and pixel read errors become InvalidArgument naming the field,
never a traceback.

Validity: a pixel is invalid where it lies outside the raster, where any mapped
band equals the declared nodata value, is NaN/infinite, or is masked by the dataset's mask, or —
when the raster declares no nodata value — where all mapped bands are 0 (the
usual "0 = no data" of Sentinel-2 L1C/L2A products).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import ColorInterp, MaskFlags, Resampling
from rasterio.windows import Window

from groundsynth.request.errors import InvalidArgument, NotFound
from groundsynth.request.spec import BandMapping
from groundsynth.tiling.grid import check_transform

BAND_NAMES = ("red", "green", "blue", "nir")
STRETCH_SAMPLE_PX = 1024      # long side of the decimated read used for the stretch
STRETCH_PCT = (1.0, 99.5)     # percentiles: low of all valid pixels, high of the valid land pixels
LAND_MIN_SHARE = 0.02         # fewer land pixels than this share of the valid ones: high from all of them


def land_pixels(data: np.ndarray, valid: np.ndarray, has_nir: bool) -> np.ndarray | None:
    """Land pixels of a raw (C, H, W) read for the stretch: NIR above green (NDWI < 0); None without NIR."""
    if not has_nir or data.shape[0] < 4:
        return None
    return valid & (data[3] > data[1])


# ---------------------------------------------------------------- source

class SourceRaster:
    """The job's source raster with its band mapping resolved."""

    def __init__(self, path: str | Path, bands: BandMapping, field_name: str = "raster_path"):
        self.path = Path(path)
        if not self.path.exists():
            raise NotFound(f"no such raster: {self.path}", field_name)
        try:
            self.ds = rasterio.open(self.path)
        except rasterio.errors.RasterioIOError as exc:
            raise InvalidArgument(f"cannot open {self.path} as a raster ({exc})", field_name) from None
        self.field_name = field_name
        try:
            self._setup(bands, field_name)
            check_blocks_readable(self.ds, self.path.name, field_name)
        except Exception:
            self.ds.close()
            raise

    def _setup(self, bands: BandMapping, field_name: str) -> None:
        ds = self.ds
        check_transform(ds.transform, f"raster {self.path.name}", field_name)
        if ds.crs is None:
            raise InvalidArgument(f"raster {self.path} has no CRS; assign one first (gdal_edit.py -a_srs)", field_name)
        count = ds.count
        nir = bands.nir
        if nir == 0:     # auto: band 4, unless it is an alpha band (RGBA rasters)
            nir = 4 if count >= 4 and ds.colorinterp[3] != ColorInterp.alpha else -1
        idx = []
        for role, b in (("red", bands.red), ("green", bands.green), ("blue", bands.blue), ("nir", nir)):
            if role == "nir" and b == -1:
                continue
            if not 1 <= b <= count:
                raise InvalidArgument(f"band {b} does not exist: {self.path.name} has {count} band(s)", f"bands.{role}")
            idx.append(b)
        self.has_nir = len(idx) == 4
        self.n_main = len(idx)                    # R, G, B(, NIR): the image channels
        swir = self._swir_bands(bands, count)
        self.swir_roles = [role for role, _ in swir]           # "swir1" and/or "swir2", in read order
        self.swir_indexes = [b for _, b in swir]
        idx += self.swir_indexes
        self.indexes: list[int] = idx             # read order: R, G, B(, NIR)(, SWIR1)(, SWIR2)
        self.nodata = ds.nodata
        flags = [ds.mask_flag_enums[i - 1] for i in idx]
        self._all_valid = all(f == [MaskFlags.all_valid] for f in flags)

    def _swir_bands(self, bands: BandMapping, count: int) -> list[tuple[str, int]]:
        """Optional SWIR bands (1-based), in the order swir1, swir2; 0 = the band described swir1/B11 (swir2/B12)."""
        descs = [(d or "").strip().lower() for d in self.ds.descriptions]
        out = []
        for role, b, names in (("swir1", bands.swir1, ("swir1", "b11")), ("swir2", bands.swir2, ("swir2", "b12"))):
            if b == 0:
                b = next((i + 1 for i, d in enumerate(descs) if d in names), -1)
            if b == -1:
                continue
            if not 1 <= b <= count:
                raise InvalidArgument(f"band {b} does not exist: {self.path.name} has {count} band(s)", f"bands.{role}")
            out.append((role, b))
        return out

    # convenient passthroughs
    @property
    def crs(self):
        return self.ds.crs

    @property
    def transform(self) -> Affine:
        return self.ds.transform

    @property
    def width(self) -> int:
        return self.ds.width

    @property
    def height(self) -> int:
        return self.ds.height

    def close(self) -> None:
        self.ds.close()

    def __enter__(self) -> SourceRaster:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def meta(self) -> dict[str, Any]:
        ds = self.ds
        return {"path": str(self.path), "crs": ds.crs.to_string(), "width": ds.width, "height": ds.height,
                "count": ds.count, "dtype": ds.dtypes[0], "nodata": ds.nodata, "bands": self.indexes,
                "has_nir": self.has_nir, "swir": self.swir_indexes, "transform": list(ds.transform)[:6], "res": list(ds.res)}

    def _valid(self, data: np.ndarray, window: Window, out_shape: tuple[int, int] | None = None) -> np.ndarray:
        if self.nodata is not None:
            nd = self.nodata
            bad = np.isnan(data) if isinstance(nd, float) and np.isnan(nd) else data == nd
            valid = ~bad.any(axis=0)
        else:
            valid = data.any(axis=0)   # all bands 0 = no data
        if data.dtype.kind == "f":
            valid &= np.isfinite(data).all(axis=0)   # NaN/inf is never a value, declared or not
        if not self._all_valid and self.nodata is None:
            kw = {"out_shape": (len(self.indexes), *out_shape)} if out_shape else {}
            masks = self.ds.read_masks(self.indexes, window=window, **kw)
            valid &= (masks > 0).all(axis=0)
        return valid

    def read_window(self, col_off: int, row_off: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        """Raw values float32 (C, height, width) and valid bool (height, width); outside the raster: 0/invalid."""
        c = len(self.indexes)
        data = np.zeros((c, height, width), dtype=np.float32)
        valid = np.zeros((height, width), dtype=bool)
        c0, r0 = max(col_off, 0), max(row_off, 0)
        c1, r1 = min(col_off + width, self.width), min(row_off + height, self.height)
        if c1 <= c0 or r1 <= r0:
            return data, valid
        win = Window(c0, r0, c1 - c0, r1 - r0)
        try:
            part = self.ds.read(self.indexes, window=win)
        except rasterio.errors.RasterioIOError as exc:
            raise _unreadable(self.path.name, exc, self.field_name) from None
        ys, xs = slice(r0 - row_off, r1 - row_off), slice(c0 - col_off, c1 - col_off)
        data[:, ys, xs] = part
        valid[ys, xs] = self._valid(part, win)
        return data, valid

    def read_sample(self, pixel_bounds: tuple[int, int, int, int], max_px: int = STRETCH_SAMPLE_PX
                    ) -> tuple[np.ndarray, np.ndarray]:
        """A decimated (nearest) read of a pixel box (col0, row0, col1, row1): raw values and valid mask."""
        c0, r0, c1, r1 = pixel_bounds
        w, h = c1 - c0, r1 - r0
        scale = max(1.0, max(w, h) / max_px)
        shape = (max(1, round(h / scale)), max(1, round(w / scale)))
        win = Window(c0, r0, w, h)
        try:
            data = self.ds.read(self.indexes, window=win, out_shape=(len(self.indexes), *shape),
                                resampling=Resampling.nearest).astype(np.float32)
        except rasterio.errors.RasterioIOError as exc:
            raise _unreadable(self.path.name, exc, self.field_name) from None
        return data, self._valid(data, win, shape)


def _unreadable(name: str, exc: Exception, field_name: str) -> InvalidArgument:
    cause = exc.__cause__ or exc.__context__ or exc          # rasterio chains GDAL's own message
    detail = (str(cause).strip().splitlines() or [type(cause).__name__])[0][:200]
    return InvalidArgument(f"the pixels of {name} cannot be read ({detail}); the file looks truncated or "
                           "corrupt: copy it again", field_name)


def check_blocks_readable(ds: Any, name: str, field_name: str) -> None:
    """Read the first and the last block of every band of an open dataset; InvalidArgument if one fails."""
    try:
        for b in range(1, ds.count + 1):
            bh, bw = ds.block_shapes[b - 1]
            bh, bw = max(1, min(bh, ds.height)), max(1, min(bw, ds.width))
            last_r, last_c = (ds.height - 1) // bh, (ds.width - 1) // bw
            for r, c in {(0, 0), (last_r, last_c)}:
                ds.read(b, window=Window(c * bw, r * bh, min(bw, ds.width - c * bw), min(bh, ds.height - r * bh)))
    except rasterio.errors.RasterioIOError as exc:
        raise _unreadable(name, exc, field_name) from None


# ---------------------------------------------------------------- stretch

@dataclass
class Stretch:
    """Per-band linear stretch: value01 = clip((dn - low) / (high - low), 0, 1)."""

    low: list[float]
    high: list[float]

    @classmethod
    def from_sample(cls, data: np.ndarray, valid: np.ndarray, pct: tuple[float, float] = STRETCH_PCT,
                    land: np.ndarray | None = None) -> Stretch:
        """low = pct[0] percentile of the valid non-zero pixels; high = pct[1] percentile of the valid LAND
        pixels when a `land` mask is given (and holds at least LAND_MIN_SHARE of them), else of all valid
        ones. A scene that is mostly water then no longer puts the top of the stretch inside the land's
        range (which clipped bright sand and bare fields at 1)."""
        lows, highs = [], []
        use_land = land is not None and bool(valid.any()) and float(land[valid].mean()) >= LAND_MIN_SHARE
        for band in data:
            vals = band[valid & (band != 0)]
            top = band[valid & (band != 0) & land] if use_land and land is not None else vals
            if vals.size == 0:
                lo, hi = 0.0, 1.0
            else:
                lo = float(np.percentile(vals, pct[0]))
                hi = float(np.percentile(top if top.size else vals, pct[1]))
            if hi <= lo:
                hi = lo + 1.0
            lows.append(lo)
            highs.append(hi)
        return cls(lows, highs)

    def apply(self, data: np.ndarray) -> np.ndarray:
        lo = np.asarray(self.low, np.float32)[:, None, None]
        hi = np.asarray(self.high, np.float32)[:, None, None]
        return np.clip((data - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)

    def to_dict(self) -> dict[str, list[float]]:
        return {"low": list(self.low), "high": list(self.high)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Stretch:
        return cls([float(v) for v in d["low"]], [float(v) for v in d["high"]])
