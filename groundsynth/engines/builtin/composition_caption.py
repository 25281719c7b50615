"""caption/composition: captions written from the mask's composition and layout.

Each tile gets `n_captions` captions (5 by default), each with its own focus:
1. overview: the dominant class (or a mix) and the minor classes;
2. layout: where each class lies (from its centroid, confirmed by how
   concentrated it is there: groundsynth.metrics.claims.enrichment);
3. structure: whether each class is one contiguous block, a few parcels or
   scattered patches (scipy.ndimage connected components);
4. ranking: the classes in order of extent;
5. extent: qualitative amounts ("about half", "a small part"), never numbers.
More than 5 captions cycle through the focuses with fresh wording.

Wording is drawn from phrase pools with a per-tile seed, so a run is
reproducible and captions over a set rarely repeat (redundancy well below the
original's 8.01 %). Percentages appear only with `percentages=true` (the
original's hybrid captions leaked them). Every phrase used here is readable by
groundsynth.metrics.claims.parse_claims, so the grounder can check what it says.

An empty mask (no valid pixel) gets captions saying there is no valid data.
"""
from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np

from groundsynth.engines import register
from groundsynth.engines.base import Captioner, Param
from groundsynth.metrics.claims import centroid_region, enrichment
from groundsynth.request.classes import CLASS_NAMES, NODATA, NUM_CLASSES, composition
from groundsynth.request.errors import InvalidArgument

# (text, plural) per class; every noun must parse back to its class.
NOUNS: dict[str, tuple[tuple[str, bool], ...]] = {
    "Tree": (("trees", True), ("tree cover", False), ("woodland", False), ("forest", False), ("wooded land", False)),
    "Shrub": (("shrubland", False), ("shrubs", True), ("scrub", False), ("bushland", False)),
    "Grass": (("grassland", False), ("grass", False), ("meadow", False), ("pasture", False)),
    "Crop": (("cropland", False), ("farmland", False), ("crop fields", True), ("cultivated fields", True),
             ("agricultural land", False)),
    "Built-up": (("built-up land", False), ("buildings", True), ("settlement", False), ("urban fabric", False),
                 ("built-up area", False)),
    "Barren": (("bare ground", False), ("barren land", False), ("bare soil", False), ("sparse vegetation", False)),
    "Water": (("water", False), ("open water", False), ("a water body", False), ("surface water", False)),
}

SUBJECTS = ("the tile", "this tile", "the scene", "this scene", "the image", "this image", "the area",
            "this area", "the view", "this patch", "the patch", "the frame", "this frame", "the footprint")

REGION_PHRASES: dict[str, tuple[str, ...]] = {
    "north": ("in the north", "in the northern part", "across the northern half", "in the upper part",
              "toward the top edge"),
    "south": ("in the south", "in the southern part", "across the southern half", "in the lower part",
              "toward the bottom edge"),
    "west": ("in the west", "in the western part", "across the western half", "on the left side",
             "toward the left edge"),
    "east": ("in the east", "in the eastern part", "across the eastern half", "on the right side",
             "toward the right edge"),
    "north-west": ("in the north-west", "in the northwestern corner", "toward the top-left corner",
                   "in the upper-left part"),
    "north-east": ("in the north-east", "in the northeastern corner", "toward the top-right corner",
                   "in the upper-right part"),
    "south-west": ("in the south-west", "in the southwestern corner", "toward the bottom-left corner",
                   "in the lower-left part"),
    "south-east": ("in the south-east", "in the southeastern corner", "toward the bottom-right corner",
                   "in the lower-right part"),
    "centre": ("in the centre", "in the middle", "around the centre", "in the central part"),
}
EDGE_PHRASES: dict[str, tuple[str, ...]] = {
    "north": ("along the northern edge", "along the top edge"),
    "south": ("along the southern edge", "along the bottom edge"),
    "west": ("along the western edge", "along the left edge"),
    "east": ("along the eastern edge", "along the right edge"),
}
SPREAD_PHRASES = ("throughout", "all over", "everywhere", "across the whole tile", "across the entire scene",
                  "from edge to edge", "from corner to corner")
MIXED_PHRASES = ("spread unevenly", "mixed in with the rest", "without one clear focus", "here and there")

STRUCTURE_PHRASES = {
    "contiguous": ("one contiguous block", "a single continuous area", "one compact unbroken area",
                   "a solid connected expanse", "one unbroken stretch"),
    "few": ("a few separate patches", "several distinct parcels", "a handful of separate areas",
            "a few detached pieces", "two or three separate blocks"),
    "scattered": ("scattered patches", "many small fragments", "a scatter of small patches",
                  "fragmented pieces", "a patchwork of small bits"),
}

DOMINANT_VERBS = ("is dominated by", "is mostly", "is mainly", "is largely", "is predominantly",
                  "is chiefly", "is primarily", "consists mostly of", "is made up mainly of", "is covered mostly by")
ENTIRE_VERBS = ("is entirely", "is completely", "consists wholly of", "is covered entirely by", "is all")
MINOR_LEADS = ("with", "alongside", "plus", "together with", "and also has", "accompanied by")
MINOR_TAILS = ("", " in smaller amounts", " as minor cover", " to a lesser degree", " in small parts",
               " on the margins")
MIX_LEADS = ("shows a mix of", "combines", "holds a blend of", "is shared between", "mixes",
             "is split among")
ONLY_ONE = ("only one land cover appears in", "a single class covers", "just one cover type is present in",
            "one land cover fills", "uniform cover in", "there is a single cover type in", "one class makes up")
RANK_LEADS = ("in order of extent:", "ranked by area:", "from most to least cover:", "by cover, largest first:",
              "land cover by extent:", "largest to smallest:")
# Optional lead-ins per focus and neutral tails (no class, place or amount words).
LEADS: dict[str, tuple[str, ...]] = {
    "overview": ("", "", "", "overall, ", "in short, ", "at a glance, ", "broadly, "),
    "layout": ("", "", "seen from above, ", "spatially, ", "in plan view, ", "as for placement, ",
               "looking at the layout, "),
    "structure": ("", "", "in shape, ", "structurally, ", "as for pattern, ", "in terms of pattern, ",
                  "looking at connectivity, "),
    "ranking": ("", "", "", "by area, ", "sorted by size, "),
    "extent": ("", "", "", "in broad strokes, ", "by eye, ", "as a rough guide, "),
}
TAILS = ("", "", "", "", " in this tile", " within the frame", " as mapped", " in this view", " at this scale",
         " on the ground")

# Qualitative amounts (share lower bound, phrases). "most"/"nearly all" are
# dominance words, used only for the largest class (share >= 0.6 > any other).
AMOUNTS: tuple[tuple[float, tuple[str, ...]], ...] = (
    (0.97, ("all of", "the whole of")),
    (0.85, ("nearly all of", "almost all of")),
    (0.6, ("most of", "the bulk of")),
    (0.4, ("about half of", "roughly half of", "around half of")),
    (0.28, ("about a third of", "roughly a third of", "around a third of")),
    (0.22, ("about a quarter of", "roughly a quarter of", "around a quarter of")),
    (0.15, ("about a fifth of", "roughly a fifth of", "around a fifth of")),
    (0.08, ("a tenth or so of", "a small part of", "a modest slice of")),
    (0.0, ("a sliver of", "a small fraction of", "a thin slice of")),
)
EMPTY_CAPTIONS = ("No valid data in this tile.", "This tile holds no valid pixels.",
                  "The tile lies outside the valid data.", "Nothing to describe: the tile is empty.",
                  "No land cover can be read in this tile.", "The tile contains only nodata pixels.",
                  "No usable pixels in this tile.", "This tile is blank (nodata).",
                  "The whole tile is nodata.", "No observation covers this tile.")

FOCUSES = ("overview", "layout", "structure", "ranking", "extent")


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


class _TileFacts:
    """What the captioner knows about one mask."""

    def __init__(self, mask: np.ndarray, min_share: float, max_classes: int):
        from scipy import ndimage

        self.shares = composition(mask)
        order = [int(i) for i in np.argsort(-self.shares, kind="stable") if self.shares[i] > 0]
        named = [i for i in order if self.shares[i] >= min_share][:max_classes]
        self.classes = named or order[:1]       # at least the largest class
        top = self.shares[self.classes[0]]
        second = self.shares[order[1]] if len(order) > 1 else 0.0     # the runner-up, named or not
        self.dominant = self.classes[0] if top >= 0.35 and top - second >= 0.05 else None
        self.entire = top >= 0.97
        self.place: dict[int, str | None] = {}
        self.edge: dict[int, bool] = {}
        self.structure: dict[int, str] = {}
        h, w = mask.shape
        struct8 = np.ones((3, 3), dtype=bool)
        for c in self.classes:
            if self.shares[c] >= 0.8:
                self.place[c] = "all"
            else:
                region = centroid_region(mask, c)
                enr = enrichment(mask, c, region) if region else float("nan")
                self.place[c] = region if enr >= 1.2 else None
                if region in EDGE_PHRASES:
                    ys, xs = np.nonzero(mask == c)
                    off = {"north": 0.5 - ys.mean() / h, "south": ys.mean() / h - 0.5,
                           "west": 0.5 - xs.mean() / w, "east": xs.mean() / w - 0.5}[region]
                    self.edge[c] = off > 0.3
            labels, n = ndimage.label(mask == c, structure=struct8)
            sizes = np.bincount(labels.ravel())[1:]
            big = sizes[sizes >= max(4, 0.002 * mask.size)]
            largest = sizes.max() / sizes.sum() if sizes.size else 0.0
            if largest >= 0.85:
                self.structure[c] = "contiguous"
            elif 0 < big.size <= 4 and big.sum() >= 0.7 * sizes.sum():
                self.structure[c] = "few"
            else:
                self.structure[c] = "scattered"


@register
class CompositionCaptioner(Captioner):
    name = "composition"
    description = ("Captions from the mask: dominant and minor classes, where they lie, and whether they are "
                   "contiguous or scattered. Fast, deterministic per seed, no model.")
    is_default = True
    params = (
        Param("n_captions", "int", 5, "Captions per tile.", min=1, max=10),
        Param("percentages", "bool", False, "Add class percentages to the captions (off: no label leakage)."),
        Param("min_share", "float", 0.05, "Classes covering less than this share of the tile are not mentioned.",
              min=0.0, max=0.5),
        Param("max_classes", "int", 4, "At most this many classes are mentioned per caption.", min=1, max=7),
    )

    # ---------------------------------------------------------------- API
    def caption(self, images: Sequence[np.ndarray], masks: Sequence[np.ndarray],
                seeds: Sequence[int]) -> list[list[str]]:
        if len(masks) != len(seeds) or (images is not None and len(images) != len(masks)):
            raise InvalidArgument(f"got {len(images) if images is not None else 'no'} images, {len(masks)} masks "
                                  f"and {len(seeds)} seeds; expected one of each per tile", "caption.masks")
        return [self.caption_mask(m, s) for m, s in zip(masks, seeds, strict=True)]

    def caption_mask(self, mask: np.ndarray, seed: int) -> list[str]:
        mask = self._check_mask(mask)
        rng = random.Random(int(seed))
        n = self.p["n_captions"]
        if not (mask != NODATA).any():
            return rng.sample(EMPTY_CAPTIONS, n)
        facts = _TileFacts(mask, self.p["min_share"], self.p["max_classes"])
        out: list[str] = []
        for k in range(n):
            focus = FOCUSES[k % len(FOCUSES)]
            for _ in range(20):                    # redraw wording on a (rare) repeat within the tile
                text = self._dress(focus, getattr(self, f"_{focus}")(facts, rng), rng)
                if text not in out:
                    break
            out.append(text)
        return out

    @staticmethod
    def _check_mask(mask: np.ndarray) -> np.ndarray:
        mask = np.asarray(mask)
        if mask.ndim != 2 or mask.size == 0:
            raise InvalidArgument(f"expected a 2-D class mask, got shape {mask.shape}", "caption.mask")
        if not np.issubdtype(mask.dtype, np.integer):
            raise InvalidArgument(f"expected an integer class mask, got dtype {mask.dtype}", "caption.mask")
        bad = (mask != NODATA) & ((mask < 0) | (mask >= NUM_CLASSES))
        if bad.any():
            raise InvalidArgument(f"expected class indices 0..{NUM_CLASSES - 1} or {NODATA}, found "
                                  f"{sorted(set(np.unique(mask[bad]).tolist()))[:5]}", "caption.mask")
        return mask.astype(np.uint8, copy=False)

    # ---------------------------------------------------------------- phrases
    def _noun(self, facts: _TileFacts, c: int, rng: random.Random) -> tuple[str, bool]:
        text, plural = rng.choice(NOUNS[CLASS_NAMES[c]])
        if self.p["percentages"]:
            text = f"{text} ({round(100 * facts.shares[c])}%)"
        return text, plural

    @staticmethod
    def _join(items: list[str], rng: random.Random) -> str:
        if len(items) == 1:
            return items[0]
        conj = rng.choice((" and ", " and ", " as well as "))
        return ", ".join(items[:-1]) + conj + items[-1]

    def _where(self, facts: _TileFacts, c: int, rng: random.Random) -> str:
        place = facts.place.get(c)
        if place == "all":
            return rng.choice(SPREAD_PHRASES)
        if place is None:
            return rng.choice(MIXED_PHRASES)
        if facts.edge.get(c) and rng.random() < 0.6:
            return rng.choice(EDGE_PHRASES[place])
        return rng.choice(REGION_PHRASES[place])

    @staticmethod
    def _verb(plural: bool, singular_form: str, plural_form: str) -> str:
        return plural_form if plural else singular_form

    # ---------------------------------------------------------------- focuses
    # Each returns the caption body (no capital, no full stop); `_dress` adds an
    # optional lead-in and tail so that identical tiles still get varied wording.
    def _dress(self, focus: str, body: str, rng: random.Random) -> str:
        lead = rng.choice(LEADS[focus])
        tail = rng.choice(TAILS)
        return _cap(f"{lead}{body}{tail}") + "."

    def _overview(self, f: _TileFacts, rng: random.Random) -> str:
        subject = rng.choice(SUBJECTS)
        if f.dominant is not None:
            noun, _ = self._noun(f, f.dominant, rng)
            verb = rng.choice(ENTIRE_VERBS if f.entire and len(f.classes) == 1 else DOMINANT_VERBS)
            text = f"{subject} {verb} {noun}"
            minors = [self._noun(f, c, rng)[0] for c in f.classes[1:]]
            if minors:
                text += f", {rng.choice(MINOR_LEADS)} {self._join(minors, rng)}{rng.choice(MINOR_TAILS)}"
            return text
        names = [self._noun(f, c, rng)[0] for c in f.classes]
        tail = rng.choice(("", " with no single dominant cover", " in comparable amounts", " in similar measure"))
        return f"{subject} {rng.choice(MIX_LEADS)} {self._join(names, rng)}{tail}"

    def _layout(self, f: _TileFacts, rng: random.Random) -> str:
        parts = []
        for c in f.classes:
            noun, plural = self._noun(f, c, rng)
            place = f.place.get(c)
            if place == "all":
                verb = self._verb(plural, rng.choice(("extends", "spreads", "stretches", "runs", "reaches")),
                                  rng.choice(("extend", "spread", "stretch", "run", "reach")))
            elif place is None:
                verb = self._verb(plural, rng.choice(("is", "appears", "occurs", "shows up")),
                                  rng.choice(("are", "appear", "occur", "show up")))
            else:
                verb = self._verb(plural, rng.choice(("lies", "sits", "is found", "is concentrated", "is placed")),
                                  rng.choice(("lie", "sit", "are found", "are concentrated", "are placed")))
            parts.append(f"{noun} {verb} {self._where(f, c, rng)}")
        if len(parts) == 1:
            return parts[0]
        sep = rng.choice(("; ", ", while ", "; ", ", whereas "))
        return parts[0] + sep + "; ".join(parts[1:])

    def _structure(self, f: _TileFacts, rng: random.Random) -> str:
        parts = []
        for c in f.classes:
            noun, plural = self._noun(f, c, rng)
            kind = f.structure[c]
            if kind == "contiguous":
                verb = self._verb(plural, rng.choice(("forms", "makes up", "occupies", "is laid out as")),
                                  rng.choice(("form", "make up", "occupy", "are laid out as")))
            else:
                verb = self._verb(plural, rng.choice(("appears as", "occurs in", "is broken into", "is split into")),
                                  rng.choice(("appear as", "occur in", "are broken into", "are split into")))
            parts.append(f"{noun} {verb} {rng.choice(STRUCTURE_PHRASES[kind])}")
        return "; ".join(parts)

    def _ranking(self, f: _TileFacts, rng: random.Random) -> str:
        nouns = [self._noun(f, c, rng) for c in f.classes]
        names = [n for n, _ in nouns]
        if len(names) == 1:
            return f"{rng.choice(ONLY_ONE)} {rng.choice(SUBJECTS)}: {names[0]} {rng.choice(SPREAD_PHRASES)}"
        style = rng.randrange(3)
        if style == 0:
            return f"{rng.choice(RANK_LEADS)} {', '.join(names[:-1])}, then {names[-1]}"
        if style == 1:
            lead = rng.choice(("largest cover is", "the biggest share goes to", "first comes", "leading the list is"))
            return f"{lead} {names[0]}, followed by {self._join(names[1:], rng)}"
        verb = self._verb(nouns[0][1], "covers", "cover")
        return f"{names[0]} {verb} the largest share, ahead of {self._join(names[1:], rng)}"

    def _extent(self, f: _TileFacts, rng: random.Random) -> str:
        subject = rng.choice(SUBJECTS)
        parts = []
        for i, c in enumerate(f.classes):
            share = f.shares[c]
            # words implying the largest class ("most of") only for the largest class
            ok = [(lo, ph) for lo, ph in AMOUNTS if share >= lo and (i == 0 or lo < 0.6)]
            amount = rng.choice(ok[0][1])
            noun, plural = self._noun(f, c, rng)
            if i == 0:
                verb = rng.choice(("is", "is covered by", "is taken up by", "is given over to"))
                parts.append(f"{amount} {subject} {verb} {noun}")
            else:
                verb = self._verb(plural, rng.choice(("covers", "takes", "fills", "claims")),
                                  rng.choice(("cover", "take", "fill", "claim")))
                parts.append(f"{noun} {verb} {amount} it")
        return "; ".join(parts)
