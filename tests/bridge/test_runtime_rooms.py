"""The runtime's rooms: one thread per sink, the status line off the write path, a stalling source
that never stalls the output (the hold timer), and the source's health in stats and status."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
from daemon_helpers import InvertEngine, ListSink, wait_for
from test_runtime import make_runtime

from bridge.control import osc_stats
from bridge.frames import Frame
from bridge.runtime import Runtime, output
from bridge.sources import open_source
from bridge.sources.pattern import PatternSource, decode_counter


class SlowSink(ListSink):
    """A sink whose every write takes `delay` seconds (an NDI receiver far away, vcam pacing)."""

    def __init__(self, delay: float) -> None:
        super().__init__("slow")
        self.delay = delay

    def write(self, image: np.ndarray, status: str = "") -> None:
        time.sleep(self.delay)
        super().write(image, status)


def test_a_slow_sink_never_delays_another() -> None:
    slow, fast = SlowSink(0.25), ListSink("fast")
    rt = make_runtime(open_source("pattern", fps=60), [slow, fast])
    rt.start()
    try:
        assert wait_for(lambda: len(fast.frames) >= 60, 20.0), rt.stats()
        assert wait_for(lambda: len(slow.frames) >= 2, 10.0)
    finally:
        rt.stop()
    # the fast sink got frames at the source's pace, the slow one only the newest at its own pace
    assert len(fast.frames) >= 8 * len(slow.frames), (len(fast.frames), len(slow.frames))
    counters = [decode_counter(f) for f in fast.frames]
    assert counters == sorted(counters)
    sinks = rt.stats()["sinks"]
    assert sinks["slow"]["dropped"] > 0 and sinks["fast"]["written"] == len(fast.frames)
    assert rt.stats()["frames_out"] >= len(fast.frames) - 1


class CountingRuntime(Runtime):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.status_calls = 0

    def status_line(self) -> str:
        self.status_calls += 1
        return super().status_line()


class StatusSink(ListSink):
    shows_status = True

    def __init__(self) -> None:
        super().__init__("status")
        self.statuses: list[str] = []

    def write(self, image: np.ndarray, status: str = "") -> None:
        self.statuses.append(status)
        super().write(image, status)


def test_the_status_line_is_computed_at_most_10_times_a_second_after_writes() -> None:
    sink = StatusSink()
    rt = make_runtime(open_source("pattern", fps=120), [sink], fps=120.0, cls=CountingRuntime)
    t0 = time.monotonic()
    rt.start()
    try:
        assert wait_for(lambda: len(sink.frames) >= 120, 20.0), rt.stats()
    finally:
        rt.stop()
    elapsed = time.monotonic() - t0
    assert rt.status_calls <= elapsed * 10 + 2, (rt.status_calls, elapsed)
    assert rt.status_calls < len(sink.frames) / 3
    assert sink.statuses[0] == ""  # the first write does not wait for a status line
    assert "fps" in sink.statuses[-1]  # later ones carry the latest one


def test_the_status_line_is_not_built_when_no_sink_draws_it() -> None:
    """Only a sink with `shows_status` (the preview window) gets the line; with none of those it is
    never built, and a sink without the flag is passed "" even beside one that has it."""
    plain = ListSink("plain")
    rt = make_runtime(open_source("pattern", fps=120), [plain], fps=120.0, cls=CountingRuntime)
    rt.start()
    try:
        assert wait_for(lambda: len(plain.frames) >= 60, 20.0), rt.stats()
    finally:
        rt.stop()
    assert rt.status_calls == 0

    class PlainStatusSink(StatusSink):
        shows_status = False

    shown, hidden = StatusSink(), PlainStatusSink()
    hidden.name = "hidden"
    rt = make_runtime(open_source("pattern", fps=120), [shown, hidden], fps=120.0, cls=CountingRuntime)
    rt.start()
    try:
        assert wait_for(lambda: len(shown.frames) >= 60 and len(hidden.frames) >= 60, 20.0), rt.stats()
    finally:
        rt.stop()
    assert rt.status_calls > 0 and "fps" in shown.statuses[-1]
    assert set(hidden.statuses) == {""}


class StallingSource(PatternSource):
    """A pattern that, after `good` frames, stalls like a lost network source: `read()` returns
    nothing for `silent_s`, then raises, and the next `open()` blocks for `open_s` (a search)
    before it works again."""

    def __init__(self, good: int = 30, silent_s: float = 1.5, open_s: float = 2.0) -> None:
        super().__init__(fps=60.0)
        self.name = "stalling"
        self.good, self.silent_s, self.open_s = good, silent_s, open_s
        self.reads = 0
        self.opens = 0
        self.stalled_at: float | None = None
        self.back_at: float | None = None

    def open(self, width: int, height: int) -> None:
        self.opens += 1
        if self.opens == 2:
            time.sleep(self.open_s)  # the search blocks the reader, not the show
            self.back_at = time.monotonic()
        super().open(width, height)

    def read(self) -> np.ndarray | None:
        self.reads += 1
        if self.reads == self.good:
            self.stalled_at = time.monotonic()
        if self.opens == 1 and self.reads >= self.good:
            assert self.stalled_at is not None
            if time.monotonic() - self.stalled_at < self.silent_s:
                time.sleep(0.05)
                return None
            raise ConnectionError("the sender went away")
        return super().read()


def _count_in(sink: ListSink, seconds: float) -> int:
    n = len(sink.frames)
    time.sleep(seconds)
    return len(sink.frames) - n


def test_a_stalling_source_never_stalls_the_output() -> None:
    src = StallingSource(good=90, silent_s=1.5, open_s=3.0)
    sink = ListSink()
    rt = make_runtime(src, [sink], fps=60.0)
    rt.start()
    try:
        assert wait_for(lambda: len(sink.frames) >= 10, 20.0)
        normal = _count_in(sink, 1.0)
        assert not rt.stats()["source_down"]
        assert wait_for(lambda: src.stalled_at is not None, 20.0)
        gap_start = time.monotonic()
        during = _count_in(sink, 4.0)  # silent, then raising, then a blocking open
        assert src.back_at is None or src.back_at > gap_start + 4.0, "the stall was shorter than measured"
        down = rt.stats()
        status = rt.status_line()
        assert wait_for(lambda: src.back_at is not None, 10.0)
        assert wait_for(lambda: not rt.stats()["source_down"], 10.0)
        fresh = len(sink.frames)
        assert wait_for(lambda: len(sink.frames) > fresh + 5)
    finally:
        rt.stop()
    assert during / 4.0 >= 0.9 * normal / 1.0, (normal, during)
    assert down["source_down"] and down["source"]["down_s"] >= 1.0 and down["source"]["held"] > 0
    assert "[source down" in status
    assert rt.stats()["faults"]["source"] == 1
    # the frames held during the gap are the last good one; fresh ones follow after
    counters = [decode_counter(f) for f in sink.frames]
    assert counters == sorted(counters) and counters[-1] > counters[fresh - 1]


def test_a_source_that_never_opens_is_down_and_the_runtime_keeps_serving_control() -> None:
    class NeverSource(PatternSource):
        name = "never"

        def open(self, width: int, height: int) -> None:
            time.sleep(0.2)
            raise ConnectionError("nobody is sending")

    rt = make_runtime(NeverSource(fps=60.0), [ListSink()])
    rt.start()
    try:
        assert wait_for(lambda: rt.stats()["faults"]["source"] >= 2, 10.0)
        s = rt.stats()
        assert s["source_down"] and s["source"]["name"] == "never" and s["source"]["frames"] == 0
        assert osc_stats.status_args(s)[-1] == 1  # /sd/status ends with "source down"
        rt.store.set("bypass", True)  # the engine loop still drains control
        assert wait_for(lambda: rt.bypass)
    finally:
        rt.stop()


class FailingStretchEngine(InvertEngine):
    """Raises (as a CUDA out-of-memory would) on every call while `failing` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.failing = threading.Event()

    def __call__(self, frames=None):  # noqa: ANN001, ANN204 - the engine protocol
        if self.failing.is_set():
            self.calls += 1
            raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB")
        return super().__call__(frames)


def test_an_engine_failing_for_seconds_keeps_the_output_rate(caplog) -> None:  # noqa: ANN001
    engine = FailingStretchEngine()
    sink = ListSink()
    rt = make_runtime(open_source("pattern", fps=60), [sink], engine, fps=60.0)
    rt.start()
    try:
        with caplog.at_level(logging.WARNING, logger="sd-bridge"):
            assert wait_for(lambda: len(sink.frames) >= 10, 20.0)
            normal = _count_in(sink, 1.5)
            engine.failing.set()
            n = len(sink.frames)
            during = _count_in(sink, 1.5)
            failed = sink.frames[n + 2 : n + during]
            engine.failing.clear()
            m = len(sink.frames)
            assert wait_for(lambda: len(sink.frames) > m + 5)
    finally:
        rt.stop()
    assert during >= 0.9 * normal, (normal, during)
    # while failing the input went out (the ramp's black corner), afterwards processed frames again
    assert failed and all(f[-1, 0].mean() < 128 for f in failed)
    assert sink.frames[-1][-1, 0].mean() > 128
    assert rt.stats()["faults"]["engine"] >= during // 2
    lines = [r.getMessage() for r in caplog.records if "engine error" in r.getMessage()]
    assert len(lines) == 1 and "out of memory" in lines[0], lines
    print(f"engine failing for 1.5 s: {normal / 1.5:.1f} fps normally, {during / 1.5:.1f} fps while failing")


def test_a_slow_source_that_works_is_not_padded_with_repeats() -> None:
    sink = ListSink()
    rt = make_runtime(PatternSource(fps=8.0), [sink], fps=60.0)  # a slow camera, a fast runtime
    rt.start()
    try:
        assert wait_for(lambda: rt.stats()["source"]["frames"] >= 16, 20.0)
    finally:
        rt.stop()
    s = rt.stats()["source"]
    # a fixed 0.1 s delay would repeat about every frame (0.125 s apart); a late frame on a busy
    # machine, or the one before the source's rate is known, may still be padded
    assert s["held"] <= s["frames"] // 4, s
    assert s["up"]


def test_named_aux_sources_are_read_on_their_own_and_never_hold_up_the_video() -> None:
    """An aux source (the mask source; a ControlNet's control image) has its own capture room:
    its newest frame, fitted to the engine's size, is there for the engine loop to take."""

    class DeadSource(PatternSource):
        name = "dead"

        def open(self, width: int, height: int) -> None:
            time.sleep(0.5)  # a slow search, as NDI's
            raise ConnectionError("not there")

    sink = ListSink()
    rt = make_runtime(
        open_source("pattern", fps=60),
        [sink],
        aux_sources={"control": PatternSource(fps=20.0), "depth": DeadSource(fps=20.0)},
    )
    rt.start()
    try:
        taken: list[np.ndarray] = []

        def take() -> bool:
            frame = rt.aux_frame("control")
            if frame is not None:
                taken.append(frame)
            return len(taken) >= 2

        assert wait_for(take, 20.0)
        assert rt.aux_frame("control") is None  # taken: nothing new until the next frame
        assert wait_for(lambda: len(sink.frames) >= 60, 20.0)
        s = rt.stats()
    finally:
        rt.stop()
    assert all(f.shape == (64, 64, 3) for f in taken)
    assert decode_counter(taken[1]) > decode_counter(taken[0])
    assert rt.aux_frame("nothing-such") is None
    assert s["aux_sources"]["depth"]["up"] is False and s["aux_sources"]["control"]["up"] is True
    assert not s["source_down"] and s["faults"]["source"] >= 1  # the dead aux counted, video fine


def test_the_engine_loop_puts_each_batch_straight_into_every_sinks_slot() -> None:
    """No thread between the engine and the sinks (issue 16: each hop cost the engine ~0.4 ms on a
    2-core machine): `deliver` numbers the batch and it is in every sink's slot when it returns."""
    a, b = ListSink("a"), ListSink("b")
    rt = make_runtime(open_source("pattern", fps=60), [a, b])
    frames = [Frame(np.full((64, 64, 3), i, np.uint8), i, time.perf_counter()) for i in range(3)]
    rt.output.deliver(frames[:2])
    rt.output.deliver(frames[2:])
    for w in rt.output.workers:
        assert w.slot.get(0.0) == [(2, frames[2])]
        assert w.slot.dropped == 1  # the first batch was replaced before the sink took it
    assert rt.output.dropped == 1 and rt.stats()["dropped_by_stage"]["output"] == 1
    assert rt.frames_out == 0  # nothing counts as out before a sink wrote it

    alone = make_runtime(open_source("pattern", fps=60), [])
    alone.output.deliver(frames)
    assert alone.frames_out == 3  # with no sink, frames are out as soon as they are here


class StuckSink(ListSink):
    """A sink whose second write blocks until released (a receiver that stopped reading)."""

    def __init__(self) -> None:
        super().__init__("stuck")
        self.release = threading.Event()

    def write(self, image: np.ndarray, status: str = "") -> None:
        if self.writes >= 1:
            self.release.wait(30.0)
        super().write(image, status)


def test_frames_n_waits_for_every_sink_but_not_for_a_stuck_one(monkeypatch) -> None:  # noqa: ANN001
    slow, fast = SlowSink(0.02), ListSink("fast")
    rt = make_runtime(open_source("pattern", fps=120), [slow, fast], max_frames=20)
    rt.start()
    try:
        assert rt.wait(20.0), "the runtime did not stop after --frames"
    finally:
        rt.stop()
    assert len(slow.frames) == 20 and len(fast.frames) == 20  # the slow one was waited for

    monkeypatch.setattr(output, "DRAIN_S", 0.5)
    stuck, fast = StuckSink(), ListSink("fast")
    rt = make_runtime(open_source("pattern", fps=120), [stuck, fast], max_frames=10)
    rt.start()
    try:
        assert rt.wait(10.0), "a stuck sink held --frames up past the drain time"
    finally:
        stuck.release.set()
        rt.stop()
    assert len(fast.frames) == 10 and len(stuck.frames) <= 2


def test_the_status_line_prints_what_stats_reports() -> None:
    sink = ListSink()
    rt = make_runtime(open_source("pattern", fps=60), [sink])
    rt.start()
    try:
        assert wait_for(lambda: len(sink.frames) >= 30, 20.0)
    finally:
        rt.stop()
    s, line = rt.stats(), rt.status_line()
    assert f"out {s['frames_out']} " in line and f"dropped {s['dropped']} " in line
    assert f"e2e p50 {s['latency_p50_ms']:.0f} ms p95 {s['latency_p95_ms']:.0f} ms" in line
    assert f"| {s['engine']} {s['width']}x{s['height']}" in line and "[" not in line
