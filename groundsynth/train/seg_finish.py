"""After the segmenter's fit (rank 0): per-epoch scores, the best model exported for the segformer
engine, the test evaluation (test masks or a label raster), OUT/mlm.json."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from groundsynth.request.errors import InvalidArgument


def epoch_scores_callback(result: Any):
    from lightning.pytorch.callbacks import Callback

    class EpochScores(Callback):
        """Collects val macro-F1 per epoch and the best epoch into the TrainResult."""

        def on_validation_epoch_end(self, trainer, pl_module) -> None:
            f1 = float(trainer.callback_metrics.get("val_macro_f1", 0.0))
            if not result.val_f1 or f1 > max(result.val_f1):
                result.best_epoch = len(result.val_f1) + 1
            result.val_f1.append(f1)

    return EpochScores()


def label_truth(labels: str, samples: Sequence[Any]) -> list[np.ndarray]:
    """Class masks of a label raster (WorldCover codes) over each sample's image footprint."""
    import rasterio

    from groundsynth.tiling.labels import read_labels

    out = []
    for s in samples:
        if s.image_path.suffix.lower() not in (".tif", ".tiff"):
            raise InvalidArgument("--labels needs the georeferenced GeoTIFF tiles (4 channels / --channels 4)",
                                  "--labels")
        with rasterio.open(s.image_path) as src:
            out.append(read_labels(labels, src.crs, src.transform, (src.height, src.width)))
    return out


def evaluate(task, ds: Any, samples: Sequence[Any], batch_size: int, labels: str | None) -> dict:
    from groundsynth.metrics.segmentation import ConfusionAccumulator
    from groundsynth.train.segmenter import predict

    x, y = ds.arrays(samples)
    truth = label_truth(labels, samples) if labels else list(y)
    acc = ConfusionAccumulator()
    for t, p in zip(truth, predict(task, x, batch_size), strict=True):
        acc.add(t, p)
    return acc.scores()


def export_model(cfg: Any, task: Any, out: Path) -> None:
    """save_pretrained (hf-segformer) with the normalisation and class names the engine needs."""
    if cfg.arch != "hf-segformer":
        return
    model = task.model
    model.config.image_mean = [float(v) for v in task.mean.flatten()]
    model.config.image_std = [float(v) for v in task.std.flatten()]
    model.save_pretrained(str(out))


def finish_segmenter(cfg: Any, ds: Any, task: Any, result: Any, train_tiles: int,
                     log: Callable[[str], None]) -> None:
    from groundsynth.train.mlm import segmentation_output, write_mlm_item
    from groundsynth.train.seg_task import SegmenterTask
    from groundsynth.train.segmenter import format_scores

    out = result.out
    import torch

    device = "cuda" if cfg.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu"
    best = SegmenterTask.load_from_checkpoint(result.checkpoint, map_location=device) if result.checkpoint else task
    export_model(cfg, best, out)
    test_rows = ds.select("test", "real")
    if test_rows:
        result.test = evaluate(best, ds, test_rows, cfg.batch_size, cfg.labels)
        what = f"label raster {Path(cfg.labels).name}" if cfg.labels else "test masks"
        log(format_scores(f"test split ({len(test_rows)} real tiles, against the {what}), best epoch "
                          f"{result.best_epoch}:", result.test))
    else:
        log("no test rows: test scores skipped")
    tile = int(ds.load(test_rows[0] if test_rows else ds.samples[0])[1].shape[-1])
    assets = {"checkpoint": {"href": result.checkpoint, "type": "application/octet-stream",
                             "roles": ["mlm:checkpoint"], "title": "Lightning checkpoint (SegmenterTask)"}}
    if cfg.arch == "hf-segformer":
        assets["model"] = {"href": str(out / "model.safetensors"), "type": "application/octet-stream",
                           "roles": ["mlm:model", "mlm:weights"], "mlm:artifact_type": "safetensors",
                           "title": "SegFormer weights (transformers save_pretrained; config.json beside it)"}
    else:
        assets["checkpoint"].update(roles=["mlm:model", "mlm:checkpoint"], **{"mlm:artifact_type":
                                                                               "torch.save"})
    n_params = sum(p.numel() for p in best.parameters())
    write_mlm_item(out, f"groundsynth-segmenter-{cfg.selection.replace('+', '-')}", cfg.arch if cfg.arch != "hf-segformer"
                   else "SegFormer", ["semantic-segmentation"], ds.channels, tile,
                   [float(v) for v in best.mean.flatten()], [float(v) for v in best.std.flatten()],
                   segmentation_output(tile), assets, n_params,
                   {"loss": "multiclass dice", "optimizer": "AdamW", "lr": cfg.lr, "weight_decay": cfg.weight_decay,
                    "batch_size": cfg.batch_size, "epochs": cfg.epochs, "patience": cfg.patience,
                    "early_stop": "val macro-F1", "augment": cfg.augment, "seed": cfg.seed},
                   {"groundsynth:selection": cfg.selection, "groundsynth:train_tiles": train_tiles,
                    "groundsynth:test": {k: result.test.get(k) for k in ("macro_f1", "miou", "accuracy")}})
