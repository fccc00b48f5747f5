"""The stochastic similarity filter: skip the UNet when the input barely changed."""

from __future__ import annotations

import random

import torch


class SimilarityFilter:
    """Decides per input whether to skip it.

    With cosine similarity c between this input and the last processed one, an input is skipped with
    probability max(0, 1 - (1 - c) / (1 - threshold)), and never more than `max_skip_frame` times in a
    row. Inputs are compared in [-1, 1] (as the reference does), so random frames are uncorrelated.
    """

    def __init__(self, threshold: float = 0.98, max_skip_frame: int = 10, seed: int = 0) -> None:
        self.threshold = threshold
        self.max_skip_frame = max_skip_frame
        self.skips_in_row = 0
        self._prev: torch.Tensor | None = None
        self._rng = random.Random(seed)

    def reset(self) -> None:
        self._prev = None
        self.skips_in_row = 0

    def should_skip(self, x: torch.Tensor, allow: bool = True) -> bool:
        """True to skip `x`; otherwise `x` becomes the reference for the next comparison.

        `allow=False` forces processing (the engine does so for a few frames after a parameter
        change, so that a new prompt shows even on a still input).
        """
        flat = x.reshape(-1)
        if self._prev is None or self._prev.shape != flat.shape:
            self._prev = flat.clone()
            self.skips_in_row = 0
            return False
        if allow and self.skips_in_row < self.max_skip_frame and self.threshold < 1.0:
            cos = float(torch.nn.functional.cosine_similarity(self._prev, flat, dim=0, eps=1e-6))  # host sync
            skip_prob = max(0.0, 1.0 - (1.0 - cos) / (1.0 - self.threshold))
            if self._rng.random() < skip_prob:
                self.skips_in_row += 1
                return True
        self.skips_in_row = 0
        self._prev.copy_(flat)
        return False
