"""Build step: generate Python gRPC code from protos/ (never committed).

Outputs, each a flat folder of modules that import each other relatively, so the
same generated code works inside any package:
    groundsynth/api/v1/_generated/          the backend package's copy
    plugin/connection/_generated/           the QGIS plugin's own copy (no backend needed)

Both register the same proto file ("groundsynth/v1/groundsynth.proto") with
identical bytes, so the two copies can be imported in one process.

The plugin's copy is generated with the OLDEST grpcio-tools that works
(PLUGIN_TOOLS_VERSION, protoc 3.21 gencode: no runtime version checks), so the
plugin runs on old grpcio/protobuf too, e.g. Debian 12's python3-grpcio 1.51 and
python3-protobuf (RUNTIME_FLOOR). Those tools live in a build-only folder,
build/grpc-tools-<version> (`python scripts/gen_proto.py --fetch-plugin-tools`
installs them there with pip; nothing is installed into an environment). Without
that folder the plugin's copy is generated with the current grpcio-tools, and
its floor is then that version (recorded in _generated/__init__.py).
Regenerated only when a .proto file (or this script) is newer than the output. Called by
scripts/bootstrap.sh, scripts/package_plugin.py and, on demand in a checkout,
by groundsynth.api.v1.contract.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTO_ROOT = ROOT / "protos"
OUTPUTS = (ROOT / "groundsynth" / "api" / "v1" / "_generated", ROOT / "plugin" / "connection" / "_generated")
OUT = OUTPUTS[0]
SUFFIXES = ("_pb2.py", "_pb2_grpc.py", "_pb2.pyi")
PLUGIN_TOOLS_VERSION = "1.51.1"
PLUGIN_TOOLS_PINS = (f"grpcio-tools=={PLUGIN_TOOLS_VERSION}", "protobuf==4.21.12")
# lowest runtime versions the old gencode was checked with (docs/plugin.md: "Runtime floor")
RUNTIME_FLOOR = {"grpcio": "1.51.1", "protobuf": "3.20.3"}


def plugin_tools_dir() -> Path:
    return ROOT / "build" / f"grpc-tools-{PLUGIN_TOOLS_VERSION}"


def fetch_plugin_tools() -> Path:
    """pip-install the old grpcio-tools into the build-only folder (from the package index)."""
    target = plugin_tools_dir()
    if not (target / "grpc_tools").is_dir():
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
                        *PLUGIN_TOOLS_PINS], check=True)
    return target


def _protos() -> list[Path]:
    return sorted(PROTO_ROOT.rglob("*.proto"))


def stale(outputs: tuple[Path, ...] = OUTPUTS) -> bool:
    """Is any output missing, or older than a .proto file or than this script (which shapes the output)?"""
    script = Path(__file__).stat().st_mtime
    for proto in _protos():
        for out_dir in outputs:
            for out in [out_dir / "__init__.py", *(out_dir / (proto.stem + s) for s in SUFFIXES)]:
                if not out.exists() or out.stat().st_mtime < max(proto.stat().st_mtime, script):
                    return True
    return False


def _relative_imports(text: str) -> str:
    """`from groundsynth.v1 import groundsynth_pb2 as x` -> `from . import groundsynth_pb2 as x`."""
    return re.sub(r"^from [\w.]+ import (\w+_pb2)( as \w+)?$", r"from . import \1\2", text, flags=re.M)


def _protoc(out: Path, tools_dir: Path | None = None) -> None:
    """Run protoc (grpc_tools) on every proto into `out`; with `tools_dir`, the grpc_tools installed there."""
    protos = [str(p.relative_to(PROTO_ROOT)) for p in _protos()]
    code = ("import os, sys, grpc_tools; from grpc_tools import protoc; "
            "inc = os.path.join(os.path.dirname(grpc_tools.__file__), '_proto'); "
            "sys.exit(protoc.main(['protoc', '-I' + sys.argv[1], '-I' + inc, '--python_out=' + sys.argv[2], "
            "'--grpc_python_out=' + sys.argv[2], '--pyi_out=' + sys.argv[2], *sys.argv[3:]]))")
    env = dict(os.environ)
    if tools_dir is not None:
        env["PYTHONPATH"] = str(tools_dir)       # its protobuf and grpc_tools first
    rc = subprocess.run([sys.executable, "-c", code, str(PROTO_ROOT), str(out), *protos], env=env).returncode
    if rc != 0:
        raise RuntimeError(f"protoc failed with exit code {rc} for {protos}")


def _generated_with(tmp: Path, tools_dir: Path | None) -> tuple[str, dict[str, str]]:
    """(grpcio-tools version, runtime floor) of the code generated into `tmp`."""
    if tools_dir is not None:
        return PLUGIN_TOOLS_VERSION, dict(RUNTIME_FLOOR)
    from importlib.metadata import version

    text = "".join(p.read_text() for p in tmp.rglob("*_pb2*.py"))
    grpc_floor = re.search(r"GRPC_GENERATED_VERSION = '([\d.]+)'", text)
    pb_floor = re.search(r"ValidateProtobufRuntimeVersion\(\s*_runtime_version.Domain.PUBLIC,\s*(\d+),\s*(\d+),\s*(\d+)",
                         text)
    tools = version("grpcio-tools")
    return tools, {"grpcio": grpc_floor.group(1) if grpc_floor else tools,
                   "protobuf": ".".join(pb_floor.groups()) if pb_floor else version("protobuf")}


def _write(out_dir: Path, tmp: Path, tools: str, floor: dict[str, str]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "__init__.py").write_text(
        '"""Generated from protos/ by scripts/gen_proto.py. DO NOT EDIT."""\n'
        f"GRPC_TOOLS_VERSION = {tools!r}\n"
        f"RUNTIME_FLOOR = {floor!r}   # lowest grpcio / protobuf this code runs with\n")
    for rel in (str(p.relative_to(PROTO_ROOT)) for p in _protos()):
        for suffix in SUFFIXES:
            src = tmp / (str(Path(rel).with_suffix("")) + suffix)
            (out_dir / src.name).write_text(_relative_imports(src.read_text()))


def generate(outputs: tuple[Path, ...] = OUTPUTS) -> None:
    """The backend's copy with the current grpcio-tools; the plugin's with the oldest one when it is at hand."""
    old_tools = plugin_tools_dir() if (plugin_tools_dir() / "grpc_tools").is_dir() else None
    with tempfile.TemporaryDirectory() as tmp_new, tempfile.TemporaryDirectory() as tmp_old:
        _protoc(Path(tmp_new))
        if old_tools is not None:
            _protoc(Path(tmp_old), old_tools)
        for out_dir in outputs:
            plugin = out_dir == OUTPUTS[1] and old_tools is not None
            tmp = Path(tmp_old if plugin else tmp_new)
            _write(out_dir, tmp, *_generated_with(tmp, old_tools if plugin else None))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--fetch-plugin-tools" in argv:
        fetch_plugin_tools()
    if stale() or "--force" in argv or "--fetch-plugin-tools" in argv:
        generate()
        for out in OUTPUTS:
            print(f"[gen_proto] generated gRPC code into {out.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
