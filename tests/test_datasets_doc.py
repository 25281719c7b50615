"""docs/datasets.md's TorchGeo training snippet runs as written (extracted from the doc, so it cannot rot)."""
from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "datasets.md"


def snippet() -> str:
    text = DOC.read_text(encoding="utf-8")
    m = re.search(r"<!-- snippet: torchgeo-training -->\s*```python\n(.*?)```", text, re.S)
    assert m, "the torchgeo-training snippet is missing from docs/datasets.md"
    return m.group(1)


def test_the_doc_snippet_trains_a_torchgeo_model_on_an_export(tmp_path):
    from groundsynth.export.dataset import export_dataset
    from tests.test_datasets import run_overlap_job

    export_dataset(run_overlap_job(tmp_path), tmp_path / "dataset")
    code = snippet()
    assert len([line for line in code.splitlines() if line.strip()]) <= 12          # "about ten lines"
    code, n = re.subn(r'^root = ".*"$', f"root = {str(tmp_path / 'dataset')!r}", code, flags=re.M)
    assert n == 1
    ns: dict = {}
    exec(compile(code, str(DOC), "exec"), ns)
    trainer, task = ns["trainer"], ns["task"]
    assert trainer.state.finished and trainer.global_step > 0
    assert "val_loss" in trainer.callback_metrics and "train_loss" in trainer.callback_metrics
    assert type(task).__name__ == "SemanticSegmentationTask"
