"""How the text rows of the UNet batch are built and their predictions fused.

The engine asks its `conditioning` for the text embeddings whenever the prompt embeddings change
(an update, or each frame of a transition), and hands it the text part of every UNet prediction.
The default is one prompt for the whole frame. Regional prompting plugs in here: `groups` text
groups (e.g. background + one per brush) share the one batched UNet call, and `fuse` blends their
predictions with masks.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class TextConditioning(Protocol):
    groups: int
    """How many text groups G the UNet batch carries (1 = one prompt)."""

    def embeds(self, prompt_embeds: torch.Tensor) -> torch.Tensor:
        """(1, 77, D) current prompt embeddings -> (G, 77, D), one per group. Called off the hot path
        (and once per frame during a prompt transition)."""
        ...

    def fuse(self, pred: torch.Tensor) -> torch.Tensor:
        """(G, R, 4, h, w) text predictions of R latent rows -> (R, 4, h, w). Called every UNet step;
        must not sync with the host."""
        ...


class SinglePrompt:
    """One prompt for the whole frame."""

    groups = 1

    def embeds(self, prompt_embeds: torch.Tensor) -> torch.Tensor:
        return prompt_embeds

    def fuse(self, pred: torch.Tensor) -> torch.Tensor:
        return pred[0]
