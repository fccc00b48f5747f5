"""Rolling latency percentiles and frame rate."""

from __future__ import annotations

import threading
import time
from collections import deque

STAGES = ("capture", "queue", "engine", "output", "e2e")
"""capture: source read + fit; queue: waiting for the engine; engine: conversion + model;
output: waiting for and writing the sinks; e2e: capture start to the last sink written."""


FPS_MIN_FRAMES = 8
"""The fps window reaches back at least this many frames, so a slow engine shows its true rate."""
FPS_MAX_WINDOW = 60.0
"""...but never further back than this many seconds."""


class RollingStats:
    """The last `window` samples of each stage's latency and the times frames went out."""

    def __init__(self, window: int = 300, out_window: int = 2048) -> None:
        self._window = window
        self._lat = {s: deque(maxlen=window) for s in STAGES}
        self._out_times: deque[float] = deque(maxlen=out_window)
        self._lock = threading.Lock()
        self._t0: float | None = None

    def mark_start(self, t: float | None = None) -> None:
        """When the pipeline started: the fps window never reaches back before it."""
        self._t0 = time.perf_counter() if t is None else t

    def add(self, stage: str, seconds: float) -> None:
        """Record one latency sample; stages beyond STAGES (the engine's own, when profiling) are added."""
        with self._lock:
            if stage not in self._lat:
                self._lat[stage] = deque(maxlen=self._window)
            self._lat[stage].append(seconds * 1000.0)

    def frame_out(self, t: float | None = None) -> None:
        with self._lock:
            self._out_times.append(time.perf_counter() if t is None else t)

    def fps(self, horizon: float = 2.0, now: float | None = None) -> float:
        """Frames out per second over a window that adapts to the speed: the last `horizon` seconds,
        or the time the last FPS_MIN_FRAMES frames took if that is longer (a slow engine's true rate,
        instead of 0), up to FPS_MAX_WINDOW. The window ends now, so a stall shows as a falling rate,
        and never reaches back before `mark_start` (or, unmarked, the first frame): frames over
        elapsed time, so a burst just after the start cannot read as a rate the pipeline never had."""
        now = time.perf_counter() if now is None else now
        with self._lock:
            times = list(self._out_times)
        if not times:
            return 0.0
        window = horizon
        if len(times) >= FPS_MIN_FRAMES:
            window = max(window, now - times[-FPS_MIN_FRAMES])
        begin = now - min(window if len(times) >= FPS_MIN_FRAMES else FPS_MAX_WINDOW, FPS_MAX_WINDOW)
        begin = max(begin, times[0] if self._t0 is None else self._t0)
        span = now - begin
        if span <= 0:
            return 0.0
        return sum(1 for t in times if begin < t <= now) / span

    def quantiles(self, stage: str, qs: tuple[float, ...]) -> list[float]:
        """Quantiles (0..1) of one stage's samples, as `np.percentile` computes them (linear), in
        plain Python: the status line takes two of them up to 10 times a second from a sink's
        thread, where numpy over every stage cost ~0.3 ms holding the GIL on a 2-core machine."""
        with self._lock:
            values = sorted(self._lat.get(stage, ()))
        if not values:
            return [0.0 for _ in qs]
        out = []
        for q in qs:
            pos = q * (len(values) - 1)
            lo = int(pos)
            hi = min(lo + 1, len(values) - 1)
            out.append(values[lo] + (values[hi] - values[lo]) * (pos - lo))
        return out

    def percentiles(self) -> dict[str, dict[str, float]]:
        """p50, p95 and p99 of every stage, in ms (0 for a stage with no samples yet)."""
        with self._lock:
            stages = list(self._lat)
        out: dict[str, dict[str, float]] = {}
        for stage in stages:
            p50, p95, p99 = self.quantiles(stage, (0.5, 0.95, 0.99))
            out[stage] = {"p50": round(p50, 2), "p95": round(p95, 2), "p99": round(p99, 2)}
        return out
