"""The regions an engine currently paints with: cached embeddings, prepared masks, fusion weights.

An engine owns one `RegionalPrompts`. `set(regions)` is called from the engine's `update()`;
it checks every brush first (all or nothing), encodes only prompts it has not seen (an LRU
cache), prepares the masks for the latent grid and swaps the new state in with a single
assignment, so a frame in flight sees either the old regions or the new ones. Changing a mask
or a prompt never needs a rebuild.

During a step the engine asks `expand_*` to widen the conditional part of its UNet batch to
(1 + K) prompts and `fuse` to fold the predictions back to its stream-batch rows.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .brush import Brush, as_brushes
from .fusion import expand_rows, fuse_predictions, region_weights, stack_conditions
from .masks import prepare_mask

Encoder = Callable[[str], torch.Tensor]
"""Encodes one prompt into its (1, L, D) text embedding."""


@dataclass(frozen=True)
class _Active:
    brushes: tuple[Brush, ...]
    embeddings: tuple[torch.Tensor, ...]
    strengths: tuple[float, ...]
    masks: torch.Tensor  # (K, h, w) prepared
    weights: torch.Tensor  # (1 + K, h, w)


_EMPTY = _Active((), (), (), torch.zeros(0, 1, 1), torch.ones(1, 1, 1))


class RegionalPrompts:
    def __init__(
        self,
        encode: Encoder,
        latent_size: tuple[int, int],
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        pixels_per_latent: int = 8,
        cache_size: int = 32,
    ) -> None:
        self._encode = encode
        self.latent_size = (int(latent_size[0]), int(latent_size[1]))
        self.device = torch.device(device)
        self.dtype = dtype
        self.pixels_per_latent = pixels_per_latent
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._cache_size = cache_size
        self._active = _EMPTY
        self.encodes = 0
        """How many prompts went through the text encoder (for tests and stats)."""

    # -- state -----------------------------------------------------------------------------
    @property
    def count(self) -> int:
        """Brushes painting now (those with an all-zero prepared mask are left out of the batch)."""
        return len(self._active.embeddings)

    @property
    def prompts(self) -> int:
        """Prompts per stream-batch row in the UNet batch: 1 + count."""
        return 1 + self.count

    @property
    def brushes(self) -> tuple[Brush, ...]:
        return self._active.brushes

    @property
    def masks(self) -> torch.Tensor:
        """The prepared masks (count, h, w) on the engine's device."""
        return self._active.masks

    @property
    def weights(self) -> torch.Tensor:
        """Fusion weights (1 + count, h, w): background first."""
        return self._active.weights

    def set(self, regions: Sequence[Brush | Mapping[str, Any]] | None) -> None:
        """Replace the regions (list of Brush or dicts; None or [] clears them). Raises ValueError."""
        brushes = as_brushes(regions)
        kept: list[Brush] = []
        masks: list[torch.Tensor] = []
        for b in brushes:
            m = prepare_mask(b.mask, self.latent_size, b.blur, b.alpha, self.pixels_per_latent)
            if bool((m > 0).any()):
                kept.append(b)
                masks.append(m)
        if not kept:
            self._active = _EMPTY
            return
        embeddings = tuple(self._embedding(b.prompt) for b in kept)
        stacked = torch.stack(masks).to(self.device, self.dtype)
        self._active = _Active(
            brushes=brushes,
            embeddings=embeddings,
            strengths=tuple(b.strength for b in kept),
            masks=stacked,
            weights=region_weights(stacked.float()).to(self.dtype),
        )

    def clear(self) -> None:
        self._active = _EMPTY

    def forget_embeddings(self) -> None:
        """Drop cached embeddings (after the text encoder or its LoRA changed)."""
        self._cache.clear()

    def _embedding(self, prompt: str) -> torch.Tensor:
        cached = self._cache.get(prompt)
        if cached is not None:
            self._cache.move_to_end(prompt)
            return cached
        with torch.no_grad():
            emb = self._encode(prompt)
        if emb.ndim == 2:
            emb = emb[None]
        emb = emb[:1].to(self.device, self.dtype)
        self.encodes += 1
        self._cache[prompt] = emb
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return emb

    # -- the step --------------------------------------------------------------------------
    def snapshot(self) -> _Active:
        """The state one step should use throughout (read once per step)."""
        return self._active

    @staticmethod
    def expand_rows(active: _Active, x: torch.Tensor) -> torch.Tensor:
        """Latents (R, C, h, w) or timesteps (R,) repeated for 1 + K prompts, prompt-major."""
        return expand_rows(x, 1 + len(active.embeddings))

    @staticmethod
    def expand_conditions(active: _Active, background: torch.Tensor) -> torch.Tensor:
        """Text conditions (R, L, D) of the background widened to (1 + K) * R rows."""
        if not active.embeddings:
            return background
        return stack_conditions(background, list(active.embeddings), list(active.strengths))

    @staticmethod
    def fuse(active: _Active, pred: torch.Tensor) -> torch.Tensor:
        """Fold (1 + K) * R conditional predictions back into R fused rows."""
        if not active.embeddings:
            return pred
        return fuse_predictions(pred, active.weights)
