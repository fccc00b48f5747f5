"""The StreamMultiDiffusion fusion, as pure torch functions.

With P = 1 + K prompts (background first, then K brushes) the UNet runs once on a batch in
which each prompt's rows are the stream batch's R rows, prompt-major:
``[bg rows 0..R-1, brush 1 rows 0..R-1, ..., brush K rows 0..R-1]``; the engine hands the text
predictions over as (P, R, C, h, w).

The per-prompt predictions are averaged per latent pixel with weights
``w_bg = clip(1 - sum_k m_k, 0, 1)`` and ``w_k = m_k / max(1, sum_k m_k)``
(MultiDiffusion's mask-weighted average, arXiv 2302.08113 / 2403.09055): inside one brush its
prompt alone decides, where brushes overlap they share in proportion to their masks, and
the background prompt fills what the brushes leave. The weights sum to 1 everywhere, so
fusing the noise predictions is the same as fusing the denoised latents (the LCM step is affine
in the prediction with the same noisy latent for every prompt), and residual CFG, whose
"uncond" term is shared by all prompts, can be applied after the fusion unchanged.
"""

from __future__ import annotations

import torch


def region_weights(masks: torch.Tensor) -> torch.Tensor:
    """Per-pixel weights (1 + K, h, w) of the background and K brushes from masks (K, h, w)."""
    if masks.ndim != 3:
        raise ValueError(f"masks must be (K, h, w), got shape {tuple(masks.shape)}")
    total = masks.sum(dim=0)
    background = (1.0 - total).clamp(min=0.0)
    brushes = masks / total.clamp(min=1.0)
    return torch.cat([background[None], brushes], dim=0)


def fuse_groups(pred: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Fuse grouped predictions (P, R, C, h, w) with weights (P, h, w) into (R, C, h, w)."""
    if pred.shape[0] != weights.shape[0]:
        raise ValueError(f"{pred.shape[0]} prediction groups for {weights.shape[0]} weights")
    return (pred * weights[:, None, None].to(pred.dtype)).sum(dim=0)


def mix_embeddings(background: torch.Tensor, brush: torch.Tensor, strength: float) -> torch.Tensor:
    """Mix a brush's prompt embedding into the background's: strength 0 = background, 1 = brush.

    Shapes broadcast ((R, L, D) background with a (1, L, D) brush gives (R, L, D)); strength 1
    returns the brush exactly.
    """
    if strength >= 1.0:
        return brush.expand_as(torch.broadcast_tensors(background, brush)[0])
    if strength <= 0.0:
        return background.expand_as(torch.broadcast_tensors(background, brush)[0])
    return torch.lerp(background, brush.to(background.dtype), strength)


def stack_conditions(
    background: torch.Tensor, brushes: list[torch.Tensor], strengths: list[float]
) -> torch.Tensor:
    """Prompt-major text conditions (P * R, L, D): the background's R rows, then each brush's.

    `background` is (R, L, D) (the engine passes its (1, L, D) prompt embeddings); each brush is
    (1, L, D) and is mixed with the background at its strength.
    """
    rows = [background]
    for emb, s in zip(brushes, strengths, strict=True):
        rows.append(mix_embeddings(background, emb, s))
    return torch.cat(rows, dim=0)
