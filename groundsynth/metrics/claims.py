"""Caption claims: what a caption says about land cover, and the tile geometry to check it.

Shared by the composition captioner (which must only write what this module
can read back) and the composition grounder (which scores captions from ANY
captioner, including free VLM text, against a mask).

`parse_claims(text)` finds:
- class mentions, by name or synonym ("woodland" -> Tree, "farmland" -> Crop,
  "village" -> Built-up, "sea" -> Water ...), each possibly negated
  ("no water", "without buildings");
- dominance statements ("dominated by X", "mostly X", "X covers most of ...",
  "X is the dominant cover"): which class is said to be the largest;
- positional statements ("in the north-west", "along the eastern edge",
  "in the centre", "top-left corner"), tied to the class named last before the
  phrase in the same clause ("water in the south"), else the first after it
  ("in the south, water").
Percentages and other numbers are ignored. Parsing is a small, documented set of
rules, not a language model: it errs towards finding no claim over a wrong one.

Geometry: `region_mask` (the image region a position word denotes; north = top
half, north-west = top-left quadrant, centre = the middle half in each axis)
and `enrichment` (how concentrated a class is in a region relative to the
region's share of valid pixels; 1.0 = as if spread evenly).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from groundsynth.request.classes import CLASS_NAMES, NODATA

# ------------------------------------------------------------------ vocabulary

# Words and phrases that name each class (lower case; matched as whole words,
# longest first, so "sparse vegetation" wins over a bare "vegetation", which
# names no class on purpose).
CLASS_TERMS: dict[str, tuple[str, ...]] = {
    "Tree": ("tree cover", "trees", "tree", "forests", "forest", "forested", "woodlands", "woodland", "wooded",
             "woods", "wood", "canopy", "mangroves", "mangrove", "orchards", "orchard"),
    "Shrub": ("shrubland", "shrublands", "shrubs", "shrub", "scrubland", "scrub", "bushland", "bushes", "bush",
              "heathland", "heath", "brush"),
    "Grass": ("grasslands", "grassland", "grass", "grasses", "grassy", "meadows", "meadow", "pastures", "pasture",
              "herbaceous", "wetlands", "wetland", "marshland", "marshes", "marsh", "lawns", "lawn", "moss",
              "lichen", "rangeland"),
    "Crop": ("croplands", "cropland", "crops", "crop", "farmland", "farmlands", "farm fields", "fields", "field",
             "agricultural land", "agricultural", "agriculture", "cultivated", "cultivation", "arable",
             "paddies", "paddy"),
    "Built-up": ("built-up", "built up", "buildings", "building", "urban", "settlements", "settlement",
                 "villages", "village", "towns", "town", "city", "cities", "houses", "housing", "residential",
                 "roads", "road", "streets", "industrial", "infrastructure", "rooftops"),
    "Barren": ("barren", "bare ground", "bare soil", "bare land", "bare earth", "bare", "sand", "sandy", "sands",
               "rock", "rocky", "rocks", "sparse vegetation", "sparsely vegetated", "snow", "ice", "glacier",
               "desert", "dunes", "dune", "gravel", "quarry"),
    "Water": ("water", "waters", "water body", "water bodies", "waterbody", "rivers", "river", "lakes", "lake",
              "sea", "ocean", "bay", "ponds", "pond", "reservoirs", "reservoir", "estuary", "lagoon", "streams",
              "stream", "canals", "canal", "harbour", "harbor"),
}

NEGATION_CUES = ("no", "without", "free of", "devoid of", "absence of", "absent", "lacks", "lacking",
                 "lack of", "none", "nor", "neither")

# Dominance cues. "pre": the class named AFTER the cue is the dominant one
# ("dominated by water"); "post": the class named BEFORE it ("water dominates").
# If the preferred side has no class in the clause, the other side is used.
DOMINANCE_PRE = ("dominated by", "mostly", "mainly", "largely", "predominantly", "primarily", "chiefly",
                 "principally", "overwhelmingly", "almost entirely", "entirely", "nearly all of", "almost all of",
                 "nearly all", "almost all", "the bulk of", "the majority of", "majority", "most of",
                 "the whole of", "wholly", "completely", "all of")
DOMINANCE_POST = ("dominates", "dominate", "dominating", "dominant", "predominates", "prevails",
                  "covers most", "cover most", "covers nearly all", "covers almost all", "covers the whole",
                  "fills most", "fill most", "fills the whole", "makes up most", "make up most", "takes up most",
                  "take up most", "occupies most", "occupy most", "accounts for most", "the largest share",
                  "the largest part", "main cover", "main land cover")

# Position phrases -> region name. Compass words count anywhere; top/bottom/
# left/right/upper/lower only next to a place noun ("top edge", "upper-left corner").
_PLACE = r"(?:half|part|parts|side|edge|edges|portion|section|area|corner|third|quarter|region|strip|border|margin)"
REGION_PATTERNS: tuple[tuple[str, str], ...] = (
    ("north-west", r"north[- ]?west(?:ern)?|(?:top|upper)[- ]left"),
    ("north-east", r"north[- ]?east(?:ern)?|(?:top|upper)[- ]right"),
    ("south-west", r"south[- ]?west(?:ern)?|(?:bottom|lower)[- ]left"),
    ("south-east", r"south[- ]?east(?:ern)?|(?:bottom|lower)[- ]right"),
    ("north", rf"north(?:ern|ward)?|(?:top|upper)[- ]{_PLACE}|at the top"),
    ("south", rf"south(?:ern|ward)?|(?:bottom|lower)[- ]{_PLACE}|at the bottom"),
    ("west", rf"west(?:ern|ward)?|left[- ]{_PLACE}|on the left"),
    ("east", rf"east(?:ern|ward)?|right[- ]{_PLACE}|on the right"),
    ("centre", r"centre|center|central|middle"),
    ("all", r"throughout|everywhere|all over|across the whole|across the entire|the whole (?:tile|scene|image|area)"),
)
REGIONS = tuple(name for name, _ in REGION_PATTERNS)

_CLAUSE_SPLIT = re.compile(r"[.;:!?()\[\]]|,|\b(?:while|whereas|but|although|though|yet)\b")
# A bare number in brackets ("trees (31%) lie in the north") is blanked before splitting, so that it does
# not cut the clause between a class and its claim.
_NUMBER_IN_BRACKETS = re.compile(r"\(\s*\d+(?:[.,]\d+)?\s*%?\s*\)")


def _alternation(phrases) -> str:
    return "|".join(re.escape(p).replace(r"\ ", r"\s+") for p in sorted(set(phrases), key=len, reverse=True))


@lru_cache(maxsize=1)
def _compiled():
    term_to_class = {t: c for c, terms in CLASS_TERMS.items() for t in terms}
    terms = re.compile(rf"(?<![\w-])(?:{_alternation(term_to_class)})(?![\w-])", re.I)
    neg = re.compile(rf"\b(?:{_alternation(NEGATION_CUES)})\b", re.I)
    pre = re.compile(rf"\b(?:{_alternation(DOMINANCE_PRE)})\b", re.I)
    post = re.compile(rf"\b(?:{_alternation(DOMINANCE_POST)})\b", re.I)
    region = re.compile("|".join(rf"(?P<r{i}>\b(?:{pat})\b)" for i, (_, pat) in enumerate(REGION_PATTERNS)), re.I)
    return term_to_class, terms, neg, pre, post, region


# ------------------------------------------------------------------ claims

@dataclass
class Mention:
    cls: str            # class name (palette.CLASS_NAMES)
    text: str           # the words that named it
    start: int          # character offset in the caption
    negated: bool = False


@dataclass
class Claims:
    mentions: list[Mention] = field(default_factory=list)
    dominant: list[str] = field(default_factory=list)              # classes said to be the largest
    regional_dominant: list[tuple[str, str]] = field(default_factory=list)  # (class, region) largest THERE
    positions: list[tuple[str, str]] = field(default_factory=list)  # (class, region)

    @property
    def named(self) -> list[str]:
        """Classes the caption says are present (not negated), in order of first mention."""
        out: list[str] = []
        for m in self.mentions:
            if not m.negated and m.cls not in out:
                out.append(m.cls)
        return out

    @property
    def negated(self) -> list[str]:
        """Classes the caption says are absent ("no water"), unless it also names them as present."""
        named = set(self.named)
        out: list[str] = []
        for m in self.mentions:
            if m.negated and m.cls not in named and m.cls not in out:
                out.append(m.cls)
        return out


def _clauses(text: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for m in _CLAUSE_SPLIT.finditer(text):
        if m.start() > start:
            spans.append((start, m.start()))
        start = m.end()
    if start < len(text):
        spans.append((start, len(text)))
    return spans


def parse_claims(text: str) -> Claims:
    """The land-cover claims one caption makes (see module doc)."""
    if not isinstance(text, str):
        raise TypeError(f"caption must be a string, got {type(text).__name__}")
    term_to_class, terms, neg, pre, post, region = _compiled()
    text = _NUMBER_IN_BRACKETS.sub(lambda m: " " * len(m.group(0)), text)     # same length: offsets hold
    claims = Claims()
    for c0, c1 in _clauses(text):
        clause = text[c0:c1]
        neg_at = [m.start() for m in neg.finditer(clause)]
        mentions = []
        for m in terms.finditer(clause):
            word = re.sub(r"\s+", " ", m.group(0).lower())
            negated = any(p < m.start() for p in neg_at)
            mentions.append(Mention(term_to_class[word], m.group(0), c0 + m.start(), negated))
        claims.mentions.extend(mentions)
        present = [mm for mm in mentions if not mm.negated]
        regions_here = [REGION_PATTERNS[int(k[1:])][0] for pm in region.finditer(clause)
                        for k, v in pm.groupdict().items() if v]
        local = [r for r in regions_here if r != "all"]
        # Dominance (cues inside a negation scope, "no class dominates", do not count).
        for pattern, prefer_after in ((pre, True), (post, False)):
            for cue in pattern.finditer(clause):
                if any(p < cue.start() for p in neg_at):
                    continue
                at = c0 + cue.start()
                after = [mm for mm in present if mm.start > at]
                before = [mm for mm in present if mm.start < at]
                pick = (after[:1] or before[-1:]) if prefer_after else (before[-1:] or after[:1])
                if not pick:
                    continue
                if local:     # "trees dominate the northern half": largest in that region, not overall
                    if (pick[0].cls, local[0]) not in claims.regional_dominant:
                        claims.regional_dominant.append((pick[0].cls, local[0]))
                elif pick[0].cls not in claims.dominant:
                    claims.dominant.append(pick[0].cls)
        # Positions, tied to the class named last before them in the clause (else the first after).
        for pm in region.finditer(clause):
            name = next(REGION_PATTERNS[int(k[1:])][0] for k, v in pm.groupdict().items() if v)
            if not present:
                continue
            at = c0 + pm.start()
            before = [mm for mm in present if mm.start < at]
            nearest = before[-1] if before else present[0]     # "water in the south"; "in the south, water"
            if (nearest.cls, name) not in claims.positions:
                claims.positions.append((nearest.cls, name))
    return claims


# ------------------------------------------------------------------ geometry

def region_mask(region: str, height: int, width: int) -> np.ndarray:
    """Bool (H, W) mask of the pixels a region name denotes."""
    if region not in REGIONS:
        raise ValueError(f"unknown region {region!r}; expected one of {', '.join(REGIONS)}")
    out = np.zeros((height, width), dtype=bool)
    h2, w2 = height // 2, width // 2
    rows = {"north": slice(0, h2), "south": slice(h2, height)}
    cols = {"west": slice(0, w2), "east": slice(w2, width)}
    if region == "all":
        out[:] = True
    elif region == "centre":
        out[height // 4: height - height // 4, width // 4: width - width // 4] = True
    elif "-" in region:
        ns, ew = region.split("-")
        out[rows[ns], cols[ew]] = True
    elif region in rows:
        out[rows[region], :] = True
    else:
        out[:, cols[region]] = True
    return out


def enrichment(mask: np.ndarray, cls: int, region: str) -> float:
    """(share of the class's pixels inside the region) / (share of valid pixels inside it).

    1.0 means the class is spread as if evenly; > 1 means it is concentrated in
    the region. NaN when the class or the region has no valid pixels.
    """
    valid = mask != NODATA
    inside = region_mask(region, *mask.shape)
    is_cls = mask == cls
    n_cls, n_valid = int(is_cls.sum()), int(valid.sum())
    n_region = int((valid & inside).sum())
    if n_cls == 0 or n_region == 0:
        return float("nan")
    return (int((is_cls & inside).sum()) / n_cls) / (n_region / n_valid)


def centroid_region(mask: np.ndarray, cls: int, centre_radius: float = 0.1) -> str | None:
    """The compass region (or "centre") the class's centroid falls in; None if the class is absent.

    Offsets are measured from the tile centre as fractions of the tile size;
    within `centre_radius` on an axis counts as central on that axis.
    """
    ys, xs = np.nonzero(mask == cls)
    if ys.size == 0:
        return None
    h, w = mask.shape
    dy = (ys.mean() + 0.5) / h - 0.5
    dx = (xs.mean() + 0.5) / w - 0.5
    ns = "north" if dy < -centre_radius else "south" if dy > centre_radius else ""
    ew = "west" if dx < -centre_radius else "east" if dx > centre_radius else ""
    if ns and ew:
        return f"{ns}-{ew}"
    return ns or ew or "centre"


def class_index_of(name: str) -> int:
    return CLASS_NAMES.index(name)
