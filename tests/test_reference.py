"""Reference samples: files (GeoJSON, GeoPackage, CSV) and inline features in any CRS onto the raster grid,
classes by name or WorldCover code, errors naming the field, tiles owning pixels, and the accuracy assessment of a
job end to end (report.json, report.html, tiles.gpkg, the CLI's --reference)."""
import csv
import json

import fiona
import numpy as np
import pytest
import rasterio
from pyproj import Transformer

from groundsynth.request.classes import CLASS_NAMES
from groundsynth.request.errors import InvalidArgument, NotFound
from groundsynth.request.spec import Aoi, JobSpec, ReferenceFeature, ReferenceSamples, SynthesisOptions
from groundsynth.tiling.grid import build_grid
from groundsynth.tiling.reference import load_reference, owners, points_in_tile
from tests.helpers_rasters import DEMO_CRS, DEMO_TRANSFORM, px_bbox, px_to_world, write_raster

W, H = 128, 96
TO_WGS84 = Transformer.from_crs(DEMO_CRS, "EPSG:4326", always_xy=True)


def _load(ref):
    return load_reference(ref, rasterio.crs.CRS.from_string(DEMO_CRS).to_wkt(), DEMO_TRANSFORM, W, H)


def _lonlat(col, row):
    return TO_WGS84.transform(*px_to_world(col + 0.5, row + 0.5))


def _point(col, row):
    x, y = px_to_world(col, row)
    return f"POINT ({x!r} {y!r})"


def _geojson(path, feats):
    doc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": list(_lonlat(c, r))},
         "properties": {"id": f"p{i}", "class": cls, **extra}} for i, (c, r, cls, extra) in enumerate(feats)]}
    path.write_text(json.dumps(doc))
    return path


def test_geojson_points_in_wgs84_land_on_their_pixels_with_names_and_worldcover_codes(tmp_path):
    path = _geojson(tmp_path / "ref.geojson", [(3, 4, "Water", {"split": "test", "stratum": "Water",
                                                                 "stratum_size": 500}),
                                               (100, 90, 10, {"split": "tune"}),          # code 10: Tree
                                               (50, 7, "built_up", {}), (20, 30, "90", {})])  # 90: wetland -> Grass
    s = _load(ReferenceSamples(path=str(path)))
    assert s.row.tolist() == [4, 90, 7, 30] and s.col.tolist() == [3, 100, 50, 20]
    assert [CLASS_NAMES[c] for c in s.cls] == ["Water", "Tree", "Built-up", "Grass"]
    assert s.split.tolist() == ["test", "tune", "", ""] and s.stratum_sizes == {"Water": 500.0}
    assert s.unit.tolist() == [0, 1, 2, 3] and s.geometry == "point" and s.outside == 0


def test_geopackage_polygons_in_another_crs_become_the_pixels_whose_centres_they_hold(tmp_path):
    to_3857 = Transformer.from_crs(DEMO_CRS, "EPSG:3857", always_xy=True)
    ring = [to_3857.transform(*px_to_world(c, r)) for c, r in ((10, 10), (14, 10), (14, 13), (10, 13), (10, 10))]
    path = tmp_path / "ref.gpkg"
    schema = {"geometry": "Unknown", "properties": {"label": "str"}}
    with fiona.open(path, "w", driver="GPKG", schema=schema, crs="EPSG:3857") as dst:
        dst.write({"geometry": {"type": "Polygon", "coordinates": [ring]}, "properties": {"label": "Crop"}})
        dst.write({"geometry": {"type": "Point", "coordinates": to_3857.transform(*px_to_world(60.5, 50.5))},
                   "properties": {"label": "Shrub"}})
    s = _load(ReferenceSamples(path=str(path)))
    poly = s.unit == 0
    assert poly.sum() == 12                                   # 4 x 3 pixel centres inside the box
    assert set(zip(s.row[poly].tolist(), s.col[poly].tolist(), strict=True)) == \
        {(r, c) for r in range(10, 13) for c in range(10, 14)}
    assert (s.cls[poly] == CLASS_NAMES.index("Crop")).all() and s.geometry == "mixed"
    assert (s.row[~poly].tolist(), s.col[~poly].tolist()) == ([50], [60])


def test_csv_points_in_the_raster_crs_and_in_lon_lat(tmp_path):
    x, y = px_to_world(7.5, 8.5)
    p1 = tmp_path / "xy.csv"
    p1.write_text(f"x,y,landcover\n{x},{y},Barren\n")
    s = _load(ReferenceSamples(path=str(p1), crs=DEMO_CRS, class_field="landcover"))
    assert (s.row.tolist(), s.col.tolist(), CLASS_NAMES[s.cls[0]]) == ([8], [7], "Barren")
    lon, lat = _lonlat(9, 11)
    p2 = tmp_path / "ll.csv"
    with open(p2, "w", newline="") as f:
        csv.writer(f).writerows([["lon", "lat", "code"], [lon, lat, 80]])
    s = _load(ReferenceSamples(path=str(p2)))
    assert (s.row.tolist(), s.col.tolist(), CLASS_NAMES[s.cls[0]]) == ([11], [9], "Water")


def test_inline_features_and_the_split_filter():
    feats = [ReferenceFeature(_point(5.5, 6.5), "Tree", split="tune"), ReferenceFeature(_point(9.5, 1.5), "40", split="test")]
    s = _load(ReferenceSamples(features=feats, crs=DEMO_CRS, split="test"))
    assert (s.row.tolist(), s.col.tolist(), s.cls.tolist()) == ([1], [9], [CLASS_NAMES.index("Crop")])


def test_bad_reference_input_names_the_field(tmp_path):
    with pytest.raises(NotFound) as e:
        _load(ReferenceSamples(path=str(tmp_path / "missing.geojson")))
    assert e.value.field == "reference.path"
    bad = _geojson(tmp_path / "bad.geojson", [(3, 4, "Swamp", {})])
    with pytest.raises(InvalidArgument) as e:
        _load(ReferenceSamples(path=str(bad)))
    assert e.value.field == "reference.class_field" and "Swamp" in str(e.value)
    with pytest.raises(InvalidArgument) as e:
        _load(ReferenceSamples(path=str(bad), class_field="kind"))
    assert e.value.field == "reference.class_field" and "no attribute 'kind'" in str(e.value)
    far = ReferenceFeature("POINT (0 0)", "Tree")
    with pytest.raises(InvalidArgument, match="outside the raster"):
        _load(ReferenceSamples(features=[far], crs=DEMO_CRS))
    (tmp_path / "x.txt").write_text("nothing")
    with pytest.raises(InvalidArgument) as e:
        _load(ReferenceSamples(path=str(tmp_path / "x.txt")))
    assert e.value.field == "reference.path"


def test_spec_checks_reference_fields_and_round_trips():
    base = dict(aoi=Aoi(bbox=(0, 0, 1, 1)), raster_path="/x.tif")
    with pytest.raises(InvalidArgument) as e:
        JobSpec(**base, reference=ReferenceSamples(path="/r.gpkg", features=[ReferenceFeature("POINT (0 0)", "Tree")])
                ).normalised()
    assert e.value.field == "reference"
    with pytest.raises(InvalidArgument) as e:
        JobSpec(**base, reference=ReferenceSamples(features=[ReferenceFeature("POINT (0 0)", "Forest")])).normalised()
    assert e.value.field == "reference.features[0].class_value"
    with pytest.raises(InvalidArgument) as e:
        JobSpec(**base, reference=ReferenceSamples(path="/r.gpkg", split="train")).normalised()
    assert e.value.field == "reference.split"
    spec = JobSpec(**base, reference=ReferenceSamples(features=[ReferenceFeature("POINT (1 2)", "80", "a", "test",
                                                                                 "Water", 12.0)], crs="EPSG:32618"))
    assert JobSpec.from_json(spec.to_json()) == spec
    from groundsynth.api.v1.convert import spec_from_proto, spec_to_proto

    spec.bands.swir1, spec.bands.swir2 = 5, -1
    assert spec_from_proto(spec_to_proto(spec)).reference == spec.reference
    assert spec_from_proto(spec_to_proto(spec)).bands == spec.bands


def test_each_sample_pixel_is_owned_by_one_tile_even_with_overlap():
    from shapely.geometry import box

    grid = build_grid(box(0, 0, W, H), W, H, 64, overlap=16)
    rows, cols = np.array([0, 40, 40, 95, 50]), np.array([0, 40, 60, 127, 100])
    own = owners(rows, cols, grid.cells)
    assert (own >= 0).all()
    arrays = {"row": rows, "col": cols, "cls": np.arange(5)}
    total = 0
    for k, c in enumerate(grid.cells):
        rr, cc, cls = points_in_tile(arrays, c, own == k)
        total += rr.size
        assert ((rr >= 0) & (rr < c.height) & (cc >= 0) & (cc < c.width)).all()
        assert (rows[cls] - c.row_off == rr).all() and (cols[cls] - c.col_off == cc).all()
    assert total == 5
    # without ownership a pixel in the overlap is seen by two tiles
    assert sum(points_in_tile(arrays, c)[0].size for c in grid.cells) > 5


# ------------------------------------------------------------------ end to end

def _spec(source, ref_path, **kw):
    from groundsynth.request.spec import StageConfig

    return JobSpec(aoi=Aoi(bbox=px_bbox(0, 0, W, H)), raster_path=str(source), tile_size=64, seed=3,
                   stages=[StageConfig("segment", "spectral")], synthesis=SynthesisOptions(variants=0),
                   reference=ReferenceSamples(path=str(ref_path)), **kw)


def test_a_job_with_a_reference_sample_reports_its_accuracy_everywhere(tmp_path):
    from groundsynth.cli.run import run_in_process
    from groundsynth.report.images import read_mask

    source = write_raster(tmp_path / "src.tif", width=W, height=H, seed=2)
    rng = np.random.default_rng(0)
    pts = [(int(rng.integers(0, W)), int(rng.integers(0, H)), CLASS_NAMES[int(rng.integers(0, 7))],
            {"split": ("tune", "test")[i % 2], "stratum": "s" + str(i % 3), "stratum_size": 100 * (1 + i % 3)})
           for i in range(60)]
    ref = _geojson(tmp_path / "ref.geojson", pts)
    job = run_in_process(_spec(source, ref), tmp_path / "ws", None, quiet=True, executor="inline")
    doc = json.loads((job / "report.json").read_text())
    acc = doc["accuracy_assessment"]
    # the expected matrix straight from the written masks
    expected = np.zeros((7, 7), int)
    for c, r, cls, _ in pts:
        t = next(t for t in doc["tiles"] if t["col_off"] <= c < t["col_off"] + t["width"]
                 and t["row_off"] <= r < t["row_off"] + t["height"])
        m = read_mask(job / t["artefacts"]["mask"])[r - t["row_off"], c - t["col_off"]]
        expected[m, CLASS_NAMES.index(cls)] += 1
    assert acc["all"]["error_matrix"] == expected.tolist() and acc["all"]["n"] == 60
    assert acc["all"]["overall_accuracy"] == pytest.approx(np.trace(expected) / 60)
    lo, hi = acc["all"]["overall_accuracy_ci95"]
    assert lo <= acc["all"]["overall_accuracy"] <= hi
    assert set(acc["splits"]) == {"tune", "test"} and acc["splits"]["test"]["n"] == 30
    assert "overall_accuracy" in acc["all"]["stratified"]
    assert doc["summary"]["ref_points"] == 60 and "ref_overall_accuracy_test" in doc["summary"]
    # per tile: the tile grid carries how many points each tile holds and how many agree
    assert sum(t["metrics"]["ref_points"] for t in doc["tiles"]) == 60
    with fiona.open(job / "tiles.gpkg") as src:
        rows = [f["properties"] for f in src]
    assert sum(p["ref_points"] for p in rows) == 60
    agree = sum(p["ref_agreement"] * p["ref_points"] for p in rows if p["ref_points"])
    assert agree == pytest.approx(np.trace(expected))
    html_text = (job / "report.html").read_text()
    section = html_text.split("Accuracy against the reference sample")[1]
    assert "Per class, split 'test'" in section and 'src="data:image/png;base64,' in section


def test_cli_reference_flag_and_a_sample_outside_the_raster(tmp_path, capsys):
    from groundsynth.cli.main import main

    source = write_raster(tmp_path / "src.tif", width=W, height=H, seed=2)
    ref = _geojson(tmp_path / "ref.geojson", [(5, 5, "Crop", {}), (70, 60, "Tree", {})])
    rc = main(["run", "--raster", str(source), "--aoi", ",".join(map(str, px_bbox(0, 0, W, H))), "--tile-size", "64",
               "--stages", "segment", "--variants", "0", "--workspace", str(tmp_path / "ws"), "--quiet",
               "--executor", "inline", "--reference", str(ref)])
    job = capsys.readouterr().out.strip().splitlines()[-1]
    assert rc == 0
    assert json.loads(open(f"{job}/report.json").read())["accuracy_assessment"]["all"]["n"] == 2
    far = tmp_path / "far.csv"
    far.write_text("x,y,class\n0,0,Tree\n")
    rc = main(["run", "--raster", str(source), "--aoi", ",".join(map(str, px_bbox(0, 0, W, H))), "--tile-size", "64",
               "--stages", "segment", "--variants", "0", "--workspace", str(tmp_path / "ws"), "--quiet",
               "--reference", str(far), "--reference-crs", DEMO_CRS])
    err = capsys.readouterr().err
    assert rc == 2 and "error (INVALID_ARGUMENT): reference:" in err and "outside the raster" in err
