"""The synthesis state as a file of the job: written once after the fit, read by a resumed job and by workers.

`write_state` pickles what the fit produced (the synthesiser's state and the AOI's mask statistics)
into the job directory atomically (fsynced before the journal records it) and returns a `StateFile`
(path and SHA-256). `load_state` reads it back once per process (cached), checking the digest, so a
corrupt or foreign file is never used. The file is written and read by the backend only (it lives
in the job directory of the workspace, like every other artefact).
"""
from __future__ import annotations

import hashlib
import pickle
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from groundsynth.artefacts.atomic import write_bytes
from groundsynth.pipeline.context import SharedState, StateFile
from groundsynth.request.errors import FailedPrecondition

STATE_NAME = "synthesis_state.pkl"
_cache: OrderedDict[tuple[str, str], tuple[tuple[int, int], Any]] = OrderedDict()   # -> (file stat, payload)
_lock = threading.Lock()
_KEEP = 2


def write_state(path: str | Path, payload: Any) -> StateFile:
    data = pickle.dumps(payload, protocol=5)
    sf = StateFile(str(path), hashlib.sha256(data).hexdigest())
    write_bytes(path, data)
    _remember(sf, payload)
    return sf


def load_state(sf: StateFile) -> Any:
    """The payload of a state file (from this process's cache when it wrote or read it before)."""
    key = (sf.path, sf.sha256)
    with _lock:
        held = _cache.get(key)
        if held is not None and held[0] == _stat(sf.path):    # the very file this process wrote or read
            _cache.move_to_end(key)
            return held[1]
    try:
        data = Path(sf.path).read_bytes()
    except FileNotFoundError:
        raise FailedPrecondition(f"the synthesis state {sf.path} is missing", "synthesis_state") from None
    if hashlib.sha256(data).hexdigest() != sf.sha256:
        raise FailedPrecondition(f"the synthesis state {sf.path} does not match its recorded digest",
                                 "synthesis_state")
    payload = pickle.loads(data)  # nosec B301 - the backend's own file in the job folder, digest checked against the journal
    _remember(sf, payload)
    return payload


def _stat(path: str) -> tuple[int, int]:
    try:
        st = Path(path).stat()
    except FileNotFoundError:
        return (-1, -1)
    return (st.st_mtime_ns, st.st_size)


def _remember(sf: StateFile, payload: Any) -> None:
    with _lock:
        _keep((sf.path, sf.sha256), _stat(sf.path), payload)


def _keep(key: tuple[str, str], stat: tuple[int, int], payload: Any) -> None:
    """Cache `payload` under `key` (the caller holds _lock), the _KEEP most recent entries at most."""
    _cache[key] = (stat, payload)
    while len(_cache) > _KEEP:
        _cache.popitem(last=False)


def forget_states(folder: str | Path) -> None:
    """Drop this process's cached payloads of state files in `folder` (a job's folder)."""
    folder = Path(folder)
    with _lock:
        for key in [k for k in _cache if Path(k[0]).parent == folder]:
            del _cache[key]


def resolve(shared: Any, folder: str | Path = "") -> Any:
    """What a task's `shared` argument stands for: a StateFile is loaded (cached per process); a SharedState
    (a Ray object-store copy, deserialised afresh for every task) is its payload, the first copy seen for
    the job's `folder` and digest kept and returned until forget_states(folder): what an engine derives
    from its state and caches for as long as that state lives (texture's search arrays, 151 MiB and 1.3 s
    for the demo) is then derived once per worker and job, not once per batch. Anything else is itself."""
    if isinstance(shared, StateFile):
        return load_state(shared)
    if not isinstance(shared, SharedState):
        return shared
    key = (str(Path(folder) / "<object store>"), shared.sha256)
    with _lock:
        held = _cache.get(key)
        if held is not None:
            _cache.move_to_end(key)
            return held[1]
        _keep(key, (0, 0), shared.payload)
    return shared.payload
