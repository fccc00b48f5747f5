"""The one small interface every source implements."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Source(Protocol):
    """Open, read the newest frame, close. Called from the capture thread only.

    `read()` returns an RGB uint8 (H, W, 3) image, or None when no new frame has arrived yet
    (it may block for a short while, at most ~0.1 s, waiting for one). Sizes need not match the
    engine's: the runtime fits each frame once. `fps` is the pace at which the capture thread
    polls a source that produces frames on demand (pattern, image, file, screen); None means the
    source paces itself (NDI, camera, Spout block until a new frame). An optional `on_demand`
    attribute, True for sources whose read makes the picture of that moment (pattern, image,
    screen), lets the runtime read them only when the engine is about to need a frame, when the
    engine is slower than `fps` (bridge/runtime/pacing.py); a video file plays at its own rate.

    Sources that can carry transparency (NDI, Spout, image) have a `keep_alpha` attribute: set, their
    `read()` returns RGBA (H, W, 4) instead, for a mask source whose alpha is the mask.
    """

    name: str
    fps: float | None

    def open(self, width: int, height: int) -> None: ...

    def read(self) -> np.ndarray | None: ...

    def close(self) -> None: ...


# Optional: `preflight()` raises BackendMissing when the source cannot work on this machine at all
# (`sd-bridge run` calls it once before loading the model, to fail fast with a one-line fix).
