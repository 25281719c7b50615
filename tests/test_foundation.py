"""Palette, spec and engine registry basics."""
import numpy as np
import pytest

from groundsynth.api.v1.convert import spec_from_proto, spec_to_proto
from groundsynth.engines import base, get_engine, register, unregister
from groundsynth.request import classes as palette
from groundsynth.request.errors import InvalidArgument
from groundsynth.request.spec import STAGES, Aoi, JobSpec, StageConfig, SynthesisOptions


def test_worldcover_remap_matches_reference_table():
    codes = np.array([[10, 95, 20, 30], [90, 100, 40, 50], [60, 70, 80, 0]], dtype=np.uint8)
    expected = np.array([[0, 0, 1, 2], [2, 2, 3, 4], [5, 5, 6, 255]], dtype=np.uint8)
    assert (palette.remap_worldcover(codes) == expected).all()


def test_palette_colours_and_composition():
    assert palette.hex_color(4) == "#8b4513"
    assert palette.gdal_colormap()[6] == (0, 0, 255, 255)
    mask = np.array([[0, 0, 6, 255]], dtype=np.uint8)
    comp = palette.composition(mask)
    assert comp[0] == pytest.approx(2 / 3) and comp[6] == pytest.approx(1 / 3) and comp.sum() == pytest.approx(1)


def test_spec_round_trips_proto_and_json():
    spec = JobSpec(aoi=Aoi(bbox=(1, 2, 3, 4), crs="EPSG:4326"), raster_path="/x.tif", seed=7,
                   synthesis=SynthesisOptions(mask_strategy="boost", boost_targets={"shrub": 0.3})).normalised()
    assert spec.synthesis.boost_targets == {"Shrub": 0.3}
    assert [s.stage for s in spec.stages] == list(STAGES)
    assert spec_from_proto(spec_to_proto(spec)).normalised() == spec
    assert JobSpec.from_json(spec.to_json()) == spec


@pytest.mark.parametrize("change, field", [
    (dict(tile_size=8), "tile_size"),
    (dict(overlap=200), "overlap"),
    (dict(aoi=Aoi(bbox=(3, 2, 1, 4))), "aoi.bbox"),
    (dict(stages=[StageConfig("paint")]), "stages[0].stage"),
    (dict(synthesis=SynthesisOptions(mask_strategy="boost")), "synthesis.boost_targets"),
    (dict(synthesis=SynthesisOptions(mask_strategy="boost", boost_targets={"Lava": 0.5})), "synthesis.boost_targets"),
    (dict(raster_path=None), "source"),
])
def test_spec_errors_name_the_field(change, field):
    base_kwargs = dict(aoi=Aoi(bbox=(0, 0, 1, 1)), raster_path="/x.tif")
    base_kwargs.update(change)
    with pytest.raises(InvalidArgument) as err:
        JobSpec(**base_kwargs).normalised()
    assert err.value.field == field


def test_registry_registers_and_validates_params():
    @register
    class Dummy(base.Segmenter):
        name = "dummy-test"
        params = (base.Param("k", "int", 3, "a knob", min=1, max=5),
                  base.Param("mode", "choice", "a", "a mode", choices=("a", "b")))

        def segment(self, tiles):
            return [np.zeros(t.valid.shape, np.uint8) for t in tiles]

    try:
        assert get_engine("segment", "dummy-test") is Dummy
        eng = Dummy({"k": "4"})
        assert eng.p == {"k": 4, "mode": "a"}
        with pytest.raises(InvalidArgument, match=r"\[1, 5\]"):
            Dummy({"k": "9"})
        with pytest.raises(InvalidArgument, match="unknown parameter"):
            Dummy({"nope": "1"})
        with pytest.raises(InvalidArgument, match="one of a, b"):
            Dummy({"mode": "c"})
        with pytest.raises(InvalidArgument, match="unknown engine"):
            get_engine("segment", "no-such-engine")
    finally:
        unregister("segment", "dummy-test")


def test_atomic_write_never_leaves_partial_file(tmp_path):
    from groundsynth.artefacts.atomic import atomic_path, write_text

    target = tmp_path / "out.txt"
    write_text(target, "complete")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("writer crashed")
    assert target.read_text() == "complete"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_derived_seeds_are_stable_and_distinct():
    from groundsynth.request.seeds import derive_seed

    assert derive_seed(1, "t", "syn") == derive_seed(1, "t", "syn")
    assert len({derive_seed(1, "t", "syn"), derive_seed(2, "t", "syn"), derive_seed(1, "u", "syn")}) == 3
    assert 0 <= derive_seed(123, "x") < 2**63


def test_proto_spec_with_synthesise_stage_defaults_to_one_variant():
    from groundsynth.api.v1.contract import pb

    m = pb.JobSpec(raster_path="/x.tif", aoi=pb.AreaOfInterest(bbox=pb.BBox(minx=0, miny=0, maxx=1, maxy=1)),
                   synthesis=pb.SynthesisOptions(mask_strategy="real"))
    assert spec_from_proto(m).normalised().synthesis.variants == 1
    m.synthesis.variants = 3
    assert spec_from_proto(m).normalised().synthesis.variants == 3
    m.ClearField("synthesis")
    m.stages.add(stage="segment")
    assert spec_from_proto(m).normalised().synthesis.variants == 0
