"""Engine plugin module for server subprocesses in tests: `serve --engine-module tests.server_engines`.

Importing it registers the cheap test engines of tests/helpers_engines.py (test-bright with its
per-tile `sleep`, test-palette, test-count, test-agree) plus one engine that is never available,
`segment/test-noweights`, whose availability names a missing weights file (FAILED_PRECONDITION).
"""
from __future__ import annotations

import os

from groundsynth.engines import register
from groundsynth.engines.base import Segmenter
from tests.helpers_engines import register_all


class TestNoWeights(Segmenter):
    __test__ = False
    name = "test-noweights"
    description = "test: an engine whose weights are missing"

    @classmethod
    def availability(cls, models_dir=None):
        path = os.path.join(models_dir or "models", "test-noweights", "model.safetensors")
        return False, f"weights not found at {path}"

    def segment(self, tiles):     # pragma: no cover - never available
        raise AssertionError("test-noweights must never run")


register_all()
register(TestNoWeights)
