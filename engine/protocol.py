"""The one interface between the engine and everything around it.

The daemon's runtime, the benchmark and the passthrough mode all talk to a `FrameEngine`.
Frames cross it as float tensors shaped (N, 3, H, W), RGB, values in [0, 1], on `engine.device`.
N is the engine's frame_buffer_size. Conversion from and to uint8 video frames happens once,
in the runtime, not here.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

LIVE_KEYS: tuple[str, ...] = (
    "prompt",
    "negative_prompt",
    "guidance_scale",
    "delta",
    "seed",
    "t_index_list",
    "strength",
    "similarity_filter",
    "similarity_threshold",
    "max_skip_frame",
    "transition_frames",
    "transition_curve",
    "regions",
    # temporal stability (issue 18, engine/temporal)
    "feedback",
    "cache_attention",
    "cache_frames",
    "cache_interval",
    "controlnets",
    "control_image",
)
"""Every key `FrameEngine.update` accepts; anything else is a ValueError."""


@runtime_checkable
class FrameEngine(Protocol):
    width: int
    height: int
    frame_buffer_size: int
    device: torch.device
    dtype: torch.dtype

    def __call__(self, frames: torch.Tensor | None = None) -> torch.Tensor:
        """Take (N, 3, H, W) in [0, 1] (None in txt2img) and return the same shape.

        In stream-batch mode the output lags the input by len(t_index_list) - 1 calls.
        """
        ...

    def update(self, **params: Any) -> None:
        """Change live parameters; applied atomically before the next frame.

        Keys: prompt (str or list of (str, weight)), negative_prompt, guidance_scale, delta,
        seed (int or list of (int, weight)), t_index_list, strength, similarity_filter,
        similarity_threshold, max_skip_frame, transition_frames, feedback, cache_attention,
        cache_frames, cache_interval. Unknown keys raise ValueError.
        """
        ...

    def stats(self) -> dict[str, Any]:
        """Counters since start: frames, skipped (similarity filter), and anything engine-specific."""
        ...
