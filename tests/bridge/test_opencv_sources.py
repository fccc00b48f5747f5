"""OpenCV sources with real files: a looping video, a still image, a missing camera."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from daemon_helpers import ListSink, wait_for

from bridge.errors import BridgeError, SpecError
from bridge.runtime import PassthroughEngine, Runtime, RuntimeOptions
from bridge.sinks import make_sink
from bridge.sources import open_source
from bridge.sources.pattern import PatternSource, decode_counter
from engine import EngineConfig


def _write_clip(path: Path, n: int) -> None:
    sink, pattern = make_sink(f"file:{path}"), PatternSource()
    pattern.open(64, 48)
    sink.open(64, 48, 30.0)
    for _ in range(n):
        sink.write(pattern.read())
    sink.close()


def test_file_source_loops(tmp_path: Path) -> None:
    clip = tmp_path / "clip.avi"
    _write_clip(clip, 5)
    src = open_source(f"file:{clip}")
    src.open(64, 48)
    try:
        counters = [decode_counter(src.read()) for _ in range(12)]
    finally:
        src.close()
    assert counters == [0, 1, 2, 3, 4] * 2 + [0, 1]
    assert src.fps == pytest.approx(30.0)


def test_image_source_through_the_runtime_with_letterbox(tmp_path: Path) -> None:
    img = np.zeros((50, 200, 3), np.uint8)
    img[..., 2] = 255  # red in BGR
    path = tmp_path / "wide.png"
    cv2.imwrite(str(path), img)
    sink = ListSink()
    rt = Runtime(
        open_source(f"image:{path}", fps=60),
        [sink],
        PassthroughEngine(64, 64),
        EngineConfig(width=64, height=64),
        options=RuntimeOptions(fps=60, fit="letterbox"),
    )
    rt.start()
    try:
        assert wait_for(lambda: len(sink.frames) >= 3)
    finally:
        rt.stop()
    out = sink.frames[-1]
    assert out.shape == (64, 64, 3)
    assert out[32, 32].tolist() == [255, 0, 0]  # RGB red in the middle
    assert out[0, 32].tolist() == [0, 0, 0]  # letterbox bar


def test_bad_local_sources_are_clear(tmp_path: Path) -> None:
    with pytest.raises(BridgeError, match="no such file"):
        open_source(f"file:{tmp_path / 'missing.mp4'}").open(64, 64)
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(BridgeError, match="cannot read this image"):
        open_source(f"image:{tmp_path / 'junk.png'}").open(64, 64)
    with pytest.raises(BridgeError, match="cannot open camera 97"):
        open_source("camera:97").open(64, 64)
    with pytest.raises(SpecError, match="expected a camera number"):
        open_source("camera:front")
    with pytest.raises(SpecError, match="unknown source"):
        open_source("webcam")


def test_batches_of_two_frames_keep_their_order() -> None:
    sink = ListSink()
    rt = Runtime(
        open_source("pattern", fps=60),
        [sink],
        PassthroughEngine(64, 64, frame_buffer_size=2),
        EngineConfig(width=64, height=64, frame_buffer_size=2),
        options=RuntimeOptions(fps=60),
    )
    rt.start()
    try:
        assert wait_for(lambda: len(sink.frames) >= 10)
    finally:
        rt.stop()
    counters = [decode_counter(f) for f in sink.frames]
    # A frame repeats only where the source stalled and the hold timer kept the output going (a
    # loaded machine can stall the pattern for 3 frame times); order is kept either way.
    repeats = len(counters) - len(set(counters))
    assert counters == sorted(counters) and repeats <= rt.stats()["source"]["held"], counters


def test_a_missing_camera_is_our_one_line_not_opencvs_warnings() -> None:
    """OpenCV writes its backend probing straight to the process's stderr: check it in a child."""
    import subprocess
    import sys

    code = (
        "from bridge.sources import open_source\n"
        "src = open_source('camera:99')\n"
        "for _ in range(2):  # the runtime retries; each retry must stay quiet\n"
        "    try:\n"
        "        src.open(64, 64)\n"
        "    except Exception as exc:\n"
        "        print(exc)\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=root)
    assert out.stdout.splitlines() == ["camera:99: cannot open camera 99 (is it connected and free?)"] * 2
    assert out.stderr == "", out.stderr
