"""Print the SHA-256 of every per-tile file of a job directory (real/ and synthetic/), sorted by path.

    python scripts/tile_digest.py workspace/jobs/<job_id> > before.txt
    ... change the code, run the same job again ...
    python scripts/tile_digest.py workspace/jobs/<job_id2> | diff before.txt -

Used to check that a refactoring (or another executor) writes byte-identical tiles: the same job
spec and seed must give the same digests.
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path


def digests(job_dir: Path) -> list[tuple[str, str]]:
    out = []
    for folder in ("real", "synthetic"):
        for path in sorted((job_dir / folder).rglob("*.tif")):
            out.append((hashlib.sha256(path.read_bytes()).hexdigest(), path.relative_to(job_dir).as_posix()))
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print(__doc__, file=sys.stderr)
        return 2
    for digest, rel in digests(Path(argv[0])):
        print(f"{digest}  {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
