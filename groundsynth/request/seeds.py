"""Deterministic seeds: every random choice derives from the job seed and a name.

derive_seed(job_seed, "r0001_c0002_v1", "synthesise") is the same on every run
and on a resumed run, whatever order tiles are processed in.
"""
from __future__ import annotations

import hashlib


def derive_seed(job_seed: int, *names: object) -> int:
    """A 63-bit seed from the job seed and any names (tile id, stage, variant...)."""
    h = hashlib.blake2b(digest_size=8)
    h.update(str(int(job_seed)).encode())
    for name in names:
        h.update(b"\x1f" + str(name).encode())
    return int.from_bytes(h.digest(), "big") >> 1
