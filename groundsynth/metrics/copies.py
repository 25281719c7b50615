"""Verbatim copies and diversity (pure numpy).

- **copied share**: the share of a tile's valid pixels covered by at least one 8 x 8 block
  (at any position) whose exact uint8 values, all bands, also occur as an 8 x 8 block at any
  position of a reference tile (e.g. the synthetic tile's source tile, or the held-out
  tiles). Blocks with a nodata pixel and flat blocks (range of at most `FLAT` levels over
  the block, all bands: saturated or empty areas that coincide by chance) are ignored.
  Blocks are compared by a 64-bit polynomial rolling hash (2-D Rabin-Karp over each pixel's
  bands packed into one word; a false match has a probability of about n^2 / 2^64), looked up
  in a `BlockSet` (the reference's sorted hashes with an index on their top bits).
- **variant distance**: mean absolute difference (uint8 levels, all bands) between two
  variants of one mask over their common valid pixels, averaged over pairs.
- **real pair distance**: the same for random pairs of distinct real tiles, over the pixels
  where both tiles are valid and have the same class: how different two real renderings of
  one class are (the scale for the variant distance).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

BLOCK = 8
FLAT = 2
_K = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F), np.uint64(0x165667B19E3779F9))


def _run(a: np.ndarray, b: int, axis: int, op) -> np.ndarray:
    """`op` (np.maximum, np.minimum, np.logical_and, np.logical_or) over every b-long run along `axis` (0 or 1)
    of a 2-D array: n - b + 1 long there, by b - 1 shifted elementwise ops (no window views)."""
    n = a.shape[axis] - b + 1

    def part(d: int) -> np.ndarray:
        return a[d:d + n] if axis == 0 else a[:, d:d + n]

    out = part(0).copy()
    for d in range(1, b):
        out = op(out, part(d))
    return out


def _window_range(u8: np.ndarray, b: int) -> np.ndarray:
    """max - min over every b x b block and all bands, (H - b + 1, W - b + 1)."""
    mx = _run(_run(u8.max(axis=0), b, 1, np.maximum), b, 0, np.maximum)
    mn = _run(_run(u8.min(axis=0), b, 1, np.minimum), b, 0, np.minimum)
    return mx.astype(np.int16) - mn.astype(np.int16)


def _window_all(ok: np.ndarray, b: int) -> np.ndarray:
    return _run(_run(ok, b, 1, np.logical_and), b, 0, np.logical_and)


def block_hashes(u8: np.ndarray, valid: np.ndarray, b: int = BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """(hash, usable) of every b x b block, indexed by its top-left pixel: (H - b + 1, W - b + 1) each.
    A pixel's bands (at most 8 of 8 bits) are packed into one word first, so the rolling hash runs over one
    plane, not one per band."""
    u8 = np.asarray(u8, np.uint8)
    C, H, W = u8.shape
    if C > 8:
        raise ValueError(f"block_hashes packs at most 8 bands into a 64-bit word, got {C}")
    v = np.zeros((H, W), np.uint64)
    for c in range(C):
        v <<= np.uint64(8)
        v |= u8[c]
    v += np.uint64(1)
    with np.errstate(over="ignore"):
        rows = v[:, :W - b + 1].copy()
        for dx in range(1, b):
            rows *= _K[0]
            rows += v[:, dx:dx + W - b + 1]
        h = rows[:H - b + 1].copy()
        for dy in range(1, b):
            h *= _K[1]
            h += rows[dy:dy + H - b + 1]
        h ^= h >> np.uint64(29)
        h *= _K[2]
    usable = _window_all(np.asarray(valid, bool), b) & (_window_range(u8, b) > FLAT)
    return h, usable


@dataclass(frozen=True)
class BlockSet:
    """The usable block hashes of reference tiles: sorted, unique, and indexed by their top bits (`starts[t]`:
    the first hash whose top bits are >= t), so a membership test costs a few gathers per query instead of a
    sort of the queries and a binary search."""

    hashes: np.ndarray          # uint64, sorted, unique
    starts: np.ndarray          # int32 (int64 past 2**31 hashes), 2**bits + 1
    shift: int                  # 64 - bits

    @classmethod
    def of(cls, hashes: np.ndarray) -> BlockSet:
        """From sorted unique hashes: one bucket per hash or a little more (a hash per bucket on average, at
        most a few), so the index takes half the hashes' memory at most."""
        bits = max(1, int(np.ceil(np.log2(max(hashes.size, 1)))))
        tops = np.arange(2 ** bits + 1, dtype=np.uint64)
        dtype = np.int32 if hashes.size < 2**31 else np.int64
        starts = np.searchsorted(hashes >> np.uint64(64 - bits), tops).astype(dtype)
        return cls(hashes, starts, 64 - bits)

    @property
    def size(self) -> int:
        return int(self.hashes.size)

    def contains(self, q: np.ndarray) -> np.ndarray:
        """bool per query hash: is it in the set."""
        top = (q >> np.uint64(self.shift)).astype(np.int64)
        lo, hi = self.starts[top].astype(np.int64), self.starts[top + 1]
        hit = np.zeros(q.size, bool)
        live = np.flatnonzero(hi > lo)           # queries whose bucket is not empty
        k = 0
        while live.size:                         # the k-th hash of each live query's bucket
            found = self.hashes[lo[live] + k] == q[live]
            hit[live[found]] = True
            k += 1
            live = live[~found & (lo[live] + k < hi[live])]
        return hit


EMPTY = BlockSet.of(np.zeros(0, np.uint64))


def hash_set(images: Sequence[np.ndarray], valids: Sequence[np.ndarray], b: int = BLOCK) -> BlockSet:
    """The usable blocks of the reference tiles (their hashes sorted and unique)."""
    parts = []
    for u8, ok in zip(images, valids, strict=True):
        h, use = block_hashes(u8, ok, b)
        parts.append(np.unique(h[use]))
    if not parts:
        return EMPTY
    out = np.concatenate(parts)
    del parts
    out.sort()                  # in place, then the duplicates out: np.unique would hold two more copies
    keep = np.empty(out.size, bool)
    keep[:1] = True
    np.not_equal(out[1:], out[:-1], out=keep[1:])
    return BlockSet.of(out[keep])


def copied_share(u8: np.ndarray, valid: np.ndarray, reference: BlockSet, b: int = BLOCK) -> float:
    """Share of the valid pixels of `u8` covered by a block found in `reference` (a `hash_set`)."""
    return copied_shares(u8, valid, [reference], b)[0]


def copied_shares(u8: np.ndarray, valid: np.ndarray, references: Sequence[BlockSet], b: int = BLOCK
                  ) -> list[float]:
    """copied_share of `u8` against each of several references, its block hashes computed once."""
    valid = np.asarray(valid, bool)
    if not valid.any():
        return [0.0] * len(references)
    h, use = block_hashes(u8, valid, b)
    idx = np.flatnonzero(use)
    q = h.ravel()[idx]
    out = []
    for ref in references:
        if ref.size == 0 or not q.size:
            out.append(0.0)
            continue
        hit = np.zeros(h.size, bool)
        hit[idx[ref.contains(q)]] = True
        padded = np.zeros((h.shape[0] + 2 * (b - 1), h.shape[1] + 2 * (b - 1)), bool)
        padded[b - 1:b - 1 + h.shape[0], b - 1:b - 1 + h.shape[1]] = hit.reshape(h.shape)
        covered = _run(_run(padded, b, 1, np.logical_or), b, 0, np.logical_or)
        out.append(float((covered & valid).sum() / valid.sum()))
    return out


def mean_abs_diff(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float | None:
    if not where.any():
        return None
    return float(np.abs(a[:, where].astype(np.int16) - b[:, where].astype(np.int16)).mean())


def variant_distance(variants: Sequence[np.ndarray], valid: np.ndarray) -> float | None:
    """Mean over pairs of variants (uint8 images of one mask) of their mean absolute difference."""
    d = [mean_abs_diff(variants[i], variants[j], valid) for i in range(len(variants))
         for j in range(i + 1, len(variants))]
    vals = [v for v in d if v is not None]
    return float(np.mean(vals)) if vals else None


def real_pair_distance(images: Sequence[np.ndarray], masks: Sequence[np.ndarray], pairs: int = 64,
                       seed: int = 0, min_px: int = 1000) -> float | None:
    """Mean absolute difference of random pairs of distinct real tiles over same-class valid pixels."""
    n = len(images)
    if n < 2:
        return None
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(pairs):
        i, j = (int(v) for v in rng.choice(n, 2, replace=False))
        same = (masks[i] == masks[j]) & (masks[i] != 255) & images[i].any(0) & images[j].any(0)
        if same.sum() >= min_px:
            d = mean_abs_diff(images[i], images[j], same)
            if d is not None:
                vals.append(d)
    return float(np.mean(vals)) if vals else None
