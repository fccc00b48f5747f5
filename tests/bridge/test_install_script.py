"""`sd-bridge.sh` chooses the torch build for the machine and says why (SD_BRIDGE_DRY_RUN: the choice
and the plan, nothing installed). `nvidia-smi` is a stand-in here: no NVIDIA driver can exist."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from daemon_process import ROOT

SCRIPT = ROOT / "sd-bridge.sh"


def _choose(tmp_path: Path, smi: str | None, torch: str = "") -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    if smi is not None:
        exe = bin_dir / "nvidia-smi"
        exe.write_text(f"#!/bin/sh\n{smi}\n")
        exe.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "SD_BRIDGE_TORCH"}
    env.update(PATH=f"{bin_dir}:/usr/bin:/bin", SD_BRIDGE_DRY_RUN="1")
    if torch:
        env["SD_BRIDGE_TORCH"] = torch
    return subprocess.run(
        ["bash", str(SCRIPT), "doctor"], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("smi", "build", "why"),
    [
        (None, "cpu", "no nvidia-smi on PATH"),
        ("echo 590.44.01", "cu130", "driver 590.44.01"),
        ("echo 575.51.03", "cu128", "older than 580"),
        ("echo 470.82", "cpu", "older than 525"),
        ("echo 'No devices were found'; exit 6", "cpu", "found no GPU"),
    ],
)
def test_the_torch_build_follows_the_driver(tmp_path: Path, smi: str | None, build: str, why: str) -> None:
    r = _choose(tmp_path, smi)
    assert r.returncode == 0, r.stderr
    first = r.stdout.splitlines()[0]
    assert first.startswith(f"==> torch: the {build} build") and why in first, first
    assert (
        f"would install torch==2.13.0+{build} (extra index https://download.pytorch.org/whl/{build})"
        in r.stdout
    )


def test_the_choice_can_be_overridden_and_a_bad_one_is_refused(tmp_path: Path) -> None:
    r = _choose(tmp_path, "echo 590.44.01", torch="cpu")
    assert "the cpu build (SD_BRIDGE_TORCH=cpu)" in r.stdout
    bad = _choose(tmp_path, None, torch="cu999")
    assert bad.returncode == 1 and "SD_BRIDGE_TORCH must be cpu, cu128 or cu130" in bad.stderr


def test_long_installs_show_pips_progress() -> None:
    """`pip -q` hid minutes of download; only the quick pip self-upgrade stays quiet."""
    installs = [
        ln for ln in SCRIPT.read_text().splitlines() if "pip install" in ln and "--upgrade pip" not in ln
    ]
    assert installs and not any(" -q" in ln for ln in installs), installs
