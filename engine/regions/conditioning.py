"""Regional prompts as the engine's text conditioning (`engine.conditioning.TextConditioning`).

The engine's UNet batch carries G = 1 + K text groups of its R stream-batch rows (background
first, then each brush) after its shared unconditional rows; it asks `embeds` for the G text
embeddings whenever the prompt embeddings change and hands `fuse` the (G, R, 4, h, w) text
predictions of every step. Residual CFG then runs on the fused prediction unchanged.

`build_conditioning` checks the regions (all or nothing), encodes their prompts through the
engine's cached encoder and prepares the masks; a new mask or prompt is a new conditioning
object swapped in between frames, never a rebuild.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from ..conditioning import SinglePrompt, TextConditioning
from .brush import Brush, as_brushes
from .fusion import fuse_groups, region_weights, stack_conditions
from .masks import prepare_mask

Encoder = Callable[[str], torch.Tensor]
"""Encodes one prompt into its (1, 77, D) text embedding."""


class RegionalConditioning:
    """Background prompt + K brushes: G = 1 + K text groups fused with mask weights."""

    def __init__(
        self,
        brushes: Sequence[Brush],
        embeddings: Sequence[torch.Tensor],
        masks: torch.Tensor,
    ) -> None:
        if not (len(brushes) == len(embeddings) == masks.shape[0] >= 1):
            raise ValueError("one embedding and one mask per brush, at least one brush")
        self.brushes = tuple(brushes)
        self.groups = 1 + len(self.brushes)
        self._embeddings = list(embeddings)
        self._strengths = [b.strength for b in self.brushes]
        self.masks = masks
        """Prepared masks (K, h, w) on the engine's device."""
        self.weights = region_weights(masks.float()).to(masks.dtype)
        """Fusion weights (1 + K, h, w), background first."""

    def embeds(self, prompt_embeds: torch.Tensor) -> torch.Tensor:
        return stack_conditions(prompt_embeds, self._embeddings, self._strengths)

    def fuse(self, pred: torch.Tensor) -> torch.Tensor:
        return fuse_groups(pred, self.weights)


def build_conditioning(
    regions: Sequence[Brush | Mapping[str, Any]] | None,
    encode: Encoder,
    latent_size: tuple[int, int],
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    pixels_per_latent: int = 8,
) -> TextConditioning:
    """The conditioning for these regions; `SinglePrompt` when no brush paints anything.

    Brushes whose prepared mask is all zero (alpha 0, an empty rect) are left out of the
    UNet batch. Raises ValueError (or its subclass MaskError) naming the bad region.
    """
    brushes = as_brushes(regions)
    kept: list[Brush] = []
    masks: list[torch.Tensor] = []
    for b in brushes:
        m = prepare_mask(b.mask, latent_size, b.blur, b.alpha, pixels_per_latent)
        if bool((m > 0).any()):
            kept.append(b)
            masks.append(m)
    if not kept:
        return SinglePrompt()
    with torch.no_grad():
        embeddings = [encode(b.prompt).to(device, dtype) for b in kept]
    return RegionalConditioning(kept, embeddings, torch.stack(masks).to(device, dtype))
