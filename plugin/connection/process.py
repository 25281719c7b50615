"""Start and stop a local backend: `<python> -m backend serve --address A --workspace W` in a QProcess.

The Python interpreter defaults to the repository's .venv (the plugin folder's
parent, when run from the repository), else the `python3` on PATH; it is
configurable in the dock. The backend writes its token to <workspace>/token.
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from qgis.PyQt.QtCore import QObject, QProcess, QProcessEnvironment, pyqtSignal

REPO_ROOT = Path(__file__).resolve().parents[2]


def default_python() -> str:
    venv = REPO_ROOT / ".venv" / "bin" / "python"
    if venv.exists():
        return str(venv)
    return shutil.which("python3") or sys.executable


def default_backend_dir() -> str:
    """Directory from which `-m groundsynth` is importable (the repository root when run from it)."""
    return str(REPO_ROOT) if (REPO_ROOT / "groundsynth" / "__main__.py").exists() else ""


class LocalBackend(QObject):
    """A backend process owned by the plugin (stopped on unload)."""

    output = pyqtSignal(str)            # lines of the process' stdout/stderr
    state_changed = pyqtSignal(bool)    # running?

    def __init__(self, parent=None):
        super().__init__(parent)
        self.process: QProcess | None = None

    def is_running(self) -> bool:
        return self.process is not None and self.process.state() != QProcess.NotRunning

    def start(self, address: str, workspace: str, python: str = "", backend_dir: str = "",
              extra_args: list[str] | None = None) -> QProcess:
        if self.is_running():
            return self.process
        Path(workspace).mkdir(parents=True, exist_ok=True)
        proc = QProcess(self)
        proc.setProcessChannelMode(QProcess.MergedChannels)
        cwd = backend_dir or default_backend_dir()
        if cwd:
            proc.setWorkingDirectory(cwd)
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")
        env.insert("HF_HUB_OFFLINE", "1")
        env.insert("TRANSFORMERS_OFFLINE", "1")
        if cwd:
            env.insert("PYTHONPATH", cwd + os.pathsep + env.value("PYTHONPATH", ""))
        proc.setProcessEnvironment(env)
        proc.readyReadStandardOutput.connect(self._read)
        proc.stateChanged.connect(lambda st: self.state_changed.emit(st != QProcess.NotRunning))
        args = ["-m", "groundsynth", "serve", "--address", address, "--workspace", workspace, *(extra_args or [])]
        proc.start(python or default_python(), args)
        self.process = proc
        return proc

    def _read(self) -> None:
        if self.process is None:
            return
        data = bytes(self.process.readAllStandardOutput()).decode("utf-8", "replace")
        for line in data.splitlines():
            if line.strip():
                self.output.emit(line)

    def stop(self, timeout_ms: int = 5000) -> None:
        """Terminate (SIGTERM, then SIGKILL after `timeout_ms`) and wait."""
        proc = self.process
        if proc is None:
            return
        if proc.state() != QProcess.NotRunning:
            proc.terminate()
            if not proc.waitForFinished(timeout_ms):
                proc.kill()
                proc.waitForFinished(2000)
        self.process = None
        proc.deleteLater()
