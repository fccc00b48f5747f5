"""`sd-bridge build-engines`: one-line errors for everything checkable before a model loads."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import engine.accel.choose as choose
from bridge.cli import app


@pytest.fixture
def preset(tmp_path):
    path = tmp_path / "show.toml"
    path.write_text('model = "random:tiny"\nwidth = 512\nheight = 512\nt_index_list = [35]\n')
    return str(path)


def _run(*args: str):
    return CliRunner().invoke(app, ["build-engines", *args])


def test_without_tensorrt_prints_the_pip_command(preset, monkeypatch):
    monkeypatch.setattr(choose, "tensorrt_importable", lambda: False)
    result = _run("--preset", preset)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and 'pip install "sd-bridge[tensorrt]"' in lines[0] and "tensorrt-cu12" in lines[0]


def test_without_gpu_says_so(preset, monkeypatch):
    monkeypatch.setattr(choose, "tensorrt_importable", lambda: True)
    monkeypatch.setattr(choose, "cuda_available", lambda: False)
    result = _run("--preset", preset)
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0 and "needs an NVIDIA GPU" in result.output


def test_unknown_preset_is_one_line(tmp_path):
    result = _run("--preset", str(tmp_path / "missing.toml"))
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0 and "missing.toml" in result.output


def test_command_is_listed():
    result = CliRunner().invoke(app, ["--help"])
    assert "build-engines" in result.output
