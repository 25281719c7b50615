"""The job's train / val / test split of its tiles: spatial blocks, decided once per job.

Tiles are grouped into square blocks of `block_tiles` x `block_tiles` grid
cells (by row // block_tiles, col // block_tiles); the blocks are shuffled with
the job seed and dealt to the splits so that the tile counts follow the
requested shares (largest remaining deficit first). Whole blocks go to one
split, so most neighbouring tiles share a split (the idea of TorchGeo's
`random_grid_cell_assignment`); only tiles on block edges touch tiles of
another split. Deterministic for a given grid, shares, block size and seed.

Overlapping tiles (overlap > 0): tile (r, c) shares pixels with every tile
within `reach = ceil(overlap / stride)` grid steps in row and column (stride =
tile_size - overlap; with the spec's overlap <= tile_size / 2 that is the 8
neighbours). Of two such tiles in different splits, the one of the lower split
(train < val < test) goes to the BUFFER split: it belongs to no split and is
not exported as training data, so no two splits ever share a pixel. That is
the usual spatial buffer of blocked cross-validation (training samples within
the buffer of an evaluation block are dropped): test keeps every tile it was
dealt, val loses only tiles touching test, train loses the ring of tiles around
each val/test block. With overlap 0 nothing is buffered.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable

import numpy as np

SPLITS = ("train", "val", "test")
BUFFER = "buffer"      # tiles sharing pixels with a tile of a higher split (overlap > 0): in no split
RANK = {"train": 0, "val": 1, "test": 2}


def overlap_reach(tile_size: int, overlap: int) -> int:
    """How many grid steps away a tile still shares pixels with (0 without overlap)."""
    if overlap <= 0:
        return 0
    return math.ceil(overlap / (tile_size - overlap))


def assign_splits(cells: Iterable[tuple[int, int]], fractions: tuple[float, float, float],
                  block_tiles: int, seed: int, tile_size: int = 0, overlap: int = 0) -> dict[tuple[int, int], str]:
    """(row, col) -> "train" | "val" | "test" | "buffer" for every cell ("buffer" only with overlap > 0)."""
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
    reach = overlap_reach(tile_size, overlap) if overlap > 0 else 0
    return buffer_overlaps(out, reach) if reach else out


def buffer_overlaps(split: dict[tuple[int, int], str], reach: int) -> dict[tuple[int, int], str]:
    """Move every cell with a cell of a higher split (train < val < test) within `reach` steps to BUFFER."""
    out = dict(split)
    for (row, col), s in split.items():
        rank = RANK[s]
        if any(RANK.get(split.get((row + dr, col + dc), s), rank) > rank
               for dr in range(-reach, reach + 1) for dc in range(-reach, reach + 1)):
            out[(row, col)] = BUFFER
    return out
