"""Tooling of the demo scene's reference sample (docs/reference-sample.md): draw, look, build.

    python scripts/reference_sample.py draw   --out scripts/reference_sample/points.csv
    python scripts/reference_sample.py sheets --points scripts/reference_sample/points.csv --out /tmp/sheets
    python scripts/reference_sample.py build  --points scripts/reference_sample/points.csv \
        --labels scripts/reference_sample/labels.csv --out groundsynth/demo/reference_points.geojson

draw    stratified random sample of pixels of the demo scene, strata = the class map of the rules
        before issue 11 (bench/scene_map.legacy_map), ALLOCATION points per stratum, and in each
        stratum a random third marked "test" (never used for rule tuning), the rest "tune". Seeded.
sheets  contact sheets to label by eye, blind to the map: per point a 64 x 64 px chip (640 m) in true
        colour, NIR false colour (NIR, R, G) and SWIR false colour (SWIR1, NIR, R), x3, the point's
        10 m pixel inside a yellow ring, and a 320 px true-colour context with the chip outlined.
        Display stretches are fixed for the whole scene (so brightness is comparable between chips).
zoom    close-ups (24 px at x8, the point's pixel outlined) of the points named, for hard cases.
build   points + labels (id, class, confidence, note) -> GeoJSON in EPSG:4326 (pixel centres), one
        feature per point with id, class (name), code (WorldCover), confidence, note, split,
        stratum, stratum_size (pixels of the stratum in the sampling frame), labeller, date.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

ALLOCATION = {"Water": 75, "Crop": 70, "Grass": 60, "Tree": 60, "Built-up": 50, "Barren": 50, "Shrub": 20}
SEED = 20261202
CHIP, ZOOM, CONTEXT = 64, 3, 320
WORLDCOVER_CODE = {"Tree": 10, "Shrub": 20, "Grass": 30, "Crop": 40, "Built-up": 50, "Barren": 60, "Water": 80}


def _raster(data_dir: Path) -> Path:
    from groundsynth.demo.scene import demo_raster

    return demo_raster(data_dir, swir=True)


def draw(args: argparse.Namespace) -> None:
    import rasterio
    from scene_map import legacy_map

    from groundsynth.request.classes import CLASS_NAMES, NODATA

    raster = _raster(args.data)
    strata = legacy_map(raster)
    rng = np.random.default_rng(args.seed)
    with rasterio.open(raster) as ds:
        t = ds.transform
    rows = []
    for name, n in ALLOCATION.items():
        k = CLASS_NAMES.index(name)
        idx = np.flatnonzero(strata.ravel() == k)
        pick = rng.choice(idx, size=n, replace=False)
        test = set(rng.choice(n, size=round(n / 3), replace=False).tolist())
        for j, flat in enumerate(pick):
            r, c = divmod(int(flat), strata.shape[1])
            x, y = t * (c + 0.5, r + 0.5)
            rows.append({"stratum": name, "stratum_size": int(idx.size), "row": r, "col": c, "x": x, "y": y,
                         "split": "test" if j in test else "tune"})
    assert not (strata == NODATA).all()
    order = rng.permutation(len(rows))            # ids in random order: sheets do not group strata
    out = [dict(id=f"p{i + 1:03d}", **rows[j]) for i, j in enumerate(order)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(out[0]))
        w.writeheader()
        w.writerows(out)
    print(f"{len(out)} points -> {args.out}")


def _display(raw: np.ndarray) -> dict[str, np.ndarray]:
    """Whole-scene fixed display stretches (1st-99th percentile of the scene's pixels per band)."""
    def scale(bands, lo_hi):
        st = np.stack([raw[b] for b in bands]).astype(np.float32)
        lo = np.array([v[0] for v in lo_hi], np.float32)[:, None, None]
        hi = np.array([v[1] for v in lo_hi], np.float32)[:, None, None]
        return (np.clip((st - lo) / (hi - lo), 0, 1) ** 0.8 * 255).astype(np.uint8).transpose(1, 2, 0)

    pct = [np.percentile(raw[b][:: 4, :: 4], (1, 99.5)) for b in range(raw.shape[0])]
    return {"tc": scale((0, 1, 2), [pct[0], pct[1], pct[2]]), "fc": scale((3, 0, 1), [pct[3], pct[0], pct[1]]),
            "sw": scale((4, 3, 0), [pct[4], pct[3], pct[0]])}


def _chip(img: np.ndarray, r: int, c: int, half: int, zoom: float):
    from PIL import Image

    pad = np.pad(img, ((half, half), (half, half), (0, 0)))
    crop = pad[r:r + 2 * half, c:c + 2 * half]
    size = round(2 * half * zoom)
    return Image.fromarray(crop).resize((size, size), Image.NEAREST if zoom >= 1 else Image.BILINEAR)


def sheets(args: argparse.Namespace) -> None:
    import rasterio
    from PIL import Image, ImageDraw

    with rasterio.open(_raster(args.data)) as ds:
        disp = _display(ds.read())
    with open(args.points) as f:
        pts = list(csv.DictReader(f))
    args.out.mkdir(parents=True, exist_ok=True)
    cell_w, cell_h, per_row = 4 * CHIP * ZOOM + 30, CHIP * ZOOM + 22, 2
    for s in range(0, len(pts), args.per_sheet):
        group = pts[s:s + args.per_sheet]
        nrows = -(-len(group) // per_row)
        sheet = Image.new("RGB", (per_row * cell_w, nrows * cell_h), (40, 40, 40))
        d = ImageDraw.Draw(sheet)
        for i, p in enumerate(group):
            r, c = int(p["row"]), int(p["col"])
            x0, y0 = (i % per_row) * cell_w, (i // per_row) * cell_h
            d.text((x0 + 4, y0 + 4), p["id"], fill=(255, 255, 0))
            for j, key in enumerate(("tc", "fc", "sw")):
                im = _chip(disp[key], r, c, CHIP // 2, ZOOM)
                dd = ImageDraw.Draw(im)
                m = CHIP // 2 * ZOOM
                dd.rectangle([m - 2 * ZOOM, m - 2 * ZOOM, m + 3 * ZOOM - 1, m + 3 * ZOOM - 1], outline=(255, 255, 0))
                sheet.paste(im, (x0 + j * CHIP * ZOOM + 2 * j, y0 + 18))
            ctx = _chip(disp["tc"], r, c, CONTEXT // 2, CHIP * ZOOM / CONTEXT)
            dc = ImageDraw.Draw(ctx)
            k = CHIP * ZOOM / CONTEXT
            lo, hi = (CONTEXT // 2 - CHIP // 2) * k, (CONTEXT // 2 + CHIP // 2) * k
            dc.rectangle([lo, lo, hi, hi], outline=(255, 255, 0))
            sheet.paste(ctx, (x0 + 3 * CHIP * ZOOM + 6, y0 + 18))
        name = args.out / f"sheet_{s // args.per_sheet + 1:02d}.png"
        sheet.save(name)
        print(name)


def zoom(args: argparse.Namespace) -> None:
    """Close-ups (24 px at x8) of a few points, for the hard cases: true, NIR and SWIR false colour."""
    import rasterio
    from PIL import Image, ImageDraw

    with rasterio.open(_raster(args.data)) as ds:
        disp = _display(ds.read())
    with open(args.points) as f:
        pts = {p["id"]: p for p in csv.DictReader(f)}
    half, z = 12, 8
    tiles = []
    for pid in args.ids.split(","):
        r, c = int(pts[pid]["row"]), int(pts[pid]["col"])
        row = Image.new("RGB", (3 * 2 * half * z + 8, 2 * half * z + 16), (40, 40, 40))
        ImageDraw.Draw(row).text((4, 2), pid, fill=(255, 255, 0))
        for j, key in enumerate(("tc", "fc", "sw")):
            im = _chip(disp[key], r, c, half, z)
            ImageDraw.Draw(im).rectangle([half * z, half * z, (half + 1) * z - 1, (half + 1) * z - 1],
                                         outline=(255, 255, 0))
            row.paste(im, (j * (2 * half * z + 4), 16))
        tiles.append(row)
    sheet = Image.new("RGB", (tiles[0].width, sum(t.height for t in tiles)))
    for i, t in enumerate(tiles):
        sheet.paste(t, (0, i * t.height))
    sheet.save(args.out)
    print(args.out)


def build(args: argparse.Namespace) -> None:
    from pyproj import Transformer

    from groundsynth.request.classes import CLASS_NAMES

    with open(args.points) as f:
        pts = {p["id"]: p for p in csv.DictReader(f)}
    with open(args.labels) as f:
        labels = {row["id"]: row for row in csv.DictReader(f)}
    missing = sorted(set(pts) - set(labels))
    if missing:
        raise SystemExit(f"{len(missing)} points have no label: {', '.join(missing[:10])} ...")
    to_ll = Transformer.from_crs("EPSG:32618", "EPSG:4326", always_xy=True)
    feats = []
    for pid, p in pts.items():
        lab = labels[pid]
        if lab["class"] not in CLASS_NAMES:
            raise SystemExit(f"{pid}: unknown class {lab['class']!r}")
        lon, lat = to_ll.transform(float(p["x"]), float(p["y"]))
        feats.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": [round(lon, 8), round(lat, 8)]},
                      "properties": {"id": pid, "class": lab["class"], "code": WORLDCOVER_CODE[lab["class"]],
                                     "confidence": lab["confidence"], "note": lab.get("note", ""),
                                     "split": p["split"], "stratum": p["stratum"],
                                     "stratum_size": int(p["stratum_size"]), "labeller": args.labeller,
                                     "date": args.date}})
    doc = {"type": "FeatureCollection", "name": "reference_points", "features": feats}
    args.out.write_text(json.dumps(doc, indent=None, separators=(",", ":")).replace('},{"type"', '},\n{"type"'))
    print(f"{len(feats)} features -> {args.out}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path("/tmp/groundsynth-demo-data"), help="demo raster cache")
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("draw")
    d.add_argument("--out", type=Path, required=True)
    d.add_argument("--seed", type=int, default=SEED)
    d.set_defaults(func=draw)
    s = sub.add_parser("sheets")
    s.add_argument("--points", type=Path, required=True)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--per-sheet", type=int, default=8)
    s.set_defaults(func=sheets)
    z = sub.add_parser("zoom")
    z.add_argument("--points", type=Path, required=True)
    z.add_argument("--ids", required=True, help="comma-separated point ids")
    z.add_argument("--out", type=Path, required=True)
    z.set_defaults(func=zoom)
    b = sub.add_parser("build")
    b.add_argument("--points", type=Path, required=True)
    b.add_argument("--labels", type=Path, required=True)
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--labeller", default="GroundSynth engineer (visual interpretation)")
    b.add_argument("--date", default="2026-12-02")
    b.set_defaults(func=build)
    args = p.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
