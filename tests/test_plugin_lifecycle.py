"""Load the plugin as QGIS does, start a REAL backend from the dock (QProcess), run a job, unload mid-run:
nothing is left behind (no process, task or thread) and the job is cancelled on the backend."""
from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest
from qgis.core import Qgis, QgsApplication, QgsProject, QgsRasterLayer, QgsSettings

from plugin import classFactory
from plugin.connection.api import BackendClient, state_name
from plugin.tasks import async_call
from tests.plugin_fixtures import bar_messages, clear_bar, sample_raster
from tests.server_fixture import start_server

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:   # a zombie is not alive
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_plugin_starts_a_backend_and_unload_leaves_nothing_behind(qgis_iface, qgis_new_project, qtbot, tmp_path,
                                                                  monkeypatch):
    QgsSettings().remove("groundsynth")      # a failed earlier run may have saved other settings
    workspace = tmp_path / "ws"
    raster = sample_raster(workspace / "data", size=256)
    plugin = classFactory(qgis_iface)
    plugin.initGui()
    try:
        assert QgsApplication.processingRegistry().providerById("groundsynth") is not None
        dock = plugin.dock
        dock.backend_panel.address.setText(f"127.0.0.1:{free_port()}")
        dock.backend_panel.workspace.setFilePath(str(workspace))
        # an existing Python that has the backend (the managed environment: test_plugin_zip_install.py);
        # the test engines come from this checkout
        dock.backend_panel.mode.setCurrentIndex(dock.backend_panel.mode.findData("python"))
        dock.backend_panel.python.setText(sys.executable)
        monkeypatch.setenv("PYTHONPATH", str(ROOT))
        dock.backend_panel.extra_args.setText("--engine-module tests.server_engines --quiet")
        dock.backend_panel.start_button.click()
        assert plugin.backend.is_running()
        pid = int(plugin.backend.process.processId())
        dock.backend_panel.health_timer.setInterval(300)
        qtbot.waitUntil(lambda: dock.backend_panel.health == "up", timeout=40000)
        qtbot.waitUntil(lambda: dock.capabilities is not None, timeout=10000)
        assert dock.backend_panel.token.text() == (workspace / "token").read_text().strip()
        assert not dock.backend_panel.start_button.isEnabled() and dock.backend_panel.stop_button.isEnabled()

        layer = QgsRasterLayer(str(raster), "s2", "gdal")
        QgsProject.instance().addMapLayer(layer)
        dock.input_panel.raster_combo.setLayer(layer)
        dock.area_panel.set_drawn_rectangle(layer.extent(), layer.crs())
        dock.area_panel.tile_size.setValue(32)
        dock.stages_panel.set_engine("segment", "test-bright", {"sleep": "0.2"})    # 64 tiles: ~13 s
        for stage in ("synthesise", "caption", "ground"):
            dock.stages_panel.set_engine(stage, {"synthesise": "test-palette", "caption": "test-count",
                                    "ground": "test-agree"}[stage], enabled=False)
        task = dock.run_job()
        assert task is not None
        qtbot.waitUntil(lambda: dock.job_id != "", timeout=20000)
        job_id = dock.job_id
        address = dock.backend_panel.address.text()
        assert QgsApplication.taskManager().countActiveTasks() == 1
    finally:
        plugin.unload()

    assert not pid_alive(pid)
    assert plugin.backend is None and plugin.dock is None
    assert QgsApplication.taskManager().countActiveTasks() == 0
    assert async_call.in_flight() == 0
    assert QgsApplication.processingRegistry().providerById("groundsynth") is None
    # the dock's settings were saved for the next session (then removed: the test profile is shared)
    settings = QgsSettings()
    assert settings.value("groundsynth/address") == address
    assert settings.value("groundsynth/workspace") == str(workspace)
    settings.remove("groundsynth")
    settings.sync()
    # the job was cancelled on the backend before it stopped (not left to resume)
    srv = start_server(workspace, engine_module="tests.server_engines")
    try:
        with BackendClient(srv.address, srv.token) as c:
            assert state_name(c.get_job(job_id).state) == "CANCELLED"
    finally:
        srv.kill()


def _dock_with_python(plugin, python: str, workspace: Path):
    dock = plugin.dock
    bp = dock.backend_panel
    bp.mode.setCurrentIndex(bp.mode.findData("python"))
    bp.python.setText(python)
    bp.address.setText(f"127.0.0.1:{free_port()}")
    bp.workspace.setFilePath(str(workspace))
    return dock, bp


def test_rasters_the_user_picks_are_allowed_and_others_are_named(qgis_iface, qgis_new_project, qtbot, tmp_path,
                                                                 monkeypatch):
    """Start from the dock: the chosen raster's folder (outside the workspace) becomes an allowed root,
    shown in the dock; a raster elsewhere chosen afterwards is refused before sending, naming what to do."""
    QgsSettings().remove("groundsynth")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    raster = sample_raster(tmp_path / "rasters" / "a", size=128)
    other = sample_raster(tmp_path / "rasters" / "b", size=128, name="other.tif")
    plugin = classFactory(qgis_iface)
    plugin.initGui()
    try:
        dock, bp = _dock_with_python(plugin, sys.executable, tmp_path / "ws")
        layer = QgsRasterLayer(str(raster), "a", "gdal")
        QgsProject.instance().addMapLayer(layer)
        dock.input_panel.raster_combo.setLayer(layer)
        assert str(raster.parent) in bp.roots_label.text() and "when started here" in bp.roots_label.text()
        bp.extra_args.setText("--engine-module tests.server_engines --quiet")
        bp.start_button.click()
        bp.health_timer.setInterval(300)
        qtbot.waitUntil(lambda: bp.health == "up", timeout=40000)
        qtbot.waitUntil(lambda: dock.capabilities is not None, timeout=10000)
        assert dock.backend.allowed_roots == [str(raster.parent)] and bp.roots_label.text() == str(raster.parent)
        dock.area_panel.set_drawn_rectangle(layer.extent(), layer.crs())
        dock.area_panel.tile_size.setValue(64)
        dock.stages_panel.set_engine("segment", "test-bright")
        for stage in ("synthesise", "caption", "ground"):
            dock.stages_panel.stage_rows[stage].check.setChecked(False)
        with qtbot.waitSignal(dock.job_finished, timeout=30000) as finished:
            dock.run_job()
        assert finished.args[1] == "SUCCEEDED", bar_messages(qgis_iface, Qgis.MessageLevel.Critical)
        second = QgsRasterLayer(str(other), "b", "gdal")
        QgsProject.instance().addMapLayer(second)
        dock.input_panel.raster_combo.setLayer(second)
        dock.area_panel.set_drawn_rectangle(second.extent(), second.crs())
        assert dock.run_job() is None
        msgs = bar_messages(qgis_iface, Qgis.MessageLevel.Critical)
        assert any(m.startswith("Raster not allowed:") and str(other) in m and "press Stop, then Start" in m
                   for m in msgs), msgs
    finally:
        plugin.unload()
        QgsSettings().remove("groundsynth")


@pytest.fixture
def plugin_without_backend(qgis_iface, qgis_new_project, monkeypatch):
    """The loaded plugin, fresh settings, an empty message bar, and no PYTHONPATH: Debian's python3 has no
    groundsynth."""
    QgsSettings().remove("groundsynth")
    monkeypatch.delenv("PYTHONPATH", raising=False)
    clear_bar(qgis_iface)
    plugin = classFactory(qgis_iface)
    plugin.initGui()
    try:
        yield plugin
    finally:
        plugin.unload()
        QgsSettings().remove("groundsynth")


def _start_fails(bp, qgis_iface, qtbot) -> str:
    """Press Start; the message bar's "Backend did not start: ..." message."""
    bp.start_button.click()

    def failures() -> list[str]:
        return [m for m in bar_messages(qgis_iface, Qgis.MessageLevel.Critical)
                if m.startswith("Backend did not start:")]

    qtbot.waitUntil(lambda: bool(failures()), timeout=20000)
    return failures()[0]


def test_a_backend_that_cannot_start_says_why(plugin_without_backend, qgis_iface, qtbot, tmp_path):
    """The issue's first failure: an interpreter without the backend package. The message bar says so."""
    plugin = plugin_without_backend
    dock, bp = _dock_with_python(plugin, "/usr/bin/python3", tmp_path / "ws")   # Debian's: no groundsynth
    msg = _start_fails(bp, qgis_iface, qtbot)
    assert "No module named groundsynth" in msg
    # the managed environment, not set up: Start says to set it up
    clear_bar(qgis_iface)
    bp.mode.setCurrentIndex(bp.mode.findData("managed"))
    if not bp.python_for_start():
        bp.start_button.click()
        assert any(m.startswith("Backend not set up:") and "Set up backend" in m
                   for m in bar_messages(qgis_iface, Qgis.MessageLevel.Critical))


def _crashing_python(tmp_path: Path, times: int) -> str:
    """A 'python' that dies of SIGSEGV before printing anything on its first `times` runs, then is Debian's."""
    script = tmp_path / "python-crashing"
    count = tmp_path / "runs"
    script.write_text(f"#!/bin/sh\necho x >> '{count}'\n"
                      f"if [ $(wc -l < '{count}') -le {times} ]; then kill -SEGV $$; fi\n"
                      'exec /usr/bin/python3 "$@"\n')
    script.chmod(0o755)
    return str(script)


@pytest.mark.parametrize("crashes", [1, 2])
def test_a_backend_that_crashes_before_it_starts_is_started_once_more(plugin_without_backend, qgis_iface, qtbot,
                                                                       tmp_path, crashes):
    """A start killed by a signal before any output (seen once in a full suite run: a QProcess child crashed
    between fork and exec, "exit code 11: no output") is tried once more; a second crash is named as one."""
    plugin = plugin_without_backend
    dock, bp = _dock_with_python(plugin, _crashing_python(tmp_path, crashes), tmp_path / "ws")
    lines: list[str] = []
    bp.backend.output.connect(lines.append)
    msg = _start_fails(bp, qgis_iface, qtbot)
    assert any("crashed before it started (signal 11)" in ln for ln in lines), lines
    assert len((tmp_path / "runs").read_text().split()) == 2          # tried twice, not more
    if crashes == 1:
        assert "No module named groundsynth" in msg                      # the second start ran
    else:
        assert "crashed (signal 11)" in msg
