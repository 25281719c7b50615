"""Cheap, deterministic stage engines defined for tests (reusable by every test module).

Nothing is registered on import. Use the context manager or the pair of functions:

    from tests.helpers_engines import test_engines, TEST_STAGES
    with test_engines():
        spec = JobSpec(..., stages=TEST_STAGES())

or `register_all()` / `unregister_all()` (e.g. a server started with an engine
module that calls `register_all()` at import).

Engines (stage/name):
- segment/test-bright: class = brightness bin (mean of R, G, B in [0, 1] split into 7 equal bins), 255 where
  not valid. Params: sleep (seconds per tile, to make jobs slow enough to cancel/kill mid-run), fail_on (a tile
  id: raise RuntimeError when asked to segment it), fail_marker (a file path: fail_on only raises while that
  file exists; lets a test "fix" the failure before resuming), pid_dir (a folder: each process that segments
  writes an empty file named by its pid there, so a test can find and kill the workers).
- synthesise/test-palette: image = a grey level per class ((k + 0.5) / 7) plus seeded noise (NIR = 0.5), so the
  test-bright segmenter maps class k back to k and two seeds give different images. Param fit_log (a file:
  every fit appends a line, so a test can count fits across worker processes).
- caption/test-count: 5 captions naming the dominant class share and the tile id (all distinct).
- segment/test-bright-halfgpu and test-bright-wholegpu: test-bright declaring half a GPU and a whole one
  (Ray placement tests; not in ENGINES, registered by the tests that use them).
- ground/test-agree: "grounding" = 100 x share of valid pixels where mask == brightness re-segmentation,
  "fidelity_miou" for synthetic tiles = pixel agreement of cond_mask and mask; summarise: counts.
"""
from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

import numpy as np

from groundsynth.engines import register, unregister
from groundsynth.engines.base import Captioner, Grounder, Param, Segmenter, Synthesiser
from groundsynth.request.classes import CLASS_NAMES, NODATA, composition
from groundsynth.request.spec import StageConfig


def bright_mask(image: np.ndarray, valid: np.ndarray) -> np.ndarray:
    mean = image[:3].mean(axis=0)
    mask = np.clip((mean * 7).astype(np.int32), 0, 6).astype(np.uint8)
    mask[~valid] = NODATA
    return mask


class TestBright(Segmenter):
    __test__ = False
    name = "test-bright"
    description = "test: class = brightness bin"
    params = (Param("sleep", "float", 0.0, "seconds to sleep per tile", min=0, max=10),
              Param("fail_on", "str", "", "tile id that makes segment raise"),
              Param("fail_marker", "str", "", "fail_on only applies while this file exists"),
              Param("pid_dir", "str", "", "each segmenting process writes a file named by its pid here"))

    def segment(self, tiles):
        if self.p["pid_dir"]:
            open(os.path.join(self.p["pid_dir"], str(os.getpid())), "a").close()
        out = []
        for t in tiles:
            if self.p["sleep"]:
                time.sleep(self.p["sleep"])
            if self.p["fail_on"] == t.tile_id and (not self.p["fail_marker"] or os.path.exists(self.p["fail_marker"])):
                raise RuntimeError(f"test-bright: asked to fail on {t.tile_id}")
            out.append(bright_mask(t.image, t.valid))
        return out


class TestPalette(Synthesiser):
    __test__ = False
    name = "test-palette"
    description = "test: a grey level per class plus seeded noise"
    params = (Param("noise", "float", 0.02, "noise amplitude", min=0, max=0.5),
              Param("fit_log", "str", "", "every fit appends a line to this file"),
              Param("call_log", "str", "", "fit appends its tile ids, synthesise its source ids (one line each)"))

    def fit(self, images, masks, valids, tile_ids=None):
        if self.p["fit_log"]:
            with open(self.p["fit_log"], "a") as fh:
                fh.write(f"fit {len(images)} {os.getpid()}\n")
        if self.p["call_log"]:
            with open(self.p["call_log"], "a") as fh:
                fh.write("fit " + " ".join(tile_ids or []) + "\n")
        return {"fitted": len(images), "tile_ids": list(tile_ids or [])}

    def synthesise(self, masks, seeds, state=None, source_ids=None):
        # grey levels chosen so that test-bright maps class k back to k
        levels = (np.arange(7, dtype=np.float32) + 0.5) / 7
        if self.p["call_log"]:
            with open(self.p["call_log"], "a") as fh:
                fh.write("synthesise " + " ".join(source_ids or []) + "\n")
        out = []
        for m, s in zip(masks, seeds, strict=True):
            rng = np.random.default_rng(s)
            g = levels[np.minimum(m, 6)]
            c = 4 if self.ctx.has_nir else 3
            img = np.repeat(g[None], c, axis=0).astype(np.float32)
            if c == 4:
                img[3] = 0.5
            img += rng.uniform(-self.p["noise"], self.p["noise"], img.shape).astype(np.float32)
            img[:, m == NODATA] = 0
            out.append(np.clip(img, 0, 1).astype(np.float32))
        return out


class TestCount(Captioner):
    __test__ = False
    name = "test-count"
    description = "test: captions from the mask composition"
    params = (Param("n_captions", "int", 5, "captions per tile", min=1, max=10),)

    def caption(self, images, masks, seeds):
        out = []
        for m, s in zip(masks, seeds, strict=True):
            comp = composition(m)
            if comp.sum() == 0:
                out.append(["No valid data in this tile."] * self.p["n_captions"])
                continue
            top = int(np.argmax(comp))
            out.append([f"{CLASS_NAMES[top]} covers {100 * comp[top]:.1f}% (caption {i}, seed {s % 1000})"
                        for i in range(1, self.p["n_captions"] + 1)])
        return out


class TestAgree(Grounder):
    __test__ = False
    name = "test-agree"
    description = "test: agreement of the mask with a brightness re-segmentation"

    def ground(self, items):
        out = []
        for it in items:
            ref = bright_mask(it.image, it.valid)
            v = it.valid & (it.mask != NODATA)
            scores = {"grounding": float(100 * (ref[v] == it.mask[v]).mean()) if v.any() else 0.0,
                      "n_captions": float(len(it.captions))}
            if it.cond_mask is not None:
                scores["fidelity_miou"] = float((it.cond_mask[v] == it.mask[v]).mean()) if v.any() else 0.0
            out.append(scores)
        return out

    def summarise(self, records):
        return {"tiles_grounded": float(len(records)),
                "synthetic_grounded": float(sum(r.kind == "synthetic" for r in records))}


class HalfGpuSegmenter(TestBright):
    """test-bright declaring half a GPU (and a sliver of CPU, so that four fit on the two test nodes)."""

    __test__ = False
    name = "test-bright-halfgpu"
    num_cpus = 0.25
    num_gpus = 0.5


class WholeGpuSegmenter(TestBright):
    """test-bright declaring a whole GPU, as a VLM does."""

    __test__ = False
    name = "test-bright-wholegpu"
    num_cpus = 0.25
    num_gpus = 1.0


ENGINES = (TestBright, TestPalette, TestCount, TestAgree)


def register_all() -> None:
    for cls in ENGINES:
        register(cls)


def unregister_all() -> None:
    for cls in ENGINES:
        unregister(cls.stage, cls.name)


@contextlib.contextmanager
def test_engines() -> Iterator[None]:
    register_all()
    try:
        yield
    finally:
        unregister_all()


test_engines.__test__ = False   # not a pytest test


def TEST_STAGES(stages=("segment", "synthesise", "caption", "ground"), synthesise_params=None,
                **segment_params) -> list[StageConfig]:
    """StageConfigs selecting the test engines (segment params e.g. sleep="0.2"; synthesise_params a dict)."""
    names = {"segment": TestBright.name, "synthesise": TestPalette.name, "caption": TestCount.name,
             "ground": TestAgree.name}
    params = {"segment": segment_params, "synthesise": synthesise_params or {}}
    return [StageConfig(s, names[s], {k: str(v) for k, v in params.get(s, {}).items()}) for s in stages]


__all__ = ["TestBright", "TestPalette", "TestCount", "TestAgree", "HalfGpuSegmenter", "WholeGpuSegmenter", "ENGINES", "register_all", "unregister_all",
           "test_engines", "TEST_STAGES", "bright_mask"]
