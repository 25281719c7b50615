"""Layers without a backend: mask, image and tile-grid styles; a job's results from a fake event stream;
fetching a remote job's files."""
from pathlib import Path

import numpy as np
import pytest
from qgis.core import (
    QgsGraduatedSymbolRenderer,
    QgsMultiBandColorRenderer,
    QgsPalettedRasterRenderer,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)

from groundsynth.request import classes as palette
from plugin.connection.api import pb
from plugin.layers import styling
from plugin.layers.results import LIVE_TILES, ArtefactSource, JobResults
from tests.plugin_fixtures import sample_raster

ROOT = Path(__file__).resolve().parents[1]




# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def job_dir(tmp_path_factory):
    """A job directory as the backend writes it: image, mask, tiles.gpkg, report.html."""
    import rasterio

    d = tmp_path_factory.mktemp("job")
    src = sample_raster(d, size=128)
    with rasterio.open(src) as ds:
        data = ds.read()
        profile = ds.profile
        b = ds.bounds
        crs_wkt = ds.crs.to_wkt()
    img = np.clip(data[:3].astype(np.float32) / 3000 * 255, 0, 255).astype(np.uint8)
    profile.update(count=3, dtype="uint8", nodata=None)
    with rasterio.open(d / "real_image.tif", "w", **profile) as dst:
        dst.write(img)
    mask = (np.arange(128 * 128).reshape(128, 128) // (128 * 128 // 7 + 1)).astype(np.uint8)
    mask[:4, :4] = 255
    profile.update(count=1, nodata=255)
    with rasterio.open(d / "real_mask.tif", "w", **profile) as dst:
        dst.write(mask, 1)
    (d / "report.html").write_text("<html><body><h1>GroundSynth report</h1><p>grounding_mean 42</p></body></html>")
    return {"dir": d, "bounds": b, "crs": crs_wkt}


def tile_event(seq, tile_id, row, col, bounds, crs, grounding, kind="real", variant=0):
    t = pb.TileResult(tile_id=tile_id, kind=kind, row=row, col=col, variant=variant,
                      footprint=pb.Footprint(crs=crs, bounds=pb.BBox(minx=bounds[0], miny=bounds[1], maxx=bounds[2],
                                                                     maxy=bounds[3])),
                      composition={"Tree": 0.25, "Crop": 0.75}, captions=[f"cropland tile {tile_id}", "two"],
                      metrics={"grounding": grounding, "fidelity_miou": 0.5})
    return pb.JobEvent(job_id="job1", seq=seq, tile=t)


def write_tiles_gpkg(path: Path, bounds, crs_wkt):
    """A tiles.gpkg like the backend's (layer 'tiles')."""
    import fiona
    from fiona.crs import CRS

    minx, miny, maxx, maxy = bounds
    midx = (minx + maxx) / 2
    props = {"tile_id": "str", "kind": "str", "row": "int", "col": "int", "variant": "int", "source_tile": "str",
             "nodata": "int", **{styling.class_field(n): "float" for n in palette.CLASS_NAMES},
             **{f"caption_{i}": "str" for i in range(1, 6)}, "grounding": "float", "fidelity_miou": "float"}
    schema = {"geometry": "Polygon", "properties": props}
    with fiona.open(path, "w", driver="GPKG", layer="tiles", schema=schema, crs=CRS.from_wkt(crs_wkt)) as dst:
        for i, (x0, x1, g) in enumerate(((minx, midx, 20.0), (midx, maxx, 80.0))):
            rec = {k: None for k in props}
            rec.update(tile_id=f"r0000_c{i:04d}", kind="real", row=0, col=i, variant=0, source_tile="", nodata=0,
                       caption_1=f"farmland with a village {i}", grounding=g, fidelity_miou=0.4 + i / 10,
                       pct_crop=60.0, pct_tree=40.0)
            ring = [(x0, miny), (x1, miny), (x1, maxy), (x0, maxy), (x0, miny)]
            dst.write({"geometry": {"type": "Polygon", "coordinates": [ring]}, "properties": rec})


# ------------------------------------------------------------------ styling
def test_mask_style_has_the_palette_classes(qgis_new_project, job_dir):
    layer = QgsRasterLayer(str(job_dir["dir"] / "real_mask.tif"), "real_mask", "gdal")
    assert layer.isValid()
    styling.style_mask(layer)
    r = layer.renderer()
    assert isinstance(r, QgsPalettedRasterRenderer)
    got = [(c.value, c.color.name(), c.label) for c in r.classes()]
    want = [(i, palette.hex_color(i), palette.CLASS_NAMES[i]) for i in range(7)]
    assert got == want
    assert layer.dataProvider().sourceNoDataValue(1) == 255


def test_image_style_is_a_stretched_rgb(qgis_new_project, job_dir):
    layer = QgsRasterLayer(str(job_dir["dir"] / "real_image.tif"), "real_image", "gdal")
    styling.style_image(layer)
    r = layer.renderer()
    assert isinstance(r, QgsMultiBandColorRenderer)
    assert (r.redBand(), r.greenBand(), r.blueBand()) == (1, 2, 3)
    ce = r.redContrastEnhancement()
    assert 0 <= ce.minimumValue() < ce.maximumValue() <= 255


def test_tiles_style_is_graduated_by_the_chosen_score_with_a_map_tip(qgis_new_project, job_dir, tmp_path):
    write_tiles_gpkg(tmp_path / "tiles.gpkg", job_dir["bounds"], job_dir["crs"])
    layer = QgsVectorLayer(f"{tmp_path / 'tiles.gpkg'}|layername=tiles", "tiles", "ogr")
    assert layer.isValid()
    assert styling.score_fields(layer) == ["grounding", "fidelity_miou"]
    r = styling.style_tiles(layer, "fidelity_miou")
    assert isinstance(layer.renderer(), QgsGraduatedSymbolRenderer)
    assert r.classAttribute() == "fidelity_miou" and len(r.ranges()) >= 1
    tip = layer.mapTipTemplate()
    assert '"caption_1"' in tip and "pct_crop" in tip and '"grounding"' in tip
    styling.style_tiles(layer, "grounding")
    assert layer.renderer().classAttribute() == "grounding"
    assert len(layer.renderer().ranges()) == 2                                    # at most one class per distinct score
    reds = [r.symbol().symbolLayer(0).strokeColor().red() for r in layer.renderer().ranges()]
    assert reds[0] > reds[1]                                                      # low = red end of the ramp


def test_tiles_style_with_one_score_value_is_one_class(qgis_new_project, job_dir, tmp_path):
    write_tiles_gpkg(tmp_path / "tiles.gpkg", job_dir["bounds"], job_dir["crs"])
    layer = QgsVectorLayer(f"{tmp_path / 'tiles.gpkg'}|layername=tiles", "tiles", "ogr")
    layer.startEditing()
    for f in layer.getFeatures():
        layer.changeAttributeValue(f.id(), layer.fields().indexOf("grounding"), 100.0)
    assert layer.commitChanges()
    r = styling.style_tiles(layer, "grounding")
    assert len(r.ranges()) == 1
    assert r.ranges()[0].symbol().symbolLayer(0).strokeColor().name() == "#1a9641"     # the "good" end


def score_layer(**columns) -> QgsVectorLayer:
    """A memory tile grid with four tiles and the given numeric columns (lists of 4 values, None = NULL)."""
    from qgis.core import QgsFeature, QgsField, QgsGeometry, QgsRectangle
    from qgis.PyQt.QtCore import QVariant

    layer = QgsVectorLayer("Polygon?crs=EPSG:32618", "tiles", "memory")
    prov = layer.dataProvider()
    prov.addAttributes([QgsField("tile_id", QVariant.Type.String), QgsField("pct_water", QVariant.Type.Double)]
                       + [QgsField(k, QVariant.Type.Double) for k in columns])
    layer.updateFields()
    feats = []
    for i in range(4):
        f = QgsFeature(layer.fields())
        f["tile_id"], f["pct_water"] = f"t{i}", 10.0 * i                 # a class share varies but is no score
        for k, values in columns.items():
            f[k] = values[i]
        f.setGeometry(QgsGeometry.fromRect(QgsRectangle(i, 0, i + 1, 1)))
        feats.append(f)
    prov.addFeatures(feats)
    return layer


@pytest.mark.parametrize(("columns", "expected"), [
    # composition grounding is 100 on every tile: the margin against the mask colours the grid
    ({"grounding": [100] * 4, "fidelity_miou": [None, 0.4, 0.5, 0.6], "grounding_mask_margin": [10, 30, 25, 40]},
     "grounding_mask_margin"),
    # a margin against reference samples beats one against the mask, and accuracy agreement beats grounding
    ({"grounding_mask_margin": [10, 30, 25, 40], "grounding_reference_margin": [5, 9, 7, 1]},
     "grounding_reference_margin"),
    ({"grounding": [90, 80, 70, 100], "ref_agreement": [1.0, 0.5, 0.0, 0.75]}, "ref_agreement"),
    ({"grounding": [90, 80, 70, 100], "ref_agreement": [1.0, 0.5, None, 0.75]}, "grounding"),   # a tile unscored
    # a score on every tile beats one that only synthetic tiles have (tiles without a value are not drawn)
    ({"grounding": [100, 100, 100, 100], "fidelity_miou": [None, 0.4, None, 0.6], "clipscore": [20, 25, 30, 31]},
     "clipscore"),
    ({"fidelity_miou": [None, 0.4, None, 0.6], "resegment_agreement": [0.9, 0.8, 0.9, 0.8]}, "resegment_agreement"),
    ({"grounding": [100, 100, 100, 100], "fidelity_miou": [None, 0.4, None, 0.6]}, "fidelity_miou"),
    # a preferred score that does not vary is passed over
    ({"self_consistency_margin": [0] * 4, "grounding": [100] * 4, "fidelity_miou": [0.1, 0.4, 0.5, 0.6]},
     "fidelity_miou"),
    ({"grounding": [100] * 4, "clipscore": [20, 25, 30, 31]}, "clipscore"),
    # nothing varies: the first preferred score the grid has
    ({"fidelity_miou": [0.5] * 4, "grounding": [100] * 4}, "grounding"),
    ({}, None),
])
def test_auto_tile_style_uses_a_preferred_score_that_varies(qgis_new_project, columns, expected):
    layer = score_layer(**columns)
    assert styling.default_score(layer) == expected
    r = styling.style_tiles(layer, styling.AUTO_SCORE)
    if expected is None:
        assert r is None
        return
    assert isinstance(layer.renderer(), QgsGraduatedSymbolRenderer) and r.classAttribute() == expected
    distinct = {v for v in columns[expected] if v is not None}
    assert len(r.ranges()) == min(5, len(distinct))                    # graduated over the values it takes
    assert styling.style_tiles(layer, "no_such_field").classAttribute() == expected
    if "grounding" in columns:                                          # a chosen score is kept, varying or not
        assert styling.style_tiles(layer, "grounding").classAttribute() == "grounding"


# ------------------------------------------------------------------ results from a fake stream
def test_results_follow_the_event_stream(qgis_new_project, job_dir, tmp_path, qtbot):
    jd = job_dir["dir"]
    write_tiles_gpkg(jd / "tiles.gpkg", job_dir["bounds"], job_dir["crs"])
    b = job_dir["bounds"]
    source = ArtefactSource("job1", str(jd))
    assert source.local
    res = JobResults("job1", source, score="grounding", project=QgsProject.instance())
    res.handle(tile_event(2, "r0000_c0000", 0, 0, (b.left, b.bottom, (b.left + b.right) / 2, b.top), job_dir["crs"],
                          30.0))
    live = res.layers[LIVE_TILES]
    assert live.featureCount() == 1
    f = next(live.getFeatures())
    assert f["caption_1"] == "cropland tile r0000_c0000" and f["grounding"] == 30.0 and f["pct_crop"] == 75.0
    assert live.renderer().classAttribute() == "grounding"
    res.handle(pb.JobEvent(job_id="job1", seq=3, layer=pb.LayerReady(layer="real_mask", path="real_mask.tif",
                                                                       format="vrt")))
    res.handle(pb.JobEvent(job_id="job1", seq=4, layer=pb.LayerReady(layer="real_image", path="real_image.tif",
                                                                       format="vrt")))
    res.handle(pb.JobEvent(job_id="job1", seq=5, layer=pb.LayerReady(layer="tiles", path="tiles.gpkg",
                                                                       format="gpkg")))
    with qtbot.waitSignal(res.report_ready, timeout=2000) as sig:
        res.handle(pb.JobEvent(job_id="job1", seq=6, report=pb.ReportReady(html_path="report.html",
                                                                           json_path="report.json")))
    assert sig.args == [str(jd / "report.html")]
    # one group for the job, tiles on top, the live layer replaced by the gpkg
    names = [n.name() for n in res.group.children()]
    assert names == ["tiles", "real_mask", "real_image"]
    assert res.group.name() == "GroundSynth job1"
    assert isinstance(res.layers["real_mask"].renderer(), QgsPalettedRasterRenderer)
    assert isinstance(res.layers["real_image"].renderer(), QgsMultiBandColorRenderer)
    tiles = res.layers["tiles"]
    assert tiles.renderer().classAttribute() == "grounding"
    res.set_score("fidelity_miou")
    assert tiles.renderer().classAttribute() == "fidelity_miou"
    res.remove()
    assert QgsProject.instance().layerTreeRoot().findGroup("GroundSynth job1") is None


def test_remote_source_fetches_vrt_and_its_tiles(tmp_path):
    job = tmp_path / "server_job"
    (job / "tiles" / "mask").mkdir(parents=True)
    (job / "tiles" / "mask" / "a.tif").write_bytes(b"A")
    (job / "real_mask.vrt").write_text(
        '<VRTDataset><VRTRasterBand><SimpleSource><SourceFilename relativeToVRT="1">tiles/mask/a.tif'
        '</SourceFilename></SimpleSource></VRTRasterBand></VRTDataset>')

    class Fetcher:
        fetched = []

        def fetch_artefact(self, job_id, rel, dest):
            self.fetched.append(rel)
            Path(dest).parent.mkdir(parents=True, exist_ok=True)
            Path(dest).write_bytes((job / rel).read_bytes())

    f = Fetcher()
    src = ArtefactSource("j", "/nonexistent/on/this/machine", client=f, cache_dir=tmp_path / "cache")
    assert not src.local
    p = src.path("real_mask.vrt")
    assert p == tmp_path / "cache" / "j" / "real_mask.vrt"
    assert f.fetched == ["real_mask.vrt", "tiles/mask/a.tif"]
    assert (tmp_path / "cache" / "j" / "tiles" / "mask" / "a.tif").read_bytes() == b"A"


def test_label_mosaic_is_styled_as_classes(qgis_new_project, job_dir):
    """The backend names the label mosaic 'real_labels' (real_labels.vrt): it is a class raster and must get
    the palette, not the RGB image style."""
    res = JobResults("jobL", ArtefactSource("jobL", str(job_dir["dir"])), project=QgsProject.instance())
    res.handle(pb.JobEvent(job_id="jobL", seq=1, layer=pb.LayerReady(layer="real_labels", path="real_mask.tif",
                                                                       format="vrt")))
    assert isinstance(res.layers["real_labels"].renderer(), QgsPalettedRasterRenderer)
    res.remove()


def test_auto_score_follows_the_tile_filter(qgis_new_project, tmp_path):
    """fidelity_miou is only on synthetic tiles: with every tile shown it is the score that varies; with the real
    tiles only, it has no value there, and auto falls back to grounding."""
    from qgis.core import QgsField
    from qgis.PyQt.QtCore import QVariant

    layer = score_layer(grounding=[100] * 4, fidelity_miou=[None, 0.4, None, 0.6])
    layer.dataProvider().addAttributes([QgsField("kind", QVariant.Type.String)])
    layer.updateFields()
    kinds = {f.id(): ("real" if f["fidelity_miou"] is None else "synthetic") for f in layer.getFeatures()}
    layer.dataProvider().changeAttributeValues({fid: {layer.fields().indexOf("kind"): k} for fid, k in kinds.items()})
    res = JobResults("jobF", ArtefactSource("jobF", str(tmp_path)), score=styling.AUTO_SCORE,
                     project=QgsProject.instance())
    res._insert("tiles", layer)
    res.set_score(styling.AUTO_SCORE)
    assert res.score_shown() == "fidelity_miou"
    res.set_tile_filter("real")
    assert res.score_shown() == "grounding"
    res.set_tile_filter("synthetic")
    assert res.score_shown() == "fidelity_miou"
    res.remove()
