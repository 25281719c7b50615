"""The plugin's code layout rules: small modules and functions, and only relative imports of itself
(it installs as `groundsynth_plugin`, so `import plugin...` or the backend package would break there)."""
from __future__ import annotations

import ast
from pathlib import Path

PLUGIN = Path(__file__).resolve().parents[1] / "plugin"
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 80


def plugin_modules() -> list[Path]:
    return sorted(p for p in PLUGIN.rglob("*.py") if "_generated" not in p.parts)


def test_no_module_over_400_lines_and_no_function_over_80():
    too_long = []
    for path in plugin_modules():
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{path.relative_to(PLUGIN)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    too_long.append(f"{path.relative_to(PLUGIN)}:{node.lineno} {node.name}: {n} lines")
    assert not too_long, too_long


def test_the_plugin_imports_itself_only_relatively_and_never_the_backend_package():
    bad = []
    for path in plugin_modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in ("plugin", "groundsynth_plugin", "groundsynth", "backend", "tests"):
                    bad.append(f"{path.relative_to(PLUGIN)}:{node.lineno} imports {name}")
    assert not bad, bad


def test_every_sub_package_named_in_the_layout_exists():
    for sub in ("panels", "tasks", "connection", "layers", "processing"):
        assert (PLUGIN / sub / "__init__.py").exists(), sub
    for panel in ("backend", "input", "area", "stages", "synthesis", "run", "jobs"):
        assert (PLUGIN / "panels" / f"{panel}.py").exists(), panel


def _unscoped_enums(path: Path) -> list[str]:
    """`Class.Member` where Member is an enum value of a Qt/QGIS class: PyQt6 (QGIS 4) only knows
    `Class.Enum.Member`, which PyQt5 accepts too."""
    import importlib

    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported: dict[str, object] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "qgis":
            module = importlib.import_module(node.module)
            for alias in node.names:
                if hasattr(module, alias.name):
                    imported[alias.asname or alias.name] = getattr(module, alias.name)
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in imported:
            owner = imported[node.value.id]
            value = getattr(owner, node.attr, None)
            if isinstance(owner, type) and isinstance(value, int) and type(value) not in (int, bool) \
                    and not isinstance(value, type):
                enum = type(value).__name__
                bad.append(f"{path.relative_to(PLUGIN)}:{node.lineno} {node.value.id}.{node.attr} "
                           f"(use {node.value.id}.{enum}.{node.attr})")
    return bad


def test_enums_are_scoped_so_the_plugin_loads_under_pyqt5_and_pyqt6(qgis_app):
    bad = [b for path in plugin_modules() for b in _unscoped_enums(path)]
    assert not bad, bad
