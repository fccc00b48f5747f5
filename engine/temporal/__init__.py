"""Temporal stability (issue 18): latent feedback and cached attention, one object per engine.

`Temporal` is what `engine.stream.StreamEngine` talks to; it holds no reference to the engine
(only to its UNet, where the cached-attention processors go while the cache is on):

- ``entry(latents)`` / ``remember(x0)``: latent feedback where the new frame enters the stream;
- ``begin_frame()`` / ``stream(i)`` / ``end_frame(x0)``: the cached attention's frame clock;
- ``validate(key, value)`` / ``apply(live)``: the live keys `feedback`, `cache_attention`,
  `cache_frames`, `cache_interval`;
- ``set_conditioning(c)``: regional prompts give each brush its own feedback;
- ``reset()``: the stream restarted (a rebuild of buffers, `engine.reset()`): nothing of the old
  stream is blended or attended to.
"""

from __future__ import annotations

from typing import Any

import torch

from .attention_cache import MAX_CACHE_FRAMES, AttentionCache, check_frames, check_interval
from .cached_attention import CachedSelfAttention, CacheSlot, install, slot_of, uninstall
from .feedback import LatentFeedback, check_feedback

TEMPORAL_KEYS = ("feedback", "cache_attention", "cache_frames", "cache_interval")

__all__ = [
    "MAX_CACHE_FRAMES",
    "TEMPORAL_KEYS",
    "AttentionCache",
    "CacheSlot",
    "CachedSelfAttention",
    "LatentFeedback",
    "Temporal",
    "install",
    "uninstall",
]


class Temporal:
    def __init__(
        self,
        unet: torch.nn.Module,
        frames: int,
        latent_shape: tuple[int, int, int],
        device: torch.device,
        dtype: torch.dtype,
        inv_scaling: float,
    ) -> None:
        self._unet = unet
        self.feedback = LatentFeedback(frames, latent_shape, device, dtype, inv_scaling)
        self.cache = AttentionCache()
        self.cache_attention = False
        self._conditioning: object = None

    # -- live parameters ---------------------------------------------------------------------
    @staticmethod
    def validate(key: str, value: Any) -> Any:
        if key == "feedback":
            return check_feedback(value)
        if key == "cache_attention":
            if value not in (True, False, 0, 1):
                raise ValueError(f"cache_attention must be true or false, got {value!r}")
            return bool(value)
        if key == "cache_frames":
            return check_frames(_whole(value))
        if key == "cache_interval":
            return check_interval(_whole(value))
        raise KeyError(key)

    def apply(self, live: dict[str, Any]) -> bool:
        """Apply validated values; True when the output changes (so the filter lets it through)."""
        changed = False
        if "feedback" in live:
            changed = live["feedback"] != self.feedback.strength
            self.feedback.set(live["feedback"], self._conditioning)
        if "cache_frames" in live or "cache_interval" in live:
            self.cache.configure(live.get("cache_frames"), live.get("cache_interval"))
            changed = changed or self.cache_attention
        if "cache_attention" in live and live["cache_attention"] != self.cache_attention:
            self._switch_cache(live["cache_attention"])
            changed = True
        return changed

    def _switch_cache(self, on: bool) -> None:
        if on:
            install(self._unet)
        else:
            uninstall(self._unet)
        self.cache.reset()
        self.cache_attention = on

    def set_conditioning(self, conditioning: object) -> None:
        self._conditioning = conditioning
        self.feedback.set(self.feedback.strength, conditioning)

    # -- the frame clock ---------------------------------------------------------------------
    def entry(self, latents: torch.Tensor) -> torch.Tensor:
        return self.feedback.entry(latents)

    def begin_frame(self) -> None:
        slot = slot_of(self._unet)
        if slot is not None:  # some engine on this UNet has a cache: this frame uses ours or none
            slot.cache = self.cache if self.cache_attention else None
        if self.cache_attention:
            self.cache.begin_frame()

    def stream(self, index: int) -> None:
        self.cache.stream = index

    def end_frame(self, x0: torch.Tensor) -> None:
        self.feedback.remember(x0)
        if self.cache_attention:
            self.cache.end_frame()
            slot = slot_of(self._unet)
            if slot is not None:
                slot.cache = None

    def reset(self) -> None:
        self.feedback.forget()
        self.cache.reset()

    def stats(self) -> dict[str, Any]:
        return {
            "feedback": self.feedback.strength,
            "cache_attention": self.cache_attention,
            "cache_entries": self.cache.entries,
            "cache_bytes": self.cache.nbytes,
        }


def _whole(value: Any) -> Any:
    """Integral floats (OSC may send 4.0) count as integers; anything else is left to the check."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
