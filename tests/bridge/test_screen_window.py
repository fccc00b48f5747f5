"""Screen capture and the preview window on a real (virtual) X display."""

from __future__ import annotations

import time

import numpy as np
import pytest

from bridge.errors import BackendMissing, SpecError
from bridge.sinks import make_sink, resolve_auto
from bridge.sources import open_source
from bridge.sources.screen import parse_screen_arg


def test_screen_specs() -> None:
    assert parse_screen_arg("") == (1, None)
    assert parse_screen_arg("2") == (2, None)
    assert parse_screen_arg("10,20,300,200") == (1, (10, 20, 300, 200))
    for bad in ("a,b", "1,2,3", "0,0,0,10"):
        with pytest.raises(SpecError, match="monitor number or a region"):
            parse_screen_arg(bad)


def test_screen_without_display_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(BackendMissing, match="needs a display"):
        open_source("screen").open(64, 64)
    assert resolve_auto("auto") == "file:out/sd-bridge.mp4"


def test_screen_captures_the_whole_display(display: str) -> None:
    src = open_source("screen")
    src.open(64, 64)
    try:
        img = src.read()
    finally:
        src.close()
    assert img.shape == (480, 640, 3) and img.dtype == np.uint8
    assert resolve_auto("auto") == "window"


def test_window_sink_shows_frames_that_screen_capture_sees(display: str) -> None:
    """The preview window draws a frame on the X display; a screen region capture finds it."""
    sink = make_sink("window")
    colour = (30, 200, 90)
    frame = np.empty((120, 160, 3), np.uint8)
    frame[:] = colour
    try:
        sink.open(160, 120, 30)
    except BackendMissing as exc:
        print(f"SKIP: {exc}")
        pytest.skip(str(exc))
    src = open_source("screen:0,0,640,480")
    src.open(640, 480)
    found = False
    try:
        end = time.monotonic() + 10
        while time.monotonic() < end and not found:
            sink.write(frame, status="12.0 fps")
            sink.pump()  # the main thread draws
            shot = src.read()
            found = bool(np.all(np.abs(shot.astype(int) - colour) <= 2, axis=-1).sum() > 2000)
    finally:
        src.close()
        sink.close()
        sink.destroy()
    assert found, "the window's colour never appeared on the display"


def test_run_with_a_window_under_xvfb(display: str, tmp_path) -> None:
    """`sd-bridge run --sink auto` picks the window when there is a display and draws from the main thread."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, DISPLAY=display, PYTHONPATH=str(root))
    cmd = [
        sys.executable,
        "-m",
        "bridge",
        "run",
        "--engine",
        "passthrough",
        "--width",
        "64",
        "--height",
        "64",
    ]
    r = subprocess.run(
        cmd + ["--frames", "20", "--osc-port", "0"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "-> window" in r.stderr and "stopped: 20 frames out" in r.stderr
    assert "faults none" in r.stderr and not (tmp_path / "out").exists()
