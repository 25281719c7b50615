"""Run a short blocking call (Health, Capabilities, ListJobs, GetJob) off the main thread.

The result or the exception comes back as a Qt signal, delivered on the main
thread. Calls in flight are remembered so `wait_all()` can join them on unload.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from qgis.PyQt.QtCore import QObject, pyqtSignal

_live: set[AsyncCall] = set()
_live_lock = threading.Lock()


class AsyncCall(QObject):
    done = pyqtSignal(object)
    error = pyqtSignal(object)

    def __init__(self, fn: Callable[[], Any], on_done: Callable[[Any], None] | None = None,
                 on_error: Callable[[BaseException], None] | None = None, parent=None):
        super().__init__(parent)
        self.fn = fn
        if on_done:
            self.done.connect(on_done)
        if on_error:
            self.error.connect(on_error)
        # Connected last, so it runs after the callbacks, on the main thread: the
        # object stays referenced until its queued signal has been delivered.
        self.done.connect(self._forget)
        self.error.connect(self._forget)
        self.thread = threading.Thread(target=self._run, name="groundsynth-call", daemon=True)

    def start(self) -> AsyncCall:
        with _live_lock:
            _live.add(self)
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            result = self.fn()
        except BaseException as exc:  # noqa: BLE001  (handed to the main thread)
            self.error.emit(exc)
        else:
            self.done.emit(result)

    def _forget(self, *_args) -> None:
        with _live_lock:
            _live.discard(self)


def call_async(fn, on_done=None, on_error=None, parent=None) -> AsyncCall:
    return AsyncCall(fn, on_done, on_error, parent).start()


def wait_all(timeout: float = 5.0) -> None:
    with _live_lock:
        calls = list(_live)
    for c in calls:
        c.thread.join(timeout)
        with _live_lock:
            _live.discard(c)


def in_flight() -> int:
    """Calls whose thread still runs."""
    with _live_lock:
        return sum(1 for c in _live if c.thread.is_alive())
