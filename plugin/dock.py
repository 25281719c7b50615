"""The GroundSynth dock: wires its sections (plugin/panels) to a job task and the job's results.

Sections, one module each under plugin/panels: backend, input, area, stages,
synthesis, run, jobs (results). Each has `load(capabilities)` and
`fill(request)`; the dock gathers a JobRequest from them, runs it in a JobTask
and puts the results on the map (plugin/layers).

Layout: four tabs (Backend; Input and area; Engines; Results), each scrolling on
its own, above the Run section, which never scrolls: Run, progress and log stay
in view at any dock height. The dock is never narrower than its widest section.

Nothing here blocks: RPCs run in threads (AsyncCall) or in the JobTask; their
results arrive as queued Qt signals on the main thread.
"""
from __future__ import annotations

from pathlib import Path

from qgis.core import Qgis, QgsApplication
from qgis.gui import QgsDockWidget
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import QApplication, QFrame, QScrollArea, QSizePolicy, QTabWidget, QVBoxLayout, QWidget

from . import messages
from .connection import environment
from .connection.api import BackendClient, state_name
from .connection.process import LocalBackend
from .diagnostics import diagnostics_text
from .dock_actions import DockActions
from .errors import PluginError, user_message
from .job_request import JobRequest
from .layers import styling
from .layers.results import ArtefactSource, JobResults
from .panels.area import AreaPanel
from .panels.backend import BackendPanel
from .panels.input import InputPanel, is_file_layer, layer_file
from .panels.jobs import JobsPanel
from .panels.reference import ReferencePanel
from .panels.run import RunPanel
from .panels.stages import StagesPanel
from .panels.synthesis import SynthesisPanel
from .settings import PluginSettings
from .tasks.async_call import call_async
from .tasks.job_task import JobTask

TABS = (("Backend", ("backend_panel",)), ("Input and area", ("input_panel", "area_panel", "reference_panel")),
        ("Engines", ("stages_panel", "synthesis_panel")), ("Results", ("jobs_panel",)))


class GroundSynthDock(DockActions, QgsDockWidget):
    job_finished = pyqtSignal(str, str)     # job_id, final state
    job_deleted = pyqtSignal(str, bool)     # job_id ("" on error), deleted
    capabilities_loaded = pyqtSignal()

    def __init__(self, iface, backend: LocalBackend | None = None, settings: PluginSettings | None = None,
                 report_panel=None, parent=None):
        super().__init__("GroundSynth", parent)
        self.setObjectName("GroundSynthDock")
        self.iface = iface
        self.settings = settings or PluginSettings.load()
        self.backend = backend or LocalBackend(self)
        self.report_panel = report_panel
        self.capabilities = None
        self.task: JobTask | None = None
        self._task_client: BackendClient | None = None
        self.results: JobResults | None = None
        self.all_results: list[JobResults] = []
        self.job_id = ""
        self.last_error = ""
        self.render_task = None
        self._build()
        self._set_running(False)
        self.backend_panel.start_polling()

    # ================================================================ wiring
    def _build(self) -> None:
        self.backend_panel = BackendPanel(self.settings, self.backend, self.allowed_roots)
        self.input_panel = InputPanel()
        self.area_panel = AreaPanel(self.canvas, self.input_panel.layer, self.settings.tile_size)
        self.stages_panel = StagesPanel()
        self.synthesis_panel = SynthesisPanel()
        self.run_panel = RunPanel()
        self.jobs_panel = JobsPanel(self.settings)
        self.reference_panel = ReferencePanel(self.canvas)
        # in the order a request is filled: synthesis reads the stages the Stages panel chose
        self.panels = (self.backend_panel, self.input_panel, self.area_panel, self.stages_panel,
                       self.synthesis_panel, self.run_panel, self.jobs_panel, self.reference_panel)
        for panel in self.panels:
            panel.log.connect(self.log)
            panel.notify.connect(self.message)
        self.tabs = QTabWidget()
        self.tabs.setObjectName("groundsynth_tabs")
        for title, names in TABS:
            self.tabs.addTab(self._scrolled([getattr(self, n) for n in names]), title)
        body = QWidget(self)
        layout = QVBoxLayout(body)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.tabs, 1)
        self.run_panel.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        layout.addWidget(self.run_panel)
        self.setWidget(body)
        width = max(self.tabs.widget(i).widget().minimumSizeHint().width() for i in range(self.tabs.count()))
        self.setMinimumWidth(min(width + 40, 540))
        start_tab = 0 if self.settings.backend_mode == "managed" and not environment.is_set_up() else 1
        self.tabs.setCurrentIndex(start_tab)
        self._connect()

    def _scrolled(self, panels) -> QScrollArea:
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        inner = QWidget()
        layout = QVBoxLayout(inner)
        for panel in panels:
            layout.addWidget(panel)
        layout.addStretch(1)
        scroll.setWidget(inner)
        return scroll

    def _connect(self) -> None:
        self.backend_panel.came_up.connect(self._backend_came_up)
        self.backend_panel.capabilities_requested.connect(self.load_capabilities)
        self.input_panel.raster_combo.layerChanged.connect(lambda _l: self.backend_panel.refresh_roots())
        self.input_panel.label_combo.layerChanged.connect(lambda _l: self.backend_panel.refresh_roots())
        self.run_panel.run_requested.connect(self.run_job)
        self.run_panel.cancel_requested.connect(self.cancel_job)
        self.jobs_panel.score_changed.connect(self._score_changed)
        self.jobs_panel.refresh_requested.connect(self.refresh_jobs)
        self.jobs_panel.reload_requested.connect(self.reload_job)
        self.jobs_panel.delete_requested.connect(self.delete_job)
        self.reference_panel.write_requested.connect(self.write_reference)
        self.jobs_panel.tile_filter_changed.connect(self._tile_filter_changed)
        self.jobs_panel.export_requested.connect(self.export_job)
        self.jobs_panel.diagnostics_requested.connect(self.copy_diagnostics)

    def allowed_roots(self) -> list[str]:
        """Folders of the chosen raster and label files: a backend started here may read them."""
        if not hasattr(self, "jobs_panel"):         # still building
            return []
        roots = []
        for layer in (self.input_panel.layer(), self.input_panel.label_combo.currentLayer()):
            path = layer_file(layer) if is_file_layer(layer) else ""
            if path:
                roots.append(str(Path(path).resolve().parent))
        return list(dict.fromkeys(roots))

    def copy_diagnostics(self) -> str:
        text = diagnostics_text(self)
        QApplication.clipboard().setText(text)
        self.message("GroundSynth", "diagnostics copied to the clipboard", Qgis.MessageLevel.Info, 3)
        return text

    def canvas(self):
        return self.iface.mapCanvas() if self.iface is not None else None

    # ================================================================ messages
    def message(self, title: str, text: str, level=Qgis.MessageLevel.Critical, duration: int = 10) -> None:
        """The message bar (first line, "Details" for the rest), the dock's log and QgsMessageLog."""
        self.run_panel.append_log(f"{title}: {text}")
        if level == Qgis.MessageLevel.Critical:
            self.last_error = f"{title}: {text}"
        messages.push(self.iface.messageBar() if self.iface is not None else None, title, text, level, duration)

    def show_error(self, exc: BaseException) -> None:
        title, text = user_message(exc, self.backend_panel.address.text().strip())
        self.message(title, text, Qgis.MessageLevel.Critical)

    def log(self, text: str) -> None:
        self.run_panel.append_log(text)
        messages.log(text)

    # ================================================================ backend, capabilities
    def client(self) -> BackendClient:
        return self.backend_panel.client()

    def _backend_came_up(self) -> None:
        if self.capabilities is None:
            self.load_capabilities()

    def load_capabilities(self) -> None:
        client = self.client()

        def fetch():
            try:
                return client.capabilities()
            finally:
                client.close()

        call_async(fetch, self.set_capabilities, self.show_error, self)

    def set_capabilities(self, caps) -> None:
        self.capabilities = caps
        for panel in self.panels:
            panel.load(caps)
        self.capabilities_loaded.emit()

    # ================================================================ request and run
    def build_request(self, check: bool = True) -> JobRequest:
        """Gather the sections' fields into a JobRequest, checked unless `check` is False (raises PluginError)."""
        request = JobRequest()
        for panel in self.panels:
            panel.fill(request)
        self.fill_reference(request)
        return request.check() if check else request

    def run_job(self, request: JobRequest | None = None) -> JobTask | None:
        """Check the request and submit it; a layer that is not a file is first written to a GeoTIFF
        (then this returns None and the job starts when the file is written: see `render_task`)."""
        if self.task is not None or self.render_task is not None:
            self.message("GroundSynth", "a job is already running", Qgis.MessageLevel.Warning)
            return None
        try:
            if request is None and self.input_panel.needs_render():
                self.render_input()
                return None
            request = request or self.build_request()
            self.check_allowed(request)
            spec = request.to_proto()
        except PluginError as exc:
            self.show_error(exc)
            return None
        self.jobs_panel.set_variants(request.variants)
        self.run_panel.reset_progress()
        client = self.client()
        upload = request.raster_path if self.jobs_panel.remote() else ""
        task = JobTask(client, spec=spec, description=f"GroundSynth: {request.name}", upload=upload)
        self._watch_task(task, client)
        if upload:
            self.log(f"uploading {upload} ({Path(upload).stat().st_size // 1024} KiB)")
        self.log(f"submitting job on {client.address}: {len(request.stages)} stage(s), tile {request.tile_size}px")
        return task

    def reload_job(self, job_id: str) -> None:
        """Load a finished job's layers and report from the backend (replays its events)."""
        if not job_id:
            self.message("GroundSynth", "choose a job in the list (Refresh)", Qgis.MessageLevel.Warning)
            return
        if self.task is not None:
            self.message("GroundSynth", "wait for the running job to end", Qgis.MessageLevel.Warning)
            return
        self.run_panel.reset_progress()
        client = self.client()
        task = JobTask(client, job_id=job_id, description=f"GroundSynth: reload {job_id}")
        self._watch_task(task, client)
        self.log(f"reloading job {job_id}")

    def _watch_task(self, task: JobTask, client: BackendClient) -> None:
        self.task = task
        self._task_client = client
        task.job_event.connect(self._on_event)
        task.stage_progress.connect(self.run_panel.on_progress)
        task.failed.connect(lambda title, text: self.message(title, text, Qgis.MessageLevel.Critical))
        task.taskCompleted.connect(lambda: self._task_ended(task))
        task.taskTerminated.connect(lambda: self._task_ended(task))
        self._set_running(True)
        QgsApplication.taskManager().addTask(task)

    def cancel_job(self) -> None:
        if self.task is None:
            return
        self.log(f"cancelling job {self.task.job_id or '(not yet accepted)'}")
        self.run_panel.state_label.setText("cancelling...")
        self.task.cancel()

    def _on_event(self, ev) -> None:
        which = ev.WhichOneof("event")
        try:
            if which == "accepted":
                a = ev.accepted
                self.job_id = a.job_id
                self.log(f"job {a.job_id} accepted: {a.tile_count} tile(s), {a.skipped_tiles} skipped, "
                         f"output {a.output_dir}")
                self.run_panel.state_label.setText(f"running {a.job_id}")
                self._start_results(a.job_id, a.output_dir, a.spec.name)
            elif which == "tile":
                if self.results is not None:
                    self.results.add_tile(ev.tile)
            elif which in ("layer", "report"):
                self._on_output(ev)
            elif which == "failed":
                where = f" (tile {ev.failed.tile_id})" if ev.failed.tile_id else ""
                self.log(f"failed{where}: {ev.failed.message}")
                if ev.failed.tile_id:
                    self.message("Tile failed", f"{ev.failed.tile_id}: {ev.failed.message}",
                                 Qgis.MessageLevel.Warning)
            elif which == "done":
                d = ev.done
                self.log(f"job {ev.job_id} {state_name(d.state)}: {d.real_tiles} real, "
                         f"{d.synthetic_tiles} synthetic tile(s)")
        except Exception as exc:  # noqa: BLE001  (a bad layer must not stop the stream)
            self.show_error(exc)

    def _on_output(self, ev) -> None:
        if ev.WhichOneof("event") == "layer":
            self.log(f"layer {ev.layer.layer} ready ({ev.layer.path})")
        else:
            self.log("report ready: " + ", ".join(f"{k}={v:.3g}" for k, v in sorted(ev.report.summary.items())))
        if self.results is not None:
            self.results.handle(ev)
            if ev.WhichOneof("event") == "layer" and ev.layer.layer == "tiles":
                self._update_score_choices()

    def _start_results(self, job_id: str, output_dir: str, name: str) -> None:
        for old in [r for r in self.all_results if r.job_id == job_id]:
            old.remove()
            self.all_results.remove(old)
        source = ArtefactSource(job_id, output_dir, client=self._task_client, cache_dir=self.settings.cache_dir,
                                force_fetch=self.jobs_panel.remote())
        classes = styling.classes_from_capabilities(self.capabilities)
        self.results = JobResults(job_id, source, classes, self.jobs_panel.score_combo.currentText(),
                                  title=f"{name} {job_id}".strip() if name else job_id, parent=self)
        self.results.report_ready.connect(self._show_report)
        self.results.set_tile_filter(*self.jobs_panel.current_filter())
        self.all_results.append(self.results)

    def _task_ended(self, task: JobTask) -> None:
        if task is not self.task:
            return
        state = task.final_state or ("CANCELLED" if task.isCanceled() else "FAILED")
        self.run_panel.state_label.setText(f"idle (last job {task.job_id or '-'}: {state})")
        if state == "SUCCEEDED":
            self.message("GroundSynth", f"job {task.job_id} finished", Qgis.MessageLevel.Success, 5)
        elif state == "CANCELLED":
            self.message("GroundSynth", f"job {task.job_id} cancelled", Qgis.MessageLevel.Info, 5)
        self.task = None
        client, self._task_client = self._task_client, None
        if client is not None:
            client.close()
        self._set_running(False)
        self.job_finished.emit(task.job_id, state)

    def _set_running(self, running: bool) -> None:
        self.run_panel.set_running(running)
        self.jobs_panel.set_running(running)

    def is_idle(self) -> bool:
        return self.task is None and self.run_panel.run_button.isEnabled()

    # ================================================================ results
    def _show_report(self, path: str) -> None:
        self.log(f"report: {path}")
        if self.report_panel is not None:
            try:
                self.report_panel.show_report(path)
            except OSError as exc:
                self.show_error(exc)

    def _update_score_choices(self) -> None:
        if self.results is None or "tiles" not in self.results.layers:
            return
        shown = self.results.score_shown()
        self.jobs_panel.set_score_choices(styling.score_fields(self.results.layers["tiles"], self.results.classes),
                                          shown)
        self.log(f"tile grid coloured by {shown or 'nothing (no score)'}")

    def _tile_filter_changed(self, kind: str, variant: int) -> None:
        if self.results is not None:
            self.results.set_tile_filter(kind, variant)
            self._update_score_choices()          # "auto" picks among the tiles shown

    def _score_changed(self, score: str) -> None:
        if score and self.results is not None:
            self.results.set_score(score)

    def refresh_jobs(self) -> None:
        client = self.client()

        def fetch():
            try:
                return list(client.list_jobs())
            finally:
                client.close()

        call_async(fetch, self.jobs_panel.fill_jobs, self.show_error, self)

    # ================================================================ shutdown
    def shutdown(self, timeout_ms: int = 10000) -> None:
        """Stop polling, end the running task (cancelling its job) and join it."""
        self.backend_panel.shutdown()
        if self.render_task is not None:
            self.render_task.cancel()
            self.render_task.waitForFinished(timeout_ms)
        task = self.task
        if task is not None:
            task.cancel_now()
            task.waitForFinished(timeout_ms)
        self.area_panel.shutdown()
        self.reference_panel.shutdown()
        self.settings.score = self.jobs_panel.score_combo.currentText()
        self.settings.tile_size = self.area_panel.tile_size.value()
        self.settings.fetch_artefacts = self.jobs_panel.remote()
