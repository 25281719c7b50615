"""Build step: generate Python gRPC code from protos/ (never committed).

Outputs, each a flat folder of modules that import each other relatively, so the
same generated code works inside any package:
    groundsynth/api/v1/_generated/          the backend package's copy
    plugin/connection/_generated/           the QGIS plugin's own copy (no backend needed)

Both register the same proto file ("groundsynth/v1/groundsynth.proto") with
identical bytes, so the two copies can be imported in one process.
Regenerated only when a .proto file is newer than the output. Called by
scripts/bootstrap.sh, scripts/package_plugin.py and, on demand in a checkout,
by groundsynth.api.v1.contract.
"""
from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTO_ROOT = ROOT / "protos"
OUTPUTS = (ROOT / "groundsynth" / "api" / "v1" / "_generated", ROOT / "plugin" / "connection" / "_generated")
OUT = OUTPUTS[0]
SUFFIXES = ("_pb2.py", "_pb2_grpc.py", "_pb2.pyi")


def _protos() -> list[Path]:
    return sorted(PROTO_ROOT.rglob("*.proto"))


def stale(outputs: tuple[Path, ...] = OUTPUTS) -> bool:
    for proto in _protos():
        for out_dir in outputs:
            for suffix in SUFFIXES:
                out = out_dir / (proto.stem + suffix)
                if not out.exists() or out.stat().st_mtime < proto.stat().st_mtime:
                    return True
    return False


def _relative_imports(text: str) -> str:
    """`from groundsynth.v1 import groundsynth_pb2 as x` -> `from . import groundsynth_pb2 as x`."""
    return re.sub(r"^from [\w.]+ import (\w+_pb2)( as \w+)?$", r"from . import \1\2", text, flags=re.M)


def generate(outputs: tuple[Path, ...] = OUTPUTS) -> None:
    import grpc_tools
    from grpc_tools import protoc

    protos = [str(p.relative_to(PROTO_ROOT)) for p in _protos()]
    include = str(Path(grpc_tools.__file__).parent / "_proto")
    with tempfile.TemporaryDirectory() as tmp:
        args = ["protoc", f"-I{PROTO_ROOT}", f"-I{include}", f"--python_out={tmp}",
                f"--grpc_python_out={tmp}", f"--pyi_out={tmp}", *protos]
        rc = protoc.main(args)
        if rc != 0:
            raise RuntimeError(f"protoc failed with exit code {rc} for {protos}")
        for out_dir in outputs:
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / "__init__.py").write_text('"""Generated from protos/ by scripts/gen_proto.py. DO NOT EDIT."""\n')
            for rel in protos:
                for suffix in SUFFIXES:
                    src = Path(tmp) / (str(Path(rel).with_suffix("")) + suffix)
                    (out_dir / src.name).write_text(_relative_imports(src.read_text()))


def main() -> int:
    if stale():
        generate()
        for out in OUTPUTS:
            print(f"[gen_proto] generated gRPC code into {out.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
