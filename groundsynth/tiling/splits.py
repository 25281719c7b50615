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
neighbours). A val or test tile that shares pixels with a tile of ANOTHER split
goes to the BUFFER split instead: it belongs to no split, is not exported as
training data, and so no two splits ever share a pixel. Train tiles are never
buffered (train is the largest split and the one the synthesiser is fitted
on); with overlap 0 nothing is buffered.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable

import numpy as np

SPLITS = ("train", "val", "test")
BUFFER = "buffer"      # val/test tiles that share pixels with another split (overlap > 0): in no split


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
    """Move every val/test cell with a cell of another split within `reach` steps to BUFFER."""
    out = dict(split)
    for (row, col), s in split.items():
        if s == "train":
            continue
        for dr in range(-reach, reach + 1):
            for dc in range(-reach, reach + 1):
                other = split.get((row + dr, col + dc))
                if other is not None and other != s:
                    out[(row, col)] = BUFFER
                    break
            if out[(row, col)] == BUFFER:
                break
    return out
