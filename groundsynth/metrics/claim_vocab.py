"""The words caption claims are read from (groundsynth.metrics.claims) and written with
(caption/composition). One vocabulary, so that the captioner can only write what the parser reads.

Lower case; phrases match as whole words, longest first.
"""
from __future__ import annotations

# ------------------------------------------------------------------ classes, negation, dominance

# Words and phrases that name each class ("sparse vegetation" wins over a bare "vegetation", which
# names no class on purpose).
CLASS_TERMS: dict[str, tuple[str, ...]] = {
    "Tree": ("tree cover", "trees", "tree", "forests", "forest", "forested", "woodlands", "woodland", "wooded",
             "woods", "wood", "canopy", "mangroves", "mangrove", "orchards", "orchard", "hedgerows", "hedgerow",
             "tree line", "tree lines"),
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
              "stream", "canals", "canal", "harbour", "harbor", "creeks", "creek"),
}

NEGATION_CUES = ("no", "without", "free of", "devoid of", "absence of", "absent", "lacks", "lacking",
                 "lack of", "none", "nor", "neither")

# "pre": the class named AFTER the cue is the dominant one ("dominated by water"); "post": the class
# named BEFORE it ("water dominates"). If the preferred side has no class in the clause, the other is used.
DOMINANCE_PRE = ("dominated by", "mostly", "mainly", "largely", "predominantly", "primarily", "chiefly",
                 "principally", "overwhelmingly", "almost entirely", "entirely", "nearly all of", "almost all of",
                 "nearly all", "almost all", "the bulk of", "the majority of", "majority", "most of",
                 "the whole of", "wholly", "completely", "all of")
DOMINANCE_POST = ("dominates", "dominate", "dominating", "dominant", "predominates", "prevails",
                  "covers most", "cover most", "covers nearly all", "covers almost all", "covers the whole",
                  "fills most", "fill most", "fills the whole", "makes up most", "make up most", "takes up most",
                  "take up most", "occupies most", "occupy most", "accounts for most", "the largest share",
                  "the largest part", "main cover", "main land cover")
# "no class dominates": the top class must not lead clearly (blanked before other rules read the clause).
NO_DOMINANT = ("with no single dominant cover", "no single dominant cover", "no single class dominates",
               "no class dominates", "no dominant cover", "no dominant class")

# ------------------------------------------------------------------ positions

_PLACE = r"(?:half|part|parts|side|edge|edges|portion|section|area|corner|third|quarter|region|strip|border|margin)"
# Compass words count anywhere; top/bottom/left/right/upper/lower only next to a place noun.
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
# A class spread without a focus (checked: not concentrated where its centroid lies). Blanked.
DISPERSED = ("spread unevenly", "mixed in with the rest", "without one clear focus", "here and there",
             "dotted about", "strewn across")

# ------------------------------------------------------------------ amounts (share of the tile or region)

# (phrase, (low, high)) of the class's share; ranges are generous around the captioner's buckets.
AMOUNTS: tuple[tuple[str, tuple[float, float]], ...] = (
    ("all of", (0.9, 1.0)), ("the whole of", (0.9, 1.0)),
    ("nearly all of", (0.75, 1.0)), ("almost all of", (0.75, 1.0)),
    ("most of", (0.5, 1.0)), ("the bulk of", (0.5, 1.0)), ("the majority of", (0.5, 1.0)),
    ("about half of", (0.33, 0.62)), ("roughly half of", (0.33, 0.62)), ("around half of", (0.33, 0.62)),
    ("about a third of", (0.2, 0.42)), ("roughly a third of", (0.2, 0.42)), ("around a third of", (0.2, 0.42)),
    ("about a quarter of", (0.15, 0.33)), ("roughly a quarter of", (0.15, 0.33)),
    ("around a quarter of", (0.15, 0.33)),
    ("about a fifth of", (0.1, 0.27)), ("roughly a fifth of", (0.1, 0.27)), ("around a fifth of", (0.1, 0.27)),
    ("a tenth or so of", (0.03, 0.2)), ("a small part of", (0.03, 0.2)), ("a modest slice of", (0.03, 0.2)),
    ("a sliver of", (0.0, 0.12)), ("a small fraction of", (0.0, 0.12)), ("a thin slice of", (0.0, 0.12)),
)

# ------------------------------------------------------------------ patches

# Structure of a class (tile_facts.TileFacts.structure). Blanked, so "one contiguous block" is no count.
STRUCTURES: dict[str, tuple[str, ...]] = {
    "contiguous": ("one contiguous block", "a single continuous area", "one compact unbroken area",
                   "a solid connected expanse", "one unbroken stretch"),
    "main": ("one main block with a few outliers", "one large block plus small outliers",
             "a single main body with minor offshoots", "one big block and some stray bits"),
    "few": ("a few separate patches", "several distinct parcels", "a handful of separate areas",
            "a few detached pieces"),
    "scattered": ("scattered patches", "many small fragments", "a scatter of small patches",
                  "fragmented pieces", "a patchwork of small bits"),
}
# Counts of sizeable patches: "<number> [sizeable|separate|...] patches".
_UNITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
          "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")


def number_word(n: int) -> str:
    """0..99 in words ("twenty-three"); the captioner writes counts this way, the parser reads them back."""
    if not 0 <= n < 100:
        raise ValueError(f"expected 0..99, got {n}")
    if n < 20:
        return _UNITS[n]
    return _TENS[n // 10] + ("" if n % 10 == 0 else "-" + _UNITS[n % 10])


NUMBER_WORDS = {"a single": 1, **{number_word(n): n for n in range(1, 100)}}
COUNT_RANGES = {"more than a hundred": (101, 10**6), "more than a dozen": (13, 10**6), "a dozen": (12, 12)}
COUNT_ADJECTIVES = ("sizeable", "separate", "distinct", "detached", "main")
PATCH_NOUNS = ("patches", "patch", "pieces", "piece", "blocks", "block", "areas", "area", "clusters", "cluster",
               "stands", "stand")
# Parcel size: "<size> parcels" (tile_facts.PARCEL_BUCKETS).
PARCEL_SIZES = {"small": "small", "medium-sized": "medium", "mid-sized": "medium", "large": "large",
                "big": "large"}
PARCEL_NOUNS = ("parcels", "plots")
# Linear features: "[number] narrow|thin strip(s)|line(s)|... of <class>".
LINEAR_ADJECTIVES = ("narrow", "thin", "slender")
LINEAR_NOUNS = ("strips", "strip", "lines", "line", "bands", "band", "ribbons", "ribbon", "channels", "channel")

# ------------------------------------------------------------------ shoreline and ranking

SHORE_TERMS = ("shoreline", "shorelines", "coastline", "coastlines", "waterline", "shore", "coast")
# Orientation phrases (blanked: their compass words are no position claims). Value: tile_facts.ORIENTATIONS.
ORIENTATION_PATTERNS: tuple[tuple[str, str], ...] = (
    ("north-east to south-west", r"(?:from )?north[- ]?east(?: to |[- ])south[- ]?west|"
                                 r"(?:from )?south[- ]?west(?: to |[- ])north[- ]?east"),
    ("north-west to south-east", r"(?:from )?north[- ]?west(?: to |[- ])south[- ]?east|"
                                 r"(?:from )?south[- ]?east(?: to |[- ])north[- ]?west"),
    ("north-south", r"(?:from )?north(?: to |[- ])south|(?:from )?south(?: to |[- ])north"),
    ("east-west", r"(?:from )?east(?: to |[- ])west|(?:from )?west(?: to |[- ])east"),
)
SHORE_SHAPES = {"straight": "straight", "fairly straight": "straight", "smooth": "straight",
                "indented": "indented", "ragged": "indented", "jagged": "indented", "deeply cut": "indented"}
# ------------------------------------------------------------------ water look (tile_facts.WaterLook)

# Tone of the water: "the water looks dark", "pale water" (tied to the class named nearest; only Water counts).
WATER_TONES = {"dark": "dark", "dark-toned": "dark", "deep-toned": "dark", "pale": "pale", "light-toned": "pale",
               "pale-toned": "pale"}
# Brightness gradient: "<verb> paler|lighter|brighter toward(s) the <compass>" (darker: the opposite way).
# Blanked, so its compass word is no position claim.
GRADIENT_VERBS = ("grows", "turns", "gets", "becomes", "is", "looks")
GRADIENT_PALER = ("paler", "lighter", "brighter")
GRADIENT_DARKER = ("darker",)
COMPASS_WORDS = ("north-east", "north-west", "south-east", "south-west", "north", "south", "east", "west")

# No data in part of the tile: "no data along the eastern edge", "nodata in the south-western corner". Blanked.
NODATA_CUES = ("no data", "no image data", "no valid data", "nodata")
NODATA_PREPOSITIONS = ("along", "in", "on", "across", "toward", "towards")
NODATA_PLACES = ("edge", "side", "part", "corner", "strip", "half", "margin")

# A sentence part (between ";" or ".") with one of these ranks the classes it names, largest first.
RANK_CUES = ("in order of extent", "ranked by area", "from most to least cover", "largest first",
             "by extent", "largest to smallest", "followed by", "ahead of", "then")
