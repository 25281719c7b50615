"""From the zip to a first result, as a new user: the built zip is unpacked into an empty plugins folder and
an offscreen QGIS with no repository on any path loads it. "Set up backend" creates the managed environment
and really runs `pip install` of the zip's own backend wheel into it; Start runs
`<venv>/bin/python -m groundsynth serve`; Health turns SERVING; a job on the demo raster, stored outside
the workspace (its folder becomes an allowed root), lands styled layers.

Offline: pip gets `--no-index`, and the managed venv is created with `--system-site-packages` plus "Reuse
packages" pointing at a view of this machine's pinned environment (its site-packages without the editable
groundsynth), so the pinned dependencies are found installed instead of downloaded. The backend package
itself comes only from the zip's wheel.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import package_plugin  # noqa: E402

SCRIPT = r'''
import json, os, sys, time
from pathlib import Path
args = json.loads(sys.argv[1])
from qgis.core import QgsApplication, QgsProject, QgsRasterLayer, QgsRectangle, QgsPalettedRasterRenderer, \
    QgsGraduatedSymbolRenderer, QgsMultiBandColorRenderer
from qgis.gui import QgsMapCanvas
from qgis.PyQt.QtWidgets import QMainWindow
app = QgsApplication([], True)
app.initQgis()
import qgis.utils
from qgis.gui import QgsMessageBar
from qgis.PyQt.QtCore import Qt


class Iface:
    """The part of QgisInterface a plugin uses, on a real main window."""
    def __init__(self):
        self.window, self.canvas, self.bar = QMainWindow(), QgsMapCanvas(), QgsMessageBar()
        self.window.setCentralWidget(self.canvas)
    def mainWindow(self): return self.window
    def mapCanvas(self): return self.canvas
    def messageBar(self): return self.bar
    def addDockWidget(self, area, dock): self.window.addDockWidget(area, dock)
    def removeDockWidget(self, dock): self.window.removeDockWidget(dock)
    def addToolBarIcon(self, action): pass
    def removeToolBarIcon(self, action): pass
    def addPluginToMenu(self, menu, action): pass
    def removePluginMenu(self, menu, action): pass
import importlib.util
repo = Path(args["repo"])
source_dirs = {repo, repo / "plugin", repo / "tests", repo / "scripts", repo / "groundsynth"}
out = {"sys_path_has_repo": any(Path(p or ".").resolve() in source_dirs for p in sys.path)
       or any(importlib.util.find_spec(m) is not None for m in ("plugin", "tests", "backend"))}
iface = Iface()
qgis.utils.iface = iface
sys.path.insert(0, args["plugins"])
qgis.utils.plugin_paths = [args["plugins"]]
assert qgis.utils.loadPlugin("groundsynth_plugin"), "loadPlugin failed"
assert qgis.utils.startPlugin("groundsynth_plugin"), "startPlugin failed"
plugin = qgis.utils.plugins["groundsynth_plugin"]
dock = plugin.dock
out["plugin_file"] = sys.modules["groundsynth_plugin"].__file__
bp = dock.backend_panel
out["mode"] = bp.mode_key()
out["env_before"] = bp.env_label.text()

def wait(cond, timeout, what):
    t0 = time.monotonic()
    while not cond():
        app.processEvents(); time.sleep(0.02)
        if time.monotonic() - t0 > timeout:
            raise SystemExit(f"timeout: {what}\n{dock.run_panel.log_view.toPlainText()[-4000:]}")

dialog = bp.open_setup()
dialog.system_site.setChecked(True)
dialog.reuse.setText(args["reuse"])
dialog.pip_args.setText("--no-index")
done = []
dialog.done_setup.connect(lambda ok, err: done.append((ok, err)))
dialog.setup_button.click()
wait(lambda: done, 600, "set-up")
out["setup"] = done[0]
out["setup_log_has_pip"] = "pip install" in dialog.log_view.toPlainText()
out["setup_log_tail"] = dialog.log_view.toPlainText()[-3000:]
out["env_after"] = bp.env_label.text()
layer = QgsRasterLayer(args["raster"], "demo", "gdal")
QgsProject.instance().addMapLayer(layer)
dock.input_panel.raster_combo.setLayer(layer)
bp.workspace.setFilePath(args["workspace"])
bp.address.setText(args["address"])
bp.health_timer.setInterval(300)
bp.start_button.click()
wait(lambda: bp.health == "up", 120, "health")
wait(lambda: dock.capabilities is not None, 30, "capabilities")
out["health"] = bp.health
out["python"] = dock.backend.python
out["roots"] = bp.roots_label.text()
e = layer.extent()
px = layer.rasterUnitsPerPixelX()
x0, y1 = e.xMinimum() + 512 * px, e.yMaximum() - 512 * px
dock.area_panel.set_drawn_rectangle(QgsRectangle(x0 + px / 2, y1 - 256 * px + px / 2, x0 + 256 * px - px / 2,
                                                 y1 - px / 2), layer.crs())
dock.area_panel.tile_size.setValue(128)
finished = []
dock.job_finished.connect(lambda job, state: finished.append(state))
task = dock.run_job()
out["submitted"] = task is not None
wait(lambda: finished, 600, "job")
out["state"] = finished[0]
for _ in range(20):
    app.processEvents()
res = dock.results
out["layers"] = sorted(res.layers)
out["styles"] = {k: type(v.renderer()).__name__ for k, v in res.layers.items()}
out["errors"] = [f"{i.title()}: {i.text()}" for i in iface.messageBar().items()]
out["grpc_from"] = sys.modules["grpc"].__file__
out["groundsynth_imported"] = "groundsynth" in sys.modules
plugin.unload()
print("RESULT " + json.dumps(out))
sys.stdout.flush()
os._exit(0)
'''


def pinned_packages_view(dest: Path) -> Path:
    """This environment's site-packages as links, without the editable groundsynth (its .pth files and
    dist-info), so a venv that reuses it finds every pinned dependency but not the backend package."""
    site = Path(sysconfig.get_paths()["purelib"])
    dest.mkdir(parents=True)
    for entry in site.iterdir():
        if entry.name.startswith(("groundsynth", "__editable__")) or entry.suffix == ".pth":
            continue
        (dest / entry.name).symlink_to(entry)
    return dest


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_zip_into_an_empty_profile_sets_up_starts_and_runs(tmp_path):
    from groundsynth.demo.scene import demo_raster
    from tests.plugin_fixtures import free_port

    folder = package_plugin.build(tmp_path / "build")
    zpath = package_plugin.make_zip(folder, tmp_path / "dist")
    plugins = tmp_path / "profile" / "python" / "plugins"
    plugins.mkdir(parents=True)
    with zipfile.ZipFile(zpath) as zf:
        zf.extractall(plugins)
    raster = demo_raster(tmp_path / "elsewhere" / "data")          # outside the workspace
    args = {"plugins": str(plugins), "raster": str(raster), "workspace": str(tmp_path / "ws"),
            "address": f"127.0.0.1:{free_port()}", "repo": str(ROOT),
            "reuse": str(pinned_packages_view(tmp_path / "pinned"))}
    (tmp_path / "run_qgis.py").write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(QT_QPA_PLATFORM="offscreen", QGIS_CUSTOM_CONFIG_PATH=str(tmp_path / "qgis-profile"),
               PIP_NO_INDEX="1")
    proc = subprocess.run([sys.executable, "-I", str(tmp_path / "run_qgis.py"), json.dumps(args)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=840)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, (proc.stdout[-4000:], proc.stderr[-4000:])
    out = json.loads(lines[-1][len("RESULT "):])
    assert not out["sys_path_has_repo"] and out["plugin_file"].startswith(str(plugins))
    assert out["mode"] == "managed" and out["env_before"] == "not set up yet"
    assert out["setup"] == [True, ""], out["setup_log_tail"]
    assert out["setup_log_has_pip"] and "groundsynth-0.2.0" in out["setup_log_tail"]
    venv = tmp_path / "qgis-profile" / "profiles" / "default" / "groundsynth" / "venv"
    assert out["env_after"].startswith("ready") and out["python"] == str(venv / "bin" / "python")
    # the backend package was installed into the managed venv from the zip's wheel, not taken from elsewhere
    installed = list((venv / "lib").glob("python3*/site-packages/groundsynth-0.2.0.dist-info"))
    assert installed and (installed[0] / "INSTALLER").read_text().strip() == "pip"
    assert out["health"] == "up" and str(raster.parent) in out["roots"]
    assert out["submitted"] and out["state"] == "SUCCEEDED", out["errors"]
    assert {"tiles", "real_mask", "real_image"} <= set(out["layers"])
    assert out["styles"]["real_mask"] == "QgsPalettedRasterRenderer"
    assert out["styles"]["real_image"] == "QgsMultiBandColorRenderer"
    assert out["styles"]["tiles"] == "QgsGraduatedSymbolRenderer"
    assert not out["groundsynth_imported"]               # the plugin never needs the backend package itself
