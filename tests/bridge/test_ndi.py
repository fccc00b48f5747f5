"""NDI round trip on loopback: test sender -> ndi: source -> engine -> ndi: sink -> test receiver."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from daemon_helpers import wait_for

from bridge.runtime import ModelUnavailable, PassthroughEngine, Runtime, RuntimeOptions, build_engine
from bridge.sinks import make_sink
from bridge.sources import ndi_keep, open_source
from bridge.sources.ndi import NdiSource, match_source
from bridge.sources.pattern import decode_counter
from engine import EngineConfig

W, H = 128, 96
KEPT: list[object] = []
"""The plain receivers `receive` made: destroying one holds the GIL for ~0.5 s (see
bridge/sources/ndi_keep.py), which would stop a later test's threads at a random moment."""


def receive(name_part: str, count: int, timeout: float = 30.0) -> list[np.ndarray]:
    """A plain cyndilib receiver (FrameSync, as in RECIPES.md): `count` distinct frames."""
    from cyndilib.finder import Finder
    from cyndilib.receiver import Receiver
    from cyndilib.video_frame import VideoFrameSync
    from cyndilib.wrapper.ndi_recv import RecvBandwidth, RecvColorFormat

    end = time.monotonic() + timeout
    frames: list[np.ndarray] = []
    with Finder() as finder:
        name = None
        while name is None and time.monotonic() < end:
            finder.wait_for_sources(0.5)
            name = next((n for n in finder.get_source_names() if name_part in n), None)
        assert name, f"{name_part} never appeared on the network"
        receiver = Receiver(color_format=RecvColorFormat.RGBX_RGBA, bandwidth=RecvBandwidth.highest)
        vfs = VideoFrameSync()
        receiver.frame_sync.set_video_frame(vfs)
        receiver.set_source(finder.get_source(name))
        last_ts = None
        while len(frames) < count and time.monotonic() < end:
            receiver.frame_sync.capture_video()
            ts = vfs.get_timestamp_posix()
            if vfs.xres > 0 and ts != last_ts:
                last_ts = ts
                frames.append(np.asarray(vfs).reshape(vfs.yres, vfs.xres, 4)[..., :3].copy())
            time.sleep(0.01)
        KEPT.append(receiver)
    return frames


def test_partial_names_match() -> None:
    names = ["HOST (TouchDesigner)", "HOST (sd-bridge)", "OTHER (Resolume Arena)"]
    assert match_source(names, "touchdesigner") == "HOST (TouchDesigner)"
    assert match_source(names, "sd-bridge") == "HOST (sd-bridge)"
    assert match_source(names, "Arena") == "OTHER (Resolume Arena)"
    assert match_source(names, "OBS") is None


def _round_trip(ndi_sender, engine, tag: str, count: int = 12) -> tuple[list[np.ndarray], Runtime]:
    uid = f"{tag}{os.getpid()}"
    w, h = engine.width, engine.height
    ndi_sender(f"sdbt-in-{uid}", w, h, 60.0)
    config = EngineConfig(model="random:tiny", width=w, height=h, t_index_list=[35])
    rt = Runtime(
        open_source(f"ndi:in-{uid}"),  # a partial name
        [make_sink(f"ndi:sdbt-out-{uid}")],
        engine,
        config,
        options=RuntimeOptions(fps=30.0, retry_s=0.2),
    )
    rt.start()
    try:
        assert wait_for(lambda: rt.frames_out > 0, 30.0), f"no frame went through: {rt.stats()}"
        frames = receive(f"sdbt-out-{uid}", count)
    finally:
        rt.stop()
    return frames, rt


def test_ndi_round_trip_passthrough(ndi_sender) -> None:
    frames, rt = _round_trip(ndi_sender, PassthroughEngine(W, H), "p")
    assert len(frames) >= 12
    assert all(f.shape == (H, W, 3) for f in frames)
    counters = [decode_counter(f) for f in frames]
    assert counters == sorted(counters) and counters[-1] > counters[0], counters
    body = frames[-1][H // 2, W // 2].astype(int)
    assert np.all(np.abs(body - [200, 120, 40]) <= 8), body  # red stays red, blue stays blue
    assert rt.stats()["faults"]["engine"] == 0


def test_ndi_round_trip_random_tiny(ndi_sender) -> None:
    try:
        engine = build_engine(EngineConfig(model="random:tiny", width=64, height=64, t_index_list=[35]))
    except ModelUnavailable as exc:  # a build without the engine package
        print(f"SKIP: random:tiny engine not available: {exc}")
        pytest.skip(f"random:tiny engine not available: {exc}")
    frames, rt = _round_trip(ndi_sender, engine, "t", count=5)
    assert len(frames) >= 5 and all(f.shape == (64, 64, 3) for f in frames)
    assert rt.stats()["faults"]["engine"] == 0


def test_ndi_source_reconnects_when_the_sender_comes_back(ndi_sender) -> None:
    from daemon_helpers import ListSink

    uid = f"r{os.getpid()}"
    first = ndi_sender(f"sdbt-back-{uid}", 64, 48, 3.0)
    sink = ListSink()
    src = NdiSource(f"back-{uid}", discover_s=1.0, stale_s=1.0)
    rt = Runtime(
        src,
        [sink],
        PassthroughEngine(64, 48),
        EngineConfig(width=64, height=48),
        options=RuntimeOptions(fps=30.0, retry_s=0.2),
    )
    rt.start()
    try:
        assert wait_for(lambda: rt.frames_in > 5, 30.0)
        first.wait(10)
        assert wait_for(lambda: rt.stats()["faults"]["source"] > 0, 10.0)  # noticed it went away
        before = len(sink.frames)
        assert sink.frames, "frames were flowing"
        ndi_sender(f"sdbt-back-{uid}", 64, 48, 30.0, first=10000)
        # frames from the new sender (its counter starts at 10000) come through
        assert wait_for(lambda: any(decode_counter(f) >= 10000 for f in sink.frames[before:]), 30.0)
        assert rt.running
    finally:
        rt.stop()


def _read_frames(src, count: int = 3, timeout: float = 30.0) -> list[np.ndarray]:
    """`count` frames read in a row, each kept while the next arrives (as the runtime keeps them)."""
    src.open(64, 48)
    frames: list[np.ndarray] = []
    try:
        end = time.monotonic() + timeout
        while len(frames) < count and time.monotonic() < end:
            frame = src.read()
            if frame is not None:
                frames.append(frame)
        assert len(frames) == count, f"{src.name}: {len(frames)} frames in {timeout:g} s"
        return frames
    finally:
        src.close()


def test_a_reopened_ndi_source_takes_its_kept_receiver_and_not_the_frame_it_last_showed(
    ndi_sender,
) -> None:
    """A source that searches again (its sender left and came back) gets back the receiver it
    had, still connected: destroying or reconnecting one holds the GIL for ~0.5 s (ndi_keep).
    That receiver still shows the last frame of the sender that left, which is not a new frame."""
    uid = f"o{os.getpid()}"
    first = ndi_sender(f"sdbt-keep-{uid}", 64, 48, 30.0)
    src = NdiSource(f"keep-{uid}")
    old = [decode_counter(f) for f in _read_frames(src)]  # opens, reads and closes (parks)
    made = ndi_keep.made
    first.kill()
    first.wait()
    ndi_sender(f"sdbt-keep-{uid}", 64, 48, 30.0, first=10000)
    new = [decode_counter(f) for f in _read_frames(src)]
    assert ndi_keep.made == made, "the reopened source made a new receiver"
    assert min(new) >= 10000, f"a frame of the sender that left came back as new: {old} then {new}"


def test_an_ndi_mask_source_keeps_the_senders_alpha(ndi_sender) -> None:
    from bridge.masks import mask_from_frame

    uid = f"a{os.getpid()}"
    ndi_sender(f"sdbt-mask-{uid}", 64, 48, 30.0, split_alpha=True)
    rgbas = _read_frames(open_source(f"ndi:mask-{uid}", keep_alpha=True))  # as `run --mask-source` does
    rgbs = _read_frames(open_source(f"ndi:mask-{uid}"))  # a video source: RGB
    assert all(f.shape == (48, 64, 3) for f in rgbs) and all(f.shape == (48, 64, 4) for f in rgbas)
    for rgba in rgbas:
        mask = mask_from_frame(rgba, "alpha")
        assert mask[:, :32].min() == 1.0 and mask[:, 32:].max() == 0.0
    assert len({decode_counter(f[..., :3]) for f in rgbas}) == 3  # three distinct frames


def test_ndi_source_loss_never_stalls_the_output(ndi_sender) -> None:
    """Issue 19.1: the sender is killed for 6 s; the sink keeps >= 90% of its normal rate from the
    last good frame while the source searches, and stats and the status line say it is down."""
    from daemon_helpers import ListSink

    uid = f"k{os.getpid()}"
    sender = ndi_sender(f"sdbt-loss-{uid}", 64, 48, 120.0)
    sink = ListSink()
    rt = Runtime(
        open_source(f"ndi:loss-{uid}"),  # default discovery (5 s) and staleness (3 s): the real thing
        [sink],
        PassthroughEngine(64, 48),
        EngineConfig(width=64, height=48),
        options=RuntimeOptions(fps=30.0, retry_s=0.2),
    )
    rt.start()
    try:
        assert wait_for(lambda: len(sink.frames) > 30, 30.0), rt.stats()
        n0, t0, made = len(sink.frames), time.monotonic(), ndi_keep.made
        time.sleep(3.0)
        normal = (len(sink.frames) - n0) / (time.monotonic() - t0)
        sender.kill()
        n1, t1 = len(sink.frames), time.monotonic()
        assert wait_for(lambda: rt.stats()["source_down"], 5.0)
        time.sleep(max(0.0, 6.0 - (time.monotonic() - t1)))
        gap = (len(sink.frames) - n1) / (time.monotonic() - t1)
        down, status = rt.stats(), rt.status_line()
        ndi_sender(f"sdbt-loss-{uid}", 64, 48, 60.0, first=10000)
        before, t_back = len(sink.frames), time.monotonic()
        assert wait_for(lambda: any(decode_counter(f) >= 10000 for f in sink.frames[before:]), 30.0)
        back_s = time.monotonic() - t_back
        assert wait_for(lambda: not rt.stats()["source_down"], 5.0)
        assert ndi_keep.made == made, "a re-search made a new receiver"  # see ndi_keep
    finally:
        rt.stop()
    pauses = sink.gaps(t1, 3.0 / 30.0)
    why = f"pauses (s after the kill, s): {pauses}, hold after {rt.capture.hold_after_s:.2f} s"
    assert gap >= 0.9 * normal, f"{gap:.1f} fps during the loss against {normal:.1f} normally; {why}"
    assert down["source"]["down_s"] > 0 and down["source"]["held"] > 0 and down["faults"]["source"] >= 1
    assert "[source down" in status
    print(
        f"NDI source loss: {normal:.1f} fps normally, {gap:.1f} fps during a 6 s loss; "
        f"the returning sender's frames out {back_s:.1f} s after it started"
    )


def test_searching_for_an_absent_ndi_source_lets_other_threads_run(ndi_sender) -> None:
    """While `ndi:X` (the video, a --mask-source or a --control-source) searches for a sender that is
    not there yet (TouchDesigner not started), the daemon's other threads must keep running.
    cyndilib's Finder.wait_for_sources holds the GIL while it waits: the daemon put out no frame at
    all. Counted, not timed: a thread that sleeps 1 ms per tick gets hundreds of ticks per second
    when the GIL is free, a handful when it is held. (`ndi_sender` only skips without NDI here.)"""
    import threading

    absent = open_source(f"ndi:absent-{os.getpid()}")
    absent.discover_s = 1.0
    ticks, stop = [0], threading.Event()

    def tick() -> None:
        while not stop.is_set():
            ticks[0] += 1
            time.sleep(0.001)

    ticker = threading.Thread(target=tick)
    ticker.start()
    try:
        with pytest.raises(Exception, match="no NDI source matches"):
            absent.open(64, 64)
    finally:
        stop.set()
        ticker.join()
        absent.close()
    assert ticks[0] > 100, f"only {ticks[0]} ticks of another thread during a 1 s search"
