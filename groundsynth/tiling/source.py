"""The job's source raster: band mapping, pixel windows with validity, and the job stretch.

- `SourceRaster` opens the job's source, maps bands to R, G, B(, NIR) and reads
  pixel windows (also past the raster edge) with a validity mask.
- `Stretch`: one radiometric stretch per job (per band 2nd/98th percentile of
  valid pixels from a decimated read of the AOI window) so brightness is
  comparable between tiles.
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
        self.indexes: list[int] = idx
        self.has_nir = len(idx) == 4
        self.nodata = ds.nodata
        flags = [ds.mask_flag_enums[i - 1] for i in idx]
        self._all_valid = all(f == [MaskFlags.all_valid] for f in flags)

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
                "has_nir": self.has_nir, "transform": list(ds.transform)[:6], "res": list(ds.res)}

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
    def from_sample(cls, data: np.ndarray, valid: np.ndarray, pct: tuple[float, float] = (2.0, 98.0)) -> Stretch:
        lows, highs = [], []
        for band in data:
            vals = band[valid & (band != 0)]
            if vals.size == 0:
                lo, hi = 0.0, 1.0
            else:
                lo, hi = (float(v) for v in np.percentile(vals, pct))
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
