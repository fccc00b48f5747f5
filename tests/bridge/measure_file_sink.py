"""Figures for the file sink: encoding cost per frame, and its faults (a removed folder, a full disk, a
killed process) for docs/DAEMON.md.

Run from the repo root, as root (the full disk is a real 4 MiB tmpfs):
    PYTHONPATH=. python tests/bridge/measure_file_sink.py
The runtime uses its default back-off (0.5 s doubling to 5 s) and a 30 fps test card at 256x256.
Not a test: it asserts nothing and prints what it saw.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from test_file_sink import CHILD, ROOT, NoisyPattern, decode  # noqa: E402

from bridge.runtime import PassthroughEngine, Runtime, RuntimeOptions  # noqa: E402
from bridge.sinks.file import FileSink  # noqa: E402
from bridge.sources.pattern import PatternSource  # noqa: E402
from engine import EngineConfig  # noqa: E402


def runtime(sink: FileSink, source: PatternSource) -> Runtime:
    config = EngineConfig(model="random:tiny", width=256, height=256, t_index_list=[35])
    return Runtime(source, [sink], PassthroughEngine(256, 256), config, options=RuntimeOptions(fps=30.0))


def wait(cond: Callable[[], bool], timeout: float = 30.0) -> float:
    """Seconds until `cond` held."""
    t0 = time.monotonic()
    while not cond() and time.monotonic() - t0 < timeout:
        time.sleep(0.002)
    return time.monotonic() - t0


def parts(sink: FileSink) -> str:
    return ", ".join(f"{os.path.basename(p)}: {n} frames" for p, n in sink.parts)


def encode_cost(work: str) -> None:
    """ms per frame written, 512x512: the test card and blurred noise (about what a random model gives)."""
    rng = np.random.default_rng(0)
    card = PatternSource()
    card.open(512, 512)
    contents = {
        "test card": [card.read() for _ in range(60)],
        "noise": [
            cv2.GaussianBlur(rng.integers(0, 256, (512, 512, 3), dtype=np.uint8), (5, 5), 0)
            for _ in range(60)
        ],
    }
    for what, frames in contents.items():
        costs = []
        for ext in (".mp4", ".mkv", ".avi"):
            sink = FileSink(os.path.join(work, f"cost{ext}"))
            sink.open(512, 512, 30.0)
            t0 = time.perf_counter()
            for frame in frames:
                sink.write(frame)
            costs.append(f"{ext} {(time.perf_counter() - t0) * 1000 / len(frames):.1f}")
            sink.close()
        print(f"encode 512x512 {what}, ms/frame: {', '.join(costs)}")


def removed_folder(work: str) -> None:
    folder = os.path.join(work, "rec")
    sink = FileSink(os.path.join(folder, "set.mp4"))
    rt = runtime(sink, PatternSource(fps=30.0))
    rt.start()
    wait(lambda: sink.frames >= 60)
    shutil.rmtree(folder)
    fault = wait(lambda: rt.stats()["faults"]["sink"] >= 1)
    back = fault + wait(lambda: len(sink.parts) >= 2 and sink.parts[-1][1] >= 1)
    time.sleep(1.0)
    rt.stop()
    print(f"folder removed: fault after {fault * 1000:.0f} ms, recording again after {back * 1000:.0f} ms")
    print(f"  {parts(sink)}; sink faults {rt.stats()['faults']['sink']}")


def full_disk(work: str) -> None:
    disk = os.path.join(work, "disk")
    os.makedirs(disk)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", disk], check=True)
    try:
        filler = os.path.join(disk, "filler")
        with open(filler, "wb") as f:
            f.write(b"\0" * (2 * 1024 * 1024))
        sink = FileSink(os.path.join(disk, "set.mp4"))
        rt = runtime(sink, NoisyPattern())
        rt.start()
        wait(lambda: rt.stats()["faults"]["sink"] >= 1)
        written = sink.parts[0][1]
        time.sleep(10.0)  # full for 10 s: the back-off grows to its 5 s cap
        faults, files = rt.stats()["faults"]["sink"], sorted(os.listdir(disk))
        os.unlink(filler)
        back = wait(lambda: len(sink.parts) >= 2 and sink.parts[-1][1] >= 1)
        time.sleep(1.0)
        rt.stop()
        played = len(decode(Path(disk, "set.mp4")))
        print(f"full disk: {written} frames written before it filled, {played} play back")
        print(f"  full for 10 s: {faults} sink faults, files {files}")
        print(f"  recording again {back * 1000:.0f} ms after space was freed; {parts(sink)}")
    finally:
        subprocess.run(["umount", "-l", disk], check=False)


def killed(work: str) -> None:
    for ext in (".mp4", ".mkv", ".avi"):
        path = os.path.join(work, f"killed{ext}")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-c", CHILD, path]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
        written = 0
        while written < 100:
            written = int(proc.stdout.readline())
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        print(f"SIGKILL {ext}: {written} frames written, {len(decode(Path(path)))} play back")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as work:
        encode_cost(work)
        removed_folder(work)
        full_disk(work)
        killed(work)
