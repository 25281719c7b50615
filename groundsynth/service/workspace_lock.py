"""One process at a time per workspace.

A server resumes every interrupted job of its workspace, and an in-process
`run` writes into the same journal and job folders: two such processes on one
workspace would work on the same jobs. Both take this lock (flock on
<workspace>/server.lock); it dies with the process, so a crash never leaves it
stale.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

from groundsynth.request.errors import FailedPrecondition


def lock_workspace(workspace: str | os.PathLike, holder: str = "server") -> int:
    """Take the workspace lock or raise FailedPrecondition naming the holder's pid; returns the fd."""
    path = Path(workspace) / "server.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        owner = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise FailedPrecondition(f"the workspace {workspace} is in use ({owner}; lock {path}); stop it or choose "
                                 "another --workspace", "workspace") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{holder} pid {os.getpid()}\n".encode())
    return fd


def unlock_workspace(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)
