"""Neural engines through the real gRPC server: Capabilities, a job mixing neural and built-in
engines, and missing weights reported as FAILED_PRECONDITION naming the path."""
from __future__ import annotations

import json

import grpc
import neural_fixtures as nf
import pytest

from groundsynth.api.v1.contract import pb
from groundsynth.request.errors import FailedPrecondition
from groundsynth.request.spec import Aoi, JobSpec, StageConfig, SynthesisOptions
from tests.server_fixture import make_test_raster, raster_bbox, start_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    base = tmp_path_factory.mktemp("neural_grpc")
    workspace = base / "workspace"
    raster = make_test_raster(workspace / "data" / "src.tif", size=128)
    server = start_server(workspace, env={"GROUNDSYNTH_MODELS": ""})
    server.raster = raster
    yield server
    server.kill()


def _spec(raster, stages, variants=0):
    return JobSpec(aoi=Aoi(bbox=raster_bbox(128)), raster_path=str(raster), tile_size=64, seed=5, stages=stages,
                   synthesis=SynthesisOptions(variants=variants), name="neural")


def _engines(caps):
    return {(s.stage, e.name): e for s in caps.stages for e in s.engines}


def test_neural_engines_through_grpc(srv):
    models = srv.workspace / "models"
    with srv.client() as c:
        # 1. no weights yet: Capabilities says why, naming the path; a job is refused up front
        engines = _engines(c.capabilities())
        for key in (("segment", "segformer"), ("synthesise", "spade"), ("caption", "vlm"), ("ground", "clip")):
            assert key in engines and not engines[key].available
            assert str(models / key[1]) in engines[key].unavailable_reason
        with pytest.raises(FailedPrecondition) as err:
            list(c.submit(_spec(srv.raster, [StageConfig("segment", "segformer")])))
        assert str(models / "segformer") in err.value.message

        # 2. tiny weights in the workspace's models dir -> available
        nf.tiny_segformer(models / "segformer")
        nf.tiny_spade(models / "spade")
        nf.tiny_clip_local_dir(models / "clip")
        engines = _engines(c.capabilities())
        assert engines[("segment", "segformer")].available and engines[("ground", "clip")].available
        assert engines[("synthesise", "spade")].available and not engines[("caption", "vlm")].available

        # 3. a job mixing neural (segformer, spade, clip) and built-in (composition captions) engines
        stages = [StageConfig("segment", "segformer", {"weights": str(models / "segformer"), "batch_size": "2"}),
                  StageConfig("synthesise", "spade"),
                  StageConfig("caption", "composition"),
                  StageConfig("ground", "clip", {"reference_segmenter": "segformer"})]
        events = list(c.submit(_spec(srv.raster, stages, variants=1)))
        kinds = [e.WhichOneof("event") for e in events]
        assert kinds[-1] == "done", [e.failed.message for e in events if e.HasField("failed")]
        assert events[-1].done.state == pb.SUCCEEDED
        tiles = [e.tile for e in events if e.HasField("tile")]
        real = [t for t in tiles if t.kind == "real"]
        synthetic = [t for t in tiles if t.kind == "synthetic"]
        assert len(real) == 4 and len(synthetic) == 4
        for t in real + synthetic:
            assert len(t.captions) == 5
            assert 0 <= t.metrics["clipscore"] <= 100 and t.metrics["clipscore_max"] >= t.metrics["clipscore"]
            assert 0 <= t.metrics["grounding"] <= 100     # ground/composition's claim score, merged
        assert all(0 <= t.metrics["fidelity_miou"] <= 1 for t in synthetic)
        report = next(e.report for e in events if e.HasField("report"))
        assert "grounding_mean" in report.summary        # built-in composition metrics merged by ground/clip
        doc = json.loads(c.fetch_bytes(events[0].job_id, "report.json"))
        set_metrics = doc["set_metrics"]
        assert 0 <= set_metrics["clipscore_mean_real"] <= 100 and 0 <= set_metrics["clipscore_mean_synthetic"] <= 100
        assert -1 <= set_metrics["separability_silhouette"] <= 1
        assert "redundancy" in set_metrics

        # 4. explicit weights that are missing or corrupt: FAILED_PRECONDITION naming that path
        missing = models / "no-such-segformer"
        corrupt = models / "corrupt-segformer"
        corrupt.mkdir()
        (corrupt / "config.json").write_text('{"model_type": "segformer"')
        (corrupt / "model.safetensors").write_bytes(b"not safetensors")
        for path in (missing, corrupt):
            bad = [StageConfig("segment", "segformer", {"weights": str(path)})]
            try:
                events = list(c.submit(_spec(srv.raster, bad)))
            except FailedPrecondition as exc:        # refused at submit
                message = exc.message
            else:                                    # or the job fails with that status
                failed = [e.failed for e in events if e.HasField("failed")]
                assert failed and failed[0].code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
                message = failed[0].message
            assert str(path) in message and "Traceback" not in message
