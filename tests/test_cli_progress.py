"""The CLI's progress bar (groundsynth.cli.run.ProgressBar): stages named as the job moves, and into a file
or a pipe (a CI log) a handful of writes, not one per tile."""
import io
import sys
from types import SimpleNamespace as NS

from groundsynth.cli.run import ProgressBar
from groundsynth.pipeline.events import TileDone


def _tile(kind):
    return TileDone(NS(kind=kind))


def test_into_a_pipe_the_bar_writes_once_per_stage_not_once_per_tile(monkeypatch):
    out = io.StringIO()                          # not a terminal
    monkeypatch.setattr(sys, "stderr", out)
    bar = ProgressBar()
    bar("accepted", NS(tile_count=200))
    for _ in range(200):
        bar("tile", _tile("real"))
    bar("tile", _tile("synthetic"))              # the first synthetic tile, before any synthesise progress
    assert bar.stage == "synthetic tiles"
    bar("progress", NS(stage="synthesise", done=8, total=400))
    for _ in range(399):
        bar("tile", NS(kind="synthetic"))        # a pb TileResult has .kind itself
    bar("report", NS())
    bar.close()
    writes = [w for w in out.getvalue().replace("\n", "\r").split("\r") if w.strip()]
    assert len(writes) <= 8, writes              # one per stage, the first and the last (it was one per event)
    assert "real tiles" in out.getvalue() and "synthetic tiles" in out.getvalue()
    assert "report written" in writes[-1] and "600/600" in writes[-1]
    # the synthetic stage is never drawn against the real tiles' total
    assert not [w for w in writes if "synthetic tiles" in w and "/200" in w], writes


def test_synthetic_tiles_before_their_total_are_counted_when_it_comes(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    bar = ProgressBar()
    bar("accepted", NS(tile_count=4))
    for _ in range(4):
        bar("tile", _tile("real"))
    for _ in range(3):
        bar("tile", _tile("synthetic"))
    assert bar.stage == "synthetic tiles" and bar.bar.n == 4
    bar("progress", NS(stage="synthesise", done=3, total=8))
    assert (bar.bar.n, bar.bar.total) == (7, 12)
    bar("tile", _tile("synthetic"))
    bar.close()
    assert bar.bar.n == 8
