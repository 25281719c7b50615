"""STAC Machine Learning Model (MLM 1.4) metadata for a trained model: OUT/mlm.json.

One STAC Item (no geometry: a model is not a place) with the MLM extension: name, architecture,
tasks, framework and version, parameter count, inputs (bands red, green, blue[, nir] in [0, 1],
shape, z-score value scaling with the model's per-band mean/std), outputs (classes with the palette
colours, or the generated image), hyperparameters, and the model files as assets (role
"mlm:model" with an artifact type, plus the Lightning checkpoint and the training log).
"""
from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from groundsynth.artefacts.stac import finite
from groundsynth.request.classes import CLASS_COLORS, CLASS_NAMES

MLM_SCHEMA = "https://stac-extensions.github.io/mlm/v1.4.0/schema.json"
BANDS = ("red", "green", "blue", "nir")


def mlm_classes() -> list[dict[str, Any]]:
    return [{"value": i, "name": n.lower().replace("-", "_"), "description": n,
             "color_hint": "{:02X}{:02X}{:02X}".format(*CLASS_COLORS[i])} for i, n in enumerate(CLASS_NAMES)]


def write_mlm_item(out: Path, name: str, architecture: str, tasks: Sequence[str], channels: int, tile: int,
                   mean: Sequence[float], std: Sequence[float], output: Mapping[str, Any], assets: Mapping[str, dict],
                   total_parameters: int, hyperparameters: Mapping[str, Any],
                   extra: Mapping[str, Any] | None = None) -> Path:
    """Write OUT/mlm.json; `assets` maps asset keys to {"href", "type", "roles", "mlm:artifact_type"...}."""
    import pystac
    import torch

    from groundsynth.artefacts.stac import atomic_stac_io

    bands = list(BANDS[:channels])
    props: dict[str, Any] = {
        "mlm:name": name, "mlm:architecture": architecture, "mlm:tasks": list(tasks),
        "mlm:framework": "pytorch", "mlm:framework_version": torch.__version__.split("+")[0],
        "mlm:total_parameters": int(total_parameters), "mlm:pretrained": False,
        "mlm:accelerator": None, "mlm:accelerator_constrained": False,      # runs on the CPU or a GPU
        "bands": [{"name": b} for b in bands],
        "mlm:input": [{
            "name": "tile", "bands": bands,
            "input": {"shape": [-1, channels, tile, tile], "dim_order": ["batch", "channel", "height", "width"],
                      "data_type": "float32"},
            "description": "GroundSynth export image tile: uint8 / 255 (0 = nodata), the job's one stretch",
            "value_scaling": [{"type": "z-score", "mean": float(m), "stddev": float(s)} for m, s in zip(mean, std,
                                                                                                       strict=True)]}],
        "mlm:output": [dict(output)],
        "mlm:hyperparameters": finite(dict(hyperparameters)),
        **finite(dict(extra or {})),
    }
    now = _dt.datetime.now(_dt.UTC).replace(microsecond=0)
    item = pystac.Item(id=name, geometry=None, bbox=None, datetime=now, properties=props,
                       stac_extensions=[MLM_SCHEMA])
    for key, a in assets.items():
        fields = {k: v for k, v in a.items() if k not in ("href", "type", "roles", "title")}
        if "mlm:model" in a["roles"]:
            # the model's input bands also on its asset: STAC 1.1.0's item schema only accepts `bands` in the
            # properties (where MLM looks for them) when an asset has bands too
            fields["bands"] = [{"name": b} for b in bands]
        item.add_asset(key, pystac.Asset(href=str(a["href"]), media_type=a.get("type"), roles=list(a["roles"]),
                                         title=a.get("title"), extra_fields=fields))
    item.set_self_href(str(out / "mlm.json"))
    item.make_asset_hrefs_relative()
    path = out / "mlm.json"
    item.save_object(include_self_link=False, stac_io=atomic_stac_io())
    return path


def segmentation_output(tile: int) -> dict[str, Any]:
    return {"name": "classes", "tasks": ["semantic-segmentation"],
            "result": {"shape": [-1, len(CLASS_NAMES), tile, tile], "dim_order": ["batch", "channel", "height",
                                                                                   "width"],
                       "data_type": "float32"},
            "description": "logits per class; argmax = class index 0..6 (255 = nodata in the masks)",
            "classification:classes": mlm_classes()}
