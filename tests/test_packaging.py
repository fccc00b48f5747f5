"""A wheel (not the editable checkout) carries the shipped presets, and `--preset NAME` finds them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=240, check=False, **kwargs)


def test_an_installed_wheel_finds_the_shipped_presets(tmp_path: Path) -> None:
    pytest.importorskip("setuptools", reason="building the wheel needs setuptools")
    source = tmp_path / "src"  # a copy: the build writes build/ and *.egg-info next to its sources
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("engine", "bridge", "presets"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    built = _run(
        sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
        "-w", str(tmp_path / "dist"), str(source),
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    wheel = next((tmp_path / "dist").glob("sd_bridge-*.whl"))
    # A bare venv that borrows this environment's dependencies, with only the wheel installed in it.
    venv = tmp_path / "venv"
    assert _run(sys.executable, "-m", "venv", "--without-pip", str(venv)).returncode == 0
    python = venv / "bin" / "python"
    where = _run(str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))")
    site = Path(where.stdout.strip())
    (site / "borrowed.pth").write_text(sysconfig.get_path("purelib") + "\n")
    pip = (sys.executable, "-m", "pip", "--python", str(python))
    installed = _run(*pip, "install", "-q", "--no-deps", str(wheel))
    assert installed.returncode == 0, installed.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("SD_BRIDGE_PRESETS", "PYTHONPATH")}
    probe = (
        "import bridge.presets as p; "
        "print(p.presets_dir()); print(p.load_preset('sd-turbo-1step').name); print(p.__file__)"
    )
    out = _run(str(python), "-c", probe, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    folder, name, module = out.stdout.split()
    assert Path(module).is_relative_to(venv), module  # the installed copy, not the checkout
    assert Path(folder) == venv / "share" / "sd-bridge" / "presets"
    assert name == "sd-turbo-1step"
    shipped = sorted(p.name for p in (ROOT / "presets").glob("*.toml"))
    assert sorted(p.name for p in Path(folder).glob("*.toml")) == shipped
