"""A bounded sample of a stream: the items with the smallest keys, in memory O(n) however many are offered.

The built-in synthesisers' fit goes through a job's sample one tile at a time; with uniform random keys a
Reservoir keeps a uniform sample without replacement of what it was offered (the exemplar's patch pools and
pixel samples), with constant keys such as -purity it keeps the best ones.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np


class Reservoir:
    """The `n` offered items with the smallest keys, in memory O(n) however many are offered; ties go
    to the item offered first. With uniform random keys: a uniform sample without replacement."""

    def __init__(self, n: int):
        self.n = int(n)
        self.keys = np.zeros(0, np.float64)
        self.index = np.zeros(0, np.int64)
        self.tiles = np.zeros(0, np.int32)
        self.data: np.ndarray | None = None
        self._offered = 0

    @property
    def size(self) -> int:
        return int(self.keys.size)

    def offer(self, keys: np.ndarray, items: np.ndarray, tiles: np.ndarray, index: np.ndarray | None = None) -> None:
        self.offer_lazy(keys, np.arange(len(keys)), lambda sel: items[sel], tiles, index)

    def offer_lazy(self, keys: np.ndarray, sel: np.ndarray, make: Callable[[np.ndarray], np.ndarray], tiles: np.ndarray,
                   index: np.ndarray | None = None) -> None:
        """Offer items `make(sel[i])` under `keys[i]`; `make` is called once, only for those kept."""
        if len(keys) == 0:
            return
        if index is None:
            index = np.arange(self._offered, self._offered + len(keys))
        self._offered += len(keys)
        allkeys = np.concatenate([self.keys, np.asarray(keys, np.float64)])
        keep = np.sort(np.argsort(allkeys, kind="stable")[:self.n])
        old, new = keep[keep < self.size], keep[keep >= self.size] - self.size
        if new.size == 0:
            self.keys, self.index, self.tiles = self.keys[old], self.index[old], self.tiles[old]
            self.data = self.data[old] if self.data is not None else None
            return
        fresh = np.asarray(make(np.asarray(sel)[new]))
        self.data = fresh.copy() if self.data is None else np.concatenate([self.data[old], fresh])
        self.keys = allkeys[keep]
        self.index = np.concatenate([self.index[old], np.asarray(index)[new]])
        self.tiles = np.concatenate([self.tiles[old], np.asarray(tiles)[new]])

    def items(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(items, their tiles, their offer index), in the order offered."""
        order = np.argsort(self.index, kind="stable")
        assert self.data is not None  # noqa: S101 - only called when size > 0
        return self.data[order], self.tiles[order], self.index[order]
