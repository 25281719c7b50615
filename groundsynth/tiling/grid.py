"""Tiling: the job's AOI in the raster CRS and the grid of tiles that covers it.

The grid is anchored at the raster's pixel (0, 0): tile (row, col) is the pixel
window starting at (row * stride, col * stride), `tile_size` pixels a side,
with stride = tile_size - overlap. Anchoring at the raster origin (rather than
at the AOI corner) keeps tile ids and footprints stable for a given raster and
tile size, whatever AOI is asked for, so tiles of different jobs line up and
VRT mosaics are exact.

Cells are kept when their window touches the AOI's pixel bounding box and
their footprint intersects the AOI polygon with positive area; the others are
counted as skipped. Windows that stick out of the raster (right/bottom edges)
are read boundless and flagged invalid there (see groundsynth.tiling.source).

All geometry is done in pixel space (the AOI is mapped through the inverse
geotransform), so north-up and south-up rasters work alike. Rotated or sheared
geotransforms are refused with InvalidArgument (documented choice).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from affine import Affine
from shapely import affinity, box, segmentize
from shapely.errors import ShapelyError
from shapely.geometry.base import BaseGeometry
from shapely.ops import transform as shapely_transform

from groundsynth.request.errors import InvalidArgument

# Bbox edges are split into this many segments before reprojection, so a box in
# one CRS becomes the right curved shape in another.
DENSIFY_SEGMENTS = 64
# A cell must share more than this area (pixels^2) with the AOI: touching edges or corners, also after
# float round-off of reprojection, does not count.
MIN_OVERLAP_PX2 = 1e-3
# With a cell limit, grids of up to this many candidate cells are still counted exactly (the error can say how
# many tiles the AOI needs); bigger ones stop at the first cell over the limit (Grid.truncated).
EXACT_COUNT_CELLS = 50_000


@dataclass(frozen=True)
class Cell:
    """One grid cell: a pixel window of the source raster."""

    row: int
    col: int
    col_off: int
    row_off: int
    width: int
    height: int

    def transform(self, raster_transform: Affine) -> Affine:
        return raster_transform @ Affine.translation(self.col_off, self.row_off)

    def bounds(self, raster_transform: Affine) -> tuple[float, float, float, float]:
        """(minx, miny, maxx, maxy) of the window in the raster CRS."""
        return window_bounds(raster_transform, self.col_off, self.row_off, self.width, self.height)


@dataclass
class Grid:
    tile_size: int
    overlap: int
    cells: list[Cell] = field(default_factory=list)
    skipped: int = 0                  # cells in the AOI's box that miss the AOI polygon
    pixel_bounds: tuple[int, int, int, int] = (0, 0, 0, 0)   # col0, row0, col1, row1 of AOI ∩ raster
    truncated: bool = False           # stopped after max_cells + 1 cells (build_grid's max_cells)

    @property
    def stride(self) -> int:
        return self.tile_size - self.overlap


def window_bounds(t: Affine, col_off: float, row_off: float, width: float, height: float
                  ) -> tuple[float, float, float, float]:
    xs, ys = zip(*(t @ (c, r) for c, r in ((col_off, row_off), (col_off + width, row_off),
                                           (col_off, row_off + height), (col_off + width, row_off + height))), strict=True)
    return (min(xs), min(ys), max(xs), max(ys))


def check_transform(t: Affine, what: str, field_name: str = "raster_path") -> None:
    """Refuse geotransforms the tiler cannot handle (rotation/shear, zero pixel size)."""
    if t.b != 0 or t.d != 0:
        raise InvalidArgument(
            f"{what} has a rotated or sheared geotransform ({tuple(t)[:6]}); only north-up or south-up rasters are "
            "supported: warp it first, e.g. gdalwarp -t_srs <crs> in.tif out.tif", field_name)
    if t.a == 0 or t.e == 0:
        raise InvalidArgument(f"{what} has a zero pixel size in its geotransform {tuple(t)[:6]}", field_name)


def parse_crs(text: str, field_name: str = "aoi.crs"):
    """A pyproj CRS from "EPSG:<code>", an authority string or WKT; InvalidArgument if unknown."""
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    try:
        return CRS.from_user_input(text.strip())
    except (CRSError, TypeError, ValueError) as exc:
        raise InvalidArgument(f"expected an 'EPSG:<code>' or WKT CRS, got {text[:80]!r} ({exc})", field_name) from None


def aoi_shape(bbox: tuple[float, float, float, float] | None, polygon_wkt: str | None) -> BaseGeometry:
    """The AOI geometry in its own CRS, densified so that reprojection keeps its shape."""
    if bbox is not None:
        minx, miny, maxx, maxy = bbox
        if not all(math.isfinite(v) for v in bbox):
            raise InvalidArgument(f"expected finite coordinates, got {tuple(bbox)}", "aoi.bbox")
        geom = box(minx, miny, maxx, maxy)
        return _densified(geom, "aoi.bbox")
    from shapely import wkt

    try:
        geom = wkt.loads(polygon_wkt or "")
    except (ShapelyError, ValueError, TypeError) as exc:
        raise InvalidArgument(f"expected a WKT POLYGON or MULTIPOLYGON ({exc})", "aoi.polygon_wkt") from None
    if geom is None:
        raise InvalidArgument("expected a WKT POLYGON or MULTIPOLYGON with finite coordinates", "aoi.polygon_wkt")
    if geom.geom_type not in ("Polygon", "MultiPolygon"):
        raise InvalidArgument(f"expected a WKT POLYGON or MULTIPOLYGON, got a {geom.geom_type}", "aoi.polygon_wkt")
    if geom.is_empty or geom.area <= 0:
        raise InvalidArgument("the polygon is empty or has no area", "aoi.polygon_wkt")
    if not all(math.isfinite(v) for v in geom.bounds):
        raise InvalidArgument("expected finite coordinates", "aoi.polygon_wkt")
    if not geom.is_valid:
        geom = geom.buffer(0)   # repair self-intersections (bow ties) rather than refuse them
    return _densified(geom, "aoi.polygon_wkt")


def _densified(geom: BaseGeometry, field_name: str) -> BaseGeometry:
    minx, miny, maxx, maxy = geom.bounds
    try:
        return segmentize(geom, max(maxx - minx, maxy - miny) / DENSIFY_SEGMENTS)
    except (ShapelyError, ValueError) as exc:    # e.g. coordinates near the float limits
        raise InvalidArgument(f"cannot use this AOI geometry ({exc}); expected coordinates in the AOI CRS",
                              field_name) from None


def reproject_geometry(geom: BaseGeometry, src_crs, dst_crs) -> BaseGeometry:
    """Reproject a (densified) geometry between CRSs (any pyproj input), x/y = east/north order."""
    from pyproj import CRS, Transformer

    src, dst = CRS.from_user_input(src_crs), CRS.from_user_input(dst_crs)
    if src == dst:
        return geom
    tr = Transformer.from_crs(src, dst, always_xy=True)
    out = shapely_transform(tr.transform, geom)
    if not out.is_valid:
        out = out.buffer(0)
    return out


def to_pixel_space(geom: BaseGeometry, raster_transform: Affine) -> BaseGeometry:
    inv = ~raster_transform
    return affinity.affine_transform(geom, [inv.a, inv.b, inv.d, inv.e, inv.c, inv.f])


def build_grid(aoi_px: BaseGeometry, width: int, height: int, tile_size: int, overlap: int = 0,
               max_cells: int | None = None) -> Grid:
    """The grid of cells covering `aoi_px` (AOI in pixel coordinates of the raster) ∩ the raster.

    Returns an empty grid (no cells) when the AOI misses the raster; callers turn
    that into a clear error. With `max_cells`, a grid of more than EXACT_COUNT_CELLS
    candidates stops at max_cells + 1 cells and is flagged `truncated` (so a huge AOI
    is refused at once instead of building millions of cells).
    """
    stride = tile_size - overlap
    if stride <= 0:
        raise InvalidArgument(f"overlap {overlap} must be smaller than tile_size {tile_size}", "overlap")
    inside = aoi_px.intersection(box(0, 0, width, height))
    grid = Grid(tile_size=tile_size, overlap=overlap)
    if inside.is_empty or inside.area <= MIN_OVERLAP_PX2:
        return grid
    minx, miny, maxx, maxy = inside.bounds
    c0, r0 = max(0, math.floor(minx)), max(0, math.floor(miny))
    c1, r1 = min(width, math.ceil(maxx)), min(height, math.ceil(maxy))
    grid.pixel_bounds = (c0, r0, c1, r1)
    # Cell k covers [k*stride, k*stride + tile_size): keep k with k*stride < hi and k*stride + tile_size > lo.
    col_first, col_last = max(0, (c0 - tile_size) // stride + 1), (c1 - 1) // stride
    row_first, row_last = max(0, (r0 - tile_size) // stride + 1), (r1 - 1) // stride
    from shapely import prepare

    prepare(inside)
    candidates = (row_last - row_first + 1) * (col_last - col_first + 1)
    stop_after = max_cells if max_cells is not None and candidates > EXACT_COUNT_CELLS else None
    for row in range(row_first, row_last + 1):
        for col in range(col_first, col_last + 1):
            cell = Cell(row, col, col * stride, row * stride, tile_size, tile_size)
            footprint = box(cell.col_off, cell.row_off, cell.col_off + tile_size, cell.row_off + tile_size)
            if inside.intersects(footprint) and inside.intersection(footprint).area > MIN_OVERLAP_PX2:
                grid.cells.append(cell)
                if stop_after is not None and len(grid.cells) > stop_after:
                    grid.truncated = True
                    return grid
            else:
                grid.skipped += 1
    return grid
