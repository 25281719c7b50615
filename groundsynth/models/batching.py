"""Batches of same-shaped items (tiles at the AOI edge may be smaller than the others)."""
from __future__ import annotations

from collections.abc import Hashable, Sequence


def shape_batches(shapes: Sequence[Hashable], batch_size: int) -> list[list[int]]:
    """Indices grouped by shape (first-seen order), each group cut into batches of `batch_size`."""
    groups: dict[Hashable, list[int]] = {}
    for i, s in enumerate(shapes):
        groups.setdefault(s, []).append(i)
    return [idx[k:k + batch_size] for idx in groups.values() for k in range(0, len(idx), batch_size)]
