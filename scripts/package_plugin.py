"""Build the installable QGIS plugin zip, or link the built plugin into a QGIS profile.

    python scripts/package_plugin.py [--out dist]          # -> dist/groundsynth_plugin-<version>.zip
    python scripts/package_plugin.py --link PLUGINS_DIR    # build, then symlink it as PLUGINS_DIR/groundsynth_plugin

The zip holds one top-level folder `groundsynth_plugin/` with metadata.txt,
LICENSE, the plugin code (plugin/, its sub-packages and icon) and the plugin's
own generated copy of the groundsynth.v1 contract (plugin/connection/_generated),
so the installed plugin works without the repository and without the backend
package. QGIS's Python needs grpcio and protobuf (docs/plugin.md).
"""
from __future__ import annotations

import argparse
import configparser
import os
import shutil
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_SRC = ROOT / "plugin"
NAME = "groundsynth_plugin"
SHIPPED_SUFFIXES = (".py", ".pyi", ".svg", ".png", ".html", ".md")


def version() -> str:
    cp = configparser.ConfigParser()
    cp.read(ROOT / "metadata.txt")
    return cp["general"]["version"]


def ensure_generated() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    import gen_proto  # noqa: E402

    if gen_proto.stale():
        gen_proto.generate()


def build(stage_root: Path) -> Path:
    """Assemble <stage_root>/groundsynth_plugin and return it."""
    ensure_generated()
    dest = stage_root / NAME
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for f in sorted(PLUGIN_SRC.rglob("*")):
        if f.is_file() and f.suffix in SHIPPED_SUFFIXES and "__pycache__" not in f.parts:
            target = dest / f.relative_to(PLUGIN_SRC)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, target)
    shutil.copy2(ROOT / "metadata.txt", dest / "metadata.txt")
    shutil.copy2(ROOT / "LICENSE", dest / "LICENSE")
    doc = ROOT / "docs" / "plugin.md"
    if doc.exists():
        shutil.copy2(doc, dest / "README.md")
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
