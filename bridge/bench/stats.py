"""Summaries of timing samples: fps and latency percentiles, and ratios between two runs."""

from __future__ import annotations

import math
from collections.abc import Sequence


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
