"""Discards frames (for benchmarks); counts them."""

from __future__ import annotations

import numpy as np


class NullSink:
    name = "null"
    fixed_size = False

    def __init__(self) -> None:
        self.frames = 0

    def open(self, width: int, height: int, fps: float) -> None:
        pass

    def write(self, image: np.ndarray, status: str = "") -> None:
        self.frames += 1

    def close(self) -> None:
        pass
