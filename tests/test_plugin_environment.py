"""The managed backend environment's commands, without running them (the zip test runs them for real)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from plugin.connection import environment as env


def test_default_set_up_installs_the_zips_wheel_with_its_constraints_and_no_torch(tmp_path, monkeypatch):
    wheel = tmp_path / "wheels" / "groundsynth-0.2.0-py3-none-any.whl"
    wheel.parent.mkdir()
    wheel.write_bytes(b"")
    (wheel.parent / "constraints.txt").write_text("numpy==1.26.4\n")
    monkeypatch.setattr(env, "PLUGIN_DIR", tmp_path)
    steps = env.setup_steps(env.SetupOptions(venv=str(tmp_path / "venv"), base_python=sys.executable))
    venv, pip = steps[0].args, next(s.args for s in steps if "pip" in s.args)
    assert venv == [sys.executable, "-m", "venv", str(tmp_path / "venv")]          # no system site packages
    assert pip[0] == str(tmp_path / "venv" / "bin" / "python") and pip[-1] == str(wheel)
    assert pip[pip.index("-c") + 1] == str(wheel.parent / "constraints.txt")
    assert "--index-url" not in pip and "--extra-index-url" not in pip and "[neural]" not in pip[-1]
    assert any(s.args[-2:] == ["groundsynth", "--help"] for s in steps)


def test_neural_is_opt_in_and_torch_is_cpu_unless_cuda_is_chosen(tmp_path):
    opts = env.SetupOptions(package="groundsynth==0.2.0", neural=True, torch_index="https://torch.invalid/cpu",
                            venv=str(tmp_path / "v"), base_python=sys.executable)
    pip = next(s.args for s in env.setup_steps(opts) if "pip" in s.args)
    assert pip[-1] == "groundsynth==0.2.0[neural]"
    assert pip[pip.index("--extra-index-url") + 1] == "https://torch.invalid/cpu"
    opts.device = "cuda"
    pip = next(s.args for s in env.setup_steps(opts) if "pip" in s.args)
    assert "--extra-index-url" not in pip


def test_a_missing_or_too_old_python_is_named(tmp_path):
    old = tmp_path / "python"
    old.write_text("#!/bin/sh\necho 3 9\n")
    old.chmod(0o755)
    with pytest.raises(env.SetupError, match="no Python >= 3.11 found.*" + str(old)):
        env.find_base_python(str(old))
    assert env.python_version(sys.executable) >= (3, 11)


def test_reuse_writes_a_pth_and_the_ready_marker_comes_last(tmp_path):
    opts = env.SetupOptions(package="x.whl", reuse_site_packages=["/a", "/b"], venv=str(tmp_path / "v"),
                            base_python=sys.executable)
    steps = env.setup_steps(opts)
    titles = [s.title for s in steps]
    assert titles[1].startswith("reuse packages of /a, /b") and titles[-1] == "mark the environment ready"
    assert not env.is_set_up(Path(opts.venv))
