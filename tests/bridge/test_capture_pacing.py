"""On-demand sources are read when the engine needs a frame, not at their full pace, when the
engine is slower than that pace (bridge/runtime/pacing.py): one read per engine frame instead of
two or more, with the frame ready before the engine asks, and the hold timer never mistaking a
put-off read for a silent source. A video file keeps its own rate."""

from __future__ import annotations

import time

import pytest
import torch
from daemon_helpers import InvertEngine, ListSink, wait_for
from test_runtime import CFG

from bridge.runtime import Runtime, RuntimeOptions
from bridge.runtime.pacing import LEAD, RECENT, DemandClock, Need, next_read
from bridge.sources.pattern import PatternSource


def test_the_demand_clock_predicts_the_next_ask_from_the_shortest_recent_busy_time() -> None:
    clock = DemandClock()
    assert clock.need(0.0, False) is None  # nothing taken yet
    clock.asking(0.9)
    clock.took(1.0)
    assert clock.need(1.0, False) is None  # no busy time known yet
    clock.asking(1.03)
    clock.took(1.04)
    need = clock.need(1.05, False)
    assert need == Need(pytest.approx(1.07), pytest.approx(0.03))
    assert clock.need(1.05, True).at == pytest.approx(1.10)  # a frame waits: this read is for the ask after
    assert clock.need(1.2, False).at == 1.2  # overdue: the ask comes any moment


def test_a_wait_for_a_late_frame_is_not_counted_as_engine_time() -> None:
    clock = DemandClock()
    clock.took(2.0)
    clock.asking(2.03)  # the engine asks after 30 ms of work ...
    clock.asking(2.13)  # ... the slot stays empty and it asks again: not 130 ms of work
    clock.took(2.2)
    assert clock.busy_s == pytest.approx(0.03)


def test_the_busy_time_is_the_shortest_of_the_recent_ones() -> None:
    clock = DemandClock()
    t = 0.0
    for busy in (0.05, 0.03, 0.04) + (0.06,) * RECENT:
        clock.took(t)
        t += busy
        clock.asking(t)
        if busy != 0.06:
            assert clock.busy_s == pytest.approx(min(0.05, busy) if busy != 0.04 else 0.03)
    assert clock.busy_s == pytest.approx(0.06)  # the fast ones have left the window


def test_the_next_read_lands_just_before_the_need_and_never_faster_than_the_source() -> None:
    assert next_read(1.0, None, 0.002) == 1.0
    need = Need(at=1.10, busy_s=0.04)
    assert next_read(1.0, need, 0.002) == pytest.approx(1.10 - LEAD * 0.04 - 0.002)
    assert next_read(1.095, need, 0.002) == 1.095  # the source's pace is the most it is read
    assert next_read(1.0, Need(at=1.10, busy_s=0.0), 0.0) == 1.0
    assert next_read(1.0, need, 0.002, latest=1.05) == 1.05  # a put-off read has a latest time ...
    assert next_read(1.0, need, 0.002, latest=0.9) == 1.0  # ... that never makes it faster than the pace


class SleepyEngine(InvertEngine):
    """An engine that takes `delay` seconds a call, without using the CPU (so that the test's
    timing does not depend on the machine's load)."""

    def __init__(self, delay: float) -> None:
        super().__init__(64, 64)
        self.delay = delay

    def __call__(self, frames: torch.Tensor | None = None) -> torch.Tensor:
        time.sleep(self.delay)
        return super().__call__(frames)


class VideoLike(PatternSource):
    """Read at its own rate whatever the engine does, as a video file is."""

    on_demand = False


def _run(source, engine, *, when_needed: bool = True, calls: int = 25, fps: float = 100.0) -> Runtime:
    opts = RuntimeOptions(fps=fps, retry_s=0.05, read_when_needed=when_needed)
    rt = Runtime(source, [ListSink()], engine, CFG, options=opts)
    rt.start()
    try:
        assert wait_for(lambda: engine.calls >= calls, 30.0), rt.stats()
    finally:
        rt.stop()
    return rt


def test_an_on_demand_source_is_read_once_per_engine_frame_and_ready_before_the_ask() -> None:
    engine = SleepyEngine(0.04)  # 25 calls a second against a source paced at 100
    rt = _run(PatternSource(fps=100.0), engine)
    reads, calls = rt.capture.fresh, engine.calls
    print(f"{reads} reads for {calls} engine calls")
    assert reads <= 1.5 * calls + 4, (reads, calls)  # at the source's pace: about 4 a call
    queue_ms = list(rt._stats._lat["queue"])  # ms from each frame captured to the engine taking it
    ready = sum(1 for q in queue_ms[3:] if q > 1.0) / len(queue_ms[3:])
    print(f"frames ready before the engine asked: {ready:.0%}; queue ms {sorted(queue_ms)}")
    assert ready >= 0.6  # read before the ask, not after it (which would stall the engine)
    assert max(queue_ms[3:]) < 40.0  # and not a whole engine frame earlier
    assert rt.capture.held == 0


def test_without_it_or_for_a_video_the_source_keeps_its_own_pace() -> None:
    for source, when_needed in ((PatternSource(fps=100.0), False), (VideoLike(fps=100.0), True)):
        engine = SleepyEngine(0.04)
        rt = _run(source, engine, when_needed=when_needed, calls=15)
        assert rt.capture.fresh >= 2 * engine.calls, (type(source).__name__, rt.capture.fresh, engine.calls)


def test_a_slow_engine_never_makes_the_source_look_silent() -> None:
    """Reads put off for an engine that takes 0.3 s a frame: the hold timer (which repeats the
    last frame after 0.1 s of silence at 30 fps) must not step in, and the source stays up. During
    the first engine call its time is not known yet, so the source is read at its pace then."""
    engine = SleepyEngine(0.3)
    opts = RuntimeOptions(fps=30.0, retry_s=0.05)
    rt = Runtime(PatternSource(fps=30.0), [ListSink()], engine, CFG, options=opts)
    rt.start()
    try:
        assert wait_for(lambda: engine.calls >= 3, 30.0)
        reads, calls = rt.capture.fresh, engine.calls
        assert wait_for(lambda: engine.calls >= calls + 5, 30.0)
        reads, calls = rt.capture.fresh - reads, engine.calls - calls
        s = rt.stats()["source"]
    finally:
        rt.stop()
    print(f"{reads} reads for {calls} engine calls of 0.3 s; {s}")
    assert reads <= calls + 1 and rt.capture.held <= 1, (reads, calls, s)
    assert s["up"], s


def test_a_slow_source_is_never_read_faster_than_its_pace() -> None:
    """The 0.5 s cap on a put-off read must not make a source paced at 1 fps read twice a second."""
    engine = SleepyEngine(0.01)
    rt = _run(PatternSource(fps=1.0), engine, calls=3, fps=1.0)
    took = time.perf_counter() - rt._t_start
    assert rt.capture.fresh <= took * 1.0 + 1, (rt.capture.fresh, took)


def test_batches_of_several_frames_are_read_at_the_sources_pace() -> None:
    engine = SleepyEngine(0.02)
    engine.frame_buffer_size = 2  # each step wants two frames at once
    rt = Runtime(PatternSource(fps=100.0), [ListSink()], engine, CFG, options=RuntimeOptions(fps=100.0))
    rt.engine_loop.demand.took(1.0)
    rt.engine_loop.demand.asking(1.02)
    assert rt._need() is None
    engine.frame_buffer_size = 1
    assert rt._need() is not None
