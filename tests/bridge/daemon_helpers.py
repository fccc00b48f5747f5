"""Small real engines, sources and sinks for the runtime tests (not mocks of anything we ship)."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import torch

from bridge.runtime import PassthroughEngine
from bridge.sources.pattern import PatternSource


class InvertEngine(PassthroughEngine):
    """Outputs 1 - input, so a test can tell processed frames from passed-through ones.
    With `fail_every`, every Nth call raises."""

    def __init__(self, width: int = 64, height: int = 64, fail_every: int = 0, nan: bool = False) -> None:
        super().__init__(width, height)
        self.fail_every = fail_every
        self.nan = nan
        self.calls = 0
        self.updates: list[dict[str, Any]] = []

    def __call__(self, frames: torch.Tensor | None = None) -> torch.Tensor:
        self.calls += 1
        if self.fail_every and self.calls % self.fail_every == 0:
            raise RuntimeError(f"boom on call {self.calls}")
        assert frames is not None
        self._frames += frames.shape[0]
        return frames * float("nan") if self.nan else 1.0 - frames

    def update(self, **params: Any) -> None:
        if "guidance_scale" in params and params["guidance_scale"] > 10:
            raise ValueError("guidance_scale above 10 is not supported by this engine")
        super().update(**params)
        self.updates.append(dict(params))


class FlakySource(PatternSource):
    """A pattern that fails to open once and then raises on every `fail_every`-th read."""

    def __init__(self, fail_every: int = 7, fail_open: int = 1) -> None:
        super().__init__(fps=60.0)
        self.name = "flaky"
        self.fail_every = fail_every
        self.fail_open = fail_open
        self.reads = 0
        self.opens = 0

    def open(self, width: int, height: int) -> None:
        self.opens += 1
        if self.opens <= self.fail_open:
            raise ConnectionError("the source is not there yet")
        super().open(width, height)

    def read(self) -> np.ndarray:
        self.reads += 1
        if self.reads % self.fail_every == 0:
            raise OSError("the source dropped out")
        return super().read()


class ListSink:
    """Keeps what it receives; can fail its `fail_on`-th write once."""

    fixed_size = False

    def __init__(self, name: str = "list", fail_on: int = 0) -> None:
        self.name = name
        self.frames: list[np.ndarray] = []
        self.times: list[float] = []
        """time.monotonic() of each write."""
        self.opens: list[tuple[int, int, float]] = []
        self.fail_on = fail_on
        self.writes = 0
        self.lock = threading.Lock()

    def open(self, width: int, height: int, fps: float) -> None:
        self.opens.append((width, height, fps))

    def write(self, image: np.ndarray, status: str = "") -> None:
        self.writes += 1
        if self.fail_on and self.writes == self.fail_on:
            raise BrokenPipeError("the receiver went away")
        with self.lock:
            self.frames.append(image.copy())
            self.times.append(time.monotonic())

    def gaps(self, since: float, longer_than: float) -> list[tuple[float, float]]:
        """(seconds after `since`, gap in seconds) for each pause between writes longer than
        `longer_than`: where the frames went missing, for a failing rate assertion to show."""
        with self.lock:
            times = [t for t in self.times if t >= since]
        pairs = zip(times, times[1:], strict=False)
        return [(round(a - since, 2), round(b - a, 3)) for a, b in pairs if b - a > longer_than]

    def close(self) -> None:
        pass


def wait_for(cond, timeout: float = 10.0, step: float = 0.02) -> bool:
    """Poll `cond` until true or timeout (returns the last value)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return bool(cond())
