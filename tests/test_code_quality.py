"""Lint, types and a security scan are part of the test command: ruff (pyflakes, pycodestyle, import order,
pyupgrade, bugbear) over the code, mypy over the package (configuration in pyproject.toml), bandit over the
package (as the QGIS plugin review does): no Medium or High finding."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINTED = ("groundsynth", "plugin", "tests", "bench", "scripts")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing():
    out = _run("ruff", "check", "--no-cache", *LINTED)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


# Scanned by bandit: the package and the plugin, without their generated gRPC code.
BANDIT_SCANNED: tuple[str, ...] = ("groundsynth", "plugin")
BANDIT_EXCLUDED = ("groundsynth/api/v1/_generated", "plugin/connection/_generated")


def bandit_findings(*paths: str) -> subprocess.CompletedProcess:
    """bandit over `paths`, Medium and High severity (any confidence), one line per finding."""
    return _run("bandit", "-q", "-r", *paths, "-x", ",".join(BANDIT_EXCLUDED), "--severity-level", "medium",
                "-f", "custom", "--msg-template", "{relpath}:{line} {test_id} {severity}/{confidence} {msg}")


def test_bandit_finds_no_medium_or_high_issue():
    out = bandit_findings(*BANDIT_SCANNED)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


def test_mypy_finds_nothing_in_the_package():
    out = _run("mypy", "--cache-dir", str(ROOT / ".mypy_cache"))
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 80
# (path, function) -> why it is longer; empty when every piece fits
SIZE_EXCEPTIONS: dict[tuple[str, str], str] = {}


def _oversized(folder: str) -> list[str]:
    import ast

    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        if "_generated" in path.parts:
            continue
        rel = path.relative_to(ROOT).as_posix()
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > MAX_MODULE_LINES:
            found.append(f"{rel}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                if n > MAX_FUNCTION_LINES and (rel, node.name) not in SIZE_EXCEPTIONS:
                    found.append(f"{rel}:{node.lineno} {node.name}(): {n} lines")
    return found


def test_no_module_over_400_lines_and_no_function_over_80():
    assert _oversized("groundsynth") == []


# The package's layers, bottom first (docs/architecture.md): a module may import its own folder and the
# folders of lower layers only. Folders on one line are siblings and do not import each other.
LAYERS = (
    ("request",),
    ("metrics", "artefacts"),
    ("tiling",),
    ("models", "demo"),
    ("engines",),
    ("report",),
    ("pipeline",),
    ("export",),
    ("datasets",),
    ("train",),
    ("api",),
    ("service",),
    ("cli",),
)


def _layer_imports() -> list[str]:
    import ast

    rank = {name: i for i, names in enumerate(LAYERS) for name in names}
    wrong = []
    for path in sorted((ROOT / "groundsynth").rglob("*.py")):
        rel = path.relative_to(ROOT / "groundsynth")
        if "_generated" in rel.parts or len(rel.parts) < 2:
            continue                                    # the package's face (__init__, __main__) may use all
        here = rel.parts[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            for name in names:
                parts = name.split(".")
                if parts[0] != "groundsynth" or len(parts) < 2 or parts[1] not in rank or parts[1] == here:
                    continue
                if rank[parts[1]] >= rank[here]:
                    wrong.append(f"groundsynth/{rel.as_posix()}:{node.lineno} ({here}) imports {name}")
    return wrong


def test_lower_layers_never_import_higher_ones():
    folders = {p.name for p in (ROOT / "groundsynth").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == {name for names in LAYERS for name in names}, "every folder has its place in LAYERS"
    assert _layer_imports() == []
