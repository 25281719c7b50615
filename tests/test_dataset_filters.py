"""Dataset filters (the original's rules: no nodata, <= 90 % water): per-tile flags, counts, the option in the
spec, the contract and the CLI."""
import numpy as np
import pytest

from groundsynth.artefacts.records import TileRecord
from groundsynth.metrics import dataset_filters as df
from groundsynth.report.evidence import filters_html
from groundsynth.request.errors import InvalidArgument
from groundsynth.request.spec import Aoi, DatasetFilters, JobSpec

ALL_VALID = np.ones((8, 8), bool)
SOME_NODATA = ALL_VALID.copy()
SOME_NODATA[0, 0] = False


def water(share):
    return [0.0, 0.0, 0.0, 1.0 - share, 0.0, 0.0, share]


def test_rules_name_what_drops_a_tile():
    f = DatasetFilters(max_water_share=0.9)
    assert df.dropped_by(ALL_VALID, water(0.5), f) == []
    assert df.dropped_by(SOME_NODATA, water(0.5), f) == ["nodata"]
    assert df.dropped_by(ALL_VALID, water(0.91), f) == ["water"]
    assert df.dropped_by(ALL_VALID, water(0.9), f) == []                 # "more than 90 %"
    assert df.dropped_by(SOME_NODATA, water(1.0), f) == ["nodata", "water"]
    assert df.dropped_by(SOME_NODATA, water(1.0), DatasetFilters(keep_nodata=True, max_water_share=1.0)) == []
    assert df.dropped_by(ALL_VALID, [], f) == []                         # no mask: only the nodata rule


def test_flag_sets_and_clears_the_attribute():
    attrs = {"split": "train"}
    df.flag(attrs, SOME_NODATA, water(0.95), DatasetFilters(max_water_share=0.9))
    assert attrs["dropped_by"] == "nodata,water"
    df.flag(attrs, ALL_VALID, water(0.2), DatasetFilters(max_water_share=0.9))
    assert "dropped_by" not in attrs and attrs["split"] == "train"


def _rec(tid, kind, share, dropped="", valid=1.0):
    r = TileRecord(tile_id=tid, kind=kind, row=0, col=0, width=10, height=10, composition=water(share))
    r.attributes = {"valid_share": str(valid)}
    if dropped:
        r.attributes["dropped_by"] = dropped
    return r


def test_counts_per_kind_and_rule_and_water_shares():
    recs = [_rec("a", "real", 1.0, "water"), _rec("b", "real", 0.2), _rec("c", "real", 0.95, "nodata,water", 0.5),
            _rec("d", "real", 0.0), _rec("e", "synthetic", 0.4)]
    c = df.filter_counts(recs, DatasetFilters(max_water_share=0.9))
    assert c["real"] == {"tiles": 4, "kept": 2, "dropped": 2, "by_filter": {"nodata": 1, "water": 2},
                         "water_share_all": pytest.approx((100 + 20 + 0.95 * 50 + 0) / 350),
                         "water_share_kept": pytest.approx(0.1)}
    assert c["synthetic"]["kept"] == 1 and c["rules"]["max_water_share"] == 0.9
    html = filters_html({"dataset_filters": c})
    assert "Dataset filters" in html and "more than 90 % water" in html


def _spec(**kw):
    return JobSpec(aoi=Aoi(bbox=(0, 0, 1, 1)), raster_path="/x.tif", **kw)


def test_spec_defaults_validation_and_round_trips():
    from groundsynth.api.v1.convert import spec_from_proto, spec_to_proto

    s = _spec().normalised()
    assert s.filters == DatasetFilters(keep_nodata=False, max_water_share=0.9, synthesise_dropped=False)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(InvalidArgument) as err:
            _spec(filters=DatasetFilters(max_water_share=bad)).normalised()
        assert err.value.field == "filters.max_water_share"
    f = DatasetFilters(keep_nodata=True, max_water_share=0.75, synthesise_dropped=True)
    assert JobSpec.from_json(_spec(filters=f).to_json()).filters == f
    assert spec_from_proto(spec_to_proto(_spec(filters=f))).filters == f
    assert spec_from_proto(spec_to_proto(_spec())).normalised().filters.max_water_share == 0.9


def test_cli_flags(tmp_path, capsys):
    import argparse

    from groundsynth.cli.run import add_job_arguments, spec_from_args

    p = argparse.ArgumentParser()
    add_job_arguments(p)
    args = p.parse_args(["--aoi", "0,0,1,1", "--keep-nodata", "--max-water", "0.8", "--synthesise-dropped"])
    assert spec_from_args(args, "/x.tif").filters == DatasetFilters(True, 0.8, True)
    args = p.parse_args(["--aoi", "0,0,1,1"])
    assert spec_from_args(args, "/x.tif").normalised().filters == DatasetFilters(False, 0.9, False)
