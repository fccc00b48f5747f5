"""Benchmark hook: how the frame rate falls as brushes are added (for `sd-bridge bench`)."""

from __future__ import annotations

import time
from typing import Any

import torch

from .brush import MAX_BRUSHES


def stripe_regions(count: int, height: int, width: int) -> list[dict[str, Any]]:
    """`count` brushes as vertical stripes side by side, each with its own prompt."""
    regions = []
    for k in range(count):
        mask = torch.zeros(height, width)
        mask[:, k * width // count : (k + 1) * width // count] = 1.0
        regions.append({"prompt": f"region {k}, a painting", "mask": mask, "blur": 8.0})
    return regions


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def brush_scaling(
    engine: Any,
    counts: tuple[int, ...] = (0, 1, 2, 4, 8),
    frames: int = 20,
    warmup: int = 3,
) -> dict[int, dict[str, float]]:
    """Time `frames` calls of `engine` with each number of brushes in `counts`.

    `engine` is a `FrameEngine` whose `update` takes `regions=`. Each call gets a new random
    frame so the similarity filter never skips. Returns {brushes: {"fps", "ms_per_frame"}};
    the engine is left with no regions.
    """
    if any(not 0 <= c <= MAX_BRUSHES for c in counts):
        raise ValueError(f"brush counts must be in 0..{MAX_BRUSHES}, got {counts}")
    shape = (engine.frame_buffer_size, 3, engine.height, engine.width)
    gen = torch.Generator(device="cpu").manual_seed(0)
    results: dict[int, dict[str, float]] = {}
    try:
        for count in counts:
            engine.update(regions=stripe_regions(count, engine.height, engine.width))
            inputs = [torch.rand(shape, generator=gen) for _ in range(warmup + frames)]
            inputs = [x.to(engine.device, engine.dtype) for x in inputs]
            with torch.inference_mode():
                for x in inputs[:warmup]:
                    engine(x)
                _sync(engine.device)
                start = time.perf_counter()
                for x in inputs[warmup:]:
                    engine(x)
                _sync(engine.device)
            elapsed = time.perf_counter() - start
            results[count] = {"fps": frames / elapsed, "ms_per_frame": 1000.0 * elapsed / frames}
    finally:
        engine.update(regions=[])
    return results
