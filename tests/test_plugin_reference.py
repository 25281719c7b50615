"""Reference samples from QGIS (issue 11 item 1, plugin side): a vector layer of points or polygons in any CRS,
classes by name or WorldCover code, or points digitised on the map, written to the GeoJSON file the backend's
`--reference FILE` reader takes (EPSG:4326, a `class` property)."""
from __future__ import annotations

import json

import pytest
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFeature,
    QgsField,
    QgsGeometry,
    QgsPointXY,
    QgsProject,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QVariant

from plugin.reference import ReferenceError, add_sample, digitised_layer, reference_class, write_reference

UTM18 = QgsCoordinateReferenceSystem("EPSG:32618")
WGS84 = QgsCoordinateReferenceSystem("EPSG:4326")


def layer_of(geometry: str, crs: str, rows: list[tuple[str, dict]], **types) -> QgsVectorLayer:
    """A memory layer: rows of (WKT, attributes); `types` name -> QVariant type (default: string)."""
    layer = QgsVectorLayer(f"{geometry}?crs={crs}", "samples", "memory")
    names = list(rows[0][1]) if rows else []
    layer.dataProvider().addAttributes([QgsField(n, types.get(n, QVariant.Type.String)) for n in names])
    layer.updateFields()
    feats = []
    for wkt, attrs in rows:
        f = QgsFeature(layer.fields())
        f.setGeometry(QgsGeometry.fromWkt(wkt))
        for k, v in attrs.items():
            f[k] = v
        feats.append(f)
    layer.dataProvider().addFeatures(feats)
    return layer


def to_wgs84(x: float, y: float, crs=UTM18) -> tuple[float, float]:
    p = QgsCoordinateTransform(crs, WGS84, QgsProject.instance()).transform(QgsPointXY(x, y))
    return p.x(), p.y()


@pytest.mark.parametrize(("value", "expected"), [
    ("Water", "Water"), ("water", "Water"), ("built up", "Built-up"), ("BUILT_UP", "Built-up"), (80, "Water"),
    ("95", "Tree"), (90.0, "Grass"), ("100", "Grass"), ("Mangrove", None), (85, None), ("", None), (None, None),
    (40.5, None), (True, None)])
def test_classes_by_name_or_worldcover_code(value, expected):
    assert reference_class(value) == expected


def test_polygons_in_utm_with_worldcover_codes_become_wgs84_geojson(qgis_new_project, tmp_path):
    square = "POLYGON((443000 4170000, 443100 4170000, 443100 4170100, 443000 4170100, 443000 4170000))"
    layer = layer_of("Polygon", "EPSG:32618", [(square, {"lc": 80, "split": "test", "stratum": "Water",
                                                         "stratum_size": 2157558.0}),
                                               (square.replace("443", "444"), {"lc": 10, "split": None, "stratum": "",
                                                                               "stratum_size": None})],
                     lc=QVariant.Type.Int, stratum_size=QVariant.Type.Double)
    path, n = write_reference(layer, "lc", tmp_path / "inputs" / "ref.geojson")
    assert n == 2 and path.exists() and not list(path.parent.glob("*.part"))
    doc = json.loads(path.read_text())
    assert doc["type"] == "FeatureCollection" and "crs" not in doc          # RFC 7946: EPSG:4326
    first, second = doc["features"]
    assert first["properties"] == {"class": 80, "id": "1", "split": "test", "stratum": "Water",
                                   "stratum_size": 2157558.0}
    assert second["properties"] == {"class": 10, "id": "2"}
    assert first["geometry"]["type"] == "Polygon"
    lon, lat = first["geometry"]["coordinates"][0][0]
    assert (lon, lat) == pytest.approx(to_wgs84(443000, 4170000), abs=1e-7)
    assert -76 < lon < -75 and 37 < lat < 38


def test_points_in_web_mercator_with_names_and_selected_only(qgis_new_project, tmp_path):
    rows = [(f"POINT({-8420000 + 100 * i} {4530000 + 50 * i})", {"id": f"p{i}", "class": name})
            for i, name in enumerate(["Tree", "crop", "Built-up"])]
    layer = layer_of("Point", "EPSG:3857", rows)
    layer.selectByIds([f.id() for f in layer.getFeatures() if f["class"] != "crop"])
    _, n = write_reference(layer, "class", tmp_path / "pts.geojson", selected_only=True)
    doc = json.loads((tmp_path / "pts.geojson").read_text())
    assert n == 2 and [f["properties"] for f in doc["features"]] == [{"class": "Tree", "id": "p0"},
                                                                    {"class": "Built-up", "id": "p2"}]
    x, y = doc["features"][1]["geometry"]["coordinates"]
    assert (x, y) == pytest.approx(to_wgs84(-8419800, 4530100, QgsCoordinateReferenceSystem("EPSG:3857")), abs=1e-7)
    layer.removeSelection()
    with pytest.raises(ReferenceError, match="none is selected"):
        write_reference(layer, "class", tmp_path / "x.geojson", selected_only=True)


def test_bad_reference_layers_are_refused_naming_the_problem(qgis_new_project, tmp_path):
    pts = layer_of("Point", "EPSG:4326", [("POINT(-75.6 37.6)", {"class": "Water"}),
                                          ("POINT(-75.7 37.7)", {"class": "Marsh"})])
    with pytest.raises(ReferenceError, match=r"feature 2: class = 'Marsh' is neither a class name"):
        write_reference(pts, "class", tmp_path / "r.geojson")
    with pytest.raises(ReferenceError, match="has no attribute 'label'"):
        write_reference(pts, "label", tmp_path / "r.geojson")
    lines = layer_of("LineString", "EPSG:4326", [("LINESTRING(0 0, 1 1)", {"class": "Water"})])
    with pytest.raises(ReferenceError, match="points or polygons, not lines"):
        write_reference(lines, "class", tmp_path / "r.geojson")
    assert not (tmp_path / "r.geojson").exists()


def test_points_digitised_on_the_map_in_the_canvas_crs(qgis_new_project, tmp_path):
    layer = digitised_layer(UTM18)
    add_sample(layer, QgsPointXY(443050, 4170050), UTM18, "Water")
    mercator = QgsCoordinateReferenceSystem("EPSG:3857")
    merc = QgsCoordinateTransform(UTM18, mercator, QgsProject.instance()).transform(QgsPointXY(444050, 4170050))
    add_sample(layer, merc, mercator, "Crop")                  # a canvas in another CRS
    with pytest.raises(ReferenceError, match="not a class"):
        add_sample(layer, QgsPointXY(0, 0), UTM18, "Forest")
    _, n = write_reference(layer, "class", tmp_path / "digitised.geojson")
    feats = json.loads((tmp_path / "digitised.geojson").read_text())["features"]
    assert n == 2 and [f["properties"]["class"] for f in feats] == ["Water", "Crop"]
    assert feats[1]["geometry"]["coordinates"] == pytest.approx(to_wgs84(444050, 4170050), abs=1e-6)


# ------------------------------------------------------------------ the dock's Reference samples section
@pytest.fixture
def dock(qgis_iface, qgis_new_project, qtbot, tmp_path):
    from plugin.dock import GroundSynthDock
    from plugin.settings import PluginSettings
    from tests.plugin_fixtures import clear_bar, free_port

    settings = PluginSettings(address=f"127.0.0.1:{free_port()}", workspace=str(tmp_path / "ws"),
                              cache_dir=str(tmp_path / "cache"))
    d = GroundSynthDock(qgis_iface, settings=settings)
    qtbot.addWidget(d)
    clear_bar(qgis_iface)
    yield d
    d.shutdown()


def test_dock_digitises_samples_on_the_map_and_writes_them_into_the_workspace(dock, qgis_iface, tmp_path):
    from qgis.core import Qgis
    from qgis.PyQt.QtCore import Qt

    from tests.plugin_fixtures import bar_messages

    canvas = qgis_iface.mapCanvas()
    canvas.setDestinationCrs(UTM18)
    panel = dock.reference_panel
    panel.digitise_button.setChecked(True)
    assert canvas.mapTool() is panel.map_tool
    for cls, x in (("Water", 443050), ("Grass", 443150), ("Water", 443250)):
        panel.class_picker.setCurrentText(cls)
        panel.map_tool.canvasClicked.emit(QgsPointXY(x, 4170050), Qt.MouseButton.LeftButton)
    layer = panel.layer()
    assert layer is panel.digitised and layer.featureCount() == 3 and QgsProject.instance().mapLayer(layer.id())
    assert panel.class_field.currentField() == "class" and "3 sample(s)" in panel.count_label.text()
    path = dock.write_reference()
    assert path == tmp_path / "ws" / "inputs" / "reference-reference_points__digitised_.geojson"
    feats = json.loads(path.read_text())["features"]
    assert [f["properties"]["class"] for f in feats] == ["Water", "Grass", "Water"]
    assert feats[2]["geometry"]["coordinates"] == pytest.approx(to_wgs84(443250, 4170050), abs=1e-6)
    assert any(str(path) in m and "--reference" in m for m in bar_messages(qgis_iface, Qgis.MessageLevel.Success))
    panel.digitise_button.setChecked(False)
    assert canvas.mapTool() is not panel.map_tool
    panel.clear_digitised()
    assert layer.featureCount() == 0 and panel.count_label.text().startswith("0 sample(s)")


def test_dock_writes_a_polygon_layer_and_names_a_bad_class(dock, qgis_iface, tmp_path):
    from qgis.core import Qgis

    from tests.plugin_fixtures import bar_messages

    square = "POLYGON((443000 4170000, 443100 4170000, 443100 4170100, 443000 4170100, 443000 4170000))"
    layer = layer_of("Polygon", "EPSG:32618", [(square, {"worldcover": 50}), (square, {"worldcover": 55})],
                     worldcover=QVariant.Type.Int)
    QgsProject.instance().addMapLayer(layer)
    panel = dock.reference_panel
    panel.layer_combo.setLayer(layer)
    assert panel.class_field.currentField() == "worldcover"            # found by name
    assert dock.write_reference(str(tmp_path / "r.geojson")) is None
    assert any(m.startswith("Reference samples:") and "worldcover = 55" in m
               for m in bar_messages(qgis_iface, Qgis.MessageLevel.Critical))
    layer.selectByIds([min(f.id() for f in layer.getFeatures())])
    panel.selected_only.setChecked(True)
    path = dock.write_reference(str(tmp_path / "r.geojson"))
    assert [f["properties"]["class"] for f in json.loads(path.read_text())["features"]] == [50]


# ------------------------------------------------------------------ Processing
def test_processing_writes_reference_samples_of_any_layer(qgis_processing, qgis_new_project, tmp_path):
    import processing
    from qgis.core import QgsApplication, QgsProcessingException

    from plugin.processing.provider import GroundSynthProvider

    provider = GroundSynthProvider()
    QgsApplication.processingRegistry().addProvider(provider)
    try:
        rows = [(f"POINT({443000 + 100 * i} 4170050)", {"id": f"s{i}", "label": name, "split": split})
                for i, (name, split) in enumerate([("Water", "test"), ("grass", "tune"), ("80", "tune")])]
        layer = layer_of("Point", "EPSG:32618", rows)
        out = processing.run("groundsynth:writereference", {"INPUT": layer, "CLASS_FIELD": "label",
                                                            "OUTPUT": str(tmp_path / "ref.geojson")})
        assert out["COUNT"] == 3 and out["OUTPUT"] == str(tmp_path / "ref.geojson")
        feats = json.loads((tmp_path / "ref.geojson").read_text())["features"]
        assert [f["properties"] for f in feats] == [{"class": "Water", "id": "s0", "split": "test"},
                                                    {"class": "grass", "id": "s1", "split": "tune"},
                                                    {"class": "80", "id": "s2", "split": "tune"}]
        assert feats[0]["geometry"]["coordinates"] == pytest.approx(to_wgs84(443000, 4170050), abs=1e-6)
        bad = layer_of("Point", "EPSG:32618", [("POINT(443000 4170050)", {"label": "Snow"})])
        with pytest.raises(QgsProcessingException, match="label = 'Snow' is neither"):
            processing.run("groundsynth:writereference", {"INPUT": bad, "CLASS_FIELD": "label",
                                                          "OUTPUT": str(tmp_path / "bad.geojson")})
    finally:
        QgsApplication.processingRegistry().removeProvider(provider)
