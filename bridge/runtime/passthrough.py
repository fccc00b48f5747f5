"""The passthrough engine: output = input. A real mode (`--engine passthrough`: routing, latency
checks, a show without a GPU) and the fallback when a model cannot load."""

from __future__ import annotations

from typing import Any

import torch

LIVE_KEYS = frozenset(
    {
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
    }
)


class PassthroughEngine:
    """Satisfies `engine.protocol.FrameEngine`; accepts (and remembers) every live parameter."""

    lag = 0

    def __init__(self, width: int = 512, height: int = 512, frame_buffer_size: int = 1) -> None:
        self.width, self.height, self.frame_buffer_size = width, height, frame_buffer_size
        self.device = torch.device("cpu")
        self.dtype = torch.float32
        self.params: dict[str, Any] = {}
        self._frames = 0

    def __call__(self, frames: torch.Tensor | None = None) -> torch.Tensor:
        if frames is None:
            raise ValueError("the passthrough engine needs input frames (img2img)")
        self._frames += frames.shape[0]
        return frames

    def update(self, **params: Any) -> None:
        unknown = set(params) - LIVE_KEYS
        if unknown:
            raise ValueError(f"unknown engine parameter(s): {', '.join(sorted(unknown))}")
        self.params.update(params)

    def stats(self) -> dict[str, Any]:
        return {"frames": self._frames, "skipped": 0, "engine": "passthrough"}
