"""Accuracy of the `segment/spectral` rules on the demo reference sample, before and after issue 11.

    PYTHONPATH=$PWD .venv/bin/python bench/accuracy.py [--split test] [--replicates 2000]

Before = the rules and the 2/98 % stretch frozen in bench/spectral_legacy.py (RGB-NIR);
after  = the package's segment/spectral with its defaults and the job stretch (RGB-NIR + SWIR, the
         demo raster `make demo` uses), and the same rules without SWIR (RGB-NIR only).
Both maps are computed tile by tile exactly as the pipeline does (bench/scene_map.py). The sample
is groundsynth/demo/reference_points.geojson (docs/reference-sample.md); the rules were tuned on its
"tune" split only, so the "test" split (default) is the honest estimate. Printed: n, overall accuracy
and macro F1 with percentile-bootstrap 95 % intervals (resampling within the sample's strata),
water's user's and producer's accuracy with intervals, and, for scale, two trivial maps: every pixel
the most common reference class, and every pixel drawn at random from the reference class shares
(seeded, median of 3 draws). Deterministic: the map is computed once per configuration (no timing).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from scene_map import legacy_map, scene_map  # noqa: E402

from groundsynth.demo.scene import demo_raster  # noqa: E402
from groundsynth.metrics.accuracy import bootstrap_ci, error_matrix, sample_accuracy  # noqa: E402
from groundsynth.request.classes import CLASS_NAMES  # noqa: E402
from groundsynth.request.spec import BandMapping, ReferenceSamples  # noqa: E402

SAMPLE = ROOT / "groundsynth" / "demo" / "reference_points.geojson"
WATER = CLASS_NAMES.index("Water")


def spectral_map(raster: Path, swir: bool) -> np.ndarray:
    """The package's spectral segmenter over the whole scene, through the job stretch."""
    from groundsynth.engines.base import EngineContext, TileInput
    from groundsynth.engines.builtin.spectral import Spectral

    bands = BandMapping(1, 2, 3, 4) if swir else BandMapping(1, 2, 3, 4, -1, -1)
    holder: dict = {}

    def segment(img: np.ndarray, valid: np.ndarray) -> np.ndarray:
        eng = holder["engine"]
        return eng.segment([TileInput("t", img[:4], valid, swir=img[4:] if swir else None)])[0]

    def make(stretch: dict) -> None:
        roles = ["swir1", "swir2"] if swir else []
        holder["engine"] = Spectral({}, EngineContext(extra={"stretch": stretch, "swir_roles": roles}))

    return scene_map(raster, segment, bands=bands, on_stretch=make)[0]


def sample_at(raster: Path):
    import rasterio

    from groundsynth.tiling.reference import load_reference

    with rasterio.open(raster) as ds:
        return load_reference(ReferenceSamples(path=str(SAMPLE)), ds.crs.to_wkt(), ds.transform, ds.width, ds.height)


def line(name: str, mapped: np.ndarray, ref: np.ndarray, strata: np.ndarray, reps: int) -> str:
    s = sample_accuracy(error_matrix(mapped, ref))
    ci = bootstrap_ci(mapped, ref, strata=strata, replicates=reps, seed=11)
    w = s["per_class"]["Water"]

    def f(v: float | None) -> str:
        return "  -  " if v is None else f"{100 * v:5.1f}"

    def c(pair: list) -> str:
        return "[  -  ,  -  ]" if pair[0] is None else f"[{100 * pair[0]:5.1f}, {100 * pair[1]:5.1f}]"

    return (f"{name:34s} n={s['n']:3d}  OA {f(s['overall_accuracy'])} {c(ci['oa'])}  macro F1 {f(s['macro_f1'])} "
            f"{c(ci['macro_f1'])}  Water UA {f(w['users_accuracy'])} {c(ci['ua'][WATER])}  "
            f"PA {f(w['producers_accuracy'])} {c(ci['pa'][WATER])}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", default="test", choices=("test", "tune", "all"))
    ap.add_argument("--replicates", type=int, default=2000)
    ap.add_argument("--matrix", action="store_true", help="also print the error matrices (rows map, cols reference)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        raster = demo_raster(Path(tmp), swir=True)
        sample = sample_at(raster)
        keep = np.ones(len(sample), bool) if args.split == "all" else sample.split == args.split
        s = sample.subset(keep)
        ref, strata = s.cls.astype(np.int64), s.stratum
        maps = {"before (legacy rules, 2/98 % stretch)": legacy_map(raster),
                "after, RGB-NIR + SWIR (make demo)": spectral_map(raster, True),
                "after, RGB-NIR only": spectral_map(raster, False)}
    print(f"demo reference sample, split {args.split!r}: {len(s)} points; 95 % percentile bootstrap, "
          f"{args.replicates} replicates within strata; accuracies in %")
    for name, m in maps.items():
        mapped = m[s.row, s.col].astype(np.int64)
        print(line(name, mapped, ref, strata, args.replicates))
        if args.matrix:
            print(error_matrix(mapped, ref))
    counts = np.bincount(ref, minlength=len(CLASS_NAMES))
    print(line("trivial: all " + CLASS_NAMES[int(counts.argmax())], np.full(ref.size, counts.argmax()), ref, strata,
               args.replicates))
    draws = [np.random.default_rng(k).choice(len(CLASS_NAMES), ref.size, p=counts / counts.sum()) for k in range(3)]
    oas = [np.mean(d == ref) for d in draws]
    print(line("trivial: random by class shares", draws[int(np.argsort(oas)[1])], ref, strata, args.replicates))


if __name__ == "__main__":
    main()
