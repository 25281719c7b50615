"""Plugin settings kept in QgsSettings under groundsynth/."""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from qgis.core import QgsApplication, QgsSettings

from .connection.process import default_python

PREFIX = "groundsynth/"


def default_workspace() -> str:
    return str(Path(QgsApplication.qgisSettingsDirPath()) / "groundsynth" / "workspace")


def default_cache() -> str:
    return str(Path(QgsApplication.qgisSettingsDirPath()) / "groundsynth" / "cache")


@dataclass
class PluginSettings:
    address: str = "127.0.0.1:50051"
    workspace: str = ""          # the backend's workspace (token is read from <workspace>/token)
    python: str = ""             # interpreter that runs `-m backend serve`
    cache_dir: str = ""          # where artefacts of a remote backend are fetched to
    score: str = "grounding"     # score that colours the tile grid
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
        out.python = out.python or default_python()
        out.cache_dir = out.cache_dir or default_cache()
        return out

    def save(self) -> None:
        s = QgsSettings()
        for f in fields(self):
            s.setValue(PREFIX + f.name, getattr(self, f.name))
