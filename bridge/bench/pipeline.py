"""The whole pipeline (pattern source -> engine -> null sink), measured through the daemon's runtime.

The bench does not re-implement capture, conversion or output: it runs the daemon's real
`Runtime` with the real `PatternSource` and `NullSink`, and keeps every per-stage sample the
runtime records (the runtime's own stats keep only a rolling window, which would mix in the
warm-up frames).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .stats import fps

RUNTIME_STAGES: tuple[str, ...] = ("capture", "queue", "engine", "output", "e2e")
"""The runtime's stages: capture = source read + fit; queue = waiting for the engine; engine =
conversion + model; output = waiting for and writing the sinks; e2e = capture start to sink done."""


@dataclass
class PipelineRun:
    frames: int
    seconds: float
    e2e_ms: list[float]
    """Per output frame: sink written minus capture timestamp."""
    stages_ms: dict[str, list[float]] = field(default_factory=dict)
    source_fps: float = 0.0
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return fps(self.frames, self.seconds)


PipelineRunner = Callable[..., PipelineRun]
"""(engine, config, *, frames, warmup, source_fps, timeout_s) -> PipelineRun."""


def _recording_stats_class() -> type:
    from bridge.runtime.stats import RollingStats

    class RecordingStats(RollingStats):
        """The runtime's stats that also keep every sample after the first `warmup` output frames."""

        def __init__(self, warmup: int) -> None:
            super().__init__()
            self.warmup = warmup
            self.samples: dict[str, list[float]] = defaultdict(list)
            self.out_count = 0
            self.out_times: list[float] = []
            self.measured_from: float | None = None
            self.done = threading.Event()
            self.wanted = 0
            self._record_lock = threading.Lock()

        def add(self, stage: str, seconds: float) -> None:
            super().add(stage, seconds)
            with self._record_lock:
                self.samples[stage].append(seconds * 1000.0)

        def frame_out(self, t: float | None = None) -> None:
            t = time.perf_counter() if t is None else t
            super().frame_out(t)
            with self._record_lock:
                self.out_count += 1
                if self.out_count == self.warmup:
                    # Drop everything the warm-up frames left behind; time from here.
                    self.samples.clear()
                    self.measured_from = t
                elif self.out_count > self.warmup:
                    self.out_times.append(t)
                    if len(self.out_times) >= self.wanted:
                        self.done.set()

    return RecordingStats


def run_daemon_pipeline(
    engine: Any,
    config: Any,
    *,
    frames: int,
    warmup: int,
    source_fps: float,
    timeout_s: float,
) -> PipelineRun:
    """Run pattern -> engine -> null for `warmup` untimed then `frames` timed output frames."""
    from bridge.runtime import Runtime, RuntimeOptions
    from bridge.sinks.null import NullSink
    from bridge.sources.pattern import PatternSource

    warmup = max(1, warmup)  # the first output frame is the reference time
    stats = _recording_stats_class()(warmup)
    stats.wanted = frames
    runtime = Runtime(
        PatternSource(fps=source_fps),
        [NullSink()],
        engine,
        config,
        options=RuntimeOptions(fps=source_fps, max_frames=warmup + frames + 1),
        engine_name="bench",
    )
    # The one hook into the runtime: its stats object, swapped before any thread starts.
    runtime._stats = stats
    runtime.start()
    try:
        finished = stats.done.wait(timeout_s)
    finally:
        runtime.stop(timeout=max(2.0, timeout_s / 10))
    if runtime.faults.get("engine"):
        raise RuntimeError(f"the engine failed on {runtime.faults['engine']} frame(s) inside the pipeline")
    if not finished or stats.measured_from is None:
        got = max(0, stats.out_count - warmup)
        raise TimeoutError(f"the pipeline wrote {got} of {frames} timed frames in {timeout_s:.0f} s")
    out_times = stats.out_times[:frames]
    samples = {k: list(v) for k, v in stats.samples.items()}
    return PipelineRun(
        frames=len(out_times),
        seconds=out_times[-1] - stats.measured_from,
        e2e_ms=samples.get("e2e", [])[:frames],
        stages_ms={k: v for k, v in samples.items() if k != "e2e"},
        source_fps=source_fps,
        dropped=_dropped_by_stage(runtime.stats()),
    )


def merge_pipeline_runs(runs: list[PipelineRun]) -> PipelineRun:
    """One run from the rounds of an interleaved comparison."""
    stages: dict[str, list[float]] = defaultdict(list)
    dropped: dict[str, int] = defaultdict(int)
    for run in runs:
        for name, values in run.stages_ms.items():
            stages[name].extend(values)
        for name, count in run.dropped.items():
            dropped[name] += count
    return PipelineRun(
        frames=sum(r.frames for r in runs),
        seconds=sum(r.seconds for r in runs),
        e2e_ms=[ms for r in runs for ms in r.e2e_ms],
        stages_ms=dict(stages),
        source_fps=max((r.source_fps for r in runs), default=0.0),
        dropped=dict(dropped),
    )


def _dropped_by_stage(stats: dict[str, Any]) -> dict[str, int]:
    """Frames the runtime's latest-wins slots replaced before they were taken, per slot."""
    for key in ("dropped_by_stage", "dropped"):
        value = stats.get(key)
        if isinstance(value, dict):
            return {str(k): int(v) for k, v in value.items()}
    return {}
