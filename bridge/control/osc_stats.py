"""Runtime statistics as OSC: the `/sd/status` reply and the `/sd/stats/...` push.

The runtime's `stats()` dict is read tolerantly: each field is looked up under a few likely
keys (a dotted key descends into nested dicts), and a missing or non-numeric one reads 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class StatField:
    name: str
    """Pushed as `/sd/stats/<name>`."""
    integral: bool
    keys: tuple[str, ...]
    doc: str


STAT_FIELDS: tuple[StatField, ...] = (
    StatField("fps", False, ("fps", "output_fps"), "Output frames per second."),
    StatField(
        "latency/p50",
        False,
        ("latency_p50_ms", "latency_ms_p50", "latency_p50", "p50_ms", "p50", "latency_ms.p50", "latency.p50"),
        "Median input-to-output latency, milliseconds.",
    ),
    StatField(
        "latency/p95",
        False,
        ("latency_p95_ms", "latency_ms_p95", "latency_p95", "p95_ms", "p95", "latency_ms.p95", "latency.p95"),
        "95th percentile latency, milliseconds.",
    ),
    StatField(
        "latency/p99",
        False,
        ("latency_p99_ms", "latency_ms_p99", "latency_p99", "p99_ms", "p99", "latency_ms.p99", "latency.p99"),
        "99th percentile latency, milliseconds.",
    ),
    StatField("skip_rate", False, ("skip_rate", "skip_ratio"), "Share of frames the filter skipped (0..1)."),
    StatField("dropped", True, ("dropped", "dropped_frames", "frames_dropped"), "Input frames dropped."),
    StatField(
        "source_down",
        True,
        ("source_down",),
        "1 while the video source is lost or reconnecting (the last good frame keeps going out), else 0.",
    ),
)

STATUS_FIELDS: tuple[str, ...] = ("fps", "latency/p50", "latency/p95", "skip_rate", "dropped", "source_down")
"""The arguments of the `/sd/status` reply, in order."""

_BY_NAME = {f.name: f for f in STAT_FIELDS}


def _lookup(stats: Mapping[str, Any], key: str) -> Any:
    node: Any = stats
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def read(stats: Mapping[str, Any] | None, field: StatField) -> float | int:
    for key in field.keys:
        value = _lookup(stats or {}, key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return int(value) if field.integral else float(value)
    return 0 if field.integral else 0.0


def stats_messages(stats: Mapping[str, Any] | None) -> list[tuple[str, list[Any]]]:
    return [("/sd/stats/" + f.name, [read(stats, f)]) for f in STAT_FIELDS]


def status_args(stats: Mapping[str, Any] | None) -> list[Any]:
    return [read(stats, _BY_NAME[name]) for name in STATUS_FIELDS]
