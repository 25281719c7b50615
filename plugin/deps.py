"""The plugin's own Python dependencies (grpcio, protobuf) for QGIS's Python.

QGIS's Python often lacks them (Debian's QGIS) and its pip may be refused
(PEP 668, "externally-managed-environment"). So they install into a
plugin-local folder, `<data folder>/python-deps`, with `pip install --target`,
which touches no environment; the plugin puts that folder on sys.path at load.
`missing()` tells what is absent or too old for the generated gRPC code (its
floor is recorded by scripts/gen_proto.py in connection/_generated).
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

from .settings import data_dir

# what "Install" puts into python-deps: the project's tested pins (pyproject.toml)
INSTALL_PINS = ("grpcio==1.85.1", "grpcio-health-checking==1.85.1", "protobuf==7.36.2")
FALLBACK_FLOOR = {"grpcio": "1.51.1", "protobuf": "3.20.3"}


def deps_dir() -> Path:
    return data_dir() / "python-deps"


def add_to_path() -> None:
    """Put the plugin-local dependency folder first on sys.path (if it exists)."""
    folder = str(deps_dir())
    if Path(folder).is_dir() and folder not in sys.path:
        sys.path.insert(0, folder)
        importlib.invalidate_caches()


def _version_tuple(text: str) -> tuple[int, ...]:
    out = []
    for part in text.split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        if not digits:
            break
        out.append(int(digits))
    return tuple(out)


def runtime_floor() -> dict[str, str]:
    try:
        from .connection._generated import RUNTIME_FLOOR
    except ImportError:
        return dict(FALLBACK_FLOOR)
    return dict(RUNTIME_FLOOR)


def missing() -> list[str]:
    """'grpcio (not installed)', 'protobuf 3.12 < 3.20.3', ...: what keeps the plugin from talking gRPC."""
    floor = runtime_floor()
    out = []
    for dist, module in (("grpcio", "grpc"), ("protobuf", "google.protobuf")):
        try:
            mod = importlib.import_module(module)
        except ImportError:
            out.append(f"{dist} (not installed)")
            continue
        have = getattr(mod, "__version__", "0")
        if _version_tuple(have) < _version_tuple(floor[dist]):
            out.append(f"{dist} {have} < {floor[dist]}")
    return out


def install_steps(python: str, target: Path | None = None):
    """The pip command that installs the plugin's dependencies into the plugin-local folder."""
    from .tasks.commands import Step

    target = target or deps_dir()
    args = [python, "-m", "pip", "install", "--disable-pip-version-check", "--upgrade", "--target", str(target),
            *INSTALL_PINS]
    return [Step(f"install {', '.join(INSTALL_PINS)} into {target}", args)]
