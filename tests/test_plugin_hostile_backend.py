"""Remote mode stays inside its cache (issue 9 item 7): a hostile backend, a real gRPC server in this process
that serves the plugin's contract, names job files and VRT sources outside the cache (`..`, absolute, a
drive letter, a symlink, a DOCTYPE with entities, a job id with `..`). Nothing is written or opened outside
the cache, and the dock says why."""
from __future__ import annotations

from concurrent import futures
from pathlib import Path

import grpc
import pytest
from qgis.core import Qgis

from plugin.connection.api import pb, rpc
from plugin.dock import GroundSynthDock
from plugin.layers.results import ArtefactSource
from plugin.layers.safe_files import UnsafeJobFile, inside, relative_parts, vrt_sources
from plugin.settings import PluginSettings
from tests.plugin_fixtures import bar_messages, clear_bar, free_port

ENTITY_VRT = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
              b'<VRTDataset><VRTRasterBand><SimpleSource><SourceFilename relativeToVRT="1">&e;</SourceFilename>'
              b'</SimpleSource></VRTRasterBand></VRTDataset>')


def vrt(*sources: str, relative: str = "1") -> bytes:
    parts = "".join(f'<SimpleSource><SourceFilename relativeToVRT="{relative}">{s}</SourceFilename></SimpleSource>'
                    for s in sources)
    return f"<VRTDataset><VRTRasterBand>{parts}</VRTRasterBand></VRTDataset>".encode()


class Hostile(rpc.GroundSynthServicer):
    """Streams a finished job whose layers point outside; serves b'PWNED' (or a hostile VRT) for any file."""

    def __init__(self, outside: Path, job_id: str = "hostile1"):
        self.outside = outside
        self.job_id = job_id
        self.fetched: list[str] = []
        self.files = {"real_mask.vrt": vrt("../../../" + outside.name + "/from_vrt.tif"),
                      "synthetic_mask_v1.vrt": vrt(str(outside / "abs_from_vrt.tif"), relative="0"),
                      "synthetic_cond_mask_v1.vrt": ENTITY_VRT}

    def layers(self):
        return [("real_mask", "real_mask.vrt"), ("synthetic_mask_v1", "synthetic_mask_v1.vrt"),
                ("synthetic_cond_mask_v1", "synthetic_cond_mask_v1.vrt"),
                ("real_image", "../../../" + self.outside.name + "/layer.tif"),
                ("synthetic_image_v1", str(self.outside / "absolute.tif")),
                ("synthetic_image_v2", "C:\\Windows\\evil.tif"), ("synthetic_image_v3", "link/evil.tif")]

    def Watch(self, request, context):
        yield pb.JobEvent(job_id=self.job_id, seq=1, accepted=pb.Accepted(job_id=self.job_id, tile_count=1,
                                                                            output_dir="/nonexistent/on/this/host"))
        seq = 2
        for kind, path in self.layers():
            yield pb.JobEvent(job_id=self.job_id, seq=seq, layer=pb.LayerReady(layer=kind, path=path, format="vrt"))
            seq += 1
        yield pb.JobEvent(job_id=self.job_id, seq=seq, report=pb.ReportReady(html_path="../../report.html"))
        yield pb.JobEvent(job_id=self.job_id, seq=seq + 1, done=pb.Done(state=pb.JobState.Value("SUCCEEDED")))

    def Submit(self, request, context):
        yield from self.Watch(request, context)

    def FetchArtefact(self, request, context):
        self.fetched.append(request.path)
        data = self.files.get(request.path, b"PWNED")
        yield pb.ArtefactChunk(data=data, offset=0, total_size=len(data))

    def Capabilities(self, request, context):
        return pb.CapabilitiesResponse()


@pytest.fixture
def hostile(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    servicer = Hostile(outside)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    rpc.add_GroundSynthServicer_to_server(servicer, server)
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    servicer.address = f"127.0.0.1:{port}"
    yield servicer
    server.stop(0)


def files_outside(tmp_path: Path, cache: Path) -> list[Path]:
    return [p for p in tmp_path.rglob("*") if p.is_file() and not p.is_relative_to(cache)]


def test_dock_in_remote_mode_writes_nothing_outside_its_cache(hostile, tmp_path, qgis_iface, qgis_new_project,
                                                              qtbot):
    cache = tmp_path / "deep" / "er" / "cache"
    (cache / hostile.job_id).mkdir(parents=True)
    (cache / hostile.job_id / "link").symlink_to(hostile.outside, target_is_directory=True)
    settings = PluginSettings(address=hostile.address, workspace=str(tmp_path / "ws"), python="",
                              cache_dir=str(cache), score="grounding", tile_size=128)
    dock = GroundSynthDock(qgis_iface, settings=settings)
    qtbot.addWidget(dock)
    clear_bar(qgis_iface)
    dock.jobs_panel.fetch_check.setChecked(True)
    try:
        with qtbot.waitSignal(dock.job_finished, timeout=20000):
            dock.reload_job(hostile.job_id)
    finally:
        dock.shutdown()
    assert files_outside(tmp_path, cache) == []
    assert list(hostile.outside.iterdir()) == [], "nothing reaches the folder the symlink points at"
    # only the VRTs themselves were fetched: no layer or source outside the cache was asked for
    assert sorted(hostile.fetched) == ["real_mask.vrt", "synthetic_cond_mask_v1.vrt", "synthetic_mask_v1.vrt"]
    job_cache = cache / hostile.job_id
    assert sorted(p.name for p in job_cache.iterdir()) == ["link"], "refused VRTs are not left for GDAL"
    unsafe = [m for m in bar_messages(qgis_iface, Qgis.MessageLevel.Critical) if m.startswith("Unsafe job file:")]
    text = "\n".join(unsafe)
    assert len(unsafe) == 8, unsafe          # 3 VRTs, 4 layer paths, the report
    for expected in ("climbs out of the job's folder", "is an absolute path", "through a symbolic link",
                     "declares a DOCTYPE or entities", "not relative to the VRT", "../../report.html",
                     "C:\\\\Windows\\\\evil.tif"):
        assert expected in text, (expected, text)
    assert dock.results is not None and dock.results.layers == {}


def test_a_job_id_that_climbs_out_is_refused(tmp_path):
    with pytest.raises(UnsafeJobFile, match="not a plain folder name"):
        ArtefactSource("../escape", "/nonexistent", client=object(), cache_dir=tmp_path / "cache")
    with pytest.raises(UnsafeJobFile):
        ArtefactSource("a/b", "/nonexistent", client=object(), cache_dir=tmp_path / "cache")


@pytest.mark.parametrize("rel", ["", "/etc/passwd", "\\\\server\\share\\x.tif", "D:/x.tif", "d:x.tif", "a/../../x",
                                 "..", "a\\..\\..\\x", "~/x", "a\0b", "/vsicurl/http://127.0.0.1/x.tif"])
def test_names_that_leave_the_folder_are_refused(rel):
    with pytest.raises(UnsafeJobFile):
        relative_parts(rel)


def test_plain_names_stay_and_symlinks_out_are_caught(tmp_path):
    (tmp_path / "cache").mkdir()
    assert inside(tmp_path / "cache", "tiles/./mask/a.tif") == tmp_path / "cache" / "tiles" / "mask" / "a.tif"
    (tmp_path / "cache" / "in").mkdir()
    (tmp_path / "cache" / "alias").symlink_to(tmp_path / "cache" / "in")
    assert inside(tmp_path / "cache", "alias/x.tif", resolve=True)        # a link that stays inside is fine
    (tmp_path / "cache" / "out").symlink_to(tmp_path)
    with pytest.raises(UnsafeJobFile, match="symbolic link"):
        inside(tmp_path / "cache", "out/x.tif", resolve=True)


def test_vrt_sources_are_parsed_safely(tmp_path):
    p = tmp_path / "m.vrt"
    p.write_bytes(vrt("tiles/mask/a.tif", "tiles/mask/b.tif"))
    assert vrt_sources(p) == ["tiles/mask/a.tif", "tiles/mask/b.tif"]
    for bad, why in ((ENTITY_VRT, "DOCTYPE"), (b"<!doctype x><VRTDataset/>", "DOCTYPE"),
                     (b"<VRTDataset><oops></VRTDataset>", "not valid XML"),
                     (vrt("/etc/passwd", relative="0"), "not relative"), (vrt("../x.tif"), "climbs out")):
        p.write_bytes(bad)
        with pytest.raises(UnsafeJobFile, match=why):
            vrt_sources(p)


def test_processing_refuses_job_files_outside_its_cache(hostile, tmp_path, qgis_processing):
    import processing
    from qgis.core import QgsApplication, QgsProcessingException

    from plugin.processing.provider import GroundSynthProvider
    from tests.plugin_fixtures import sample_raster

    provider = GroundSynthProvider()
    QgsApplication.processingRegistry().addProvider(provider)
    (tmp_path / "token").write_text("t")
    cache = tmp_path / "a" / "b" / "cache"        # deep enough that an escape would land inside tmp_path
    try:
        with pytest.raises(QgsProcessingException, match="Unsafe job file: .*climbs out"):
            processing.run("groundsynth:segment", {
                "INPUT": str(sample_raster(tmp_path / "data", size=64)), "RED": 1, "GREEN": 2, "BLUE": 3, "NIR": 4,
                "TILE_SIZE": 64, "ADDRESS": hostile.address, "TOKEN_FILE": str(tmp_path / "token"),
                "CACHE_DIR": str(cache)})
    finally:
        QgsApplication.processingRegistry().removeProvider(provider)
    assert list(hostile.outside.iterdir()) == [] and not (tmp_path / "report.html").exists()
    assert [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix in (".tif", ".vrt", ".html")
            and not p.is_relative_to(cache) and p.parent.name != "data"] == []
