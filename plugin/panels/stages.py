"""Stages section: per stage a checkbox, an engine choice and a parameter form, built from Capabilities."""
from __future__ import annotations

from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGridLayout,
    QLabel,
    QSizePolicy,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from ..connection.api import STAGES
from ..errors import InputError
from ..job_request import StageChoice
from .base import Panel, compact
from .param_widgets import ParamForm


class StageRow:
    """Checkbox + engine choice + a parameter form per engine, for one stage."""

    def __init__(self, stage: str, stage_info, parent: QWidget):
        self.stage = stage
        self.check = QCheckBox(stage, parent)
        self.check.setObjectName(f"stage_{stage}")
        self.check.setChecked(True)
        self.engine = compact(QComboBox(parent), 16)
        self.engine.setObjectName(f"engine_{stage}")
        self.forms = QStackedWidget(parent)
        self.form_by_engine: dict[str, ParamForm] = {}
        default_index = 0
        for i, eng in enumerate(stage_info.engines if stage_info is not None else []):
            label = eng.name if eng.available else f"{eng.name} (unavailable)"
            self.engine.addItem(label, eng.name)
            self.engine.setItemData(i, eng.description if eng.available else eng.unavailable_reason,
                                    Qt.ItemDataRole.ToolTipRole)
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
            policy = QSizePolicy.Policy.Preferred if i == index else QSizePolicy.Policy.Ignored
            page.setSizePolicy(policy, policy)
        self.forms.setCurrentIndex(index)
        self.forms.adjustSize()

    def choice(self) -> StageChoice:
        name = self.engine.currentData() or ""
        form = self.form_by_engine.get(name)
        return StageChoice(name, form.values() if form else {})


class StagesPanel(Panel):
    def __init__(self, parent=None):
        super().__init__("Stages", parent)
        self.stage_rows: dict[str, StageRow] = {}
        self.stages_layout = QVBoxLayout(self)
        self.stages_hint = QLabel("Press Capabilities (or start a backend) to list the engines.")
        self.stages_hint.setWordWrap(True)
        self.stages_layout.addWidget(self.stages_hint)
        self.stages_container = QWidget()
        self.stages_layout.addWidget(self.stages_container)

    def load(self, capabilities) -> None:
        old = self.stages_container
        self.stages_container = QWidget()
        grid = QGridLayout(self.stages_container)
        self.stage_rows.clear()
        by_stage = {s.stage: s for s in capabilities.stages}
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
        self.stages_hint.setText(f"Backend {capabilities.server_version} (API {capabilities.api_version})")

    def set_engine(self, stage: str, engine: str, params: dict[str, str] | None = None,
                   enabled: bool = True) -> None:
        """Choose a stage's engine (and parameter values) as a user would."""
        row = self.stage_rows[stage]
        index = row.engine.findData(engine)
        if index < 0:
            raise InputError(f"engine {engine!r} is not offered for stage {stage!r}")
        row.check.setChecked(enabled)
        row.engine.setCurrentIndex(index)
        for name, value in (params or {}).items():
            row.form_by_engine[engine].params[name].set_text(str(value))

    def fill(self, request) -> None:
        if self.stage_rows:
            request.stages = {s: row.choice() for s, row in self.stage_rows.items() if row.check.isChecked()}
        else:   # engines not listed yet: all stages with the backend's default engines
            request.stages = {s: StageChoice() for s in STAGES}
