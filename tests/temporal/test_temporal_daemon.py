"""All three temporal mechanisms live through the daemon (issue 18): real OSC messages to a real
runtime on random:tiny change the frames that come out next, and switching each one off gives
back the very frames of before.

The source is a still picture the test swaps, so that with the mechanisms off every output
frame of one picture is the same (cfg none, fixed noise): any change is the mechanism's.
"""

from __future__ import annotations

import numpy as np
import pytest
from pythonosc.udp_client import SimpleUDPClient

from bridge.control.osc import OscServer
from bridge.control.store import ParamStore
from bridge.runtime import Runtime, RuntimeOptions, build_engine
from engine import EngineConfig
from tests.bridge.daemon_helpers import ListSink, wait_for

CONFIG = EngineConfig(
    model="random:tiny", width=64, height=64, t_index_list=[49], cfg_type="none", vae="full", accel="torch"
)


class StillSource:
    """Serves whatever picture the test last put in `image`."""

    name = "still"
    fps = 60.0

    def __init__(self, image: np.ndarray) -> None:
        self.image = image

    def open(self, width: int, height: int) -> None:
        pass

    def read(self) -> np.ndarray:
        return self.image.copy()

    def close(self) -> None:
        pass


def _picture(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    return np.kron(small, np.ones((8, 8, 1), dtype=np.uint8))  # 64x64 blocks: a strong latent


@pytest.fixture(scope="module")
def engine():
    return build_engine(CONFIG)


@pytest.fixture
def daemon(engine, tmp_path):
    store = ParamStore()
    source = StillSource(_picture(1))
    sink = ListSink()
    rt = Runtime(
        source,
        [sink],
        engine,
        CONFIG,
        store=store,
        options=RuntimeOptions(fps=60, presets_folder=tmp_path),
        engine_name="stream",
    )
    server = OscServer(store, port=0, advertise=False)
    server.start()
    rt.start()
    try:
        yield rt, source, sink, SimpleUDPClient(*server.address)
    finally:
        rt.stop()
        server.stop()


def _steady(sink: ListSink, count: int = 4, timeout: float = 60) -> np.ndarray:
    """The output once `count` new frames in a row are identical."""
    start = len(sink.frames)

    def settled() -> bool:
        with sink.lock:
            last = sink.frames[start:][-count:]
        return len(last) == count and all(np.array_equal(last[0], f) for f in last[1:])

    assert wait_for(settled, timeout), "the output never settled"
    with sink.lock:
        return sink.frames[-1].copy()


def _changes_from(sink: ListSink, before: np.ndarray, timeout: float = 60) -> bool:
    start = len(sink.frames)

    def changed() -> bool:
        with sink.lock:
            return any(not np.array_equal(f, before) for f in sink.frames[start:])

    return wait_for(changed, timeout)


def test_feedback_over_osc_changes_the_next_frames_and_zero_restores_them(daemon):
    rt, _source, sink, client = daemon
    plain = _steady(sink)
    client.send_message("/sd/feedback/norm", 0.8)
    assert _changes_from(sink, plain)
    assert rt.engine.stats()["feedback"] == pytest.approx(0.8)
    client.send_message("/sd/feedback", 0.0)
    assert wait_for(lambda: rt.engine.stats()["feedback"] == 0.0, 30)
    assert np.array_equal(_steady(sink), plain)
    assert rt.stats()["faults"]["engine"] == 0


def test_cached_attention_over_osc_ties_a_new_picture_to_the_cached_one(daemon):
    rt, source, sink, client = daemon
    source.image = _picture(2)
    plain_b = _steady(sink)
    source.image = _picture(1)
    _steady(sink)
    client.send_message("/sd/cache_frames", 2)
    client.send_message("/sd/cache_interval", 1000)  # the first frame enters, then the cache holds
    client.send_message("/sd/cache_attention", 1)
    assert wait_for(lambda: rt.engine.stats()["cache_entries"] == 1, 30), rt.engine.stats()
    source.image = _picture(2)  # picture 2 now attends to picture 1's keys and values
    cached_b = _steady(sink)
    assert not np.array_equal(cached_b, plain_b)
    client.send_message("/sd/cache_attention", 0)
    assert wait_for(lambda: not rt.engine.stats()["cache_attention"], 30)
    assert np.array_equal(_steady(sink), plain_b)
    assert rt.stats()["faults"]["engine"] == 0


def test_a_regions_feedback_over_osc_changes_the_frames_and_zero_restores_them(daemon):
    rt, _source, sink, client = daemon
    client.send_message("/sd/region/0/prompt", "fire")
    client.send_message("/sd/region/0/rect", [0.0, 0.0, 0.5, 1.0])
    client.send_message("/sd/region/0/blur", 0.0)
    client.send_message("/sd/region/0/enabled", 1)
    assert wait_for(lambda: rt.engine.stats()["unet_batch"] == 2, 30)
    painted = _steady(sink)
    client.send_message("/sd/region/0/feedback", 0.9)
    assert _changes_from(sink, painted)
    client.send_message("/sd/region/0/feedback", 0.0)
    assert wait_for(lambda: rt.engine._temporal.feedback.active is False, 30)
    assert np.array_equal(_steady(sink), painted)
    client.send_message("/sd/region/0/enabled", 0)
    assert wait_for(lambda: rt.engine.stats()["unet_batch"] == 1, 30)


def test_bad_temporal_values_over_osc_leave_the_daemon_running(daemon):
    rt, _source, sink, client = daemon
    client.send_message("/sd/cache_frames", "many")
    client.send_message("/sd/feedback", "lots")
    client.send_message("/sd/cache_attention", 7)
    n = len(sink.frames)
    assert wait_for(lambda: len(sink.frames) > n + 3, 30)
    stats = rt.engine.stats()
    assert stats["feedback"] == 0.0 and not stats["cache_attention"]
    assert rt.stats()["faults"]["engine"] == 0
