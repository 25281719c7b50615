"""The GroundSynth Processing provider (toolbox group "GroundSynth", id "groundsynth")."""
from __future__ import annotations

from pathlib import Path

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .algorithms import ALGORITHMS
from .reference_alg import WriteReferenceAlgorithm

ICON = Path(__file__).resolve().parents[1] / "icon.svg"


class GroundSynthProvider(QgsProcessingProvider):
    def id(self):
        return "groundsynth"

    def name(self):
        return "GroundSynth"

    def longName(self):
        return "GroundSynth: segment, synthesise, caption and ground raster tiles"

    def icon(self):
        return QIcon(str(ICON))

    def loadAlgorithms(self):
        for alg in (*ALGORITHMS, WriteReferenceAlgorithm):
            self.addAlgorithm(alg())
