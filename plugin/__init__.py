"""GroundSynth QGIS plugin: from an area of interest to styled layers and a metric report.

QGIS calls `classFactory(iface)` when it loads the plugin.
"""


def classFactory(iface):  # noqa: N802  (QGIS API name)
    from .main import GroundSynthPlugin

    return GroundSynthPlugin(iface)
