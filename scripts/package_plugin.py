"""Build the installable QGIS plugin zip, or link the built plugin into a QGIS profile.

    python scripts/package_plugin.py [--out dist]          # -> dist/groundsynth_plugin-<version>.zip
    python scripts/package_plugin.py --link PLUGINS_DIR    # build, then symlink it as PLUGINS_DIR/groundsynth_plugin

The zip holds one top-level folder `groundsynth_plugin/` with metadata.txt, the
plugin code (plugin/), its icon, and under `_vendor/` the part of the backend
package the plugin imports to talk gRPC (found by following its imports:
backend.contract and the generated groundsynth.v1 code), so the installed
plugin works without the repository. QGIS's Python needs grpcio and protobuf
(docs/plugin.md shows how to install them).
"""
from __future__ import annotations

import argparse
import ast
import configparser
import os
import shutil
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_SRC = ROOT / "plugin"
BACKEND = ROOT / "backend"
NAME = "groundsynth_plugin"


def version() -> str:
    cp = configparser.ConfigParser()
    cp.read(ROOT / "metadata.txt")
    return cp["general"]["version"]


def _module_file(module: str) -> Path | None:
    rel = Path(*module.split("."))
    for cand in (ROOT / rel.with_suffix(".py"), ROOT / rel / "__init__.py"):
        if cand.exists():
            return cand
    return None


def _imports(path: Path, module: str) -> set[str]:
    """backend.* modules imported by a file (absolute and relative imports)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    pkg = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names}
    return {m for m in out if m == "backend" or m.startswith("backend.")}


def backend_closure() -> list[Path]:
    """Files of the backend modules the plugin needs, following imports transitively."""
    todo: set[str] = set()
    for f in PLUGIN_SRC.glob("*.py"):
        todo |= _imports(f, f"plugin.{f.stem}")
    seen: set[str] = set()
    files: set[Path] = set()
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        path = _module_file(mod)
        if path is None:
            continue   # a name imported from a module, not a module
        files.add(path)
        parts = mod.split(".")
        for i in range(1, len(parts)):       # parent packages' __init__
            init = ROOT / Path(*parts[:i]) / "__init__.py"
            if init.exists():
                files.add(init)
        todo |= _imports(path, mod)
    return sorted(files)


def ensure_generated() -> Path:
    sys.path.insert(0, str(ROOT / "scripts"))
    import gen_proto  # noqa: E402

    if gen_proto.stale():
        gen_proto.generate()
    return gen_proto.OUT


def build(stage_root: Path) -> Path:
    """Assemble build/plugin/groundsynth_plugin and return it."""
    dest = stage_root / NAME
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for f in sorted(PLUGIN_SRC.iterdir()):
        if f.suffix in (".py", ".svg", ".png") and f.is_file():
            shutil.copy2(f, dest / f.name)
    shutil.copy2(ROOT / "metadata.txt", dest / "metadata.txt")
    doc = ROOT / "docs" / "plugin.md"
    if doc.exists():
        shutil.copy2(doc, dest / "README.md")
    vendor = dest / "_vendor"
    for f in backend_closure():
        target = vendor / f.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, target)
    generated = ensure_generated()
    shutil.copytree(generated, vendor / "backend" / "_generated",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def make_zip(folder: Path, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    zpath = out_dir / f"{NAME}-{version()}.zip"
    tmp = zpath.with_suffix(".zip.part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                zf.write(path, path.relative_to(folder.parent).as_posix())
    os.replace(tmp, zpath)
    return zpath


def link(folder: Path, plugins_dir: Path) -> Path:
    plugins_dir.mkdir(parents=True, exist_ok=True)
    target = plugins_dir / NAME
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.exists():
        raise SystemExit(f"{target} exists and is not a link; remove it first")
    target.symlink_to(folder.resolve(), target_is_directory=True)
    return target


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "dist"), help="folder for the zip (default dist/)")
    ap.add_argument("--build-dir", default=str(ROOT / "build" / "plugin"), help="staging folder")
    ap.add_argument("--link", metavar="PLUGINS_DIR", help="symlink the built plugin into this QGIS plugins folder")
    args = ap.parse_args(argv)
    folder = build(Path(args.build_dir))
    if args.link:
        target = link(folder, Path(os.path.expanduser(args.link)))
        print(f"linked {target} -> {folder}")
        print("enable 'GroundSynth' in QGIS: Plugins > Manage and Install Plugins > Installed")
    else:
        zpath = make_zip(folder, Path(args.out))
        print(f"wrote {zpath} ({zpath.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
