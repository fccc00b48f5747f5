"""Running an engine for a number of calls and measuring it: the core timing loop."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from .clock import DeviceClock, peak_memory_mb, reset_peak_memory
from .inputs import FrameSource
from .stats import fps, latency_summary

ENGINE_STAGES: tuple[str, ...] = ("encode", "unet", "decode")
"""Keys of `engine.last_timings` (ms) when `engine.profile` is on."""


@dataclass
class EngineRun:
    """What one timed loop over an engine produced."""

    calls: int
    frames: int
    """Output frames: calls x frame_buffer_size."""
    seconds: float
    latencies_ms: list[float]
    stages_ms: dict[str, list[float]] = field(default_factory=dict)
    skipped: int | None = None
    engine_frames: int | None = None
    memory_kind: str = ""
    peak_memory_mb: float | None = None

    @property
    def fps(self) -> float:
        return fps(self.frames, self.seconds)

    @property
    def skipped_fraction(self) -> float | None:
        if self.skipped is None:
            return None
        counted = self.engine_frames if self.engine_frames else self.frames
        return self.skipped / counted

    def metrics(self, *, with_memory: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"fps": self.fps, "frames": self.frames}
        out.update(latency_summary(self.latencies_ms))
        if self.skipped is not None:
            out["skipped_fraction"] = self.skipped_fraction
        if with_memory and self.peak_memory_mb is not None:
            out["peak_mem_mb"] = self.peak_memory_mb
        return out


def _counter(stats: dict[str, Any], key: str) -> int | None:
    value = stats.get(key)
    return int(value) if isinstance(value, int | float) else None


def measure_engine(
    engine: Any, source: FrameSource, *, frames: int, warmup: int, profile: bool = False
) -> EngineRun:
    """Call `engine` `warmup` times untimed, then `frames` times timed, one call at a time.

    Each call is timed on its own (synchronising CUDA before and after), so the loop's fps is
    frames over the sum of the loop, and the latencies are per call. With `profile`, the engine's
    own per-stage timings (`engine.last_timings`) are collected too; profiling adds syncs inside the
    engine, so throughput rows are measured without it.
    """
    clock = DeviceClock(engine.device)
    batch = int(getattr(engine, "frame_buffer_size", 1) or 1)
    for index in range(warmup):
        engine(source(index))
    before = engine.stats()
    reset_peak_memory(clock.device)
    can_profile = profile and hasattr(engine, "profile")
    if can_profile:
        engine.profile = True
    latencies: list[float] = []
    stages: dict[str, list[float]] = defaultdict(list)
    try:
        start = clock.now()
        for index in range(warmup, warmup + frames):
            frame = source(index)
            t0 = clock.now()
            engine(frame)
            t1 = clock.now()
            latencies.append((t1 - t0) * 1000.0)
            if can_profile:
                for name, ms in (getattr(engine, "last_timings", None) or {}).items():
                    if name in ENGINE_STAGES and ms is not None:
                        stages[name].append(float(ms))
        seconds = clock.now() - start
    finally:
        if can_profile:
            engine.profile = False
    after = engine.stats()
    kind, peak = peak_memory_mb(clock.device)
    skipped_before, skipped_after = _counter(before, "skipped"), _counter(after, "skipped")
    frames_before, frames_after = _counter(before, "frames"), _counter(after, "frames")
    return EngineRun(
        calls=frames,
        frames=frames * batch,
        seconds=seconds,
        latencies_ms=latencies,
        stages_ms=dict(stages),
        skipped=None if skipped_before is None or skipped_after is None else skipped_after - skipped_before,
        engine_frames=None if frames_before is None or frames_after is None else frames_after - frames_before,
        memory_kind=kind,
        peak_memory_mb=peak,
    )
