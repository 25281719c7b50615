"""Dataset filters: the original's rules for which tiles belong in a training set.

- "nodata": the tile has any nodata pixel (any pixel outside the source's valid data);
  off with JobSpec.filters.keep_nodata.
- "water": Water covers more than JobSpec.filters.max_water_share (default 0.9) of the tile's
  valid pixels, in the tile's mask (the mask that is exported with it).

The pipeline records the names of the rules that reject a tile, comma-separated, in
TileRecord.attributes["dropped_by"] (absent when the tile is kept), for real and synthetic tiles
alike (a synthetic tile is judged on its own valid pixels and mask). The export leaves dropped
tiles out; `filter_counts` gives the report's numbers.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from groundsynth.request.classes import CLASS_NAMES
from groundsynth.request.spec import DEFAULT_MAX_WATER_SHARE, DatasetFilters

ATTRIBUTE = "dropped_by"
FILTERS = ("nodata", "water")
WATER = CLASS_NAMES.index("Water")


def dropped_by(valid: np.ndarray, composition: Sequence[float], filters: DatasetFilters) -> list[str]:
    """Names of the rules that reject a tile with these valid pixels and class shares."""
    out = []
    if not filters.keep_nodata and not bool(np.asarray(valid, dtype=bool).all()):
        out.append("nodata")
    limit = filters.max_water_share or DEFAULT_MAX_WATER_SHARE
    if len(composition) == len(CLASS_NAMES) and float(composition[WATER]) > limit:
        out.append("water")
    return out


def flag(attributes: dict[str, str], valid: np.ndarray, composition: Sequence[float],
         filters: DatasetFilters) -> None:
    """Set (or clear) attributes["dropped_by"]."""
    names = dropped_by(valid, composition, filters)
    if names:
        attributes[ATTRIBUTE] = ",".join(names)
    else:
        attributes.pop(ATTRIBUTE, None)


def is_kept(record: Any) -> bool:
    return not record.attributes.get(ATTRIBUTE)


def filter_counts(records: Sequence[Any], filters: DatasetFilters | None = None) -> dict[str, Any]:
    """Tiles kept and dropped per kind and rule, and the water share of the pixels before and after."""
    out: dict[str, Any] = {}
    for kind in ("real", "synthetic"):
        rs = [r for r in records if r.kind == kind]
        if not rs:
            continue
        names = [set(filter(None, r.attributes.get(ATTRIBUTE, "").split(","))) for r in rs]
        kept = [r for r, n in zip(rs, names, strict=True) if not n]
        out[kind] = {"tiles": len(rs), "kept": len(kept), "dropped": len(rs) - len(kept),
                     "by_filter": {f: sum(f in n for n in names) for f in FILTERS},
                     "water_share_all": _water_share(rs), "water_share_kept": _water_share(kept)}
    if filters is not None:
        out["rules"] = {"keep_nodata": filters.keep_nodata,
                        "max_water_share": filters.max_water_share or DEFAULT_MAX_WATER_SHARE,
                        "synthesise_dropped": filters.synthesise_dropped}
    return out


def _water_share(records: Sequence[Any]) -> float | None:
    """Water's share of the valid pixels of these tiles (weighted by the tiles' valid pixels)."""
    num = den = 0.0
    for r in records:
        if len(r.composition) != len(CLASS_NAMES) or r.nodata:
            continue
        w = float(r.attributes.get("valid_share", "1") or 1) * r.width * r.height if r.width else 1.0
        num += w * float(r.composition[WATER])
        den += w
    return num / den if den > 0 else None
