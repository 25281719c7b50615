"""Build the installable QGIS plugin zip, or link the built plugin into a QGIS profile.

    python scripts/package_plugin.py [--out dist]          # -> dist/groundsynth_plugin-<version>.zip
    python scripts/package_plugin.py --link PLUGINS_DIR    # build, then symlink it as PLUGINS_DIR/groundsynth_plugin

The zip holds one top-level folder `groundsynth_plugin/` with metadata.txt,
LICENSE, the plugin code (plugin/, its sub-packages and icon), the plugin's own
generated copy of the groundsynth.v1 contract (plugin/connection/_generated,
made with the oldest grpcio-tools at hand: scripts/gen_proto.py), the docs
(help/: docs/plugin.md and its screenshot, opened by Help) and wheels/: a wheel
of the backend package built from this checkout, which "Set up backend"
installs into the plugin's managed environment. So the installed plugin works
without the repository.

    python scripts/package_plugin.py [--no-fetch-tools]    # --no-fetch-tools: never pip-install the old
                                                           # grpcio-tools into build/ (offline builds)
"""
from __future__ import annotations

import argparse
import configparser
import os
import shutil
import subprocess
import sys
import tempfile
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


def ensure_generated(fetch_tools: bool = False) -> None:
    """Generate the gRPC code if stale; with `fetch_tools`, first get the old grpcio-tools for the plugin's copy."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import gen_proto  # noqa: E402

    fresh = False
    if fetch_tools and not (gen_proto.plugin_tools_dir() / "grpc_tools").is_dir():
        try:
            gen_proto.fetch_plugin_tools()
            fresh = True
        except (OSError, subprocess.CalledProcessError) as exc:
            print(f"[package] no grpcio-tools {gen_proto.PLUGIN_TOOLS_VERSION} ({exc}); the plugin's gRPC code "
                  "is generated with the current grpcio-tools", file=sys.stderr)
    if fresh or gen_proto.stale():
        gen_proto.generate()


def build_wheel(dest: Path) -> Path:
    """A wheel of the backend package (with its generated gRPC code) from a clean copy of the sources."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for name in ("pyproject.toml", "README.md", "LICENSE"):
            shutil.copy2(ROOT / name, src / name)
        shutil.copytree(ROOT / "groundsynth", src / "groundsynth",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
        out = Path(tmp) / "wheel"
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                        "--no-index", "--wheel-dir", str(out), str(src)], check=True)
        wheels = list(out.glob("groundsynth-*.whl"))
        if len(wheels) != 1:
            raise SystemExit(f"expected one groundsynth wheel, got {wheels}")
        target = dest / wheels[0].name
        shutil.copy2(wheels[0], target)
    return target


def build(stage_root: Path, fetch_tools: bool = False) -> Path:
    """Assemble <stage_root>/groundsynth_plugin and return it."""
    ensure_generated(fetch_tools)
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
    (dest / "help").mkdir()
    for doc in ("plugin.md", "screenshot.png"):
        shutil.copy2(ROOT / "docs" / doc, dest / "help" / doc)
    shutil.copy2(ROOT / "docs" / "plugin.md", dest / "README.md")
    build_wheel(dest / "wheels")
    shutil.copy2(ROOT / "constraints.txt", dest / "wheels" / "constraints.txt")   # pins of what the pins pull in
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
    ap.add_argument("--no-fetch-tools", action="store_true",
                    help="do not pip-install the old grpcio-tools (the plugin's gRPC code then needs newer grpcio)")
    args = ap.parse_args(argv)
    folder = build(Path(args.build_dir), fetch_tools=not args.no_fetch_tools)
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
