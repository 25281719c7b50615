"""Device choice, shared models, lazy heavy imports and availability of the neural engines."""
from __future__ import annotations

import subprocess
import sys

import neural_fixtures as nf
import pytest

from groundsynth.engines import get_engine
from groundsynth.engines.base import EngineContext
from groundsynth.models import device as dev
from groundsynth.models.cache import clear_shared_models
from groundsynth.request.errors import FailedPrecondition, InvalidArgument

NEURAL = (("segment", "segformer"), ("synthesise", "spade"), ("caption", "vlm"), ("ground", "clip"))


def test_resolve_device_auto_override_and_errors(monkeypatch):
    import torch

    monkeypatch.delenv(dev.ENV_DEVICE, raising=False)
    expected = "cuda" if torch.cuda.is_available() else (
        "mps" if torch.backends.mps.is_available() else "cpu")
    assert dev.resolve_device("auto") == expected
    assert dev.resolve_device("cpu") == "cpu"
    monkeypatch.setenv(dev.ENV_DEVICE, "cpu")
    assert dev.resolve_device(None) == "cpu"          # environment override of "auto"
    with pytest.raises(InvalidArgument, match="tpu"):
        dev.resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(FailedPrecondition, match="no CUDA GPU"):
            dev.resolve_device("cuda")
    assert dev.resolve_dtype("cpu") == torch.float32   # never fp16 on the CPU
    assert dev.resolve_dtype("cuda") == torch.float16 and dev.resolve_dtype("cuda", "fp32") == torch.float32
    assert dev.engine_device("auto", "cpu") == "cpu"   # engine param beats the job's device


def test_models_load_once_and_are_shared_across_jobs(tmp_path):
    clear_shared_models()
    d = nf.tiny_segformer(tmp_path / "seg")
    E = get_engine("segment", "segformer")
    a = E({"weights": str(d)}, EngineContext(seed=1))
    b = E({"weights": str(d)}, EngineContext(seed=2))
    assert a._model()[0][0] is b._model()[0][0]        # one model object for both jobs
    c = E({"weights": str(d), "precision": "fp32", "device": "cpu"}, EngineContext())
    assert c._model()[0][0] is a._model()[0][0]        # same key on a CPU machine (cpu, float32)


def test_importing_engine_modules_does_not_import_torch():
    code = ("import sys; from groundsynth.engines import load_all, engines; load_all(); "
            "names = {n for s in ('segment','synthesise','caption','ground') for n in engines(s)}; "
            "assert {'segformer','spade','vlm','clip'} <= names, names; "
            "heavy = [m for m in ('torch', 'transformers', 'open_clip') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=nf.Path(__file__).resolve().parents[1])


@pytest.mark.parametrize("stage, name", NEURAL)
def test_availability_names_the_default_path_then_finds_weights(tmp_path, stage, name):
    E = get_engine(stage, name)
    ok, reason = E.availability(str(tmp_path))
    assert not ok and str(tmp_path / name) in reason and "weights not found" in reason
    build = {"segformer": lambda p: nf.tiny_segformer(p), "spade": lambda p: nf.tiny_spade(p),
             "vlm": lambda p: nf.tiny_causal_lm(p), "clip": lambda p: nf.tiny_clip_local_dir(p)}[name]
    build(tmp_path / name)
    assert E.availability(str(tmp_path)) == (True, "")
    # every param has help text and the weights param is a path (Capabilities builds the UI from them)
    params = {p.name: p for p in E.params}
    assert params["weights"].type == "path" and all(p.help for p in E.params)
    assert {"device", "batch_size"} <= set(params)


def test_weights_may_be_a_hub_id_already_in_the_local_cache(tmp_path, monkeypatch):
    """A hub id resolves to its snapshot in the local HF cache, never a download."""
    cache = tmp_path / "hub"
    snap = cache / "models--someorg--tiny-segformer" / "snapshots" / "0123abcd"
    nf.tiny_segformer(snap)
    (cache / "models--someorg--tiny-segformer" / "refs").mkdir(parents=True)
    (cache / "models--someorg--tiny-segformer" / "refs" / "main").write_text("0123abcd")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    eng = get_engine("segment", "segformer")({"weights": "someorg/tiny-segformer"}, EngineContext())
    assert eng.segment(nf.random_tiles(1))[0].shape == (32, 32)
    with pytest.raises(FailedPrecondition, match="weights not found at .*someorg/not-cached"):
        get_engine("segment", "segformer")({"weights": "someorg/not-cached"}, EngineContext())
