"""What the dock does besides running a job: write a non-file layer's AOI to a GeoTIFF first, check that a
backend started here may read the raster, export a job as a training set, delete a finished job, and write reference samples to GeoJSON."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from qgis.core import Qgis, QgsApplication, QgsCoordinateTransform, QgsProject
from qgis.PyQt.QtWidgets import QFileDialog, QMessageBox

from . import reference
from .errors import InputError, PluginError
from .layers.safe_files import UnsafeJobFile, job_folder
from .panels.jobs import FINAL_STATES
from .tasks.async_call import call_async
from .tasks.commands import CommandsTask, Step
from .tasks.render import RenderTask


class RasterNotAllowed(PluginError):
    title = "Raster not allowed"


class DockActions:
    """Mixed into GroundSynthDock (uses its panels, `message`, `log`, `run_job`)."""

    render_task = None
    export_task = None

    # ------------------------------------------------------------ non-file layers
    def render_input(self) -> RenderTask | None:
        """Check the request, write the AOI of the (WMS, XYZ, ...) layer to <workspace>/inputs, then run."""
        request = self.build_request(check=False)     # the area is checked here; the rest once written
        layer = self.input_panel.layer()
        area = self.area_panel.current_area()
        geom = area.geometry()
        if area.crs != layer.crs():
            geom.transform(QgsCoordinateTransform(area.crs, layer.crs(), QgsProject.instance()))
        extent = geom.boundingBox().intersect(layer.extent())
        resolution = self.input_panel.resolution.value()
        key = hashlib.sha1(f"{layer.source()}|{extent.toString(6)}|{resolution}".encode(),
                           usedforsecurity=False).hexdigest()[:10]       # a file name, not security
        dest = Path(self.backend_panel.workspace.filePath()) / "inputs" / f"{_safe(layer.name())}-{key}.tif"
        try:
            task = RenderTask(layer, extent, resolution, dest)
        except ValueError as exc:
            raise InputError(f"{layer.name()}: {exc}") from None
        task.ended.connect(lambda ok, path, err: self._rendered(ok, path, err, request))
        self.render_task = task
        self._set_running(True)
        self.run_panel.state_label.setText(f"writing {layer.name()} to a GeoTIFF...")
        task.progressChanged.connect(lambda p: self.run_panel.on_progress("outputs", int(p), 100))
        self.log(f"writing the area of {layer.name()} at {resolution:g} map units/px ({task.cols} x {task.rows} px) "
                 f"to {dest}")
        QgsApplication.taskManager().addTask(task)
        return task

    def _rendered(self, ok: bool, path: str, error: str, request) -> None:
        self.render_task = None
        self._set_running(False)
        if not ok:
            self.message("Layer not written", error or "cancelled",
                         Qgis.MessageLevel.Critical if error != "cancelled" else Qgis.MessageLevel.Info)
            return
        self.log(f"wrote {path}")
        request.raster_path = str(Path(path).resolve())
        request.band_count = 0               # the written file's bands: RGB(A); the request asks for 1-3
        try:
            request.check()
        except PluginError as exc:
            self.show_error(exc)
            return
        self.run_job(request)

    # ------------------------------------------------------------ allowed folders
    def check_allowed(self, request) -> None:
        """A backend this dock started reads only its workspace and the folders it was started with."""
        bp = self.backend_panel
        if self.jobs_panel.remote() or not bp.owns_backend():
            return
        for what, path in (("raster", request.raster_path), ("label raster", request.label_path)):
            if path and not bp.allows(path):
                raise RasterNotAllowed(
                    f"the {what} {path} is outside the folders the backend was started with "
                    f"({', '.join([bp.workspace.filePath(), *self.backend.allowed_roots])}); press Stop, then "
                    "Start: the folders of the chosen raster and label layers become allowed roots "
                    "(--allow-root)")

    # ------------------------------------------------------------ export
    def export_job(self, out_dir: str = "") -> CommandsTask | None:
        """`groundsynth export` of the current job into `out_dir` (asked for when empty)."""
        res = self.results
        if res is None or not res.job_id:
            self.message("Export", "run or load a job first", Qgis.MessageLevel.Warning)
            return None
        if not res.source.local:
            self.message("Export", "the job's folder is on the backend's machine: run `groundsynth export "
                         f"--job-dir <jobs>/{res.job_id} --out DIR` there", Qgis.MessageLevel.Warning)
            return None
        python = self.backend_panel.python_for_start()
        if not python:
            self.message("Export", "export runs the backend's Python: set up the backend (or choose an existing "
                         "Python) first", Qgis.MessageLevel.Critical)
            return None
        out_dir = out_dir or QFileDialog.getExistingDirectory(self, "Export the training set into")
        if not out_dir:
            return None
        args = [python, "-m", "groundsynth", "export", "--job-dir", str(res.source.output_dir), "--out", out_dir]
        task = CommandsTask(f"GroundSynth: export {res.job_id}", [Step(f"export job {res.job_id}", args)])
        task.line.connect(lambda line: self.log(f"[export] {line}"))
        task.ended.connect(lambda ok, err: self.message(
            "Export", f"training set of {res.job_id} written to {out_dir}" if ok else err,
            Qgis.MessageLevel.Success if ok else Qgis.MessageLevel.Critical))
        self.export_task = task
        QgsApplication.taskManager().addTask(task)
        return task

    # ------------------------------------------------------------ delete
    def delete_job(self, job_id: str, confirm: bool = True) -> bool:
        """DeleteJob of a finished job from the list, after a confirm dialog; its layer groups and cached files
        go once the backend has removed it. False when nothing was asked of the backend."""
        state = self.jobs_panel.job_state(job_id)
        running = self.task is not None and self.task.job_id == job_id
        if not job_id:
            self.message("Delete job", "choose a job in the list (Refresh)", Qgis.MessageLevel.Warning)
            return False
        if running or state not in FINAL_STATES:
            self.message("Delete job", f"job {job_id} is {'RUNNING' if running else state or 'not listed'}: only a "
                         "finished job (SUCCEEDED, FAILED, CANCELLED) can be deleted; cancel it first, then Refresh",
                         Qgis.MessageLevel.Warning)
            return False
        if confirm and QMessageBox.question(
                self, "Delete job", f"Delete job {job_id} ({state}) on the backend: its masks, images, tile grid "
                "and report, and its layers in this project? This cannot be undone.",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.No) != QMessageBox.StandardButton.Yes:
            return False
        client = self.client()

        def call():
            try:
                return client.delete_job(job_id)
            finally:
                client.close()

        self.log(f"deleting job {job_id} on {client.address}")
        call_async(call, lambda resp: self._job_deleted(job_id, resp), self._delete_failed, self)
        return True

    def _delete_failed(self, exc: BaseException) -> None:
        self.show_error(exc)
        self.job_deleted.emit("", False)

    def _job_deleted(self, job_id: str, resp) -> None:
        for res in [r for r in self.all_results if r.job_id == job_id]:
            res.remove()
            self.all_results.remove(res)
            if res is self.results:
                self.results = None
        root = QgsProject.instance().layerTreeRoot()
        for group in root.findGroups():            # groups of an earlier session (a saved project)
            if group.name().startswith("GroundSynth ") and group.name().endswith(f" {job_id}"):
                for layer_id in group.findLayerIds():
                    QgsProject.instance().removeMapLayer(layer_id)
                root.removeChildNode(group)
        cache = self.settings.cache_dir
        try:
            folder = job_folder(cache, job_id) if cache else None
        except UnsafeJobFile:
            folder = None
        if folder is not None and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
        self.jobs_panel.drop_job(job_id)
        self.message("Delete job", f"job {job_id} deleted: {resp.files_removed} file(s), "
                     f"{resp.bytes_freed / 2 ** 20:.1f} MiB freed", Qgis.MessageLevel.Success, 5)
        self.job_deleted.emit(job_id, True)

    # ------------------------------------------------------------ reference samples
    def fill_reference(self, request) -> None:
        """Reference samples for the job: the GeoJSON written to <workspace>/inputs for a backend on this machine,
        inline features for a remote one (it cannot read this machine's files)."""
        panel = self.reference_panel
        if not panel.in_use():
            return
        layer, class_field = panel.layer(), panel.class_field.currentField()
        if self.jobs_panel.remote():
            request.reference_features = reference.inline_features(
                reference.reference_features(layer, class_field, panel.selected_only.isChecked()))
            return
        dest = Path(self.backend_panel.workspace.filePath()) / "inputs" / f"reference-{_safe(layer.name())}.geojson"
        path, n = reference.write_reference(layer, class_field, dest, panel.selected_only.isChecked())
        request.reference_path = str(path.resolve())
        self.log(f"reference samples: {n} of {layer.name()} in {path}")

    def write_reference(self, dest: str = "") -> Path | None:
        """Write the Reference samples section's layer to `dest` (default `<workspace>/inputs/reference-<layer>
        .geojson`, which a backend always reads) for the accuracy assessment."""
        panel = self.reference_panel
        layer = panel.layer()
        if layer is None:
            self.message(reference.ReferenceError.title, "choose a layer of reference points or polygons, or "
                         "digitise points on the map", Qgis.MessageLevel.Warning)
            return None
        if not dest:
            dest = str(Path(self.backend_panel.workspace.filePath()) / "inputs" / f"reference-{_safe(layer.name())}"
                                                                                  ".geojson")
        try:
            path, n = reference.write_reference(layer, panel.class_field.currentField(), dest,
                                                panel.selected_only.isChecked())
        except (PluginError, OSError) as exc:
            self.show_error(exc)
            return None
        self.log(f"wrote {n} reference sample(s) of {layer.name()} to {path}")
        self.message(reference.ReferenceError.title, f"{n} sample(s) written to {path}: the backend assesses a job's "
                     f"segmentation against them with `groundsynth run ... --reference {path}`",
                     Qgis.MessageLevel.Success, 10)
        panel.count_label.setText(f"{n} sample(s) written to {path.name}")
        return path


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)[:40] or "layer"


__all__ = ["DockActions", "RasterNotAllowed"]
