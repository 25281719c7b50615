"""Phrase pools of caption/composition (composition_caption.py).

Every phrase that carries a claim comes from groundsynth.metrics.claim_vocab or is read by
groundsynth.metrics.claims (tested phrase by phrase), so the grounder checks all of it; the
rest (subjects, lead-ins, tails) states nothing. Wording varies with the tile's seed so that
captions rarely repeat word for word; what they SAY varies only with the tile (canonical
redundancy, groundsynth.metrics.caption_diversity).
"""
from __future__ import annotations

from groundsynth.metrics.claim_vocab import STRUCTURES

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
SPREAD_PHRASES = ("throughout", "all over", "everywhere", "across the whole tile", "across the entire scene")
MIXED_PHRASES = ("spread unevenly", "mixed in with the rest", "without one clear focus", "here and there",
                 "dotted about")
STRUCTURE_PHRASES = STRUCTURES

DOMINANT_VERBS = ("is dominated by", "is mostly", "is mainly", "is largely", "is predominantly",
                  "is chiefly", "is primarily", "consists mostly of", "is made up mainly of", "is covered mostly by")
ENTIRE_VERBS = ("is entirely", "is completely", "consists wholly of", "is covered entirely by")
MINOR_LEADS = ("with", "alongside", "plus", "together with", "and also has", "accompanied by")
MINOR_TAILS = ("", " in smaller amounts", " as minor cover", " to a lesser degree")
MIX_LEADS = ("shows a mix of", "combines", "holds a blend of", "is shared between", "mixes",
             "is split among")
MIX_TAILS = ("", " with no single dominant cover", "", " with no dominant class")
RANK_LEADS = ("in order of extent:", "ranked by area:", "from most to least cover:", "by cover, largest first:",
              "land cover by extent:", "largest to smallest:")
RANK_FIRST = ("largest cover is", "the biggest share goes to", "first comes", "leading the list is")
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

# Qualitative amounts (share lower bound, phrases); each phrase's claim_vocab.AMOUNTS range holds its
# bucket (tested). "most"/"nearly all" are dominance words, used only for the largest class.
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

# ------------------------------------------------------------------ details (one or two per caption)

COUNT_VERBS = (("breaks into", "break into"), ("falls into", "fall into"), ("is split into", "are split into"),
               ("comes in", "come in"), ("is divided into", "are divided into"))
COUNT_ADJ = ("sizeable", "separate", "distinct")
TRACE_AMOUNTS = ("a sliver of", "a small fraction of", "a thin slice of")      # claim_vocab.AMOUNTS: 0-12 %
TRACE_WHOLE = ("the tile", "the scene", "the area", "the frame", "the image")
PARCEL_WORDS = {"small": ("small",), "medium": ("medium-sized", "mid-sized"), "large": ("large", "big")}
PARCEL_VERBS = (("lies in", "lie in"), ("is laid out in", "are laid out in"), ("is cut into", "are cut into"),
                ("comes in", "come in"))
LINEAR_ADJ = ("narrow", "thin", "slender")
LINEAR_SHAPES = {"Water": ("channel", "strip", "ribbon"), "": ("strip", "line", "band", "ribbon")}
LINEAR_VERBS = (("runs through the tile", "run through the tile"), ("crosses the scene", "cross the scene"),
                ("cuts across the frame", "cut across the frame"), ("stretches through it", "stretch through it"))
ORIENTATION_WORDS = {"north-south": ("north-south", "from north to south", "north to south"),
                     "east-west": ("east-west", "from east to west", "from west to east"),
                     "north-east to south-west": ("from north-east to south-west", "north-east to south-west"),
                     "north-west to south-east": ("from north-west to south-east", "north-west to south-east")}
SHORE_NOUNS = ("shoreline", "coastline", "waterline")
SHORE_SHAPE_WORDS = {"straight": ("straight", "fairly straight", "smooth"), "indented": ("indented", "ragged", "jagged")}
SHORE_VERBS = ("runs", "stretches", "passes", "extends")
SHORE_PLAIN = ("{a} {noun} crosses the tile", "the tile takes in a stretch of {noun}", "{a} {noun} passes through it")
WATER_SIDE = ("with the water {where}", "the water lying {where}", "with open water {where}")

# the water's look (tile_facts.WaterLook; read back by claims: claim_vocab.WATER_TONES, GRADIENT_*)
WATER_TONE_PHRASES = {"dark": ("the water looks dark", "the water is dark-toned", "the water appears dark"),
                      "pale": ("the water looks pale", "the water is light-toned", "the water appears pale")}
WATER_GRADIENT_PHRASES = ("the water grows paler toward the {toward}", "the water turns lighter toward the {toward}",
                          "the water brightens toward the {toward}", "the water gets paler towards the {toward}")
# no data in part of the tile ("{d}": north ... south-west; read back by claims: claim_vocab.NODATA_*)
NODATA_SIDE_PHRASES = ("the tile has no data along the {d}ern edge", "there is no data in the {d}ern strip",
                       "the image holds no data along the {d}ern side")
NODATA_WIDE_PHRASES = ("the tile has no data in its {d}ern part", "there is no data across the {d}ern side",
                       "the image holds no data in the {d}ern part")       # nodata >= 25 % of the tile
NODATA_CORNER_PHRASES = ("there is no data in the {d}ern corner", "the tile has no data in the {d}ern corner")
