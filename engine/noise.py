"""Seeded noise, drawn exactly as the reference does: on a CPU generator, then moved."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .prompts import normalize_weighted

SEED_MAX = 2**63 - 1
SeedSpec = int | Sequence[tuple[int, float]]


def normalize_seed(seed: object) -> list[tuple[int, float]]:
    pairs = normalize_weighted(seed, "seed", int)
    for s, _ in pairs:
        if not 0 <= s <= SEED_MAX:
            raise ValueError(f"seed must be in [0, 2**63 - 1], got {s}")
    return pairs


def seeded_noise(seed: SeedSpec, shape: tuple[int, ...]) -> torch.Tensor:
    """`torch.randn(shape)` from `torch.Generator().manual_seed(seed)` (float32, CPU).

    A weighted list of seeds blends their noises as sum(w_i n_i) / sqrt(sum(w_i^2)) (weights
    normalised to sum 1), which keeps unit variance, so a blend is still valid diffusion noise.
    """
    pairs = normalize_seed(seed)
    draws = [(torch.randn(shape, generator=torch.Generator().manual_seed(s)), w) for s, w in pairs]
    if len(draws) == 1:
        return draws[0][0]
    norm = sum(w * w for _, w in draws) ** 0.5
    out = torch.zeros(shape)
    for n, w in draws:
        out.add_(n, alpha=w / norm)
    return out
