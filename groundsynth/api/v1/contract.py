"""Access to the generated gRPC contract (groundsynth.v1): `pb` (messages) and `rpc` (stubs, servicer).

The generated code lives in groundsynth/api/v1/_generated (a build step, never
committed: scripts/gen_proto.py). In a source checkout, importing this module
regenerates it when a .proto is newer than its output, so development never
runs stale stubs; an installed package carries the code it was built with.
"""
from __future__ import annotations

import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[3]
_GEN = Path(__file__).resolve().parent / "_generated"


def _ensure_generated() -> None:
    scripts = _ROOT / "scripts"
    if (scripts / "gen_proto.py").exists() and (_ROOT / "protos").is_dir():
        sys.path.insert(0, str(scripts))
        try:
            import gen_proto

            if gen_proto.stale():
                gen_proto.generate()
        finally:
            sys.path.remove(str(scripts))
    if not (_GEN / "groundsynth_pb2.py").exists():
        raise ImportError(f"generated gRPC code missing at {_GEN}; run scripts/bootstrap.sh "
                          "(or python scripts/gen_proto.py)")


_ensure_generated()

from groundsynth.api.v1._generated import groundsynth_pb2 as pb  # noqa: E402
from groundsynth.api.v1._generated import groundsynth_pb2_grpc as rpc  # noqa: E402

__all__ = ["pb", "rpc"]
