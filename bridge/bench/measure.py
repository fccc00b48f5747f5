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


def warm_up(engine: Any, source: FrameSource, calls: int) -> None:
    """Untimed calls: lazy initialisation, allocator growth, the stream-batch buffer filling."""
    for index in range(calls):
        engine(source(index))


def timed_calls(
    engine: Any, source: FrameSource, *, start: int, count: int, profile: bool = False
) -> EngineRun:
    """`count` calls, each timed on its own (synchronising CUDA before and after it).

    fps is the calls' frames over the wall time of the loop; latencies are per call. With
    `profile`, the engine's own per-stage timings (`engine.last_timings`) are collected too;
    profiling adds syncs inside the engine, so throughput rows are measured without it.
    """
    clock = DeviceClock(engine.device)
    batch = int(getattr(engine, "frame_buffer_size", 1) or 1)
    before = engine.stats()
    reset_peak_memory(clock.device)
    can_profile = profile and hasattr(engine, "profile")
    if can_profile:
        engine.profile = True
    latencies: list[float] = []
    stages: dict[str, list[float]] = defaultdict(list)
    try:
        begin = clock.now()
        for index in range(start, start + count):
            frame = source(index)
            t0 = clock.now()
            engine(frame)
            t1 = clock.now()
            latencies.append((t1 - t0) * 1000.0)
            if can_profile:
                for name, ms in (getattr(engine, "last_timings", None) or {}).items():
                    if name in ENGINE_STAGES and ms is not None:
                        stages[name].append(float(ms))
        seconds = clock.now() - begin
    finally:
        if can_profile:
            engine.profile = False
    after = engine.stats()
    kind, peak = peak_memory_mb(clock.device)
    skipped_before, skipped_after = _counter(before, "skipped"), _counter(after, "skipped")
    frames_before, frames_after = _counter(before, "frames"), _counter(after, "frames")
    return EngineRun(
        calls=count,
        frames=count * batch,
        seconds=seconds,
        latencies_ms=latencies,
        stages_ms=dict(stages),
        skipped=None if skipped_before is None or skipped_after is None else skipped_after - skipped_before,
        engine_frames=None if frames_before is None or frames_after is None else frames_after - frames_before,
        memory_kind=kind,
        peak_memory_mb=peak,
    )


def streamed_calls(engine: Any, source: FrameSource, *, start: int, count: int) -> EngineRun:
    """`count` calls back to back, the device synchronised once before and once after them.

    Throughput as a stream: the host queues frame k + 1 while the device still runs frame k, as
    the daemon's engine loop does, so no per-call sync idles the GPU between calls (on the CPU it
    equals the per-call loop minus the clock's own cost). There are no per-call latencies.
    """
    clock = DeviceClock(engine.device)
    batch = int(getattr(engine, "frame_buffer_size", 1) or 1)
    frames = [source(index) for index in range(start, start + count)]
    begin = clock.now()
    for frame in frames:
        engine(frame)
    seconds = clock.now() - begin
    return EngineRun(calls=count, frames=count * batch, seconds=seconds, latencies_ms=[])


def _sum(values: list[int | None]) -> int | None:
    return None if any(v is None for v in values) else sum(v for v in values if v is not None)


def merge_runs(runs: list[EngineRun]) -> EngineRun:
    """One run from several chunks of the same engine (the rounds of an interleaved comparison)."""
    stages: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        for name, values in run.stages_ms.items():
            stages[name].extend(values)
    peaks = [r.peak_memory_mb for r in runs if r.peak_memory_mb is not None]
    return EngineRun(
        calls=sum(r.calls for r in runs),
        frames=sum(r.frames for r in runs),
        seconds=sum(r.seconds for r in runs),
        latencies_ms=[ms for r in runs for ms in r.latencies_ms],
        stages_ms=dict(stages),
        skipped=_sum([r.skipped for r in runs]),
        engine_frames=_sum([r.engine_frames for r in runs]),
        memory_kind=runs[0].memory_kind if runs else "",
        peak_memory_mb=max(peaks) if peaks else None,
    )


def split(total: int, parts: int) -> list[int]:
    """`total` calls in `parts` near-equal chunks (none empty): 10 in 3 -> [4, 3, 3]."""
    parts = max(1, min(parts, total))
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]
