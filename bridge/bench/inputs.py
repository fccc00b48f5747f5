"""Input frames for the engine, made up front so that making them is never timed.

`pattern` is the daemon's own moving test card, the input of every row but the filter's.
The filter's rows use a still frame and noise:

`moving` must defeat the similarity filter: consecutive frames of a slowly drifting test card
have a cosine similarity near 1 (all pixels are positive), so the filter would skip them too.
Fresh noise every frame has a cosine similarity of about 0.75 to its predecessor, far under any
sensible threshold, so its skip fraction is the filter's floor; the static frame gives its ceiling.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

FrameSource = Callable[[int], torch.Tensor | None]
"""Frame index -> (N, 3, H, W) input in [0, 1], or None (txt2img)."""


def _gradient(batch: int, width: int, height: int) -> torch.Tensor:
    ys = torch.linspace(0, 1, height).view(1, 1, height, 1).expand(batch, 1, height, width)
    xs = torch.linspace(0, 1, width).view(1, 1, 1, width).expand(batch, 1, height, width)
    return torch.cat([xs, ys, 1 - xs * ys], dim=1).contiguous()


def static_frames(
    batch: int, width: int, height: int, device: torch.device, dtype: torch.dtype
) -> FrameSource:
    frame = _gradient(batch, width, height).to(device=device, dtype=dtype)
    return lambda _index: frame


def moving_frames(
    batch: int, width: int, height: int, device: torch.device, dtype: torch.dtype
) -> FrameSource:
    """A small pool of seeded noise frames, cycled (made up front so that making them is not timed)."""
    generator = torch.Generator().manual_seed(1234)
    pool = [torch.rand(batch, 3, height, width, generator=generator) for _ in range(7)]
    pool = [f.to(device=device, dtype=dtype) for f in pool]
    return lambda index: pool[index % len(pool)]


def no_frames() -> FrameSource:
    return lambda _index: None


def pattern_frames(
    batch: int, width: int, height: int, device: torch.device, dtype: torch.dtype
) -> FrameSource:
    """The daemon's moving test card, converted as the runtime converts it: what the pipeline feeds.

    Engine-alone rows use it so that they and the pipeline run on the same pictures.
    """
    from bridge.frames import TensorBridge
    from bridge.sources.pattern import PatternSource

    source = PatternSource()
    source.open(width, height)
    bridge = TensorBridge(device, dtype)
    pool = [bridge.to_tensor([source.read() for _ in range(batch)]) for _ in range(8)]
    source.close()
    return lambda index: pool[index % len(pool)]
