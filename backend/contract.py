"""Access to the generated gRPC contract (groundsynth.v1).

Generated code lives in backend/_generated (a build step, never committed:
scripts/gen_proto.py). Importing this module regenerates it when a .proto is
newer than its output, so a fresh checkout works after `scripts/bootstrap.sh`
and in-tree development never runs stale stubs.
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
_GEN = Path(__file__).resolve().parent / "_generated"


def _ensure_generated() -> None:
    scripts = _ROOT / "scripts"
    if (scripts / "gen_proto.py").exists():
        sys.path.insert(0, str(scripts))
        try:
            import gen_proto  # type: ignore
            if gen_proto.stale():
                gen_proto.generate()
        finally:
            sys.path.remove(str(scripts))
    if not (_GEN / "groundsynth" / "v1" / "groundsynth_pb2.py").exists():
        raise ImportError(
            f"generated gRPC code missing at {_GEN}; run scripts/bootstrap.sh (or python scripts/gen_proto.py)")
    if str(_GEN) not in sys.path:
        sys.path.insert(0, str(_GEN))


_ensure_generated()
pb = importlib.import_module("groundsynth.v1.groundsynth_pb2")
rpc = importlib.import_module("groundsynth.v1.groundsynth_pb2_grpc")

__all__ = ["pb", "rpc"]
