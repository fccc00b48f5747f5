"""Fixtures for the daemon's tests: a virtual X display, an NDI test sender, small fakes."""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bridge.runtime.log import setup_logging

setup_logging()

NDI_SENDER = Path(__file__).with_name("ndi_test_sender.py")


def start_xvfb(display: str | None = None) -> tuple[subprocess.Popen, str] | None:
    """Start `Xvfb` (640x480) on `display`, or on a free display it picks itself and reports on a
    pipe (-displayfd), so test runs side by side never share one. None if it did not start."""
    read_fd, write_fd = os.pipe()
    where = [display] if display else ["-displayfd", str(write_fd)]
    proc = subprocess.Popen(
        ["Xvfb", *where, "-screen", "0", "640x480x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    if display:
        os.close(read_fd)
        return proc, display
    number = b""
    deadline = time.monotonic() + 15
    while not number.endswith(b"\n") and time.monotonic() < deadline and proc.poll() is None:
        ready, _, _ = select.select([read_fd], [], [], 0.5)
        if ready:
            chunk = os.read(read_fd, 16)
            if not chunk:
                break
            number += chunk
    os.close(read_fd)
    if not number.strip().isdigit():
        proc.kill()
        return None
    return proc, f":{number.strip().decode()}"


def need_xvfb() -> None:
    if shutil.which("Xvfb") is None:
        print("SKIP: Xvfb is not installed (apt-get install xvfb)")
        pytest.skip("Xvfb is not installed (apt-get install xvfb)")


@pytest.fixture(scope="session")
def xvfb() -> Iterator[str]:
    """A private `Xvfb` (640x480) for the session; skip with the reason if Xvfb is missing."""
    need_xvfb()
    started = start_xvfb()
    if started is None:
        print("SKIP: Xvfb did not start")
        pytest.skip("Xvfb did not start")
    proc, display = started
    yield display
    proc.terminate()
    proc.wait(5)


@pytest.fixture
def display(xvfb: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DISPLAY", xvfb)
    return xvfb


def ndi_available() -> str | None:
    """None when NDI can work here, else the reason it cannot."""
    try:
        import cyndilib  # noqa: F401
    except ImportError:
        return "cyndilib is not installed"
    from bridge.mdns_status import mdns_problem

    return mdns_problem()


@pytest.fixture
def ndi_sender(request: pytest.FixtureRequest) -> Iterator[callable]:
    """Start test NDI senders in subprocesses: start(name, width, height, seconds)."""
    reason = ndi_available()
    if reason:
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    procs: list[subprocess.Popen] = []

    def start(
        name: str,
        width: int = 96,
        height: int = 64,
        seconds: float = 30.0,
        first: int = 0,
        split_alpha: bool = False,
    ) -> subprocess.Popen:
        args = [name, str(width), str(height), str(seconds), str(first)]
        args += ["split-alpha"] if split_alpha else []
        p = subprocess.Popen([sys.executable, str(NDI_SENDER), *args])
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.terminate()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()


def solid(h: int, w: int, rgb: tuple[int, int, int]) -> np.ndarray:
    img = np.empty((h, w, 3), np.uint8)
    img[:] = rgb
    return img
