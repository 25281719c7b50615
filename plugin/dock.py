"""The GroundSynth dock: gathers a JobRequest, runs it in a JobTask, shows results.

Sections: Backend (address, workspace/token, health light, start/stop a local
backend), Input (raster, band mapping, label layer), Area (drawn rectangle,
map extent or selected polygons), Stages (from Capabilities: checkbox, engine,
a widget per parameter), Synthesis (variants, seed, mask strategy, boosted
classes with target shares), Run/Cancel, a progress bar per stage, a log, the
score that colours the tile grid, and the backend's job list for reloading.

Nothing here blocks: RPCs run in threads (AsyncCall) or in the JobTask; their
results arrive as queued Qt signals on the main thread.
"""
from __future__ import annotations

import time
from pathlib import Path

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsMapLayerProxyModel,
    QgsRasterLayer,
    QgsRectangle,
)
from qgis.gui import (
    QgsCollapsibleGroupBox,
    QgsDockWidget,
    QgsFileWidget,
    QgsMapLayerComboBox,
    QgsMapToolExtent,
    QgsRasterBandComboBox,
)
from qgis.PyQt.QtCore import Qt, QTimer, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from . import area as area_mod
from . import styling
from .async_call import call_async
from .backend_api import STAGES, BackendClient, read_token, state_name
from .backend_process import LocalBackend
from .errors import InputError, PluginError, user_message
from .job_request import JobRequest, StageChoice
from .job_task import JobTask
from .param_widgets import ParamForm
from .results import ArtefactSource, JobResults
from .settings import PluginSettings

PROGRESS_STAGES = (*STAGES, "outputs", "report")
AREA_MODES = ("rectangle", "extent", "selection")
LIGHT = {"up": "#2e9e44", "down": "#c62828", "unknown": "#9e9e9e"}
DEFAULT_CLASS_NAMES = [c[1] for c in styling.DEFAULT_CLASSES]


class StageRow:
    """Checkbox + engine choice + a parameter form per engine, for one stage."""

    def __init__(self, stage: str, stage_info, parent: QWidget):
        self.stage = stage
        self.check = QCheckBox(stage, parent)
        self.check.setObjectName(f"stage_{stage}")
        self.check.setChecked(True)
        self.engine = QComboBox(parent)
        self.engine.setObjectName(f"engine_{stage}")
        self.forms = QStackedWidget(parent)
        self.form_by_engine: dict[str, ParamForm] = {}
        default_index = 0
        for i, eng in enumerate(stage_info.engines if stage_info is not None else []):
            label = eng.name if eng.available else f"{eng.name} (unavailable)"
            self.engine.addItem(label, eng.name)
            self.engine.setItemData(i, eng.description if eng.available else eng.unavailable_reason, Qt.ToolTipRole)
            if not eng.available:
                self.engine.model().item(i).setEnabled(False)
            if eng.is_default:
                default_index = i
            form = ParamForm(eng, parent)
            self.forms.addWidget(form)
            self.form_by_engine[eng.name] = form
        self.engine.currentIndexChanged.connect(self._show_form)
        if self.engine.count():
            self.engine.setCurrentIndex(default_index)
            self._show_form(default_index)
        self.check.toggled.connect(self.engine.setEnabled)
        self.check.toggled.connect(self.forms.setEnabled)

    def _show_form(self, index: int) -> None:
        """Show the chosen engine's parameters; the stack takes the height of that form only."""
        for i in range(self.forms.count()):
            page = self.forms.widget(i)
            policy = QSizePolicy.Preferred if i == index else QSizePolicy.Ignored
            page.setSizePolicy(policy, policy)
        self.forms.setCurrentIndex(index)
        self.forms.adjustSize()

    def choice(self) -> StageChoice:
        name = self.engine.currentData() or ""
        form = self.form_by_engine.get(name)
        return StageChoice(name, form.values() if form else {})


class GroundSynthDock(QgsDockWidget):
    job_finished = pyqtSignal(str, str)     # job_id, final state
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
        self.results: JobResults | None = None
        self.all_results: list[JobResults] = []
        self.job_id = ""
        self.health = "unknown"
        self.drawn_rect: QgsRectangle | None = None
        self.drawn_crs = QgsCoordinateReferenceSystem()
        self.stage_rows: dict[str, StageRow] = {}
        self._closing = False
        self._build()
        self.backend.output.connect(lambda line: self.log(f"[backend] {line}"))
        self.backend.state_changed.connect(self._backend_state_changed)
        self.health_timer = QTimer(self)
        self.health_timer.setInterval(3000)
        self.health_timer.timeout.connect(self.check_health)
        self.health_timer.start()
        self._set_running(False)
        self.reload_token()
        self.check_health()

    # ================================================================ UI
    def _build(self) -> None:
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        body = QWidget(scroll)
        self.body_layout = QVBoxLayout(body)
        scroll.setWidget(body)
        self.setWidget(scroll)
        self._build_backend()
        self._build_input()
        self._build_area()
        self._build_stages()
        self._build_synthesis()
        self._build_run()
        self._build_results()
        self.body_layout.addStretch(1)

    def _group(self, title: str) -> QgsCollapsibleGroupBox:
        box = QgsCollapsibleGroupBox(title)
        self.body_layout.addWidget(box)
        return box

    def _build_backend(self) -> None:
        box = self._group("Backend")
        form = QFormLayout(box)
        row = QHBoxLayout()
        self.light = QLabel("\u25cf")
        self.light.setObjectName("health_light")
        self.address = QLineEdit(self.settings.address)
        self.address.setObjectName("address")
        self.address.editingFinished.connect(self.check_health)
        row.addWidget(self.light)
        row.addWidget(self.address, 1)
        form.addRow("Address", row)
        self.workspace = QgsFileWidget()
        self.workspace.setStorageMode(QgsFileWidget.GetDirectory)
        self.workspace.setFilePath(self.settings.workspace)
        self.workspace.fileChanged.connect(lambda _p: self.reload_token(force=True))
        form.addRow("Workspace", self.workspace)
        self.token = QLineEdit()
        self.token.setEchoMode(QLineEdit.Password)
        self.token.setPlaceholderText("read from <workspace>/token")
        self.token.textEdited.connect(lambda _t: setattr(self, "_token_from_file", False))
        self._token_from_file = True
        form.addRow("Token", self.token)
        self.python = QLineEdit(self.settings.python)
        form.addRow("Python", self.python)
        self.extra_args = QLineEdit()
        self.extra_args.setPlaceholderText("e.g. --allow-root /data/rasters")
        self.extra_args.setToolTip("extra arguments for `groundsynth serve` when started from here")
        form.addRow("Serve arguments", self.extra_args)
        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.stop_button = QPushButton("Stop")
        self.caps_button = QPushButton("Capabilities")
        self.start_button.clicked.connect(self.start_backend)
        self.stop_button.clicked.connect(self.stop_backend)
        self.caps_button.clicked.connect(self.load_capabilities)
        for b in (self.start_button, self.stop_button, self.caps_button):
            buttons.addWidget(b)
        form.addRow(buttons)
        self._paint_light()

    def _build_input(self) -> None:
        box = self._group("Input")
        form = QFormLayout(box)
        self.raster_combo = QgsMapLayerComboBox()
        self.raster_combo.setFilters(QgsMapLayerProxyModel.RasterLayer)
        self.raster_combo.layerChanged.connect(self._raster_changed)
        form.addRow("Raster", self.raster_combo)
        self.band_combos: dict[str, QgsRasterBandComboBox] = {}
        grid = QGridLayout()
        for i, role in enumerate(("red", "green", "blue", "nir")):
            combo = QgsRasterBandComboBox()
            combo.setShowNotSetOption(True)
            combo.setObjectName(f"band_{role}")
            self.band_combos[role] = combo
            grid.addWidget(QLabel(role.upper() if role == "nir" else role.capitalize()), i // 2, (i % 2) * 2)
            grid.addWidget(combo, i // 2, (i % 2) * 2 + 1)
        form.addRow("Bands", grid)
        self.label_combo = QgsMapLayerComboBox()
        self.label_combo.setFilters(QgsMapLayerProxyModel.RasterLayer)
        self.label_combo.setAllowEmptyLayer(True)
        self.label_combo.setLayer(None)
        form.addRow("Labels (optional)", self.label_combo)
        self._raster_changed(self.raster_combo.currentLayer())

    def _build_area(self) -> None:
        box = self._group("Area of interest")
        form = QFormLayout(box)
        self.area_buttons: dict[str, QRadioButton] = {}
        group = QButtonGroup(box)
        row = QHBoxLayout()
        for mode, label in zip(AREA_MODES, ("Drawn rectangle", "Map extent", "Selected polygons")):
            rb = QRadioButton(label)
            group.addButton(rb)
            self.area_buttons[mode] = rb
            row.addWidget(rb)
        self.area_buttons["extent"].setChecked(True)
        form.addRow(row)
        draw_row = QHBoxLayout()
        self.draw_button = QPushButton("Draw rectangle")
        self.draw_button.clicked.connect(self.start_drawing)
        self.drawn_label = QLabel("no rectangle drawn")
        draw_row.addWidget(self.draw_button)
        draw_row.addWidget(self.drawn_label, 1)
        form.addRow(draw_row)
        self.polygon_combo = QgsMapLayerComboBox()
        self.polygon_combo.setFilters(QgsMapLayerProxyModel.PolygonLayer)
        self.polygon_combo.setAllowEmptyLayer(True)
        form.addRow("Polygon layer", self.polygon_combo)
        self.tile_size = QSpinBox()
        self.tile_size.setRange(32, 2048)
        self.tile_size.setSingleStep(32)
        self.tile_size.setValue(int(self.settings.tile_size))
        form.addRow("Tile size (px)", self.tile_size)
        self.map_tool = None

    def _build_stages(self) -> None:
        self.stages_box = self._group("Stages")
        self.stages_layout = QVBoxLayout(self.stages_box)
        self.stages_hint = QLabel("Press Capabilities (or start a backend) to list the engines.")
        self.stages_hint.setWordWrap(True)
        self.stages_layout.addWidget(self.stages_hint)
        self.stages_container = QWidget()
        self.stages_layout.addWidget(self.stages_container)

    def _build_synthesis(self) -> None:
        box = self._group("Synthesis")
        form = QFormLayout(box)
        self.variants = QSpinBox()
        self.variants.setRange(1, 16)     # no synthesis = uncheck the synthesise stage
        self.variants.setValue(1)
        form.addRow("Variants per tile", self.variants)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2_147_483_647)
        form.addRow("Seed", self.seed)
        self.mask_strategy = QComboBox()
        self.mask_strategy.addItems(["real", "boost", "layout"])
        form.addRow("Mask strategy", self.mask_strategy)
        self.boost_widgets: dict[str, tuple[QCheckBox, QDoubleSpinBox]] = {}
        self.boost_grid = QGridLayout()
        form.addRow("Boost classes", self.boost_grid)
        self._fill_boost_classes(DEFAULT_CLASS_NAMES)

    def _fill_boost_classes(self, names: list[str]) -> None:
        while self.boost_grid.count():
            item = self.boost_grid.takeAt(0)
            if item.widget():
                item.widget().deleteLater()
        self.boost_widgets.clear()
        for i, name in enumerate(names):
            check = QCheckBox(name)
            share = QDoubleSpinBox()
            share.setRange(0.01, 1.0)
            share.setSingleStep(0.05)
            share.setValue(0.3)
            share.setEnabled(False)
            check.toggled.connect(share.setEnabled)
            self.boost_grid.addWidget(check, i // 2, (i % 2) * 2)
            self.boost_grid.addWidget(share, i // 2, (i % 2) * 2 + 1)
            self.boost_widgets[name] = (check, share)

    def _build_run(self) -> None:
        box = self._group("Run")
        layout = QVBoxLayout(box)
        row = QHBoxLayout()
        self.run_button = QPushButton("Run")
        self.run_button.setObjectName("run")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancel")
        self.run_button.clicked.connect(self.run_job)
        self.cancel_button.clicked.connect(self.cancel_job)
        row.addWidget(self.run_button)
        row.addWidget(self.cancel_button)
        layout.addLayout(row)
        form = QFormLayout()
        self.progress: dict[str, QProgressBar] = {}
        for stage in PROGRESS_STAGES:
            bar = QProgressBar()
            bar.setRange(0, 1)
            bar.setValue(0)
            bar.setFormat("-")          # no event for this stage yet
            self.progress[stage] = bar
            form.addRow(stage, bar)
        layout.addLayout(form)
        self.state_label = QLabel("idle")
        layout.addWidget(self.state_label)
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(2000)
        self.log_view.setMinimumHeight(90)
        layout.addWidget(self.log_view)

    def _build_results(self) -> None:
        box = self._group("Results")
        form = QFormLayout(box)
        self.score_combo = QComboBox()
        self.score_combo.setEditable(True)
        self.score_combo.addItems(["grounding", "fidelity_miou"])
        self.score_combo.setCurrentText(self.settings.score)
        self.score_combo.currentTextChanged.connect(self._score_changed)
        form.addRow("Colour tiles by", self.score_combo)
        row = QHBoxLayout()
        self.jobs_combo = QComboBox()
        self.jobs_refresh = QPushButton("Refresh")
        self.jobs_load = QPushButton("Load")
        self.jobs_refresh.clicked.connect(self.refresh_jobs)
        self.jobs_load.clicked.connect(lambda: self.reload_job(self.jobs_combo.currentData() or ""))
        row.addWidget(self.jobs_combo, 1)
        row.addWidget(self.jobs_refresh)
        row.addWidget(self.jobs_load)
        form.addRow("Jobs", row)
        self.fetch_check = QCheckBox("Backend on another machine: upload the raster, download job files")
        self.fetch_check.setChecked(bool(self.settings.fetch_artefacts))
        self.fetch_check.setToolTip("send the raster with UploadRaster, and fetch layers and the report with "
                                    "FetchArtefact into the cache folder instead of sharing paths")
        form.addRow(self.fetch_check)

    # ================================================================ messages
    def message(self, title: str, text: str, level=Qgis.Critical, duration: int = 10) -> None:
        self.log(f"{title}: {text}")
        bar = self.iface.messageBar() if self.iface is not None else None
        if bar is not None:
            bar.pushMessage(title, text, level, duration)

    def show_error(self, exc: BaseException) -> None:
        title, text = user_message(exc, self.address.text().strip())
        self.message(title, text, Qgis.Critical)

    def log(self, text: str) -> None:
        self.log_view.appendPlainText(f"{time.strftime('%H:%M:%S')} {text}")

    # ================================================================ backend
    def client(self) -> BackendClient:
        return BackendClient(self.address.text().strip(), self.token.text().strip())

    def reload_token(self, force: bool = False) -> None:
        """Fill the token from <workspace>/token unless the user typed one (or `force`)."""
        if not (force or self._token_from_file or not self.token.text()):
            return
        token = read_token(self.workspace.filePath())
        if token:
            self.token.setText(token)
            self._token_from_file = True

    def set_token(self, token: str) -> None:
        """Use this token instead of the workspace's (as if typed)."""
        self.token.setText(token)
        self._token_from_file = False

    def start_backend(self) -> None:
        ws = self.workspace.filePath()
        if not ws:
            self.message("Backend", "choose a workspace folder first", Qgis.Warning)
            return
        import shlex

        self.backend.start(self.address.text().strip(), ws, self.python.text().strip(),
                           extra_args=shlex.split(self.extra_args.text()))
        self._token_from_file = True
        self.log(f"starting backend on {self.address.text().strip()} (workspace {ws})")
        self.health = "unknown"
        self._paint_light()

    def stop_backend(self) -> None:
        self.backend.stop()
        self.log("backend stopped")
        self.check_health()

    def _backend_state_changed(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.stop_button.setEnabled(running)

    def check_health(self) -> None:
        if self._closing:
            return
        address = self.address.text().strip()
        client = BackendClient(address, "")

        def probe():
            try:
                return client.health(timeout=1.5)
            finally:
                client.close()

        call_async(probe, self._health_result, lambda _e: self._health_result(False), self)

    def _health_result(self, ok: bool | None) -> None:
        if self._closing:
            return
        before = self.health
        self.health = "unknown" if ok is None else "up" if ok else "down"
        self._paint_light()
        if ok and before != "up":
            self.reload_token()
            if self.capabilities is None:
                self.load_capabilities()

    def _paint_light(self) -> None:
        self.light.setStyleSheet(f"color: {LIGHT[self.health]}; font-size: 16pt;")
        self.light.setToolTip({"up": "backend serving", "down": "backend not reachable",
                               "unknown": "checking..."}[self.health])

    # ================================================================ capabilities
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
        old = self.stages_container
        self.stages_container = QWidget()
        grid = QGridLayout(self.stages_container)
        self.stage_rows.clear()
        by_stage = {s.stage: s for s in caps.stages}
        r = 0
        for stage in STAGES:
            row = StageRow(stage, by_stage.get(stage), self.stages_container)
            grid.addWidget(row.check, r, 0)
            grid.addWidget(row.engine, r, 1)
            grid.addWidget(row.forms, r + 1, 0, 1, 2)
            if stage not in by_stage or not row.engine.count():
                row.check.setChecked(False)
                row.check.setEnabled(False)
            self.stage_rows[stage] = row
            r += 2
        self.stages_layout.replaceWidget(old, self.stages_container)
        old.deleteLater()
        self.stages_hint.setText(f"Backend {caps.server_version} (API {caps.api_version})")
        if caps.mask_strategies:
            current = self.mask_strategy.currentText()
            self.mask_strategy.clear()
            self.mask_strategy.addItems(list(caps.mask_strategies))
            if current in caps.mask_strategies:
                self.mask_strategy.setCurrentText(current)
        if caps.classes:
            self._fill_boost_classes([c.name for c in caps.classes])
        self.capabilities_loaded.emit()

    # ================================================================ input / area
    def _raster_changed(self, layer) -> None:
        for i, role in enumerate(("red", "green", "blue", "nir")):
            combo = self.band_combos[role]
            combo.setLayer(layer)
            count = layer.bandCount() if isinstance(layer, QgsRasterLayer) else 0
            combo.setBand(i + 1 if i + 1 <= count else -1)

    def set_bands(self, red: int, green: int, blue: int, nir: int = -1) -> None:
        for role, band in zip(("red", "green", "blue", "nir"), (red, green, blue, nir)):
            self.band_combos[role].setBand(band)

    def set_engine(self, stage: str, engine: str, params: dict[str, str] | None = None,
                   enabled: bool = True) -> None:
        """Choose a stage's engine (and parameter values) as a user would in the Stages section."""
        row = self.stage_rows[stage]
        index = row.engine.findData(engine)
        if index < 0:
            raise InputError(f"engine {engine!r} is not offered for stage {stage!r}")
        row.check.setChecked(enabled)
        row.engine.setCurrentIndex(index)
        for name, value in (params or {}).items():
            row.form_by_engine[engine].params[name].set_text(str(value))

    def set_area_mode(self, mode: str) -> None:
        self.area_buttons[mode].setChecked(True)

    def area_mode(self) -> str:
        return next(m for m, b in self.area_buttons.items() if b.isChecked())

    def canvas(self):
        return self.iface.mapCanvas() if self.iface is not None else None

    def start_drawing(self) -> None:
        canvas = self.canvas()
        if canvas is None:
            return
        if self.map_tool is None:
            self.map_tool = QgsMapToolExtent(canvas)
            self.map_tool.extentChanged.connect(self._rect_drawn)
        canvas.setMapTool(self.map_tool)
        self.set_area_mode("rectangle")

    def _rect_drawn(self, rect: QgsRectangle) -> None:
        self.set_drawn_rectangle(rect, self.canvas().mapSettings().destinationCrs())

    def set_drawn_rectangle(self, rect: QgsRectangle, crs: QgsCoordinateReferenceSystem) -> None:
        self.drawn_rect = QgsRectangle(rect)
        self.drawn_crs = crs
        self.drawn_label.setText(f"{rect.width():.0f} x {rect.height():.0f} ({crs.authid() or 'custom CRS'})")
        self.set_area_mode("rectangle")

    def current_area(self) -> area_mod.Area:
        mode = self.area_mode()
        if mode == "rectangle":
            if self.drawn_rect is None:
                raise area_mod.AreaError("no rectangle drawn: press 'Draw rectangle' and drag on the map")
            return area_mod.from_rectangle(self.drawn_rect, self.drawn_crs)
        if mode == "extent":
            canvas = self.canvas()
            return area_mod.from_rectangle(canvas.extent(), canvas.mapSettings().destinationCrs())
        return area_mod.from_features(self.polygon_combo.currentLayer(), selected_only=True)

    # ================================================================ request
    def build_request(self) -> JobRequest:
        """Gather the dock's fields into a checked JobRequest (raises PluginError)."""
        layer = self.raster_combo.currentLayer()
        if not isinstance(layer, QgsRasterLayer) or not layer.isValid():
            raise InputError("choose a raster layer")
        path = layer.dataProvider().dataSourceUri().split("|")[0]
        if not Path(path).exists():
            raise InputError(f"the raster layer {layer.name()!r} is not a file the backend can read ({path})")
        bands = {role: combo.currentBand() for role, combo in self.band_combos.items()}
        area = self.current_area()
        area_mod.check_against_raster(area, layer.crs(), layer.extent())
        label_layer = self.label_combo.currentLayer()
        if self.stage_rows:
            stages = {s: row.choice() for s, row in self.stage_rows.items() if row.check.isChecked()}
        else:   # engines not listed yet: all stages with the backend's default engines
            stages = {s: StageChoice() for s in STAGES}
        targets = {name: share.value() for name, (check, share) in self.boost_widgets.items() if check.isChecked()}
        req = JobRequest(
            raster_path=str(Path(path).resolve()),
            red=bands["red"] if bands["red"] > 0 else 0,
            green=bands["green"] if bands["green"] > 0 else 0,
            blue=bands["blue"] if bands["blue"] > 0 else 0,
            nir=bands["nir"] if bands["nir"] > 0 else -1,
            band_count=layer.bandCount(),
            bbox=area.bbox, polygon_wkt=area.polygon_wkt, aoi_crs=area.crs_text,
            label_path=label_layer.dataProvider().dataSourceUri().split("|")[0] if label_layer else "",
            tile_size=self.tile_size.value(), stages=stages,
            variants=self.variants.value(), seed=self.seed.value(),
            mask_strategy=self.mask_strategy.currentText() if "synthesise" in stages else "real",
            boost_targets=targets if self.mask_strategy.currentText() == "boost" else {},
            name=layer.name(),
        )
        return req.check()

    # ================================================================ run
    def run_job(self) -> JobTask | None:
        if self.task is not None:
            self.message("GroundSynth", "a job is already running", Qgis.Warning)
            return None
        try:
            request = self.build_request()
            spec = request.to_proto()
        except PluginError as exc:
            self.show_error(exc)
            return None
        self._reset_progress()
        client = self.client()
        upload = request.raster_path if self.fetch_check.isChecked() else ""
        task = JobTask(client, spec=spec, description=f"GroundSynth: {request.name}", upload=upload)
        self._watch_task(task, client)
        if upload:
            self.log(f"uploading {upload} ({Path(upload).stat().st_size // 1024} KiB)")
        self.log(f"submitting job on {client.address}: {len(request.stages)} stage(s), tile {request.tile_size}px")
        return task

    def reload_job(self, job_id: str) -> None:
        """Load a finished job's layers and report from the backend (replays its events)."""
        if not job_id:
            self.message("GroundSynth", "choose a job in the list (Refresh)", Qgis.Warning)
            return
        if self.task is not None:
            self.message("GroundSynth", "wait for the running job to end", Qgis.Warning)
            return
        self._reset_progress()
        client = self.client()
        task = JobTask(client, job_id=job_id, description=f"GroundSynth: reload {job_id}")
        self._watch_task(task, client)
        self.log(f"reloading job {job_id}")

    def _watch_task(self, task: JobTask, client: BackendClient) -> None:
        self.task = task
        self._task_client = client
        task.job_event.connect(self._on_event)
        task.stage_progress.connect(self._on_progress)
        task.failed.connect(lambda title, text: self.message(title, text, Qgis.Critical))
        task.taskCompleted.connect(lambda: self._task_ended(task))
        task.taskTerminated.connect(lambda: self._task_ended(task))
        self._set_running(True)
        QgsApplication.taskManager().addTask(task)

    def cancel_job(self) -> None:
        if self.task is None:
            return
        self.log(f"cancelling job {self.task.job_id or '(not yet accepted)'}")
        self.state_label.setText("cancelling...")
        self.task.cancel()

    def _on_event(self, ev) -> None:
        which = ev.WhichOneof("event")
        try:
            if which == "accepted":
                a = ev.accepted
                self.job_id = a.job_id
                self.log(f"job {a.job_id} accepted: {a.tile_count} tile(s), {a.skipped_tiles} skipped, "
                         f"output {a.output_dir}")
                self.state_label.setText(f"running {a.job_id}")
                self._start_results(a.job_id, a.output_dir, a.spec.name)
            elif which == "tile":
                if self.results is not None:
                    self.results.add_tile(ev.tile)
            elif which == "layer":
                self.log(f"layer {ev.layer.layer} ready ({ev.layer.path})")
                if self.results is not None:
                    self.results.handle(ev)
                    if ev.layer.layer == "tiles":
                        self._update_score_choices()
            elif which == "report":
                self.log("report ready: " + ", ".join(f"{k}={v:.3g}" for k, v in sorted(ev.report.summary.items())))
                if self.results is not None:
                    self.results.handle(ev)
            elif which == "failed":
                where = f" (tile {ev.failed.tile_id})" if ev.failed.tile_id else ""
                self.log(f"failed{where}: {ev.failed.message}")
                if ev.failed.tile_id:
                    self.message("Tile failed", f"{ev.failed.tile_id}: {ev.failed.message}", Qgis.Warning)
            elif which == "done":
                d = ev.done
                self.log(f"job {ev.job_id} {state_name(d.state)}: {d.real_tiles} real, "
                         f"{d.synthetic_tiles} synthetic tile(s)")
        except Exception as exc:  # noqa: BLE001  (a bad layer must not stop the stream)
            self.show_error(exc)

    def _start_results(self, job_id: str, output_dir: str, name: str) -> None:
        for old in [r for r in self.all_results if r.job_id == job_id]:
            old.remove()
            self.all_results.remove(old)
        source = ArtefactSource(job_id, output_dir, client=self._task_client, cache_dir=self.settings.cache_dir,
                                force_fetch=self.fetch_check.isChecked())
        classes = styling.classes_from_capabilities(self.capabilities)
        self.results = JobResults(job_id, source, classes, self.score_combo.currentText(),
                                  title=f"{name} {job_id}".strip() if name else job_id, parent=self)
        self.results.report_ready.connect(self._show_report)
        self.all_results.append(self.results)

    def _on_progress(self, stage: str, done: int, total: int) -> None:
        bar = self.progress.get(stage)
        if bar is None:
            return
        bar.setFormat("%v / %m")
        bar.setRange(0, max(total, 1))
        bar.setValue(min(done, max(total, 1)))

    def _task_ended(self, task: JobTask) -> None:
        if task is not self.task:
            return
        state = task.final_state or ("CANCELLED" if task.isCanceled() else "FAILED")
        self.state_label.setText(f"idle (last job {task.job_id or '-'}: {state})")
        if state == "SUCCEEDED":
            self.message("GroundSynth", f"job {task.job_id} finished", Qgis.Success, 5)
        elif state == "CANCELLED":
            self.message("GroundSynth", f"job {task.job_id} cancelled", Qgis.Info, 5)
        self.task = None
        client, self._task_client = self._task_client, None
        if client is not None:
            client.close()
        self._set_running(False)
        self.job_finished.emit(task.job_id, state)

    def _set_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.jobs_load.setEnabled(not running)
        if not running and not self.state_label.text().startswith("idle"):
            self.state_label.setText("idle")

    def _reset_progress(self) -> None:
        for bar in self.progress.values():
            bar.setRange(0, 1)
            bar.setValue(0)
            bar.setFormat("-")

    def is_idle(self) -> bool:
        return self.task is None and self.run_button.isEnabled()

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
        fields = styling.score_fields(self.results.layers["tiles"], self.results.classes)
        current = self.score_combo.currentText()
        self.score_combo.blockSignals(True)
        self.score_combo.clear()
        self.score_combo.addItems(fields)
        self.score_combo.setCurrentText(current if current in fields else (fields[0] if fields else current))
        self.score_combo.blockSignals(False)

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

        call_async(fetch, self._fill_jobs, self.show_error, self)

    def _fill_jobs(self, jobs) -> None:
        self.jobs_combo.clear()
        for j in jobs:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(j.created))
            self.jobs_combo.addItem(f"{j.job_id} {j.spec.name} [{state_name(j.state)}] {when}", j.job_id)

    # ================================================================ shutdown
    def shutdown(self, timeout_ms: int = 10000) -> None:
        """Stop polling, end the running task (cancelling its job) and join it."""
        self._closing = True
        self.health_timer.stop()
        task = self.task
        if task is not None:
            task.cancel_now()
            task.waitForFinished(timeout_ms)
        if self.map_tool is not None and self.canvas() is not None:
            self.canvas().unsetMapTool(self.map_tool)
        self.settings.address = self.address.text().strip()
        self.settings.workspace = self.workspace.filePath()
        self.settings.python = self.python.text().strip()
        self.settings.score = self.score_combo.currentText()
        self.settings.tile_size = self.tile_size.value()
        self.settings.fetch_artefacts = self.fetch_check.isChecked()
