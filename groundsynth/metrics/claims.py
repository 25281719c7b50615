"""Caption claims: what a caption says about land cover, read by a small set of documented rules.

Shared by the composition captioner (which must only write what this module
can read back) and the composition grounder (which scores captions from ANY
captioner, including free VLM text, against a mask: groundsynth.metrics.caption_score).
Vocabulary: groundsynth.metrics.claim_vocab; geometry: groundsynth.metrics.tile_facts.

`parse_claims(text)` finds, clause by clause (clauses split at punctuation and
"while/whereas/but/although/though/yet"):
- class mentions, by name or synonym ("woodland" -> Tree, "farmland" -> Crop,
  "village" -> Built-up, "sea" -> Water ...), each possibly negated ("no water",
  "without buildings");
- dominance ("dominated by X", "mostly X", "X covers most of ..."): the class said to be
  the largest, over the tile or, with a region in the clause, inside that region;
  "no single dominant cover": no class leads clearly;
- positions ("in the north-west", "along the eastern edge", "throughout") and
  dispersion ("here and there", "spread unevenly");
- amounts ("about a third of", "most of", "a sliver of"): the class's share of the tile
  (of the region when the clause names one);
- patches: structure ("one contiguous block", "scattered patches"), counts of sizeable
  patches ("seven sizeable patches", "more than a dozen"), parcel size ("small parcels"),
  linear features ("a narrow strip of trees", "two thin lines of built-up land");
- the shoreline ("a shoreline", "the coast"), its orientation ("runs north-south") and
  shape ("indented", "straight");
- the water's look: its tone ("the water looks dark", "pale water") and the direction toward which it
  grows paler ("the water grows paler toward the north-west", "brightens toward the east"; "darker
  toward the west" = paler toward the east), checked against the image (tile_facts.WaterLook);
- where the tile has no data ("no data along the eastern edge");
- rankings: a sentence part (between ";" or ".") with a rank cue ("in order of extent",
  "followed by", "ahead of", "then") orders the classes it names, largest first.
A phrase is tied to the class named last before it in the clause, else the first after
(linear features: the first after, else the last before). Numbers other than patch counts
are ignored, and so are phrases the rules do not cover: the parser prefers finding no claim
to a wrong one.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from groundsynth.metrics import claim_vocab as V
from groundsynth.metrics.claim_vocab import (  # noqa: F401  (re-exported: the parser's vocabulary)
    CLASS_TERMS,
    DOMINANCE_POST,
    DOMINANCE_PRE,
    NEGATION_CUES,
    REGION_PATTERNS,
)
from groundsynth.metrics.tile_facts import COMPASS, centroid_region, direction_difference, enrichment, region_mask  # noqa: F401  (re-exported)
from groundsynth.request.classes import CLASS_NAMES

REGIONS = tuple(name for name, _ in REGION_PATTERNS)

_CLAUSE_SPLIT = re.compile(r"[.;:!?()\[\]]|,|\b(?:while|whereas|but|although|though|yet)\b")
_PART_SPLIT = re.compile(r"[.;!?]")
# A bare number in brackets ("trees (31%) lie in the north") is blanked before splitting, so that it does
# not cut the clause between a class and its claim.
LEAD_MIN = 8          # phrases in an alternation before it gets a first-word lookahead (_alternation)
_NUMBER_IN_BRACKETS = re.compile(r"\(\s*\d+(?:[.,]\d+)?\s*%?\s*\)")


def _alternation(phrases) -> str:
    """One regex alternative matching any of the phrases (longest first; a space matches any whitespace).
    A long list is led by a lookahead on the phrases' first words: the regex engine tries an alternation at
    every position of a caption, and the short lookahead rejects almost every position before the long list
    is tried (4x faster for the number words; it matches exactly the same)."""
    ordered = sorted(set(phrases), key=len, reverse=True)
    alts = "|".join(re.escape(p).replace(r"\ ", r"\s+") for p in ordered)
    if len(ordered) <= LEAD_MIN:
        return f"(?:{alts})"
    lead = sorted({re.split(r"[\s-]", p, maxsplit=1)[0] for p in ordered}, key=len, reverse=True)
    return f"(?=(?:{'|'.join(re.escape(w) for w in lead)}))(?:{alts})"


def _words(phrases) -> re.Pattern:
    return re.compile(rf"(?<![\w-])(?:{_alternation(phrases)})(?![\w-])", re.I)


@dataclass(frozen=True)
class _Rules:
    term_to_class: dict
    terms: re.Pattern
    neg: re.Pattern
    pre: re.Pattern
    post: re.Pattern
    region: re.Pattern
    blanked: tuple          # (kind, value or None, pattern): read, then blanked
    kept: tuple             # (kind, pattern): read, left in the text
    rank: re.Pattern


@lru_cache(maxsize=1)
def _compiled() -> _Rules:
    term_to_class = {t: c for c, terms in V.CLASS_TERMS.items() for t in terms}
    number = _alternation(list(V.NUMBER_WORDS) + [w.replace("-", " ") for w in V.NUMBER_WORDS if "-" in w]
                          + list(V.COUNT_RANGES)) + r"|\d+"
    adjectives = _alternation(V.COUNT_ADJECTIVES)
    count = re.compile(rf"\b(?P<n>{number})\s+(?:(?:{adjectives})\s+){{0,2}}(?:{_alternation(V.PATCH_NOUNS)})\b", re.I)
    linear = re.compile(rf"\b(?:(?P<n>{number})\s+)?(?:{_alternation(V.LINEAR_ADJECTIVES)})\s+"
                        rf"(?:{_alternation(V.LINEAR_NOUNS)})\b", re.I)
    parcels = re.compile(rf"\b(?P<size>{_alternation(V.PARCEL_SIZES)})\s+(?:{_alternation(V.PARCEL_NOUNS)})\b", re.I)
    blanked = tuple(("structure", kind, _words(ph)) for kind, ph in V.STRUCTURES.items()) + (
        ("no_dominant", None, _words(V.NO_DOMINANT)),
        ("dispersed", None, _words(V.DISPERSED)),
        *(("orientation", name, re.compile(rf"\b(?:{pat})\b", re.I)) for name, pat in V.ORIENTATION_PATTERNS),
        ("water_gradient", None, _gradient_pattern()),
        ("nodata", None, _nodata_pattern()),
    )
    kept = (("amount", _words(a for a, _ in V.AMOUNTS)), ("count", count), ("linear", linear),
            ("parcels", parcels), ("shore", _words(V.SHORE_TERMS)), ("shore_shape", _words(V.SHORE_SHAPES)),
            ("water_tone", _words(V.WATER_TONES)))
    return _Rules(
        term_to_class=term_to_class, terms=_words(term_to_class),
        neg=re.compile(rf"\b(?:{_alternation(V.NEGATION_CUES)})\b", re.I),
        pre=re.compile(rf"\b(?:{_alternation(V.DOMINANCE_PRE)})\b", re.I),
        post=re.compile(rf"\b(?:{_alternation(V.DOMINANCE_POST)})\b", re.I),
        region=re.compile("|".join(rf"(?P<r{i}>\b(?:{pat})\b)" for i, (_, pat) in enumerate(V.REGION_PATTERNS)),
                          re.I),
        blanked=blanked, kept=kept, rank=_words(V.RANK_CUES))


def _gradient_pattern() -> re.Pattern:
    """ "[grows] paler|darker toward the <compass>", "brightens toward the <compass>" (groups: shade, toward)."""
    verbs, compass = _alternation(V.GRADIENT_VERBS), _alternation(V.COMPASS_WORDS)
    shades = _alternation(V.GRADIENT_PALER + V.GRADIENT_DARKER + ("brightens",))
    return re.compile(rf"\b(?:(?:{verbs})\s+)?(?P<shade>{shades})\s+(?:toward|towards)\s+the\s+"
                      rf"(?P<toward>{compass})(?![\w-])", re.I)


def _nodata_pattern() -> re.Pattern:
    """ "no data along the eastern edge" (group: where)."""
    cues, preps, places = (_alternation(v) for v in (V.NODATA_CUES, V.NODATA_PREPOSITIONS, V.NODATA_PLACES))
    compass = _alternation(V.COMPASS_WORDS)
    return re.compile(rf"\b(?:{cues})\s+(?:{preps})\s+(?:the|its)\s+(?P<where>{compass})(?:ern)?\s+(?:{places})\b",
                      re.I)


def _matched_value(kind: str, value: object, m: re.Match) -> object:
    """The value of a blanked phrase: fixed, or read from the match (water gradient, no data)."""
    if kind == "nodata":
        return m.group("where").lower()
    if kind == "water_gradient":
        toward = m.group("toward").lower()
        if m.group("shade").lower() in V.GRADIENT_DARKER:     # darker toward X = paler toward the opposite way
            return min(COMPASS, key=lambda k: direction_difference(COMPASS[k], COMPASS[toward] + 180.0))
        return toward
    return value


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
    no_dominant: bool = False                                       # "no single dominant cover"
    dispersed: list[str] = field(default_factory=list)              # classes "spread unevenly"
    amounts: list[tuple[str, str, float, float]] = field(default_factory=list)   # (class, region, low, high)
    structures: list[tuple[str, str]] = field(default_factory=list)  # (class, contiguous|few|scattered)
    counts: list[tuple[str, int, int]] = field(default_factory=list)  # (class, low, high) sizeable patches
    parcels: list[tuple[str, str]] = field(default_factory=list)    # (class, small|medium|large)
    linear: list[tuple[str, int, int]] = field(default_factory=list)  # (class, low, high) linear features
    shoreline: bool = False                                         # a shoreline is said to be present
    shore_orientation: list[str] = field(default_factory=list)      # tile_facts.ORIENTATIONS keys
    shore_shape: list[str] = field(default_factory=list)            # straight | indented
    rankings: list[list[str]] = field(default_factory=list)         # classes, largest first
    water_tone: list[str] = field(default_factory=list)             # dark | pale (tile_facts.WaterLook.tone)
    water_paler_toward: list[str] = field(default_factory=list)     # tile_facts.COMPASS keys
    nodata_at: list[str] = field(default_factory=list)              # regions said to have no data

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


def _number(word: str) -> tuple[int, int]:
    """(low, high) of a count phrase: "seven", "twenty three", "twenty-three", "23", "more than a dozen"."""
    word = " ".join(word.lower().split())
    if word.isdigit():
        return int(word), int(word)
    if word in V.COUNT_RANGES:
        return V.COUNT_RANGES[word]
    n = V.NUMBER_WORDS.get(word, V.NUMBER_WORDS.get(word.replace(" ", "-"), 0))
    return n, n


def _phrases(text: str, rules: _Rules) -> tuple[str, list[tuple[str, object, int, int]]]:
    """(text with the blanked phrases replaced by spaces, [(kind, value, start, end)] of every phrase)."""
    found: list[tuple[str, object, int, int]] = []
    for kind, value, pattern in rules.blanked:
        parts, last = [], 0
        for m in pattern.finditer(text):
            found.append((kind, _matched_value(kind, value, m), m.start(), m.end()))
            parts += [text[last:m.start()], " " * (m.end() - m.start())]
            last = m.end()
        if parts:
            text = "".join(parts) + text[last:]
    for kind, pattern in rules.kept:
        for m in pattern.finditer(text):
            found.append((kind, _value(kind, m), m.start(), m.end()))
    return text, found


def _value(kind: str, m: re.Match) -> object:
    word = re.sub(r"\s+", " ", m.group(0).lower())
    if kind == "amount":
        return dict(V.AMOUNTS)[word]
    if kind == "count":
        return _number(m.group("n"))
    if kind == "linear":
        return _number(m.group("n")) if m.group("n") else (1, 10**6)
    if kind == "parcels":
        return V.PARCEL_SIZES[re.sub(r"\s+", " ", m.group("size").lower())]
    if kind == "shore_shape":
        return V.SHORE_SHAPES[word]
    if kind == "water_tone":
        return V.WATER_TONES[word]
    return True


def parse_claims(text: str) -> Claims:
    """The land-cover claims one caption makes (see module doc)."""
    if not isinstance(text, str):
        raise TypeError(f"caption must be a string, got {type(text).__name__}")
    rules = _compiled()
    text = _NUMBER_IN_BRACKETS.sub(lambda m: " " * len(m.group(0)), text)     # same length: offsets hold
    text, phrases = _phrases(text, rules)
    claims = Claims()
    for c0, c1 in _clauses(text):
        present, local = _read_clause(text, c0, c1, rules, claims)
        _tie_phrases([p for p in phrases if c0 <= p[2] < c1], present, local[0] if local else "all", claims)
    claims.no_dominant = any(p[0] == "no_dominant" for p in phrases)
    for kind, value, *_ in phrases:
        if kind == "nodata":
            _add(claims.nodata_at, value)
    claims.rankings = _rankings(text, rules)
    return claims


def _read_clause(text: str, c0: int, c1: int, rules: _Rules, claims: Claims) -> tuple[list[Mention], list[str]]:
    """Mentions, dominance and positions of one clause; returns its present (not negated) mentions and the
    regions it names (other than "all")."""
    clause = text[c0:c1]
    neg_at = [m.start() for m in rules.neg.finditer(clause)]
    mentions = []
    for m in rules.terms.finditer(clause):
        word = re.sub(r"\s+", " ", m.group(0).lower())
        mentions.append(Mention(rules.term_to_class[word], m.group(0), c0 + m.start(),
                                any(p < m.start() for p in neg_at)))
    claims.mentions.extend(mentions)
    present = [mm for mm in mentions if not mm.negated]
    local = [REGION_PATTERNS[int(k[1:])][0] for pm in rules.region.finditer(clause)
             for k, v in pm.groupdict().items() if v and REGION_PATTERNS[int(k[1:])][0] != "all"]
    # Dominance (cues inside a negation scope, "no class dominates", do not count).
    for pattern, prefer_after in ((rules.pre, True), (rules.post, False)):
        for cue in pattern.finditer(clause):
            if any(p < cue.start() for p in neg_at):
                continue
            pick = _nearest(present, c0 + cue.start(), prefer_after)
            if pick is None:
                continue
            if local:     # "trees dominate the northern half": largest in that region, not overall
                if (pick.cls, local[0]) not in claims.regional_dominant:
                    claims.regional_dominant.append((pick.cls, local[0]))
            elif pick.cls not in claims.dominant:
                claims.dominant.append(pick.cls)
    # Positions, tied to the class named last before them in the clause (else the first after).
    for pm in rules.region.finditer(clause):
        name = next(REGION_PATTERNS[int(k[1:])][0] for k, v in pm.groupdict().items() if v)
        pick = _nearest(present, c0 + pm.start(), prefer_after=False)
        if pick is not None and (pick.cls, name) not in claims.positions:
            claims.positions.append((pick.cls, name))
    return present, local


def _nearest(present: list[Mention], at: int, prefer_after: bool) -> Mention | None:
    after = [mm for mm in present if mm.start > at]
    before = [mm for mm in present if mm.start < at]
    pick = (after[:1] or before[-1:]) if prefer_after else (before[-1:] or after[:1])
    return pick[0] if pick else None


def _tie_phrases(phrases: list, present: list[Mention], region: str, claims: Claims) -> None:
    """Attach the clause's phrases (amounts, patches, shoreline...) to its classes."""
    has_shore = any(kind == "shore" for kind, *_ in phrases)
    for kind, value, start, _end in phrases:
        if kind == "shore":
            claims.shoreline = True
        elif kind in ("orientation", "shore_shape"):
            target = claims.shore_orientation if kind == "orientation" else claims.shore_shape
            if has_shore and value not in target:
                target.append(value)
        elif kind not in ("no_dominant", "nodata"):
            pick = _nearest(present, start, prefer_after=kind == "linear")
            if pick is None:
                continue
            if kind in ("water_tone", "water_gradient"):
                if pick.cls == "Water":
                    _add(claims.water_tone if kind == "water_tone" else claims.water_paler_toward, value)
            elif kind == "dispersed":
                _add(claims.dispersed, pick.cls)
            elif kind == "amount":
                _add(claims.amounts, (pick.cls, region, *value))
            elif kind in ("count", "linear"):
                _add(claims.counts if kind == "count" else claims.linear, (pick.cls, *value))
            else:                                   # structure, parcels
                _add(claims.structures if kind == "structure" else claims.parcels, (pick.cls, value))


def _add(items: list, entry) -> None:
    if entry not in items:
        items.append(entry)


def _rankings(text: str, rules: _Rules) -> list[list[str]]:
    out: list[list[str]] = []
    start = 0
    for end in [m.start() for m in _PART_SPLIT.finditer(text)] + [len(text)]:
        part = text[start:end]
        start = end + 1
        if not rules.rank.search(part):
            continue
        order: list[str] = []
        for c0, c1 in _clauses(part):
            clause = part[c0:c1]
            neg_at = [m.start() for m in rules.neg.finditer(clause)]
            for m in rules.terms.finditer(clause):
                cls = rules.term_to_class[re.sub(r"\s+", " ", m.group(0).lower())]
                if not any(p < m.start() for p in neg_at) and cls not in order:
                    order.append(cls)
        if len(order) >= 2:
            out.append(order)
    return out


def class_index_of(name: str) -> int:
    return CLASS_NAMES.index(name)
