"""Cached attention (StreamV2V's extended self-attention, arXiv 2405.15757): the shared state.

Every self-attention layer (``attn1``) of the UNet attends to its own tokens *and* to the keys
and values it computed on up to `frames` earlier frames, which ties each frame's features to
its predecessors'. One `AttentionCache` serves every processor of one UNet; the engine drives
it with three calls per frame:

- ``begin_frame()`` before the frame's first UNet call: decides whether this frame's K/V enter
  the cache (every `interval`-th frame does);
- ``stream = i`` before each UNet call in sequential mode (one ring per denoising stage; the
  stream batch runs every stage in one call, stream 0);
- ``end_frame()`` after the last UNet call: pushes this frame's K/V into the rings.

Which rows feed the cache: all of them, each into its own row. Row r of the UNet batch always
holds the same denoising stage (timestep), the same text group (regional prompts) and the same
CFG half (uncond/text), while the frame in it changes from call to call; so row r attends to
row r's K/V from earlier frames, i.e. features made at the same noise level under the same
prompt, which are the ones that are comparable. (Mixing rows would let a stage-0, nearly pure
noise row attend to an almost clean latent's features, or a brush's rows to the background's.)
A call whose batch has a new shape (guidance crossing 1 adds the uncond rows, a brush is added,
another resolution) starts that ring afresh: nothing of another layout is ever attended to.

Memory is bounded: each (layer, stream) ring is allocated once, with exactly `frames` slots;
`reset()` drops them all (rebuilds, resolution changes, `engine.reset()`).
"""

from __future__ import annotations

import torch

from .kv_ring import KVRing

MAX_CACHE_FRAMES = 8
MAX_CACHE_INTERVAL = 1000


class AttentionCache:
    def __init__(self, frames: int = 4, interval: int = 1) -> None:
        self.frames = check_frames(frames)
        self.interval = check_interval(interval)
        self.stream = 0
        """Which ring family the next UNet call uses (the stage index in sequential mode)."""
        self._rings: dict[tuple[str, int], KVRing] = {}
        self._touched: set[tuple[str, int]] = set()
        self._write = False
        self._count = 0

    # -- driven by the engine ----------------------------------------------------------------
    def begin_frame(self) -> None:
        self._write = self._count % self.interval == 0
        self._count += 1
        self._touched.clear()
        self.stream = 0

    def end_frame(self) -> None:
        if self._write:
            for key in self._touched:
                self._rings[key].push()
        self._touched.clear()

    def reset(self) -> None:
        """Forget every cached frame and free the rings (they are reallocated on the next call)."""
        self._rings.clear()
        self._touched.clear()
        self._count = 0

    def configure(self, frames: int | None = None, interval: int | None = None) -> None:
        if frames is not None and check_frames(frames) != self.frames:
            self.frames = frames
            self.reset()
        if interval is not None:
            self.interval = check_interval(interval)

    # -- used by the processors --------------------------------------------------------------
    @torch.compiler.disable
    def extend(self, layer: str, key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """This call's K/V (rows, tokens, C) followed by the cached frames' K/V of the same rows.

        Runs eagerly under torch.compile (its ring bookkeeping is host state), one graph break
        per layer.
        """
        ring_key = (layer, self.stream)
        ring = self._rings.get(ring_key)
        if ring is None or not ring.fits(key, value):
            rows, tokens, kc = key.shape
            ring = KVRing(self.frames, rows, tokens, kc, value.shape[-1], key.device, key.dtype)
            self._rings[ring_key] = ring
        self._touched.add(ring_key)
        return ring.extended(key, value)

    # -- what it holds -----------------------------------------------------------------------
    @property
    def entries(self) -> int:
        """Cached frames per ring (the most any ring holds; never more than `frames`)."""
        return max((r.filled for r in self._rings.values()), default=0)

    @property
    def nbytes(self) -> int:
        return sum(r.nbytes for r in self._rings.values())

    @property
    def rings(self) -> int:
        return len(self._rings)


def check_frames(frames: object) -> int:
    if isinstance(frames, bool) or not isinstance(frames, int) or not 1 <= frames <= MAX_CACHE_FRAMES:
        raise ValueError(f"cache_frames must be an integer in [1, {MAX_CACHE_FRAMES}], got {frames!r}")
    return frames


def check_interval(interval: object) -> int:
    if isinstance(interval, bool) or not isinstance(interval, int) or not 1 <= interval <= MAX_CACHE_INTERVAL:
        raise ValueError(f"cache_interval must be an integer in [1, {MAX_CACHE_INTERVAL}], got {interval!r}")
    return interval
