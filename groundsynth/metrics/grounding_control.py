"""Grounding with a control: a caption's claim score against its own tile's reference, against a
mismatched tile's reference, and the margin between the two.

A grounding score means something only beside what the same captions score against the wrong tile:
a captioner that says little ("a satellite image with water") scores high everywhere, one that says
much and true scores high on its tile and low elsewhere. The mismatched partner of each tile is drawn
by a seeded derangement (a permutation without fixed points) over the job's tiles of the same kind;
synthetic tiles are never paired with a sibling variant of the same source tile while that can be
avoided.

Pure functions (no files, no job state), so an executor can score any batch of pairs anywhere:
- `derangement(n, seed, groups)` -> partner index per item;
- `score_pair(captions, own_reference, partner_reference, **params)` -> (own, mismatched);
- `summarise(records, prefix)` -> own / mismatched / margin distributions per kind and per
  dominant class, from the per-tile metrics `<prefix>`, `<prefix>_mismatched`, `<prefix>_margin`.
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from groundsynth.metrics.caption_score import score_caption
from groundsynth.metrics.claims import parse_claims
from groundsynth.metrics.sets import describe
from groundsynth.metrics.tile_facts import TileFacts
from groundsynth.request.classes import CLASS_NAMES

MAX_TRIES = 200
HIGH_SCORE = 80.0       # "still scores high against the wrong tile"


def derangement(n: int, seed: int, groups: Sequence[Hashable] | None = None) -> list[int]:
    """partner[i] != i for every i (n >= 2), deterministic in `seed`.

    With `groups`, partner[i] is also outside i's group whenever possible: a uniformly drawn
    permutation is retried up to MAX_TRIES times, then a constructive one is used (items
    ordered group by group in a seeded order and shifted by the largest group's size), which
    works while no group holds more than half of the items; otherwise only the no-fixed-point
    rule is kept. n < 2: no derangement exists, ValueError.
    """
    if n < 2:
        raise ValueError(f"a derangement needs at least 2 items, got {n}")
    if groups is not None and len(groups) != n:
        raise ValueError(f"expected {n} groups, got {len(groups)}")
    rng = np.random.default_rng(np.random.SeedSequence(int(seed) & (2**63 - 1)))
    keys = list(range(n)) if groups is None else list(groups)
    idx = np.arange(n)
    for _ in range(MAX_TRIES):
        perm = rng.permutation(n)
        if all(keys[i] != keys[int(perm[i])] for i in range(n)):
            return [int(p) for p in perm]
    labels = {k: i for i, k in enumerate(dict.fromkeys(keys))}
    sizes = np.bincount([labels[k] for k in keys])
    if 2 * sizes.max() <= n:
        group_order = rng.permutation(len(sizes))
        rank = {int(g): r for r, g in enumerate(group_order)}
        order = sorted(idx, key=lambda i: (rank[labels[keys[i]]], rng.random()))
        shift = int(sizes.max())
        out = [0] * n
        for pos, i in enumerate(order):
            out[int(i)] = int(order[(pos + shift) % n])
        return out
    while True:                      # a group holds more than half: keep only "no fixed point"
        perm = rng.permutation(n)
        if not (perm == idx).any():
            return [int(p) for p in perm]


def score_pair(captions: Sequence[str], own: np.ndarray, partner: np.ndarray,
               **params: Any) -> tuple[float | None, float | None]:
    """(mean claim score of the captions against their own reference, against the partner's);
    None where there is no caption or the reference has no valid pixel. Each caption is parsed once."""
    claims = [parse_claims(c) for c in captions]

    def mean(mask: np.ndarray) -> float | None:
        mask = np.asarray(mask)
        if not captions or not (mask != 255).any():
            return None
        facts = TileFacts(mask)
        return float(np.mean([score_caption(c, mask, facts=facts, claims=k, **params)[0]
                              for c, k in zip(captions, claims, strict=True)]))

    return mean(own), mean(partner)


def summarise(records: Sequence[Any], prefix: str) -> dict[str, Any]:
    """Own / mismatched / margin per kind (all, real, synthetic) and per dominant class (all kinds)."""
    keys = {"own": prefix, "mismatched": f"{prefix}_mismatched", "margin": f"{prefix}_margin"}
    scored = [r for r in records if keys["margin"] in r.metrics]

    def block(rs: Sequence[Any]) -> dict[str, Any]:
        mis = [r.metrics[keys["mismatched"]] for r in rs]
        out: dict[str, Any] = {name: describe(r.metrics[k] for r in rs) for name, k in keys.items()}
        out["n"] = len(rs)
        out["share_mismatched_high"] = float(np.mean(np.asarray(mis) >= HIGH_SCORE)) if mis else None
        return out

    by_kind = {kind: block([r for r in scored if kind == "all" or r.kind == kind])
               for kind in ("all", "real", "synthetic")}
    by_class: dict[str, Any] = {}
    for name in CLASS_NAMES:
        group = [r for r in scored if len(r.composition) == len(CLASS_NAMES) and sum(r.composition) > 0
                 and CLASS_NAMES[int(np.argmax(r.composition))] == name]
        if group:
            by_class[name] = block(group)
    return {"metrics": keys, "by_kind": {k: v for k, v in by_kind.items() if v["n"]},
            "by_dominant_class": by_class, "high_score": HIGH_SCORE}
