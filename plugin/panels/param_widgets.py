"""One widget per engine parameter (groundsynth.v1.ParamSpec), built from Capabilities."""
from __future__ import annotations

from qgis.gui import QgsFileWidget
from qgis.PyQt.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QLineEdit, QSpinBox, QWidget

INT_LIMIT = 2_000_000_000


class ParamWidget:
    """A ParamSpec and its editor; `text()` gives the value as the wire expects it."""

    def __init__(self, spec, parent=None):
        self.spec = spec
        t = spec.type
        if t == "int":
            w = QSpinBox(parent)
            w.setRange(int(spec.min) if spec.has_range else -INT_LIMIT, int(spec.max) if spec.has_range else INT_LIMIT)
            w.setValue(int(float(spec.default or 0)))
        elif t == "float":
            w = QDoubleSpinBox(parent)
            w.setDecimals(4)
            w.setRange(spec.min if spec.has_range else -1e12, spec.max if spec.has_range else 1e12)
            step = (spec.max - spec.min) / 100 if spec.has_range and spec.max > spec.min else 0.1
            w.setSingleStep(step)
            w.setValue(float(spec.default or 0))
        elif t == "bool":
            w = QCheckBox(parent)
            w.setChecked(str(spec.default).lower() in ("true", "1", "yes", "on"))
        elif t == "choice":
            w = QComboBox(parent)
            w.addItems(list(spec.choices))
            if spec.default in spec.choices:
                w.setCurrentText(spec.default)
        elif t == "path":
            w = QgsFileWidget(parent)
            w.setFilePath(spec.default)
        else:
            w = QLineEdit(parent)
            w.setText(spec.default)
        w.setObjectName(f"param_{spec.name}")
        w.setToolTip(spec.help)
        self.widget: QWidget = w

    def text(self) -> str:
        w, t = self.widget, self.spec.type
        if t == "int":
            return str(w.value())
        if t == "float":
            return repr(float(w.value()))
        if t == "bool":
            return "true" if w.isChecked() else "false"
        if t == "choice":
            return w.currentText()
        if t == "path":
            return w.filePath()
        return w.text()

    def set_text(self, value: str) -> None:
        w, t = self.widget, self.spec.type
        if t == "int":
            w.setValue(int(float(value)))
        elif t == "float":
            w.setValue(float(value))
        elif t == "bool":
            w.setChecked(value.lower() in ("true", "1", "yes", "on"))
        elif t == "choice":
            w.setCurrentText(value)
        elif t == "path":
            w.setFilePath(value)
        else:
            w.setText(value)

    def is_default(self) -> bool:
        default = self.spec.default
        if self.spec.type in ("int", "float"):
            try:
                return abs(float(self.text()) - float(default or 0)) < 1e-12
            except ValueError:
                return False
        if self.spec.type == "bool":
            return (self.text() == "true") == (str(default).lower() in ("true", "1", "yes", "on"))
        return self.text() == default


class ParamForm(QWidget):
    """All parameters of one engine in a form."""

    def __init__(self, engine_info, parent=None):
        super().__init__(parent)
        self.engine = engine_info
        layout = QFormLayout(self)
        layout.setContentsMargins(12, 0, 0, 0)
        self.params: dict[str, ParamWidget] = {}
        for spec in engine_info.params:
            pw = ParamWidget(spec, self)
            layout.addRow(spec.name, pw.widget)
            self.params[spec.name] = pw

    def values(self, changed_only: bool = True) -> dict[str, str]:
        return {n: p.text() for n, p in self.params.items() if not (changed_only and p.is_default())}
