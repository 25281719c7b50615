"""The managed backend environment: a virtual environment in the plugin's data folder.

"Set up backend" creates `<data folder>/venv` with a Python >= 3.11 found on this
machine and pip-installs the backend package into it: by default the wheel
shipped in the zip (`wheels/groundsynth-*.whl`, with the pins of
`wheels/constraints.txt`), or a path or requirement the user gives, from PyPI
or an index the user gives. The neural engines (torch, about 1-3 GB) are an
opt-in extra; torch is CPU-only unless CUDA is chosen, where a CPU-only torch
index is given (see docs/plugin.md). "Start" then runs
`<venv>/bin/python -m groundsynth serve`.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import PluginError
from ..settings import data_dir
from ..tasks.commands import CommandsTask, Step

PLUGIN_DIR = Path(__file__).resolve().parents[1]
MIN_PYTHON = (3, 11)


class SetupError(PluginError):
    title = "Backend set-up"


def venv_dir() -> Path:
    return data_dir() / "venv"


def venv_python(venv: Path | None = None) -> Path:
    venv = venv or venv_dir()
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def is_set_up(venv: Path | None = None) -> bool:
    """True when the managed environment exists and has the backend installed (its marker file)."""
    venv = venv or venv_dir()
    return venv_python(venv).exists() and (venv / "groundsynth-ready").exists()


def bundled_wheel() -> Path | None:
    wheels = sorted((PLUGIN_DIR / "wheels").glob("groundsynth-*.whl"))
    return wheels[-1] if wheels else None


def python_version(python: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run([python, "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True,
                             text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    parts = out.stdout.split()
    return (int(parts[0]), int(parts[1])) if out.returncode == 0 and len(parts) == 2 else None


def python_candidates() -> list[str]:
    """Interpreters that may create the venv: QGIS's own Python first, then the PATH."""
    base = Path(sys.base_prefix)
    names = [f"python{sys.version_info[0]}.{sys.version_info[1]}", "python3", "python"]
    out = [str(base / "bin" / n) for n in names] + [str(base / "python.exe"), str(base / "python3.exe")]
    out += [p for n in ("python3.13", "python3.12", "python3.11", "python3", "python") if (p := shutil.which(n))]
    if Path(sys.executable).name.lower().startswith("python"):
        out.insert(0, sys.executable)
    seen: list[str] = []
    for p in out:
        if Path(p).exists() and p not in seen:
            seen.append(p)
    return seen


def find_base_python(preferred: str = "") -> str:
    """The first interpreter >= 3.11 (the backend's floor); raise SetupError naming what was tried."""
    tried = [preferred] if preferred else python_candidates()
    for python in tried:
        version = python_version(python)
        if version is not None and version >= MIN_PYTHON:
            return python
    raise SetupError("no Python >= 3.11 found to create the backend environment (tried "
                     f"{', '.join(tried) or 'nothing'}); install one (on Debian/Ubuntu: apt install python3-venv) "
                     "or give its path in 'Base Python'")


def install_python() -> str:
    """An interpreter of QGIS's own Python version with pip, for `pip install --target` (binary wheels must
    match QGIS's Python): the managed environment's if it is set up, else QGIS's base Python."""
    want = tuple(sys.version_info[:2])
    candidates = ([str(venv_python())] if venv_python().exists() else []) + python_candidates()
    for python in candidates:
        if python_version(python) != want:
            continue
        ok = subprocess.run([python, "-m", "pip", "--version"], capture_output=True, timeout=30).returncode == 0
        if ok:
            return python
    raise SetupError(f"no Python {want[0]}.{want[1]} with pip found (tried {', '.join(candidates) or 'nothing'}); "
                     "on Debian/Ubuntu: apt install python3-pip, then press Install again")


@dataclass
class SetupOptions:
    package: str = ""                 # wheel / path / requirement; "" = the wheel shipped in the zip
    neural: bool = False              # the `neural` extra (torch, transformers, open_clip)
    device: str = "cpu"               # "cpu" or "cuda": which torch build
    torch_index: str = ""             # pip index for a CPU-only torch (PyPI's Linux torch wheels include CUDA)
    index_url: str = ""               # another package index instead of PyPI
    base_python: str = ""             # interpreter that creates the venv ("" = found)
    system_site_packages: bool = False
    reuse_site_packages: list[str] = field(default_factory=list)   # folders of an existing environment to reuse
    pip_args: list[str] = field(default_factory=list)              # e.g. --no-index --find-links DIR
    venv: str = ""                    # "" = <data folder>/venv

    def target(self) -> Path:
        return Path(self.venv) if self.venv else venv_dir()

    def requirement(self) -> str:
        package = self.package or str(bundled_wheel() or "")
        if not package:
            raise SetupError("this plugin build carries no backend wheel; give a wheel, a path or a requirement "
                             "(e.g. groundsynth==0.2.0)")
        return f"{package}[neural]" if self.neural else package


def setup_steps(opts: SetupOptions) -> list[Step]:
    """venv, pip install (backend + pins), check the import: the commands "Set up backend" runs."""
    target = opts.target()
    base = find_base_python(opts.base_python)
    py = str(venv_python(target))
    venv_args = [base, "-m", "venv", *(["--system-site-packages"] if opts.system_site_packages else []), str(target)]
    pip = [py, "-m", "pip", "install", "--disable-pip-version-check"]
    if opts.index_url:
        pip += ["--index-url", opts.index_url]
    if opts.neural and opts.device == "cpu" and opts.torch_index:
        pip += ["--extra-index-url", opts.torch_index]
    constraints = PLUGIN_DIR / "wheels" / "constraints.txt"
    if constraints.exists() and not opts.package:
        pip += ["-c", str(constraints)]
    pip += [*opts.pip_args, opts.requirement()]

    def reuse() -> None:
        site = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              capture_output=True, text=True, check=True).stdout.strip()
        Path(site, "groundsynth-reuse.pth").write_text("".join(f"{p}\n" for p in opts.reuse_site_packages))

    def mark() -> None:
        (target / "groundsynth-ready").write_text(opts.requirement() + "\n")

    steps = [Step(f"create the environment {target} with {base}", venv_args)]
    if opts.reuse_site_packages:
        steps.append(Step("reuse packages of " + ", ".join(opts.reuse_site_packages), action=reuse))
    steps += [Step("install the backend and its pinned dependencies", pip),
              Step("check the backend imports", [py, "-m", "groundsynth", "--help"]),
              Step("mark the environment ready", action=mark)]
    return steps


def setup_task(opts: SetupOptions) -> CommandsTask:
    target = opts.target()
    if (target / "groundsynth-ready").exists():
        (target / "groundsynth-ready").unlink()
    return CommandsTask("GroundSynth: set up backend", setup_steps(opts), data_dir() / "setup.log")
