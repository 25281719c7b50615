"""Speed and quality of caption/composition, ground/composition and the report on the demo scene.

    .venv/bin/python bench/caption_ground_report_speed.py [--tile 256] [--reference spectral]

Prints ms per tile for captioning, grounding (claim checks alone and with the
re-segmentation), the report's seconds for the whole job, the mean grounding
score and the caption redundancy. Targets (issue 3): caption and ground a few
ms per tile (+ ~30 ms re-segmentation), report < 10 % of pipeline time, whole
pipeline >= 5 tiles/s on 2 cores.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from affine import Affine

    from groundsynth.artefacts.records import TileRecord
    from groundsynth.artefacts.tiles import write_image_tile, write_mask_tile
    from groundsynth.demo.scene import demo_raster
    from groundsynth.engines import engines, get_engine, register
    from groundsynth.engines.base import EngineContext, GroundInput, TileInput
    from groundsynth.engines.builtin.composition_caption import CompositionCaptioner
    from groundsynth.engines.builtin.composition_ground import CompositionGrounder, score_caption
    from groundsynth.metrics.sets import caption_redundancy
    from groundsynth.report import write_report
    from groundsynth.request.classes import composition
    from groundsynth.request.seeds import derive_seed
    from groundsynth.request.spec import Aoi, BandMapping, JobSpec
    from groundsynth.tiling.source import SourceRaster, Stretch

    ap = argparse.ArgumentParser()
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--reference", default="spectral")
    args = ap.parse_args()
    reference = args.reference
    if reference not in engines("segment"):
        from tests.test_grounding import IndexSegmenter

        register(IndexSegmenter)
        print(f"segment/{reference} is not registered; using the test rule segmenter {IndexSegmenter.name}")
        reference = IndexSegmenter.name

    work = Path(tempfile.mkdtemp(prefix="gs-bench-"))
    path = demo_raster(work)
    size = args.tile
    tiles, transforms = [], []
    with SourceRaster(path, BandMapping()) as src:
        stretch = Stretch.from_sample(*src.read_sample((0, 0, src.width, src.height)))
        for row in range(0, src.height - size + 1, size):
            for col in range(0, src.width - size + 1, size):
                data, valid = src.read_window(col, row, size, size)
                tiles.append(TileInput(f"r{row // size:04d}_c{col // size:04d}", stretch.apply(data), valid))
                transforms.append(src.transform * Affine.translation(col, row))
        crs = src.crs
    n = len(tiles)
    ctx = EngineContext(seed=0, extra={"stretch": stretch.to_dict()})   # as the pipeline passes it
    seg = get_engine("segment", reference)({}, ctx)
    t0 = time.perf_counter()
    masks = seg.segment(tiles)
    t_seg = time.perf_counter() - t0
    cap = CompositionCaptioner({}, ctx)
    t0 = time.perf_counter()
    caps = cap.caption([t.image for t in tiles], masks, [derive_seed(0, t.tile_id, "caption") for t in tiles])
    t_cap = time.perf_counter() - t0
    t0 = time.perf_counter()
    for m, cs in zip(masks, caps, strict=True):
        for c in cs:
            score_caption(c, m)
    t_claims = time.perf_counter() - t0
    g = CompositionGrounder({"reference_segmenter": reference}, ctx)
    items = [GroundInput(t.tile_id, "real", t.image, t.valid, m, c) for t, m, c in zip(tiles, masks, caps, strict=True)]
    t0 = time.perf_counter()
    scores = g.ground(items)
    t_ground = time.perf_counter() - t0

    job = work / "job"
    records = []
    for t, m, c, s, tr in zip(tiles, masks, caps, scores, transforms, strict=True):
        rec = TileRecord(tile_id=t.tile_id, kind="real", row=int(t.tile_id[1:5]), col=int(t.tile_id[7:11]),
                         crs=crs.to_wkt(), width=size, height=size, composition=composition(m).tolist(),
                         captions=c, metrics=s, artefacts={"image": f"real/image/{t.tile_id}.tif",
                                                           "mask": f"real/mask/{t.tile_id}.tif"})
        write_image_tile(job / rec.artefacts["image"], t.image, t.valid, tr, crs)
        write_mask_tile(job / rec.artefacts["mask"], m, tr, crs)
        records.append(rec)
    spec = JobSpec(aoi=Aoi(bbox=(0, 0, 1, 1)), raster_path=str(path), tile_size=size).normalised()
    t0 = time.perf_counter()
    write_report(job, spec, records, {"job_id": "bench", "seed": 0, "set_metrics": g.summarise(records)})
    t_report = time.perf_counter() - t0

    all_caps = [c for cs in caps for c in cs]
    print(f"demo scene: {n} tiles of {size} px, reference segmenter {reference}")
    print(f"segment ({reference}):       {1000 * t_seg / n:7.1f} ms/tile")
    print(f"caption/composition:        {1000 * t_cap / n:7.1f} ms/tile")
    print(f"claim checks (5 captions):  {1000 * t_claims / n:7.1f} ms/tile")
    print(f"ground/composition (+reseg):{1000 * t_ground / n:7.1f} ms/tile")
    print(f"report.json + report.html:  {t_report:7.2f} s for the job "
          f"({100 * t_report / (n / 5.0):.1f} % of a pipeline at 5 tiles/s)")
    print(f"grounding mean {np.mean([s['grounding'] for s in scores]):.1f}, "
          f"min {np.min([s['grounding'] for s in scores]):.1f}; "
          f"caption redundancy {100 * caption_redundancy(all_caps):.2f} % (original real split 8.01 %)")
    print(f"job dir with report.html: {job}")
    for c in caps[len(caps) // 2]:
        print("  example:", c)


if __name__ == "__main__":
    main()
