"""Shared helpers of the executor and scaling benches: statistics, the demo job, Ray kept local.

Nothing here prints a number by itself; the benches do.
"""
from __future__ import annotations

import os
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def spread(values: Sequence[float]) -> tuple[float, float, float]:
    """(median, min, max)."""
    return statistics.median(values), min(values), max(values)


def fmt_spread(values: Sequence[float], unit: str = "", digits: int = 2) -> str:
    med, lo, hi = spread(values)
    return f"{med:.{digits}f}{unit} [{lo:.{digits}f}..{hi:.{digits}f}]"


def machine() -> str:
    """One line naming the machine the numbers were taken on (cores, memory, load)."""
    import platform

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        pass
    return (f"{platform.node()}: {cores} usable cores ({model or platform.processor()}){mem}, "
            f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min)")


def keep_ray_local(base: Path) -> dict[str, str]:
    """Environment for a local Ray cluster kept under `base` (sessions, its auth token) and on loopback.
    Set before Ray is imported; inherited by the processes Ray starts."""
    env = {"RAY_TMPDIR": str(base / "ray-tmp"), "HOME": str(base / "ray-home"),
           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    for key in ("RAY_TMPDIR", "HOME"):
        Path(env[key]).mkdir(parents=True, exist_ok=True)
    os.environ.update(env)
    return env


def square_aoi(raster: Path, tiles: int, tile_size: int = 256) -> tuple[float, float, float, float]:
    """World bbox of `tiles` x `tiles` tiles from the raster's top-left corner."""
    import rasterio

    with rasterio.open(raster) as src:
        t = src.transform
        n = tiles * tile_size
        if n > min(src.width, src.height):
            raise SystemExit(f"{tiles} x {tiles} tiles of {tile_size} px do not fit in {raster.name} "
                             f"({src.width} x {src.height} px)")
    x0, y0 = t * (0, 0)
    x1, y1 = t * (n, n)
    return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
