"""Stage engine registry.

Engines register themselves with the `register` class decorator. Every module
of the `builtin` and `neural` sub-packages is imported on first lookup
(`load_all`), so adding an engine means adding one file there (plus its test):
nothing else changes.

    @register
    class Spectral(Segmenter):
        name = "spectral"
        ...
"""
from __future__ import annotations

import importlib
import pkgutil
import threading

from groundsynth.engines.base import Engine
from groundsynth.request.errors import InvalidArgument
from groundsynth.request.spec import STAGES

_registry: dict[str, dict[str, type[Engine]]] = {s: {} for s in STAGES}
_loaded = False
_lock = threading.Lock()


def register(cls: type[Engine]) -> type[Engine]:
    """Class decorator: make an engine findable by (stage, name)."""
    if cls.stage not in _registry:
        raise ValueError(f"{cls.__name__}: unknown stage {cls.stage!r}")
    existing = _registry[cls.stage].get(cls.name)
    if existing is not None and existing is not cls and existing.__qualname__ != cls.__qualname__:
        raise ValueError(f"engine {cls.stage}/{cls.name} registered twice ({existing.__module__}, {cls.__module__})")
    _registry[cls.stage][cls.name] = cls
    return cls


def unregister(stage: str, name: str) -> None:
    """Remove an engine (tests register throw-away engines)."""
    _registry.get(stage, {}).pop(name, None)


ENGINE_PACKAGES = ("builtin", "neural")


def load_all() -> None:
    """Import every engine module of the engine sub-packages once."""
    global _loaded
    with _lock:
        if _loaded:
            return
        for pkg_name in ENGINE_PACKAGES:
            pkg = importlib.import_module(f"{__name__}.{pkg_name}")
            for mod in pkgutil.iter_modules(pkg.__path__):
                if not mod.name.startswith("_"):
                    importlib.import_module(f"{pkg.__name__}.{mod.name}")
        _loaded = True


def engines(stage: str) -> dict[str, type[Engine]]:
    load_all()
    if stage not in _registry:
        raise InvalidArgument(f"expected one of {', '.join(STAGES)}, got {stage!r}", "stages.stage")
    return dict(_registry[stage])


def default_engine(stage: str) -> type[Engine]:
    found = engines(stage)
    defaults = [c for c in found.values() if c.is_default]
    if defaults:
        return defaults[0]
    if not found:
        raise InvalidArgument(f"no engine is registered for stage {stage!r}", "stages.engine")
    return sorted(found.values(), key=lambda c: c.name)[0]


def get_engine(stage: str, name: str | None) -> type[Engine]:
    """The engine class for (stage, name); empty name = the stage's default."""
    if not name:
        return default_engine(stage)
    found = engines(stage)
    if name not in found:
        raise InvalidArgument(
            f"unknown engine {name!r} for stage {stage!r}; expected one of {', '.join(sorted(found)) or 'none'}",
            f"stages[{stage}].engine")
    return found[name]
