"""Styles for the layers a job produces.

- masks: QgsPalettedRasterRenderer with the 7 land-cover classes (colours and
  names from Capabilities.classes, falling back to groundsynth.request.classes), 255 = nodata
  (transparent);
- images: multiband colour (bands 1, 2, 3) with a 2-98 % cumulative-cut stretch;
- tiles: QgsGraduatedSymbolRenderer on the chosen score, plus a map tip showing
  caption, composition and scores.
"""
from __future__ import annotations

from dataclasses import dataclass

from qgis.core import (
    QgsClassificationQuantile,
    QgsContrastEnhancement,
    QgsFillSymbol,
    QgsGradientColorRamp,
    QgsGraduatedSymbolRenderer,
    QgsMultiBandColorRenderer,
    QgsPalettedRasterRenderer,
    QgsRasterBandStats,
    QgsRasterLayer,
    QgsRasterMinMaxOrigin,
    QgsVectorLayer,
)
from qgis.PyQt.QtGui import QColor

MASK_NODATA = 255

# Fallback palette, identical to backend/palette.py (REFERENCE.md); used when no
# Capabilities answer is at hand (e.g. a job reloaded while offline).
DEFAULT_CLASSES: tuple[tuple[int, str, str], ...] = (
    (0, "Tree", "#006400"),
    (1, "Shrub", "#ffb6c1"),
    (2, "Grass", "#9acd32"),
    (3, "Crop", "#ffd700"),
    (4, "Built-up", "#8b4513"),
    (5, "Barren", "#d3d3d3"),
    (6, "Water", "#0000ff"),
)


@dataclass(frozen=True)
class LandCoverClass:
    index: int
    name: str
    color: str   # "#rrggbb"


def classes_from_capabilities(caps=None) -> list[LandCoverClass]:
    if caps is not None and len(caps.classes):
        return [LandCoverClass(c.index, c.name, c.color) for c in caps.classes]
    return [LandCoverClass(*c) for c in DEFAULT_CLASSES]


def class_field(name: str) -> str:
    """Column of a class share in tiles.gpkg: pct_<class> (lower case, '-' -> '_'), in percent (0-100)."""
    return "pct_" + name.lower().replace("-", "_").replace(" ", "_")


# ------------------------------------------------------------------ masks
def style_mask(layer: QgsRasterLayer, classes: list[LandCoverClass] | None = None) -> QgsPalettedRasterRenderer:
    classes = classes or classes_from_capabilities()
    entries = [QgsPalettedRasterRenderer.Class(c.index, QColor(c.color), c.name) for c in classes]
    renderer = QgsPalettedRasterRenderer(layer.dataProvider(), 1, entries)
    provider = layer.dataProvider()
    provider.setUserNoDataValue(1, [])
    provider.setNoDataValue(1, MASK_NODATA)
    provider.setUseSourceNoDataValue(1, True)
    layer.setRenderer(renderer)
    layer.triggerRepaint()
    return renderer


# ------------------------------------------------------------------ images
def image_limits(layer: QgsRasterLayer) -> list[tuple[float, float]]:
    """(min, max) of the red, green and blue contrast enhancements of a styled image layer."""
    r = layer.renderer()
    return [(ce.minimumValue(), ce.maximumValue()) for ce in (r.redContrastEnhancement(),
                                                              r.greenContrastEnhancement(),
                                                              r.blueContrastEnhancement()) if ce is not None]


def style_image(layer: QgsRasterLayer, cut: tuple[float, float] = (0.02, 0.98),
                limits: list[tuple[float, float]] | None = None) -> QgsMultiBandColorRenderer:
    """RGB on bands 1-3 stretched to the 2-98 % cumulative cut, or to given per-band `limits` (so that
    synthetic images share the real image's stretch and stay comparable)."""
    provider = layer.dataProvider()
    renderer = QgsMultiBandColorRenderer(provider, 1, 2, 3)
    extent = layer.extent()
    for band, setter in ((1, renderer.setRedContrastEnhancement), (2, renderer.setGreenContrastEnhancement),
                         (3, renderer.setBlueContrastEnhancement)):
        if band > layer.bandCount():
            continue
        ce = QgsContrastEnhancement(provider.dataType(band))
        ce.setContrastEnhancementAlgorithm(QgsContrastEnhancement.ContrastEnhancementAlgorithm.StretchToMinimumMaximum, True)
        if limits is not None and band <= len(limits):
            lo, hi = limits[band - 1]
        else:
            lo, hi = provider.cumulativeCut(band, cut[0], cut[1], extent, 250_000)
        if not hi > lo:
            stats = provider.bandStatistics(band, QgsRasterBandStats.Stats.Min | QgsRasterBandStats.Stats.Max, extent, 250_000)
            lo, hi = stats.minimumValue, stats.maximumValue
        ce.setMinimumValue(lo)
        ce.setMaximumValue(hi if hi > lo else lo + 1)
        setter(ce)
    origin = QgsRasterMinMaxOrigin()
    origin.setLimits(QgsRasterMinMaxOrigin.Limits.None_ if limits is not None else QgsRasterMinMaxOrigin.Limits.CumulativeCut)
    origin.setCumulativeCutLower(cut[0])
    origin.setCumulativeCutUpper(cut[1])
    renderer.setMinMaxOrigin(origin)
    layer.setRenderer(renderer)
    layer.triggerRepaint()
    return renderer


# ------------------------------------------------------------------ tiles
AUTO_SCORE = "auto"
# The tile grid's default colouring ("auto"), best first: a grounding margin (own minus a mismatched tile's
# score) against reference data, labels, the mask or the captioner's own mask; the agreement of the mask with
# reference samples; then the engines' scores. The first that varies over the tiles wins: a score that is 100
# on every tile (composition grounding against the very mask its captions were written from) shows nothing.
# The same order as the backend's report (tile_grid.default_score), with ref_agreement added.
TILE_SCORE_PREFERENCE = ("grounding_reference_margin", "grounding_labels_margin", "grounding_mask_margin",
                         "self_consistency_margin", "ref_agreement", "grounding", "fidelity_miou",
                         "resegment_agreement")


def _distinct(layer: QgsVectorLayer, name: str) -> set[float]:
    index = layer.fields().indexOf(name)
    return {v for v in layer.uniqueValues(index) if isinstance(v, (int, float)) and v == v} if index >= 0 else set()


def default_score(layer: QgsVectorLayer, classes: list[LandCoverClass] | None = None) -> str | None:
    """The score "auto" colours the grid by, among TILE_SCORE_PREFERENCE (in that order), then any other score
    field: the first that takes more than one value and has one on every tile shown (a graduated renderer
    does not draw a tile without a value); else the first that varies on some tiles (fidelity is only on
    synthetic tiles); else the first the layer has; None without any score field."""
    fields = score_fields(layer, classes)
    order = [f for f in TILE_SCORE_PREFERENCE if f in fields] + [f for f in fields if f not in TILE_SCORE_PREFERENCE]
    if not order:
        return None
    values: dict[str, set[float]] = {f: set() for f in order}
    missing: set[str] = set()
    for feat in layer.getFeatures():
        for f in order:
            v = feat[f]
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v:
                values[f].add(float(v))
            else:
                missing.add(f)
    varies = [f for f in order if len(values[f]) > 1]
    return next((f for f in varies if f not in missing), varies[0] if varies else order[0])


def score_fields(layer: QgsVectorLayer, classes: list[LandCoverClass] | None = None) -> list[str]:
    """Numeric attributes of a tiles layer that are scores (not ids, grid or class shares)."""
    classes = classes or classes_from_capabilities()
    skip = {"fid", "row", "col", "variant", "nodata", "n_captions"} | {class_field(c.name) for c in classes}
    out = []
    for f in layer.fields():
        if f.isNumeric() and f.name().lower() not in skip:
            out.append(f.name())
    return out


def map_tip_html(classes: list[LandCoverClass] | None = None, layer: QgsVectorLayer | None = None) -> str:
    """A map tip template: caption, composition (class shares in %) and all scores."""
    classes = classes or classes_from_capabilities()
    names = {f.name() for f in layer.fields()} if layer is not None else None
    comp = []
    for c in classes:
        fname = class_field(c.name)
        if names is None or fname in names:
            comp.append(f'[% CASE WHEN "{fname}" > 0 THEN \'<span style="color:{c.color}">&#9632;</span> {c.name} \' '
                        f'|| format_number("{fname}", 1) || \'%<br>\' ELSE \'\' END %]')
    scores = []
    if layer is not None:
        for s in score_fields(layer, classes):
            scores.append(f'[% CASE WHEN "{s}" IS NOT NULL THEN \'{s}: \' || format_number("{s}", 2) '
                          f'|| \'<br>\' ELSE \'\' END %]')
    caption = '[% "caption_1" %]' if names is None or "caption_1" in names else ""
    return (
        '<div style="max-width:360px"><b>[% "tile_id" %]</b> ([% "kind" %])<br>'
        f'<i>{caption}</i><br><b>Composition</b><br>{"".join(comp)}'
        f'<b>Scores</b><br>{"".join(scores)}</div>'
    )


def style_tiles(layer: QgsVectorLayer, score: str | None = None, classes: list[LandCoverClass] | None = None,
                n_classes: int = 5) -> QgsGraduatedSymbolRenderer | None:
    """Graduated fill by `score` (None, "auto" or a field the layer lacks: `default_score`, one that varies) and
    a map tip; returns the renderer."""
    classes = classes or classes_from_capabilities()
    layer.setMapTipTemplate(map_tip_html(classes, layer))
    layer.setDisplayExpression('"tile_id"')
    if score in (None, "", AUTO_SCORE) or layer.fields().indexOf(score) < 0:
        score = default_score(layer, classes)
    if score is None:
        return None
    symbol = QgsFillSymbol.createSimple({"color": "0,0,0,0", "outline_color": "40,40,40,255", "outline_width": "0.5"})
    ramp = QgsGradientColorRamp(QColor(215, 25, 28), QColor(26, 150, 65))
    renderer = QgsGraduatedSymbolRenderer(score)
    renderer.setSourceSymbol(symbol)
    renderer.setSourceColorRamp(ramp)
    renderer.setClassificationMethod(QgsClassificationQuantile())
    distinct = _distinct(layer, score)
    renderer.updateClasses(layer, max(1, min(n_classes, len(distinct))))
    renderer.updateColorRamp(ramp)
    if len(distinct) <= 1:      # every tile has the same score: one class, shown as the top of the ramp
        for i, rng in enumerate(renderer.ranges()):
            only = rng.symbol().clone()
            only.setColor(ramp.color(1.0))
            renderer.updateRangeSymbol(i, only)
    for i, rng in enumerate(renderer.ranges()):
        # a light wash of the class colour and a strong outline: the imagery stays readable underneath
        sym = rng.symbol().clone()
        color = QColor(sym.color())
        sym.setColor(QColor(color.red(), color.green(), color.blue(), 60))
        sl = sym.symbolLayer(0)
        sl.setStrokeColor(color)
        sl.setStrokeWidth(0.6)
        renderer.updateRangeSymbol(i, sym)
    layer.setRenderer(renderer)
    layer.triggerRepaint()
    return renderer
