"""caption/composition: captions written from the mask's composition and layout.

Each tile gets `n_captions` captions (5 by default), each with its own focus:
1. overview: the dominant class (or a mix, "no single dominant cover") and the minor classes;
2. layout: where each class lies (its centroid region, if the class is concentrated there:
   enrichment >= 1.2), "throughout" (>= 80 %) or "here and there";
3. structure: whether each class is one contiguous block, one main block with outliers, a few patches or scattered;
4. ranking: the classes in order of extent;
5. extent: qualitative amounts ("about half of", "a sliver of"), never numbers.
More than 5 captions cycle through the focuses with fresh wording.

Each caption also carries `details` (3) *details* of the tile (fewer when the tile has fewer), dealt
out in turn over the tile's captions (a seeded order): the number of sizeable patches of a class
("cropland breaks into seven sizeable patches"), its parcel size ("grassland lies in small
parcels"), linear features ("a narrow strip of trees runs through the tile"), the
shoreline (orientation, straight or indented, which side the water lies), the water's look read from
the tile's image (dark or pale; the direction toward which it grows paler: "the water grows paler
toward the north-west"), where the tile has no data ("no data along the eastern edge") and small classes
the main clause leaves out (`trace_share` <= share < 10 %: "bare ground takes a sliver of the tile"). All measurements
come from groundsynth.metrics.tile_facts, the same code the grounder checks them with.

Wording is drawn from phrase pools (composition_phrases.py) with a per-tile seed, so a run
is reproducible and captions rarely repeat word for word; what they say varies with the tile.
Percentages appear only with `percentages=true` (the original's hybrid captions leaked them).
Every claim-bearing phrase is read back by groundsynth.metrics.claims.parse_claims and checked
by groundsynth.metrics.caption_score, so the captioner never says what the grounder cannot verify.

An empty mask (no valid pixel) gets captions saying there is no valid data.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np

from groundsynth.engines import register
from groundsynth.engines.base import Captioner, Param
from groundsynth.engines.builtin import composition_phrases as P
from groundsynth.engines.builtin.composition_phrases import EDGE_PHRASES, NOUNS, REGION_PHRASES  # noqa: F401
from groundsynth.metrics.claim_vocab import number_word
from groundsynth.metrics.tile_facts import WATER, TileFacts
from groundsynth.request.classes import CLASS_NAMES, NODATA, NUM_CLASSES
from groundsynth.request.errors import InvalidArgument

FOCUSES = ("overview", "layout", "structure", "ranking", "extent")
TRACE_MAX = 0.1          # a trace ("a sliver of X") covers less than this (claim_vocab.AMOUNTS: 0-12 %)


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


class _TileFacts(TileFacts):
    """TileFacts plus what the captioner decided to name."""

    def __init__(self, mask: np.ndarray, min_share: float, max_classes: int, trace_share: float = 0.0,
                 image: np.ndarray | None = None):
        super().__init__(mask, image)
        order = [int(i) for i in np.argsort(-self.shares, kind="stable") if self.shares[i] > 0]
        named = [i for i in order if self.shares[i] >= min_share][:max_classes]
        self.classes = named or order[:1]       # at least the largest class
        # small classes left out of the captions' main clause, named in a detail as "a sliver of ..."
        self.traces = [i for i in order if i not in self.classes and 0 < trace_share <= self.shares[i] < TRACE_MAX]
        top = self.shares[self.classes[0]]
        second = self.shares[order[1]] if len(order) > 1 else 0.0     # the runner-up, named or not
        self.dominant = self.classes[0] if top >= 0.35 and top - second >= 0.05 else None
        self.entire = top >= 0.97


@register
class CompositionCaptioner(Captioner):
    name = "composition"
    description = ("Captions from the mask: dominant and minor classes, where they lie, patches, parcels, "
                   "linear features and the shoreline. Fast, deterministic per seed, no model.")
    is_default = True
    params = (
        Param("n_captions", "int", 5, "Captions per tile.", min=1, max=10),
        Param("percentages", "bool", False, "Add class percentages to the captions (off: no label leakage)."),
        Param("min_share", "float", 0.05, "Classes covering less than this share of the tile are not mentioned.",
              min=0.0, max=0.5),
        Param("max_classes", "int", 4, "At most this many classes are mentioned per caption.", min=1, max=7),
        Param("trace_share", "float", 0.02, "Classes covering at least this share (and less than 10 %) that the "
              "captions do not otherwise mention appear in one detail as 'a sliver of ...'; 0 = never.",
              min=0.0, max=0.1),
        Param("details", "int", 3, "Details of the tile each caption carries (patch counts, parcel sizes, linear "
              "features, shoreline, water look, no data, small classes), dealt out in turn.", min=0, max=6),
    )
    reads_mask = True        # captions come from the mask: grounding them against it is self-consistency

    # ---------------------------------------------------------------- API
    def caption(self, images: Sequence[np.ndarray], masks: Sequence[np.ndarray],
                seeds: Sequence[int]) -> list[list[str]]:
        if len(masks) != len(seeds) or (images is not None and len(images) != len(masks)):
            raise InvalidArgument(f"got {len(images) if images is not None else 'no'} images, {len(masks)} masks "
                                  f"and {len(seeds)} seeds; expected one of each per tile", "caption.masks")
        ims = images if images is not None else [None] * len(masks)
        return [self.caption_mask(m, s, im) for m, s, im in zip(masks, seeds, ims, strict=True)]

    def caption_mask(self, mask: np.ndarray, seed: int, image: np.ndarray | None = None) -> list[str]:
        """The tile's captions; `image` (float (C, H, W) in [0, 1]) adds what the water looks like."""
        mask = self._check_mask(mask)
        rng = random.Random(int(seed))
        n = self.p["n_captions"]
        if not (mask != NODATA).any():
            return rng.sample(P.EMPTY_CAPTIONS, n)
        facts = _TileFacts(mask, self.p["min_share"], self.p["max_classes"], self.p["trace_share"], image)
        details = self._details(facts, rng)
        per = min(self.p["details"], len(details))     # every caption carries up to `details` details of its tile
        out: list[str] = []
        for k in range(n):
            focus = FOCUSES[k % len(FOCUSES)]
            mine = [details[(k * per + j) % len(details)] for j in range(per)]
            for _ in range(20):                    # redraw wording on a (rare) repeat within the tile
                body = getattr(self, f"_{focus}")(facts, rng)
                text = self._dress(focus, "; ".join([body] + [d(rng) for d in mine]), rng)
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

    @staticmethod
    def _region(facts: _TileFacts, c: int, place: str, rng: random.Random) -> str:
        if place in EDGE_PHRASES and facts.near_edge(c, place) and rng.random() < 0.6:
            return rng.choice(EDGE_PHRASES[place])
        return rng.choice(REGION_PHRASES[place])

    def _where(self, facts: _TileFacts, c: int, rng: random.Random) -> str:
        place = facts.place(c)
        if place == "all":
            return rng.choice(P.SPREAD_PHRASES)
        if place is None:
            return rng.choice(P.MIXED_PHRASES)
        return self._region(facts, c, place, rng)

    @staticmethod
    def _verb(plural: bool, pair: tuple[str, str]) -> str:
        return pair[1] if plural else pair[0]

    def _dress(self, focus: str, body: str, rng: random.Random) -> str:
        lead = rng.choice(P.LEADS[focus])
        if any(body.startswith(r) for r in P.RANK_LEADS):
            lead = ""               # "ranked by area: ..." is a lead-in already ("by area, by cover, ..." read badly)
        tail = rng.choice(P.TAILS)
        return _cap(f"{lead}{body}{tail}") + "."

    # ---------------------------------------------------------------- focuses
    # Each returns the caption body (no capital, no full stop); `_dress` adds an
    # optional lead-in and tail so that identical tiles still get varied wording.
    def _overview(self, f: _TileFacts, rng: random.Random) -> str:
        subject = rng.choice(P.SUBJECTS)
        if f.dominant is not None:
            noun, _ = self._noun(f, f.dominant, rng)
            verb = rng.choice(P.ENTIRE_VERBS if f.entire and len(f.classes) == 1 else P.DOMINANT_VERBS)
            text = f"{subject} {verb} {noun}"
            minors = [self._noun(f, c, rng)[0] for c in f.classes[1:]]
            if minors:
                text += f", {rng.choice(P.MINOR_LEADS)} {self._join(minors, rng)}{rng.choice(P.MINOR_TAILS)}"
            return text
        names = [self._noun(f, c, rng)[0] for c in f.classes]
        return f"{subject} {rng.choice(P.MIX_LEADS)} {self._join(names, rng)}{rng.choice(P.MIX_TAILS)}"

    def _layout(self, f: _TileFacts, rng: random.Random) -> str:
        parts = []
        for c in f.classes:
            noun, plural = self._noun(f, c, rng)
            place = f.place(c)
            if place == "all":
                verb = rng.choice((("extends", "extend"), ("spreads", "spread"), ("stretches", "stretch"),
                                   ("runs", "run"), ("reaches", "reach")))
            elif place is None:
                verb = rng.choice((("is", "are"), ("appears", "appear"), ("occurs", "occur"),
                                   ("shows up", "show up")))
            else:
                verb = rng.choice((("lies", "lie"), ("sits", "sit"), ("is found", "are found"),
                                   ("is concentrated", "are concentrated"), ("is placed", "are placed")))
            parts.append(f"{noun} {self._verb(plural, verb)} {self._where(f, c, rng)}")
        if len(parts) == 1:
            return parts[0]
        sep = rng.choice(("; ", ", while ", "; ", ", whereas "))
        return parts[0] + sep + "; ".join(parts[1:])

    def _structure(self, f: _TileFacts, rng: random.Random) -> str:
        parts = []
        for c in f.classes:
            noun, plural = self._noun(f, c, rng)
            kind = f.structure(c) or "scattered"
            if kind in ("contiguous", "main"):
                verb = rng.choice((("forms", "form"), ("makes up", "make up"), ("occupies", "occupy"),
                                   ("is laid out as", "are laid out as")))
            else:
                verb = rng.choice((("appears as", "appear as"), ("occurs in", "occur in"),
                                   ("is broken into", "are broken into"), ("is split into", "are split into")))
            parts.append(f"{noun} {self._verb(plural, verb)} {rng.choice(P.STRUCTURE_PHRASES[kind])}")
        return "; ".join(parts)

    def _ranking(self, f: _TileFacts, rng: random.Random) -> str:
        nouns = [self._noun(f, c, rng) for c in f.classes]
        names = [n for n, _ in nouns]
        if len(names) == 1:
            verb = self._verb(nouns[0][1], ("takes", "take"))
            lies = self._verb(nouns[0][1], rng.choice((("lies", "lie"), ("is found", "are found"))))
            return f"{names[0]} {verb} the largest share by far and {lies} {self._where(f, f.classes[0], rng)}"
        style = rng.randrange(3)
        if style == 0:
            return f"{rng.choice(P.RANK_LEADS)} {', '.join(names[:-1])}, then {names[-1]}"
        if style == 1:
            return f"{rng.choice(P.RANK_FIRST)} {names[0]}, followed by {self._join(names[1:], rng)}"
        verb = self._verb(nouns[0][1], ("covers", "cover"))
        return f"{names[0]} {verb} the largest share, ahead of {self._join(names[1:], rng)}"

    def _extent(self, f: _TileFacts, rng: random.Random) -> str:
        subject = rng.choice(P.SUBJECTS)
        parts = []
        for i, c in enumerate(f.classes):
            share = f.shares[c]
            # words implying the largest class ("most of") only for the largest class
            ok = [(lo, ph) for lo, ph in P.AMOUNTS if share >= lo and (i == 0 or lo < 0.6)]
            amount = rng.choice(ok[0][1])
            noun, plural = self._noun(f, c, rng)
            if i == 0:
                verb = rng.choice(("is", "is covered by", "is taken up by", "is given over to"))
                parts.append(f"{amount} {subject} {verb} {noun}")
            else:
                verb = self._verb(plural, rng.choice((("covers", "cover"), ("takes", "take"), ("fills", "fill"),
                                                      ("claims", "claim"))))
                parts.append(f"{noun} {verb} {amount} it")
        return "; ".join(parts)

    # ---------------------------------------------------------------- details
    def _details(self, f: _TileFacts, rng: random.Random) -> list[Callable[[random.Random], str]]:
        """The tile's detail clauses (each a function of the wording rng), in a seeded order."""
        out: list[Callable[[random.Random], str]] = []
        for c in f.classes:
            if 1 <= f.patch_count(c) and f.shares[c] < 0.97:
                out.append(partial(self._count, f, c))
            if f.parcel_size(c) is not None:
                out.append(partial(self._parcels, f, c))
            if f.linear_count(c):
                out.append(partial(self._linear, f, c))
        if f.shoreline is not None and WATER in f.classes:
            out.append(partial(self._shore, f))
        if f.nodata_side is not None:
            out.append(partial(self._nodata, f.nodata_side, f.nodata_share))
        look = f.water_look if WATER in f.classes else None
        if look is not None and look.tone is not None:
            out.append(partial(self._water_tone, look.tone))
        if look is not None and look.paler_toward is not None:
            out.append(partial(self._water_gradient, look.paler_toward))
        out += [partial(self._trace, f, c) for c in f.traces]
        rng.shuffle(out)
        return out

    def _count(self, f: _TileFacts, c: int, rng: random.Random) -> str:
        n = f.patch_count(c)
        noun, plural = self._noun(f, c, rng)
        number = "a single" if n == 1 else number_word(n) if n < 100 else "more than a hundred"
        patches = "patch" if n == 1 else "patches"
        return f"{noun} {self._verb(plural, rng.choice(P.COUNT_VERBS))} {number} {rng.choice(P.COUNT_ADJ)} {patches}"

    def _trace(self, f: _TileFacts, c: int, rng: random.Random) -> str:
        noun, plural = self._noun(f, c, rng)
        verb = self._verb(plural, rng.choice((("covers", "cover"), ("takes", "take"), ("fills", "fill"),
                                              ("claims", "claim"))))
        return f"{noun} {verb} {rng.choice(P.TRACE_AMOUNTS)} {rng.choice(P.TRACE_WHOLE)}"

    def _parcels(self, f: _TileFacts, c: int, rng: random.Random) -> str:
        noun, plural = self._noun(f, c, rng)
        size = rng.choice(P.PARCEL_WORDS[f.parcel_size(c) or "small"])
        return f"{noun} {self._verb(plural, rng.choice(P.PARCEL_VERBS))} {size} {rng.choice(('parcels', 'plots'))}"

    def _linear(self, f: _TileFacts, c: int, rng: random.Random) -> str:
        n = f.linear_count(c)
        noun, _ = self._noun(f, c, rng)
        shape = rng.choice(P.LINEAR_SHAPES.get(CLASS_NAMES[c], P.LINEAR_SHAPES[""]))
        adj = rng.choice(P.LINEAR_ADJ)
        if n == 1:
            lead = f"a {adj} {shape}"
        elif n <= 12:
            lead = f"{number_word(n)} {adj} {shape}s"
        else:
            lead = f"many {adj} {shape}s"
        return f"{lead} of {noun} {self._verb(n > 1, rng.choice(P.LINEAR_VERBS))}"

    def _shore(self, f: _TileFacts, rng: random.Random) -> str:
        shore = f.shoreline
        assert shore is not None
        noun = rng.choice(P.SHORE_NOUNS)
        shape = f"{rng.choice(P.SHORE_SHAPE_WORDS[shore.shape])} " if shore.shape and rng.random() < 0.7 else ""
        article = "an" if (shape or noun)[:1] in "aeiou" else "a"
        if shore.orientation is not None:
            text = (f"{article} {shape}{noun} {rng.choice(P.SHORE_VERBS)} "
                    f"{rng.choice(P.ORIENTATION_WORDS[shore.orientation])}")
        else:
            text = rng.choice(P.SHORE_PLAIN).format(noun=f"{shape}{noun}", a=article)
        side = f.water_side()
        if side is not None:
            text += ", " + rng.choice(P.WATER_SIDE).format(where=self._region(f, WATER, side, rng))
        return text

    @staticmethod
    def _water_tone(tone: str, rng: random.Random) -> str:
        return rng.choice(P.WATER_TONE_PHRASES[tone])

    @staticmethod
    def _water_gradient(toward: str, rng: random.Random) -> str:
        return rng.choice(P.WATER_GRADIENT_PHRASES).format(toward=toward)

    @staticmethod
    def _nodata(side: str, share: float, rng: random.Random) -> str:
        pool: tuple[str, ...]
        if "-" in side:
            pool = P.NODATA_CORNER_PHRASES
        else:
            pool = P.NODATA_WIDE_PHRASES if share >= 0.25 else P.NODATA_SIDE_PHRASES
        return rng.choice(pool).format(d=side)
