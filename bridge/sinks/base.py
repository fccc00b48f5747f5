"""The one small interface every sink implements."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Sink(Protocol):
    """Open at a size and rate, write RGB uint8 (H, W, 3) frames, close. Its own sink thread only.

    `fixed_size` sinks (a video file) keep the size they were opened at and get frames resized to
    it; the others are reopened when the engine's resolution changes.
    """

    name: str
    fixed_size: bool

    def open(self, width: int, height: int, fps: float) -> None: ...

    def write(self, image: np.ndarray, status: str = "") -> None: ...

    def close(self) -> None: ...


# Optional: `shows_status = True` for a sink that draws the status line passed to `write()` (the
# others get ""; the line is then never built);
# `preflight()` raises BackendMissing when the sink cannot work on this machine at all;
# `pump()` is called from the main thread by sinks that draw windows (GUI toolkits need it).
