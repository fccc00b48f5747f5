"""Rolling latency percentiles and frame rate."""

from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np

STAGES = ("capture", "queue", "engine", "output", "e2e")
"""capture: source read + fit; queue: waiting for the engine; engine: conversion + model;
output: waiting for and writing the sinks; e2e: capture start to the last sink written."""


class RollingStats:
    """The last `window` samples of each stage's latency and the times frames went out."""

    def __init__(self, window: int = 300) -> None:
        self._window = window
        self._lat = {s: deque(maxlen=window) for s in STAGES}
        self._out_times: deque[float] = deque(maxlen=window)
        self._lock = threading.Lock()

    def add(self, stage: str, seconds: float) -> None:
        """Record one latency sample; stages beyond STAGES (the engine's own, when profiling) are added."""
        with self._lock:
            if stage not in self._lat:
                self._lat[stage] = deque(maxlen=self._window)
            self._lat[stage].append(seconds * 1000.0)

    def frame_out(self, t: float | None = None) -> None:
        with self._lock:
            self._out_times.append(time.perf_counter() if t is None else t)

    def fps(self, horizon: float = 2.0) -> float:
        now = time.perf_counter()
        with self._lock:
            recent = [t for t in self._out_times if now - t <= horizon]
        if len(recent) < 2:
            return 0.0
        span = recent[-1] - recent[0]
        return (len(recent) - 1) / span if span > 0 else 0.0

    def percentiles(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        with self._lock:
            samples = {s: np.fromiter(d, dtype=np.float64) for s, d in self._lat.items()}
        for stage, arr in samples.items():
            if arr.size:
                p50, p95, p99 = np.percentile(arr, [50, 95, 99])
                out[stage] = {
                    "p50": round(float(p50), 2),
                    "p95": round(float(p95), 2),
                    "p99": round(float(p99), 2),
                }
            else:
                out[stage] = {"p50": 0.0, "p95": 0.0, "p99": 0.0}
        return out
