"""Latent feedback: blend the previous output latent into the new frame's latent as it enters.

``z_in = (1 - s) * z_new + s * z_prev`` per latent pixel, before the stage-0 noising, where
`z_new` is the VAE latent of the new input and `z_prev` the clean latent (x0) of the previous
output. At s = 0 the engine skips the blend entirely (the output is today's, bit for bit); the
cost otherwise is two element-wise kernels on a (frames, 4, h, w) buffer.

s is a per-pixel map (1, 1, h, w) held on the device: the whole-frame `feedback` value, or with
regional prompts on, the background's value (`feedback`) where no brush paints and each brush's
own `feedback` inside its mask, mixed with the same weights the prompts are fused with.
"""

from __future__ import annotations

import math

import torch


class LatentFeedback:
    def __init__(
        self, frames: int, latent_shape: tuple[int, int, int], device, dtype, inv_scaling: float
    ) -> None:
        h, w = latent_shape[1:]
        self.strength = 0.0
        """The whole frame's (with regions: the background's) feedback, 0..1."""
        self.active = False
        """Whether any pixel blends at all (False: the engine skips the blend)."""
        self._inv_scaling = float(inv_scaling)
        self._keep = torch.ones((1, 1, h, w), device=device, dtype=dtype)
        self._take = torch.zeros((1, 1, h, w), device=device, dtype=dtype)
        self._mixed = torch.zeros((frames, *latent_shape), device=device, dtype=dtype)
        self._previous: torch.Tensor | None = None

    def set(self, strength: float, conditioning: object = None) -> None:
        """Recompute the map from the whole-frame strength and the brushes' own (if any)."""
        self.strength = strength = check_feedback(strength)
        weights = getattr(conditioning, "weights", None)
        brushes = getattr(conditioning, "brushes", ())
        if weights is None or not brushes:
            self._fill(torch.full_like(self._keep, strength))
            self.active = strength > 0.0
            return
        values = [strength, *(float(getattr(b, "feedback", 0.0)) for b in brushes)]
        per_group = torch.tensor(values, dtype=torch.float32, device=weights.device).view(-1, 1, 1)
        strength_map = (weights.float() * per_group).sum(dim=0).clamp_(0.0, 1.0)
        self._fill(strength_map.view(self._keep.shape))
        self.active = any(v > 0.0 for v in values)

    def _fill(self, strength_map: torch.Tensor) -> None:
        strength_map = strength_map.to(self._keep.device, self._keep.dtype)
        torch.sub(1.0, strength_map, out=self._keep)
        torch.mul(strength_map, self._inv_scaling, out=self._take)  # x0 is scaled; the VAE's are raw

    @property
    def strength_map(self) -> torch.Tensor:
        """s per latent pixel (1, 1, h, w)."""
        return 1.0 - self._keep

    def entry(self, latents: torch.Tensor) -> torch.Tensor:
        """The raw VAE latents to noise into the stream: blended once there is a previous output."""
        if not self.active or self._previous is None:
            return latents
        return torch.mul(latents, self._keep, out=self._mixed).addcmul_(self._take, self._previous)

    def remember(self, x0: torch.Tensor) -> None:
        """Keep the output's clean latent (a reference: the engine leaves x0 untouched until the
        next frame's entry is made, so no copy is needed)."""
        self._previous = x0

    def forget(self) -> None:
        self._previous = None


def check_feedback(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"feedback must be a number in [0, 1], got {value!r}")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"feedback must be a number in [0, 1], got {value!r}")
    return float(value)
