"""Scheduler arithmetic, computed once per `t_index_list` (never per frame).

StreamDiffusion uses the LCM scheduler's timesteps as a menu: `t_index_list` picks which of its
`num_inference_steps` timesteps each stage of the stream batch denoises at. For every stage we need
sqrt(alpha_bar), sqrt(1 - alpha_bar) and the LCM boundary-condition scalings c_skip and c_out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class StageCoefficients:
    """Per-stage scalars (length n = len(t_index_list)), float64 on the CPU."""

    timesteps: torch.Tensor
    alpha: torch.Tensor
    """sqrt(alpha_bar_t)"""
    beta: torch.Tensor
    """sqrt(1 - alpha_bar_t)"""
    c_skip: torch.Tensor
    c_out: torch.Tensor


def select(table: StageCoefficients, t_index_list: Sequence[int]) -> StageCoefficients:
    """The stages `t_index_list` picks out of a table computed once for every index."""
    idx = torch.tensor(list(t_index_list), dtype=torch.long)
    return StageCoefficients(
        timesteps=table.timesteps[idx],
        alpha=table.alpha[idx],
        beta=table.beta[idx],
        c_skip=table.c_skip[idx],
        c_out=table.c_out[idx],
    )


def validate_t_index_list(t_index_list: object, num_inference_steps: int) -> list[int]:
    """Return the list as ints or raise ValueError: 1+ strictly increasing indices in range."""
    if isinstance(t_index_list, (str, bytes)) or not isinstance(t_index_list, (list, tuple)):
        raise ValueError(f"t_index_list must be a list of integers, got {t_index_list!r}")
    if not 1 <= len(t_index_list) <= num_inference_steps:
        raise ValueError(f"t_index_list needs 1 to {num_inference_steps} entries, got {len(t_index_list)}")
    out: list[int] = []
    for v in t_index_list:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or float(v) != int(v):
            raise ValueError(f"t_index_list entries must be integers, got {v!r}")
        i = int(v)
        if not 0 <= i < num_inference_steps:
            raise ValueError(f"t_index_list entries must be in [0, {num_inference_steps - 1}], got {i}")
        out.append(i)
    if any(b <= a for a, b in zip(out, out[1:], strict=False)):
        raise ValueError(f"t_index_list must be strictly increasing (noisiest step first), got {out}")
    return out


def t_index_from_strength(strength: float, count: int, num_inference_steps: int = 50) -> list[int]:
    """Map an img2img strength in [0, 1] onto `count` increasing indices of the LCM schedule.

    Strength s starts the denoising at index round((1 - s) * steps) (s = 1: pure noise at index 0;
    the default [35] of a 50-step schedule is s = 0.3) and spaces the remaining steps evenly towards
    the end of the schedule, as LCM's own multi-step schedules do (s = 1, 4 steps: [0, 12, 25, 38]).
    """
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0 <= strength <= 1:
        raise ValueError(f"strength must be a number in [0, 1], got {strength!r}")
    if not 1 <= count <= num_inference_steps:
        raise ValueError(f"count must be in [1, {num_inference_steps}], got {count}")
    start = min(round((1.0 - float(strength)) * num_inference_steps), num_inference_steps - count)
    span = num_inference_steps - start
    indices = [start + round(k * span / count) for k in range(count)]
    for k in range(1, count):  # rounding can collide when the span is short
        indices[k] = max(indices[k], indices[k - 1] + 1)
    return indices


def stage_coefficients(scheduler, t_index_list: Sequence[int], num_inference_steps: int) -> StageCoefficients:
    """Coefficients of each stage from an `LCMScheduler` (its state is changed: set_timesteps)."""
    scheduler.set_timesteps(num_inference_steps, device="cpu")
    timesteps = scheduler.timesteps.to("cpu")[list(t_index_list)].long()
    alphas_cumprod = scheduler.alphas_cumprod.to("cpu", torch.float64)
    abar = alphas_cumprod[timesteps]
    skips, outs = [], []
    for t in timesteps:
        c_skip, c_out = scheduler.get_scalings_for_boundary_condition_discrete(t)
        skips.append(float(c_skip))
        outs.append(float(c_out))
    return StageCoefficients(
        timesteps=timesteps,
        alpha=abar.sqrt(),
        beta=(1.0 - abar).sqrt(),
        c_skip=torch.tensor(skips, dtype=torch.float64),
        c_out=torch.tensor(outs, dtype=torch.float64),
    )
