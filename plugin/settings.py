"""Plugin settings kept in QgsSettings under groundsynth/, and the plugin's data folder.

The data folder is `<QGIS profile folder>/groundsynth/` (QgsApplication.qgisSettingsDirPath(),
e.g. ~/.local/share/QGIS/QGIS3/profiles/default/groundsynth on Linux). It holds:
    venv/          the managed backend environment ("Set up backend")
    python-deps/   grpcio and protobuf for QGIS's Python, when QGIS has none ("Install")
    workspace/     the default backend workspace (jobs, uploads, token)
    cache/         job files fetched from a backend on another machine
    setup.log      the log of the last set-up or install
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from qgis.core import QgsApplication, QgsSettings

PREFIX = "groundsynth/"
BACKEND_MODES = ("managed", "python", "remote")   # managed environment, an existing Python, a remote address


def data_dir() -> Path:
    return Path(QgsApplication.qgisSettingsDirPath()) / "groundsynth"


def default_workspace() -> str:
    return str(data_dir() / "workspace")


def default_cache() -> str:
    return str(data_dir() / "cache")


@dataclass
class PluginSettings:
    address: str = "127.0.0.1:50051"
    workspace: str = ""          # the backend's workspace (token is read from <workspace>/token)
    backend_mode: str = "managed"   # one of BACKEND_MODES
    python: str = ""             # an existing interpreter that runs `-m groundsynth serve` (mode "python")
    cache_dir: str = ""          # where artefacts of a remote backend are fetched to
    score: str = "auto"          # score that colours the tile grid ("auto": styling.default_score)
    tile_size: int = 256
    fetch_artefacts: bool = False   # always download job files (FetchArtefact), even if the job dir is visible

    @classmethod
    def load(cls) -> PluginSettings:
        s = QgsSettings()
        out = cls()
        for f in fields(cls):
            value = s.value(PREFIX + f.name, getattr(out, f.name))
            if value is None:
                continue
            if isinstance(getattr(out, f.name), bool):
                value = str(value).lower() in ("true", "1")
            setattr(out, f.name, type(getattr(out, f.name))(value))
        out.workspace = out.workspace or default_workspace()
        out.cache_dir = out.cache_dir or default_cache()
        if out.backend_mode not in BACKEND_MODES:
            out.backend_mode = "managed"
        return out

    def save(self) -> None:
        s = QgsSettings()
        for f in fields(self):
            s.setValue(PREFIX + f.name, getattr(self, f.name))
