"""Dock sections on their own (no backend)."""
from pathlib import Path

from plugin.connection.api import pb

ROOT = Path(__file__).resolve().parents[1]




def test_param_form_has_a_widget_per_declared_type_and_sends_changes(qgis_app, qtbot):
    from qgis.gui import QgsFileWidget
    from qgis.PyQt.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QLineEdit, QSpinBox

    from plugin.panels.param_widgets import ParamForm

    eng = pb.EngineInfo(name="e", params=[
        pb.ParamSpec(name="k", type="int", default="3", has_range=True, min=1, max=9),
        pb.ParamSpec(name="alpha", type="float", default="0.5", has_range=True, min=0, max=1),
        pb.ParamSpec(name="fast", type="bool", default="true"),
        pb.ParamSpec(name="mode", type="choice", default="a", choices=["a", "b"]),
        pb.ParamSpec(name="label", type="str", default="x"),
        pb.ParamSpec(name="weights", type="path", default=""),
    ])
    form = ParamForm(eng)
    qtbot.addWidget(form)
    kinds = {n: type(p.widget) for n, p in form.params.items()}
    assert kinds == {"k": QSpinBox, "alpha": QDoubleSpinBox, "fast": QCheckBox, "mode": QComboBox,
                     "label": QLineEdit, "weights": QgsFileWidget}
    assert form.params["k"].widget.maximum() == 9
    assert form.values() == {}                                 # defaults are not sent
    form.params["k"].widget.setValue(5)
    form.params["fast"].widget.setChecked(False)
    form.params["mode"].widget.setCurrentText("b")
    assert form.values() == {"k": "5", "fast": "false", "mode": "b"}
    assert form.values(changed_only=False)["alpha"] == "0.5"
