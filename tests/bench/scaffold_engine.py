"""A small real-computing engine that conforms to engine.protocol.FrameEngine.

Scaffold for testing the bench's harness, statistics and output in isolation (the smoke test
runs the real `random:tiny` engine). Its cost scales like the real one's: one conv stack per UNet
batch entry, a batch of len(t_index_list) (or that many sequential calls), doubled for full CFG.
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F


class ScaffoldEngine:
    def __init__(self, config: Any) -> None:
        self.config = config
        self.width, self.height = config.width, config.height
        self.frame_buffer_size = config.frame_buffer_size
        self.device = torch.device("cpu")
        self.dtype = torch.float32
        self.profile = False
        self.last_timings: dict[str, float] = {}
        generator = torch.Generator().manual_seed(0)
        self.weight = torch.randn(4, 4, 3, 3, generator=generator) * 0.1
        self._prev: torch.Tensor | None = None
        self._last_out: torch.Tensor | None = None
        self._skips_in_row = 0
        self._frames = 0
        self._skipped = 0

    def _unet(self, latents: torch.Tensor) -> torch.Tensor:
        for _ in range(4):
            latents = F.conv2d(latents, self.weight, padding=1)
        return latents

    def _similar(self, frames: torch.Tensor) -> bool:
        prev, self._prev = self._prev, frames.clone()
        if prev is None or not self.config.similarity_filter:
            return False
        cos = F.cosine_similarity(prev.reshape(1, -1), frames.reshape(1, -1)).item()
        if cos < self.config.similarity_threshold or self._skips_in_row >= self.config.max_skip_frame:
            self._skips_in_row = 0
            return False
        self._skips_in_row += 1
        return True

    def __call__(self, frames: torch.Tensor | None = None) -> torch.Tensor:
        n = self.frame_buffer_size
        self._frames += n
        if frames is not None and self._similar(frames) and self._last_out is not None:
            self._skipped += n
            return self._last_out
        t0 = time.perf_counter()
        if frames is None:
            latents = torch.randn(n, 4, self.height // 8, self.width // 8)
        else:
            latents = F.avg_pool2d(frames, 8).repeat(1, 2, 1, 1)[:, :4].contiguous()
        t1 = time.perf_counter()
        steps = len(self.config.t_index_list)
        per_step = 2 if self.config.cfg_type == "full" else 1
        if self.config.use_denoising_batch:
            self._unet(latents.repeat(steps * per_step, 1, 1, 1))
        else:
            for _ in range(steps * per_step):
                self._unet(latents)
        t2 = time.perf_counter()
        out = F.interpolate(latents[:, :3].sigmoid(), size=(self.height, self.width))
        t3 = time.perf_counter()
        self.last_timings = {"encode": (t1 - t0) * 1e3, "unet": (t2 - t1) * 1e3, "decode": (t3 - t2) * 1e3}
        self._last_out = out
        return out

    def update(self, **params: Any) -> None:
        unknown = set(params) - {"guidance_scale", "delta", "seed"}
        if unknown:
            raise ValueError(f"unknown parameters: {sorted(unknown)}")

    def stats(self) -> dict[str, Any]:
        return {"frames": self._frames, "skipped": self._skipped}
