"""Start and stop a local backend: `<python> -m groundsynth serve --address A --workspace W ...` in a QProcess.

The interpreter is the managed environment's (connection/environment.py) or one
the user chose; it runs in the workspace folder, never from QGIS's folder. The
folders the dock passes as allowed roots become `--allow-root` arguments. If the
process ends on its own with an error, `failed` carries its last output lines so
the dock can say why ("No module named groundsynth", a port in use, ...).
"""
from __future__ import annotations

from collections import deque
from pathlib import Path

from qgis.PyQt.QtCore import QObject, QProcess, QProcessEnvironment, pyqtSignal


class LocalBackend(QObject):
    """A backend process owned by the plugin (stopped on unload)."""

    output = pyqtSignal(str)            # lines of the process' stdout/stderr
    state_changed = pyqtSignal(bool)    # running?
    failed = pyqtSignal(int, str)       # exit code, last output lines (the process ended by itself)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.process: QProcess | None = None
        self.python = ""
        self.allowed_roots: list[str] = []
        self.tail: deque[str] = deque(maxlen=20)
        self._stopping = False
        self._start_args: tuple | None = None
        self._retried = False

    def is_running(self) -> bool:
        return self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning

    def start(self, address: str, workspace: str, python: str, extra_args: list[str] | None = None,
              allowed_roots: list[str] | None = None) -> QProcess:
        if self.is_running():
            return self.process
        self._start_args, self._retried = (address, workspace, python, extra_args, allowed_roots), False
        return self._start(*self._start_args)

    def _start(self, address: str, workspace: str, python: str, extra_args: list[str] | None,
               allowed_roots: list[str] | None) -> QProcess:
        Path(workspace).mkdir(parents=True, exist_ok=True)
        proc = QProcess(self)
        proc.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        proc.setWorkingDirectory(workspace)
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")
        env.insert("HF_HUB_OFFLINE", "1")
        env.insert("TRANSFORMERS_OFFLINE", "1")
        proc.setProcessEnvironment(env)
        proc.readyReadStandardOutput.connect(self._read)
        proc.stateChanged.connect(lambda st: self.state_changed.emit(st != QProcess.ProcessState.NotRunning))
        proc.finished.connect(self._finished)
        self.allowed_roots = list(dict.fromkeys(allowed_roots or []))
        roots = [a for root in self.allowed_roots for a in ("--allow-root", root)]
        args = ["-m", "groundsynth", "serve", "--address", address, "--workspace", workspace, *roots,
                *(extra_args or [])]
        self.tail.clear()
        self._stopping = False
        self.python = python
        proc.errorOccurred.connect(self._error)
        proc.start(python, args)
        self.process = proc
        return proc

    def _read(self) -> None:
        if self.process is None:
            return
        data = bytes(self.process.readAllStandardOutput()).decode("utf-8", "replace")
        for line in data.splitlines():
            if line.strip():
                self.tail.append(line)
                self.output.emit(line)

    def _finished(self, code: int, status) -> None:
        self._read()
        if self._stopping:
            return
        crashed = status == QProcess.ExitStatus.CrashExit
        if crashed and not self.tail and not self._retried and self._start_args is not None:
            # killed by a signal before it printed anything (seen once in a few hundred starts from a busy
            # process: the child crashed between fork and exec): try once more, and say so
            self._retried = True
            self.output.emit(f"the backend process crashed before it started (signal {code}); starting it again")
            old = self.process
            self._start(*self._start_args)
            if old is not None:
                old.deleteLater()
            return
        if crashed:
            self.failed.emit(code, "\n".join([*self.tail, f"the backend process crashed (signal {code})"]))
        elif code != 0:
            self.failed.emit(code, "\n".join(self.tail))

    def _error(self, error) -> None:
        if error == QProcess.ProcessError.FailedToStart and not self._stopping:
            self.failed.emit(-1, f"could not run {self.python!r}: {self.process.errorString() if self.process else ''}")

    def stop(self, timeout_ms: int = 5000) -> None:
        """Terminate (SIGTERM, then SIGKILL after `timeout_ms`) and wait."""
        proc = self.process
        if proc is None:
            return
        self._stopping = True
        if proc.state() != QProcess.ProcessState.NotRunning:
            proc.terminate()
            if not proc.waitForFinished(timeout_ms):
                proc.kill()
                proc.waitForFinished(2000)
        self.process = None
        proc.deleteLater()
