"""Claim score of a caption against a class mask (0-100): start at 100, subtract per claim the mask does
not bear out (claims: groundsynth.metrics.claims; measurements: groundsynth.metrics.tile_facts).

| claim | deduction |
|---|---|
| names a class covering < `present_share` (1 %) | `absent_penalty` (40), scaled down linearly when present but below |
| a class said to dominate is not the largest (`dominance_tolerance` 0.03), over the tile or in the region named | 30 |
| says a class covering >= 5 % is absent ("no water") | 25 |
| never names a class covering >= `major_share` (20 %) | 10 |
| places a class in a region where it is not concentrated (enrichment < 1) | up to 10 |
| "throughout" for a class covering < 60 % | up to 10 |
| "here and there" for a class concentrated where its centroid lies (enrichment >= 1.5) | 5 |
| "no single dominant cover" while the largest class has >= 50 % and leads by >= 10 points | 20 |
| an amount ("about a third of") outside its range (claim_vocab.AMOUNTS) | up to 15 (full at 10 points off) |
| a structure (contiguous / main / few / scattered) the class does not have | 5 (neighbouring kind) or 10 |
| a count of sizeable patches off by more than max(1, 25 %) | 10 (off by less: 5) |
| a parcel size (small / medium / large) the class does not have | 5 (neighbouring size) or 10 |
| a linear feature ("a narrow strip of trees") the class does not have | 15 (count off: 5) |
| a shoreline where there is none | 20 |
| a shoreline orientation more than 25 degrees off | 5; more than 50 degrees off (or none clear): 10 |
| a shoreline shape (straight / indented) it does not have | 5 |
| a ranking with a class ahead of a larger one (by more than the tolerance) | 10 per pair, at most 20 |
| no data in a region where the tile's nodata is not concentrated (< 1), or a tile without nodata (< 1 %) | 10 |
| a water tone (dark / pale) off by more than TONE_TOLERANCE (0.02) beyond its threshold | 10 |
| water said to grow paler toward a direction: no clear gradient (change < 0.02) or > 90 degrees off | 10; 45-90 degrees off: 5 |

Water-look claims need the tile's image (`image`): without one (e.g. scored against a label raster or in
the mask-only grounding control) they are not checked, and neither are they when the tile has too little
water to measure (tile_facts.water_look).

Captions that name nothing only lose the unnamed-major penalties.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from groundsynth.metrics.claims import Claims, parse_claims
from groundsynth.metrics.tile_facts import (
    COMPASS,
    ORIENTATIONS,
    PARCEL_BUCKETS,
    TONE_DARK,
    TONE_PALE,
    TileFacts,
    angle_difference,
    direction_difference,
)
from groundsynth.request.classes import CLASS_NAMES

NEGATION_SHARE = 0.05
DOMINANCE_PENALTY = 30.0
NEGATION_PENALTY = 25.0
UNNAMED_PENALTY = 10.0
POSITION_PENALTY = 10.0
AMOUNT_PENALTY = 15.0
SHAPE_PENALTY = 10.0          # structure, counts, parcels
LINEAR_PENALTY = 15.0
SHORE_PENALTY = 20.0
RANK_PENALTY = 10.0
NO_DOMINANT_PENALTY = 20.0
LOOK_PENALTY = 10.0           # water tone, water gradient
TONE_TOLERANCE = 0.02
GRADIENT_CHECK_MIN = 0.02
STRUCTURE_ORDER = ("contiguous", "main", "few", "scattered")
PARCEL_ORDER = tuple(name for name, _ in PARCEL_BUCKETS)

Deductions = list[tuple[float, str]]


def _idx(name: str) -> int:
    return CLASS_NAMES.index(name)


def score_caption(text: str, mask: np.ndarray, present_share: float = 0.01, major_share: float = 0.2,
                  absent_penalty: float = 40.0, dominance_tolerance: float = 0.03,
                  facts: TileFacts | None = None, image: np.ndarray | None = None,
                  claims: Claims | None = None) -> tuple[float, list[str]]:
    """Claim score 0..100 of one caption against a class mask (and the tile's image, for the water look),
    and the reasons for each deduction.

    `facts` (TileFacts of the same mask and image) saves recomputing them for several captions; `claims`
    (parse_claims of `text`, only read) saves parsing a caption again for another mask.
    Raises ValueError if the mask has no valid pixel.
    """
    facts = facts if facts is not None else TileFacts(mask, image)
    if facts.shares.sum() <= 0:
        raise ValueError("mask has no valid pixel")
    claims = claims if claims is not None else parse_claims(text)
    deductions: Deductions = []
    _classes(claims, facts, present_share, major_share, absent_penalty, deductions)
    _dominance(claims, facts, dominance_tolerance, deductions)
    _places(claims, facts, deductions)
    _amounts(claims, facts, deductions)
    _patches(claims, facts, deductions)
    _shore(claims, facts, deductions)
    _rankings(claims, facts, dominance_tolerance, deductions)
    _water_look(claims, facts, deductions)
    _nodata(claims, facts, deductions)
    score = float(np.clip(100.0 - sum(d for d, _ in deductions), 0.0, 100.0))
    return score, [why for _, why in deductions]


def score_captions(captions: Sequence[str], mask: np.ndarray, image: np.ndarray | None = None,
                   **params) -> list[float]:
    """score_caption of each caption against one mask and image (the facts computed once)."""
    facts = TileFacts(mask, image)
    return [score_caption(c, mask, facts=facts, **params)[0] for c in captions]


def _classes(claims: Claims, f: TileFacts, present_share: float, major_share: float, absent_penalty: float,
             out: Deductions) -> None:
    named = claims.named
    for name in named:
        s = f.shares[_idx(name)]
        if s < present_share:
            out.append((absent_penalty * (1 - s / present_share),
                        f"names {name}, which covers {100 * s:.1f}% (< {100 * present_share:.0f}%)"))
    for name in claims.negated:
        s = f.shares[_idx(name)]
        if s >= NEGATION_SHARE:
            out.append((NEGATION_PENALTY, f"says no {name}, which covers {100 * s:.0f}%"))
    for i, s in enumerate(f.shares):
        if s >= major_share and CLASS_NAMES[i] not in named:
            out.append((UNNAMED_PENALTY, f"never names {CLASS_NAMES[i]} ({100 * s:.0f}%)"))


def _dominance(claims: Claims, f: TileFacts, tol: float, out: Deductions) -> None:
    top = f.shares.max()
    largest = CLASS_NAMES[int(f.shares.argmax())]
    for name in claims.dominant:
        if f.shares[_idx(name)] < top - tol:
            out.append((DOMINANCE_PENALTY, f"says {name} dominates, but {largest} is largest"))
    for name, region in claims.regional_dominant:
        local = f.local_shares(region)
        if local.sum() > 0 and local[_idx(name)] < local.max() - tol:
            there = CLASS_NAMES[int(local.argmax())]
            out.append((DOMINANCE_PENALTY, f"says {name} dominates the {region}, but {there} is largest there"))
    if claims.no_dominant:
        second = float(np.sort(f.shares)[-2]) if f.shares.size > 1 else 0.0
        if top >= 0.5 and top - second >= 0.1:
            out.append((NO_DOMINANT_PENALTY, f"says no class dominates, but {largest} has {100 * top:.0f}%"))


def _places(claims: Claims, f: TileFacts, out: Deductions) -> None:
    for name, region in claims.positions:
        c = _idx(name)
        if region == "all":
            s = f.shares[c]
            if s < 0.6:
                out.append((POSITION_PENALTY * min(1.0, (0.6 - s) / 0.3),
                            f"says {name} is throughout, but it covers {100 * s:.0f}%"))
            continue
        e = f.enrichment(c, region)
        if np.isfinite(e) and e < 1.0:
            out.append((POSITION_PENALTY * min(1.0, (1.0 - e) / 0.5),
                        f"places {name} in the {region}, where it is not concentrated"))
    for name in claims.dispersed:
        c = _idx(name)
        centroid = f.centroid_region(c)
        if centroid is not None and f.shares[c] < 0.8 and f.enrichment(c, centroid) >= 1.5:
            out.append((5.0, f"says {name} is spread unevenly, but it is concentrated in the {centroid}"))


def _amounts(claims: Claims, f: TileFacts, out: Deductions) -> None:
    for name, region, lo, hi in claims.amounts:
        shares = f.shares if region == "all" else f.local_shares(region)
        if shares.sum() <= 0:
            continue
        s = float(shares[_idx(name)])
        off = max(lo - s, s - hi, 0.0)
        if off > 0:
            where = "the tile" if region == "all" else f"the {region}"
            out.append((AMOUNT_PENALTY * min(1.0, off / 0.1),
                        f"says {name} covers {100 * lo:.0f}-{100 * hi:.0f}% of {where}, but it covers {100 * s:.0f}%"))


def _patches(claims: Claims, f: TileFacts, out: Deductions) -> None:
    for name, kind in claims.structures:
        actual = f.structure(_idx(name))
        if actual != kind:
            gap = abs(STRUCTURE_ORDER.index(kind) - STRUCTURE_ORDER.index(actual)) if actual else 2
            out.append((SHAPE_PENALTY if gap > 1 else SHAPE_PENALTY / 2,
                        f"says {name} is {kind}, but it is {actual or 'absent'}"))
    for name, lo, hi in claims.counts:
        m = f.patch_count(_idx(name))
        off = max(lo - m, m - hi, 0)
        if off:
            said = f"{lo}" if hi == lo else f"{lo}+" if hi > 10**5 else f"{lo}-{hi}"
            out.append((SHAPE_PENALTY if off > max(1, round(0.25 * m)) else SHAPE_PENALTY / 2,
                        f"says {name} has {said} sizeable patches, but it has {m}"))
    for name, size in claims.parcels:
        actual = f.parcel_size(_idx(name))
        if actual != size:
            near = actual is not None and abs(PARCEL_ORDER.index(actual) - PARCEL_ORDER.index(size)) == 1
            out.append((SHAPE_PENALTY / 2 if near else SHAPE_PENALTY,
                        f"says {name} lies in {size} parcels, but its parcels are {actual or 'too few to tell'}"))
    for name, lo, hi in claims.linear:
        n = f.linear_count(_idx(name))
        if n == 0:
            out.append((LINEAR_PENALTY, f"says {name} forms a linear feature, but it has none"))
        elif not lo <= n <= hi:
            out.append((LINEAR_PENALTY / 3, f"says {name} forms {lo} linear features, but it has {n}"))


def _shore(claims: Claims, f: TileFacts, out: Deductions) -> None:
    if not claims.shoreline:
        return
    shore = f.shoreline
    if shore is None:
        out.append((SHORE_PENALTY, "mentions a shoreline, but there is none"))
        return
    for name in claims.shore_orientation:
        off = angle_difference(ORIENTATIONS[name], shore.angle)
        if shore.elongation < 1.5 or off > 50:
            out.append((10.0, f"says the shoreline runs {name}, but it runs at {shore.angle:.0f} degrees "
                              f"(elongation {shore.elongation:.1f})"))
        elif off > 25:
            out.append((5.0, f"says the shoreline runs {name}, {off:.0f} degrees off"))
    for shape in claims.shore_shape:
        if shore.shape != shape:
            out.append((5.0, f"says the shoreline is {shape}, but it is {shore.shape or 'neither straight nor indented'}"))


def _rankings(claims: Claims, f: TileFacts, tol: float, out: Deductions) -> None:
    for order in claims.rankings:
        wrong = [(a, b) for a, b in zip(order, order[1:], strict=False)
                 if f.shares[_idx(a)] < f.shares[_idx(b)] - tol]
        if wrong:
            out.append((min(2 * RANK_PENALTY, RANK_PENALTY * len(wrong)),
                        "ranks " + ", ".join(f"{a} ahead of {b}" for a, b in wrong) + ", which are larger the other way"))


def _water_look(claims: Claims, f: TileFacts, out: Deductions) -> None:
    if not (claims.water_tone or claims.water_paler_toward):
        return
    look = f.water_look
    if look is None:
        return
    for tone in claims.water_tone:
        if tone == "dark" and look.brightness > TONE_DARK + TONE_TOLERANCE:
            out.append((LOOK_PENALTY, f"says the water is dark, but its median brightness is {look.brightness:.2f}"))
        elif tone == "pale" and look.brightness < TONE_PALE - TONE_TOLERANCE:
            out.append((LOOK_PENALTY, f"says the water is pale, but its median brightness is {look.brightness:.2f}"))
    for toward in claims.water_paler_toward:
        off = direction_difference(COMPASS[toward], look.angle)
        if look.change < GRADIENT_CHECK_MIN or off > 90:
            out.append((LOOK_PENALTY, f"says the water grows paler toward the {toward}, but it grows paler "
                                      f"toward {look.angle:.0f} degrees (change {look.change:.3f})"))
        elif off > 45:
            out.append((LOOK_PENALTY / 2, f"says the water grows paler toward the {toward}, {off:.0f} degrees off"))


def _nodata(claims: Claims, f: TileFacts, out: Deductions) -> None:
    share = f.nodata_share
    for region in claims.nodata_at:
        if share < 0.01:
            out.append((LOOK_PENALTY, f"says there is no data in the {region}, but the tile has {100 * share:.1f}%"))
        elif f.nodata_concentration(region) < 1.0:
            out.append((LOOK_PENALTY, f"says there is no data in the {region}, where the nodata is not concentrated"))
