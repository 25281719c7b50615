"""Shared test set-up: headless Qt, offline model hubs, repo on sys.path."""
import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.ray_fixture import ray_cluster  # noqa: E402,F401 - the `ray`-marked tests' local Ray cluster (session)
