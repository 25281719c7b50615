"""Real tiles kept in a worker's memory between the real phase and the synthetic phase of a job.

The worker that computes a real tile keeps its image (uint8, exactly as written to its GeoTIFF) and
mask here, so the synthesiser's fit and the synthetic batches need not read the files back. The cache
is bounded in bytes (least recently used tiles go first), so memory stays flat however large the
AOI; a tile that is not here (evicted, computed by another worker, or a resumed job) is read from its
files, which hold the same values.
"""
from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np


class TileCache:
    def __init__(self, max_bytes: int = 0):
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def resize(self, max_bytes: int) -> None:
        with self._lock:
            self.max_bytes = max_bytes
            self._evict()

    def put(self, job_id: str, tile_id: str, image_u8: np.ndarray, mask: np.ndarray) -> None:
        size = image_u8.nbytes + mask.nbytes
        with self._lock:
            if size > self.max_bytes:
                return
            old = self._items.pop((job_id, tile_id), None)
            if old is not None:
                self._bytes -= old[0].nbytes + old[1].nbytes
            self._items[(job_id, tile_id)] = (image_u8, mask)
            self._bytes += size
            self._evict()

    def get(self, job_id: str, tile_id: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(image uint8 (C, H, W), mask uint8 (H, W)) or None."""
        with self._lock:
            item = self._items.get((job_id, tile_id))
            if item is None:
                self.misses += 1
                return None
            self._items.move_to_end((job_id, tile_id))
            self.hits += 1
            return item

    def drop_job(self, job_id: str) -> None:
        """Forget a job's tiles (keys are the job's id, or "<id>@<job folder>" as WorkerJob.job_key)."""
        with self._lock:
            for key in [k for k in self._items if k[0].split("@", 1)[0] == job_id]:
                image, mask = self._items.pop(key)
                self._bytes -= image.nbytes + mask.nbytes

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def _evict(self) -> None:
        while self._bytes > self.max_bytes and self._items:
            _, (image, mask) = self._items.popitem(last=False)
            self._bytes -= image.nbytes + mask.nbytes


TILES = TileCache()      # one per process (a worker, or the head with the inline executor)
