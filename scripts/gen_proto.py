"""Build step: generate Python gRPC code from protos/ into backend/_generated/.

The generated code is never committed; it is produced here (called by
scripts/bootstrap.sh and on demand by backend.contract) and regenerated only when
a .proto file is newer than its output. Layout follows protos/<package>/<version>/
so generated modules import each other as packages (groundsynth.v1...).
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTO_ROOT = ROOT / "protos"
OUT = ROOT / "backend" / "_generated"


def stale() -> bool:
    protos = sorted(PROTO_ROOT.rglob("*.proto"))
    for proto in protos:
        rel = proto.relative_to(PROTO_ROOT).with_suffix("")
        for suffix in ("_pb2.py", "_pb2_grpc.py"):
            out = OUT / (str(rel) + suffix)
            if not out.exists() or out.stat().st_mtime < proto.stat().st_mtime:
                return True
    return False


def generate(out: Path = OUT) -> None:
    from grpc_tools import protoc
    import grpc_tools

    protos = [str(p.relative_to(PROTO_ROOT)) for p in sorted(PROTO_ROOT.rglob("*.proto"))]
    out.mkdir(parents=True, exist_ok=True)
    include = str(Path(grpc_tools.__file__).parent / "_proto")
    args = ["protoc", f"-I{PROTO_ROOT}", f"-I{include}", f"--python_out={out}",
            f"--grpc_python_out={out}", f"--pyi_out={out}", *protos]
    rc = protoc.main(args)
    if rc != 0:
        raise RuntimeError(f"protoc failed with exit code {rc} for {protos}")
    for pkg_dir in {out / Path(p).parent for p in protos} | {out / Path(p).parts[0] for p in protos}:
        (pkg_dir / "__init__.py").touch()


def main() -> int:
    if stale():
        generate()
        print(f"[gen_proto] generated gRPC code into {OUT.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
