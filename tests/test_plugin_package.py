"""`make package`'s zip: one top-level folder with metadata, licence, plugin code and the plugin's own
generated gRPC code; importable from the zip alone (no repository on sys.path, no top-level `backend`)."""
from __future__ import annotations

import configparser
import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import package_plugin  # noqa: E402


def test_zip_is_self_contained_and_importable(tmp_path):
    folder = package_plugin.build(tmp_path / "build")
    zpath = package_plugin.make_zip(folder, tmp_path / "dist")
    with zipfile.ZipFile(zpath) as zf:
        names = zf.namelist()
        zf.extractall(tmp_path / "plugins")
    assert {n.split("/")[0] for n in names} == {"groundsynth_plugin"}
    for need in ("metadata.txt", "LICENSE", "__init__.py", "dock.py", "processing/provider.py", "icon.svg",
                 "connection/_generated/groundsynth_pb2.py", "connection/_generated/groundsynth_pb2_grpc.py"):
        assert f"groundsynth_plugin/{need}" in names, need
    assert not any("__pycache__" in n for n in names)
    code = (
        "import importlib.util, sys, groundsynth_plugin, groundsynth_plugin.connection.api as api\n"
        "assert importlib.util.find_spec('backend') is None, 'a top-level backend module is importable'\n"
        "assert 'groundsynth_plugin' in api.pb.__name__, api.pb.__name__\n"
        "assert api.pb.JobSpec(tile_size=64).tile_size == 64\n"
        "import groundsynth_plugin.processing.algorithms as algs\n"
        "print(len(algs.ALGORITHMS), callable(groundsynth_plugin.classFactory))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["QT_QPA_PLATFORM"] = "offscreen"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path / "plugins", env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["5", "True"]


def test_link_points_a_profile_at_the_built_plugin(tmp_path):
    folder = package_plugin.build(tmp_path / "build")
    target = package_plugin.link(folder, tmp_path / "profile" / "python" / "plugins")
    assert target.is_symlink() and (target / "metadata.txt").exists()
    # linking again replaces the link
    assert package_plugin.link(folder, tmp_path / "profile" / "python" / "plugins") == target


def test_metadata_has_the_required_fields():
    cp = configparser.ConfigParser()
    cp.read(ROOT / "metadata.txt")
    g = cp["general"]
    for key in ("name", "qgisMinimumVersion", "description", "about", "version", "author"):
        assert g.get(key), key
    assert g["qgisMinimumVersion"] == "3.22" and g["hasProcessingProvider"] == "yes"
    assert (ROOT / "plugin" / g["icon"]).exists()


def test_metadata_has_no_placeholders_and_allows_qgis_4():
    """No invented addresses (docs/plugin.md says which public URLs do not exist yet); QGIS 4 may load it."""
    text = (ROOT / "metadata.txt").read_text(encoding="utf-8")
    cp = configparser.ConfigParser()
    cp.read_string(text)
    g = cp["general"]
    assert g["qgisMaximumVersion"] == "4.99"
    assert "example." not in text.lower() and "todo" not in text.lower() and "xxx" not in text.lower()
    for key in ("repository", "tracker", "homepage", "email"):
        assert key not in g or "example" not in g[key], key
    assert "GPL-2.0-or-later" in (ROOT / "LICENSE").read_text(encoding="utf-8") or \
        "GNU GENERAL PUBLIC LICENSE" in (ROOT / "LICENSE").read_text(encoding="utf-8")


def test_provider_lists_a_full_job_and_each_stage(qgis_processing):
    from qgis.core import QgsApplication

    from plugin.processing.provider import GroundSynthProvider

    provider = GroundSynthProvider()
    assert QgsApplication.processingRegistry().addProvider(provider)
    try:
        ids = sorted(a.id() for a in provider.algorithms())
        assert ids == ["groundsynth:caption", "groundsynth:ground", "groundsynth:runjob", "groundsynth:segment",
                       "groundsynth:synthesise", "groundsynth:writereference"]
        alg = QgsApplication.processingRegistry().algorithmById("groundsynth:segment")
        names = {p.name() for p in alg.parameterDefinitions()}
        assert {"INPUT", "EXTENT", "AOI_LAYER", "RED", "NIR", "ADDRESS", "TOKEN_FILE"} <= names
        assert "VARIANTS" not in names
        full = QgsApplication.processingRegistry().algorithmById("groundsynth:runjob")
        assert {"VARIANTS", "MASK_STRATEGY", "BOOST"} <= {p.name() for p in full.parameterDefinitions()}
        assert {o.name() for o in full.outputDefinitions()} >= {"OUTPUT_DIR", "TILES", "MASK", "REPORT", "JOB_ID"}
    finally:
        QgsApplication.processingRegistry().removeProvider(provider)


def test_both_generated_copies_load_in_one_process_and_the_plugin_records_its_floor():
    """The backend's copy (current grpcio-tools) and the plugin's (the oldest that works, when at hand)
    register the same proto file with identical bytes, so one process can import both."""
    from groundsynth.api.v1.contract import pb as backend_pb
    from plugin.connection import _generated
    from plugin.connection.api import pb as plugin_pb

    assert plugin_pb.DESCRIPTOR.serialized_pb == backend_pb.DESCRIPTOR.serialized_pb
    spec = plugin_pb.JobSpec(tile_size=64, raster_path="/x.tif")
    assert backend_pb.JobSpec.FromString(spec.SerializeToString()).raster_path == "/x.tif"
    assert set(_generated.RUNTIME_FLOOR) == {"grpcio", "protobuf"} and _generated.GRPC_TOOLS_VERSION
    import gen_proto

    if (gen_proto.plugin_tools_dir() / "grpc_tools").is_dir():      # built with the old tools
        assert _generated.GRPC_TOOLS_VERSION == gen_proto.PLUGIN_TOOLS_VERSION
        assert _generated.RUNTIME_FLOOR == gen_proto.RUNTIME_FLOOR
        text = (ROOT / "plugin" / "connection" / "_generated" / "groundsynth_pb2_grpc.py").read_text()
        assert "GRPC_GENERATED_VERSION" not in text            # no runtime version check: old grpcio works


def test_the_zip_carries_the_backend_wheel_help_and_constraints(tmp_path):
    folder = package_plugin.build(tmp_path / "build")
    wheels = list((folder / "wheels").glob("groundsynth-*-py3-none-any.whl"))
    assert len(wheels) == 1 and (folder / "wheels" / "constraints.txt").exists()
    with zipfile.ZipFile(wheels[0]) as whl:
        names = whl.namelist()
    assert "groundsynth/api/v1/_generated/groundsynth_pb2.py" in names and "groundsynth/__main__.py" in names
    assert not any(n.startswith(("tests/", "plugin/")) for n in names)
    assert (folder / "help" / "plugin.md").exists() and (folder / "help" / "screenshot.png").exists()
