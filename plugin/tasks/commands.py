"""CommandsTask: run a few commands one after the other in a QgsTask (pip, venv, export), with a log.

Every output line is emitted as `line` (delivered queued on the main thread) and
appended to a log file; progress advances one step per command. Cancelling
terminates the running command. The first command that fails ends the task
with `error_text` naming it and the tail of its output.
"""
from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from qgis.core import QgsTask
from qgis.PyQt.QtCore import pyqtSignal


@dataclass
class Step:
    title: str
    args: list[str] = field(default_factory=list)   # a command, or
    action: Callable[[], None] | None = None         # a Python step (e.g. write a file)
    env: dict[str, str] | None = None


class CommandsTask(QgsTask):
    line = pyqtSignal(str)
    ended = pyqtSignal(bool, str)      # ok, error text ('' when ok)

    def __init__(self, description: str, steps: list[Step], log_path: str | os.PathLike | None = None):
        super().__init__(description, QgsTask.Flag.CanCancel)
        self.steps = steps
        self.log_path = Path(log_path) if log_path else None
        self.error_text = ""
        self.output: list[str] = []
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def _emit(self, text: str) -> None:
        self.output.append(text)
        if self.log_path is not None:
            with open(self.log_path, "a", encoding="utf-8") as fh:
                fh.write(text + "\n")
        self.line.emit(text)

    def run(self) -> bool:
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._emit(f"# {self.description()} {time.strftime('%Y-%m-%d %H:%M:%S')}")
        for i, step in enumerate(self.steps):
            if self.isCanceled():
                self.error_text = "cancelled"
                return False
            self.setProgress(100.0 * i / len(self.steps))
            self._emit(f"[{i + 1}/{len(self.steps)}] {step.title}")
            try:
                ok = self._run_step(step)
            except (OSError, ValueError, RuntimeError) as exc:
                self.error_text = f"{step.title}: {exc}"
                return False
            if not ok:
                tail = "\n".join(self.output[-15:])
                self.error_text = f"{step.title} failed" + ("" if self.isCanceled() else f":\n{tail}")
                return False
        self.setProgress(100.0)
        return True

    def _run_step(self, step: Step) -> bool:
        if step.action is not None:
            step.action()
            return True
        self._emit("$ " + " ".join(step.args))
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(step.env or {})}
        with self._lock:
            self._proc = subprocess.Popen(step.args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                          env=env, errors="replace")
        for text in self._proc.stdout:
            if text.strip():
                self._emit(text.rstrip())
        rc = self._proc.wait()
        with self._lock:
            self._proc = None
        return rc == 0

    def cancel(self) -> None:
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                self._proc.terminate()
        super().cancel()

    def finished(self, result: bool) -> None:
        self.ended.emit(bool(result), "" if result else (self.error_text or "cancelled"))
