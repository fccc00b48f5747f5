"""Summaries of timing samples: fps and latency percentiles, and ratios between two runs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks (numpy's default).

    Monotone in q by construction, so p50 <= p95 <= p99 always holds.
    """
    if not samples:
        raise ValueError("percentile of no samples")
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_summary(samples_ms: Sequence[float], prefix: str = "") -> dict[str, float]:
    """p50/p95/p99/mean/max of latency samples in milliseconds, keyed `<prefix>p50_ms` and so on."""
    if not samples_ms:
        return {}
    return {
        f"{prefix}p50_ms": percentile(samples_ms, 50),
        f"{prefix}p95_ms": percentile(samples_ms, 95),
        f"{prefix}p99_ms": percentile(samples_ms, 99),
        f"{prefix}mean_ms": sum(samples_ms) / len(samples_ms),
        f"{prefix}max_ms": max(samples_ms),
    }


def fps(frames: int, seconds: float) -> float:
    """Frames per second over a wall-clock interval."""
    if seconds <= 0:
        raise ValueError(f"fps over a non-positive interval ({seconds} s)")
    return frames / seconds


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when either is missing or the denominator is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def bracketed_ratios(values: Sequence[float], references: Sequence[float]) -> list[float]:
    """values[i] over the mean of references[i] and references[i + 1] (references[i] alone for the
    last): each round against the reference rounds taken just before and just after it, so a
    machine whose speed drifts during the run cancels out of every ratio."""
    out: list[float] = []
    for i, value in enumerate(values):
        around = [r for r in references[i : i + 2] if r > 0]
        if around:
            out.append(value * len(around) / sum(around))
    return out


@dataclass(frozen=True)
class Spread:
    """Where per-round values lie: their median, middle half, and the mean's 95% interval."""

    count: int
    median: float
    low_quartile: float
    high_quartile: float
    mean: float
    half_width: float
    """Half the width of the 95% interval of the mean (Student's t); 0 for one value."""

    def describe(self, digits: int = 3) -> str:
        f = f".{digits}f"
        return (
            f"{self.count} rounds: median {self.median:{f}}, middle half {self.low_quartile:{f}}-"
            f"{self.high_quartile:{f}}, mean {self.mean:{f}} +- {self.half_width:{f}} (95%)"
        )


def spread(values: Sequence[float]) -> Spread | None:
    """The spread of per-round values; None for none."""
    if not values:
        return None
    n = len(values)
    mean = sum(values) / n
    half = 0.0
    if n > 1:
        sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
        half = _t975(n - 1) * sd / math.sqrt(n)
    return Spread(n, percentile(values, 50), percentile(values, 25), percentile(values, 75), mean, half)


def _t975(dof: int) -> float:
    """Student's t 97.5% quantile: exact to 3 decimals up to 10 degrees of freedom, then the
    Cornish-Fisher expansion (within 0.1% from 11 on)."""
    table = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)
    if dof <= len(table):
        return table[dof - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * dof) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * dof**2)
