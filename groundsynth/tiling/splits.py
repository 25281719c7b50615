"""The job's train / val / test split of its tiles: spatial blocks, decided once per job.

Tiles are grouped into square blocks of `block_tiles` x `block_tiles` grid
cells (by row // block_tiles, col // block_tiles); the blocks are shuffled with
the job seed and dealt to the splits so that the tile counts follow the
requested shares (largest remaining deficit first). Whole blocks go to one
split, so most neighbouring tiles share a split (the idea of TorchGeo's
`random_grid_cell_assignment`); only tiles on block edges touch tiles of
another split. Deterministic for a given grid, shares, block size and seed.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import numpy as np

SPLITS = ("train", "val", "test")


def assign_splits(cells: Iterable[tuple[int, int]], fractions: tuple[float, float, float],
                  block_tiles: int, seed: int) -> dict[tuple[int, int], str]:
    """(row, col) -> "train" | "val" | "test" for every cell."""
    blocks: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
    for row, col in cells:
        blocks[(row // block_tiles, col // block_tiles)].append((row, col))
    keys = sorted(blocks)
    order = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x5B117]).permutation(len(keys))
    total = sum(len(v) for v in blocks.values())
    want = np.asarray(fractions, dtype=float) * total
    have = np.zeros(len(SPLITS))
    out: dict[tuple[int, int], str] = {}
    for i in order:
        members = blocks[keys[int(i)]]
        k = int(np.argmax(want - have))          # the split furthest below its share
        have[k] += len(members)
        for cell in members:
            out[cell] = SPLITS[k]
    return out
