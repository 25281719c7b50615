""""Copy diagnostics": what a bug report needs, as plain text (versions, backend, capabilities, last error)."""
from __future__ import annotations

import platform
import sys

from qgis.core import Qgis
from qgis.PyQt.QtCore import PYQT_VERSION_STR, QT_VERSION_STR

from . import deps
from .connection import environment
from .help import metadata
from .settings import data_dir


def _versions() -> list[str]:
    lines = [f"GroundSynth plugin: {metadata().get('version', '?')}",
             f"QGIS: {Qgis.QGIS_VERSION}", f"Qt: {QT_VERSION_STR}, PyQt: {PYQT_VERSION_STR}",
             f"Python: {sys.version.split()[0]} ({sys.executable})", f"Platform: {platform.platform()}"]
    for module in ("grpc", "google.protobuf"):
        mod = sys.modules.get(module)
        lines.append(f"{module}: {getattr(mod, '__version__', 'not loaded')}"
                     + (f" ({mod.__file__})" if mod is not None else ""))
    try:
        from .connection._generated import GRPC_TOOLS_VERSION, RUNTIME_FLOOR
        lines.append(f"generated gRPC code: grpcio-tools {GRPC_TOOLS_VERSION}, needs {RUNTIME_FLOOR}")
    except ImportError:
        lines.append("generated gRPC code: missing")
    lines.append(f"missing dependencies: {', '.join(deps.missing()) or 'none'}")
    return lines


def _capabilities(caps) -> list[str]:
    if caps is None:
        return ["capabilities: not loaded"]
    lines = [f"backend: {caps.server_version} (API {caps.api_version})"]
    for st in caps.stages:
        engines = ", ".join(e.name + ("" if e.available else " (unavailable)") for e in st.engines)
        lines.append(f"  {st.stage}: {engines}")
    return lines


def diagnostics_text(dock) -> str:
    bp = dock.backend_panel
    lines = ["GroundSynth diagnostics", *_versions(),
             f"data folder: {data_dir()}",
             f"backend mode: {bp.mode_key()}; address {bp.address.text().strip()}; health {bp.health}",
             f"managed environment: {'ready' if environment.is_set_up() else 'not set up'} "
             f"({environment.venv_dir()})",
             f"python for Start: {bp.python_for_start() or '-'}",
             f"backend started here: {'running' if bp.owns_backend() else 'no'}; allowed folders: "
             f"{', '.join(dock.backend.allowed_roots) or '-'}",
             f"workspace: {bp.workspace.filePath()}",
             *_capabilities(dock.capabilities),
             f"last job: {dock.job_id or '-'}",
             f"last error: {dock.last_error or '-'}"]
    return "\n".join(lines)
