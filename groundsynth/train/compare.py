"""`--compare`: the original's downstream experiment. Train the segmenter on real, real+synthetic and
synthetic-only rows over several seeds (each arm and seed into OUT/<arm>/seed<k>), evaluate every
run on the same real test tiles (or label raster), and report macro F1 and mIoU per arm as the
mean with a 95 % confidence interval over seeds (Student t, n - 1 degrees of freedom).
"""
from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ARMS = ("real", "real+synthetic", "synthetic")
METRICS = ("macro_f1", "miou", "accuracy")


def mean_ci(values: Sequence[float | None], level: float = 0.95) -> dict[str, Any]:
    """{"mean", "ci_low", "ci_high", "n", "values"}; no interval for fewer than 2 values."""
    vals = [float(v) for v in values if v is not None and math.isfinite(v)]
    n = len(vals)
    out: dict[str, Any] = {"n": n, "values": vals, "mean": sum(vals) / n if n else None, "ci_low": None,
                           "ci_high": None}
    if n >= 2:
        from scipy import stats

        mean = out["mean"]
        sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1))
        half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
        out["ci_low"], out["ci_high"] = mean - half, mean + half
    return out


def _fmt(s: dict[str, Any]) -> str:
    if s["mean"] is None:
        return f"{'n/a':>20}"
    if s["ci_low"] is None:
        return f"{100 * s['mean']:7.2f} (one seed)    "
    return f"{100 * s['mean']:7.2f} [{100 * s['ci_low']:5.2f}, {100 * s['ci_high']:5.2f}]"


def compare(base: Any, seeds: Sequence[int], arms: Sequence[str] = ARMS,
            train: Callable[..., Any] | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every arm x seed from the SegmenterTrainConfig `base`; returns (and writes) comparison.json."""
    from groundsynth.train.segmenter import train_segmenter

    train = train or train_segmenter
    out = Path(base.out)
    runs: dict[str, list[dict]] = {a: [] for a in arms}
    for arm in arms:
        for seed in seeds:
            log(f"== {arm}, seed {seed} ==")
            cfg = dataclasses.replace(base, selection=arm, seed=seed, out=str(out / arm / f"seed{seed}"))
            res = train(cfg, log=log)
            if res.rank != 0:
                return {}
            runs[arm].append(res.test)
    summary: dict[str, dict[str, Any]] = {
        arm: {"seeds": list(seeds), **{m: mean_ci([r.get(m) for r in rs if r]) for m in METRICS}, "runs": rs}
        for arm, rs in runs.items()}
    evaluated = f"label raster {base.labels}" if base.labels else "test split masks (real tiles)"
    log(f"\nsegmentation on the {evaluated}, mean over {len(seeds)} seeds [95% CI], %")
    log(f"{'training data':<16} {'macro F1':>22} {'mIoU':>22}")
    for arm, s in summary.items():
        log(f"{arm:<16} {_fmt(s['macro_f1'])} {_fmt(s['miou'])}")
    out.mkdir(parents=True, exist_ok=True)
    from groundsynth.artefacts.atomic import write_text

    write_text(out / "comparison.json", json.dumps(summary, indent=2))
    return summary
