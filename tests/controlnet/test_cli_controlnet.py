"""`sd-bridge run --controlnet ...`, a preset with a depth net and `--control-source`, as a user runs them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import numpy as np
from test_cli import _bridge, _env

SMALL = ["--model", "random:tiny", "--width", "64", "--height", "64", "--osc-port", "0", "-q"]


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        _bridge("run", *SMALL, *args),
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=180,
    )


def _frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out = []
    ok, img = cap.read()
    while ok:
        out.append(img)
        ok, img = cap.read()
    return out


def test_run_controlnet_canny_end_to_end(tmp_path):
    r = _run(tmp_path, "--controlnet", "canny", "--sink", f"file:{tmp_path / 'out.avi'}", "--frames", "6")
    assert r.returncode == 0, r.stderr
    assert "ControlNet 0: random:controlnet, canny, scale 1" in r.stderr and "Traceback" not in r.stderr
    assert len(_frames(tmp_path / "out.avi")) >= 6


def test_a_preset_with_a_depth_net_and_a_control_source(tmp_path):
    ctl = np.zeros((48, 80, 3), np.uint8)
    ctl[:, 40:] = 255
    cv2.imwrite(str(tmp_path / "depth.png"), ctl)
    r = _run(
        tmp_path,
        "--preset",
        "depth-controlnet",
        "--control-source",
        f"image:{tmp_path / 'depth.png'}",
        "--controlnet",
        "passthrough@0.5",  # the command line replaces the preset's nets
        "--sink",
        "null",
        "--frames",
        "4",
    )
    assert r.returncode == 0, r.stderr
    assert "ControlNet 0: random:controlnet, passthrough, scale 0.5" in r.stderr
    assert "ControlNet 1" not in r.stderr
    r = _run(tmp_path, "--preset", "depth-controlnet", "--sink", "null", "--frames", "4")
    assert r.returncode == 0, r.stderr
    assert "ControlNet 0: random:controlnet, depth, scale 0.8" in r.stderr


def test_a_bad_controlnet_flag_is_one_line(tmp_path):
    r = _run(tmp_path, "--controlnet", "pose", "--sink", "null", "--frames", "2")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    errors = [ln for ln in r.stderr.splitlines() if "preprocessor" in ln]
    assert len(errors) == 1 and "canny, depth, softedge, passthrough" in errors[0], r.stderr


def test_a_net_that_is_not_there_offline_is_one_line(tmp_path):
    r = _run(tmp_path, "--controlnet", "canny=someone/missing-net", "--sink", "null", "--frames", "2")
    assert r.returncode == 1 and "Traceback" not in r.stderr and "Warning" not in r.stderr, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if "someone/missing-net" in ln]
    assert len(errors) == 1 and "not available" in errors[0], r.stderr
    assert "sd-bridge fetch --controlnet PRE=someone/missing-net" in errors[0], "a net is no base model"
    assert "sd-bridge fetch someone/missing-net" not in errors[0], errors[0]
