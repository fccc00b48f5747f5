"""Timing the daemon's frame conversion on its own: uint8 frames to device tensors and back.

Inside the runtime these two steps are part of its `engine` stage; the bench times the same
`TensorBridge` calls separately, on pattern frames at the engine's size, to split that stage.
"""

from __future__ import annotations

from typing import Any

from .clock import DeviceClock


def measure_conversion(engine: Any, *, frames: int, warmup: int) -> dict[str, list[float]]:
    """{"preprocess": ms per upload, "postprocess": ms per download}, `frames` samples each."""
    import torch

    from bridge.frames import TensorBridge
    from bridge.sources.pattern import PatternSource

    batch = int(getattr(engine, "frame_buffer_size", 1) or 1)
    source = PatternSource()
    source.open(engine.width, engine.height)
    images = [source.read() for _ in range(batch)]
    source.close()
    bridge = TensorBridge(engine.device, engine.dtype)
    clock = DeviceClock(engine.device)
    output = torch.rand(batch, 3, engine.height, engine.width).to(engine.device, engine.dtype)
    samples: dict[str, list[float]] = {"preprocess": [], "postprocess": []}
    for index in range(warmup + frames):
        t0 = clock.now()
        bridge.to_tensor(images)
        t1 = clock.now()
        bridge.to_uint8(output)
        t2 = clock.now()
        if index >= warmup:
            samples["preprocess"].append((t1 - t0) * 1000.0)
            samples["postprocess"].append((t2 - t1) * 1000.0)
    return samples
