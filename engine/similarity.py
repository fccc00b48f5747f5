"""The stochastic similarity filter: skip the UNet when the input barely changed."""

from __future__ import annotations

import random

import numpy as np
import torch


class SimilarityFilter:
    """Decides per input whether to skip it, without ever waiting for the device.

    With cosine similarity c between an input and the last processed one, the next input is skipped
    with probability max(0, 1 - (1 - c) / (1 - threshold)), and never more than `max_skip_frame`
    times in a row. Inputs are compared in [-1, 1] (as the reference does), so random frames are
    uncorrelated.

    The decision is one frame late: the similarity of input k is computed on the device into a
    fixed buffer and copied asynchronously (pinned memory, an event on CUDA); input k + 1 is
    decided from that value if the copy has landed (`Event.query()`, no sync), and processed if it
    has not. The reference decides on the same frame with `float(cos)`, a host sync mid-frame; the
    price here is that a cut after a still input shows one frame later.
    """

    def __init__(self, threshold: float = 0.98, max_skip_frame: int = 10, seed: int = 0) -> None:
        self.threshold = threshold
        self.max_skip_frame = max_skip_frame
        self.skips_in_row = 0
        self._prev: torch.Tensor | None = None
        self._rng = random.Random(seed)
        self._cos: torch.Tensor | None = None  # float32 scalar on the device
        self._host: np.ndarray | None = None  # a numpy view of its host copy (made once)
        self._host_t: torch.Tensor | None = None
        self._event = None
        self._measured = False

    def reset(self) -> None:
        self._prev = None
        self.skips_in_row = 0
        self._measured = False

    def should_skip(self, x: torch.Tensor, allow: bool = True) -> bool:
        """True to skip `x`; otherwise `x` becomes the reference for the next comparison.

        `allow=False` forces processing (the engine does so for a few frames after a parameter
        change, so that a new prompt shows even on a still input).
        """
        flat = x.reshape(-1)
        if self._prev is None or self._prev.shape != flat.shape:
            self._start(flat)
            return False
        cos = self._read()
        self._measure(flat)
        if cos is not None and allow and self.skips_in_row < self.max_skip_frame and self.threshold < 1.0:
            skip_prob = max(0.0, 1.0 - (1.0 - cos) / (1.0 - self.threshold))
            if self._rng.random() < skip_prob:
                self.skips_in_row += 1
                return True
        self.skips_in_row = 0
        self._prev.copy_(flat)
        return False

    def _start(self, flat: torch.Tensor) -> None:
        self._prev = flat.clone()
        self.skips_in_row = 0
        self._measured = False
        if self._cos is None or self._cos.device != flat.device:
            self._cos = torch.zeros(1, device=flat.device, dtype=torch.float32)
            cuda = flat.device.type == "cuda"
            self._host_t = torch.zeros(1, dtype=torch.float32, pin_memory=True) if cuda else self._cos
            self._host = self._host_t.numpy()  # once: reading it later dispatches nothing
            self._event = torch.cuda.Event() if cuda else None

    def _measure(self, flat: torch.Tensor) -> None:
        cos = torch.nn.functional.cosine_similarity(self._prev, flat, dim=0, eps=1e-6)
        self._cos.copy_(cos.view(1))
        if self._event is not None:
            self._host_t.copy_(self._cos, non_blocking=True)
            self._event.record()
        self._measured = True

    def _read(self) -> float | None:
        """The similarity measured on the previous input, if it has reached the host."""
        if not self._measured or (self._event is not None and not self._event.query()):
            return None
        return float(self._host[0])
