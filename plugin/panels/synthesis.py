"""Synthesis section: variants per tile, seed, mask strategy and the classes to boost with target shares."""
from __future__ import annotations

from qgis.PyQt.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGridLayout, QSpinBox

from ..layers import styling
from .base import Panel

DEFAULT_CLASS_NAMES = [c[1] for c in styling.DEFAULT_CLASSES]


class SynthesisPanel(Panel):
    def __init__(self, parent=None):
        super().__init__("Synthesis", parent)
        form = QFormLayout(self)
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
            share.setMaximumWidth(64)
            share.setEnabled(False)
            check.toggled.connect(share.setEnabled)
            self.boost_grid.addWidget(check, i // 2, (i % 2) * 2)
            self.boost_grid.addWidget(share, i // 2, (i % 2) * 2 + 1)
            self.boost_widgets[name] = (check, share)

    def load(self, capabilities) -> None:
        if capabilities.mask_strategies:
            current = self.mask_strategy.currentText()
            self.mask_strategy.clear()
            self.mask_strategy.addItems(list(capabilities.mask_strategies))
            if current in capabilities.mask_strategies:
                self.mask_strategy.setCurrentText(current)
        if capabilities.classes:
            self._fill_boost_classes([c.name for c in capabilities.classes])

    def fill(self, request) -> None:
        """Needs `request.stages` (the Stages panel fills first)."""
        strategy = self.mask_strategy.currentText()
        request.variants = self.variants.value()
        request.seed = self.seed.value()
        request.mask_strategy = strategy if "synthesise" in request.stages else "real"
        request.boost_targets = {name: share.value() for name, (check, share) in self.boost_widgets.items()
                                 if check.isChecked()} if strategy == "boost" else {}
