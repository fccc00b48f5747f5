from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from bridge.frames import Frame, TensorBridge, fit, from_rgb, to_rgb
from bridge.sources.pattern import PatternSource, decode_counter, encode_counter


def test_fit_modes_keep_aspect() -> None:
    wide = np.zeros((100, 200, 3), np.uint8)
    wide[:, :50] = 255  # white left quarter
    crop = fit(wide, 64, 64, "crop")
    box = fit(wide, 64, 64, "letterbox")
    stretch = fit(wide, 64, 64, "stretch")
    assert crop.shape == box.shape == stretch.shape == (64, 64, 3)
    # crop keeps the middle: the white quarter is cut away entirely
    assert crop.max() == 0
    # letterbox keeps everything: black bars top and bottom, the white quarter visible on the left
    assert box[:10].max() == 0 and box[-10:].max() == 0 and box[32, 2].min() == 255
    # stretch keeps the white quarter as a quarter
    assert stretch[:, :14].min() == 255 and stretch[:, 20:].max() == 0


def test_channel_orders_round_trip() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    for order in ("BGRA", "RGBA", "BGR", "RGB"):
        assert np.array_equal(to_rgb(from_rgb(rgb, order), order), rgb)
    assert np.array_equal(from_rgb(rgb, "BGR")[..., 0], rgb[..., 2])
    with pytest.raises(ValueError, match="channel order"):
        to_rgb(rgb, "YUV")


def test_tensor_bridge_round_trip_is_exact() -> None:
    bridge = TensorBridge("cpu")
    imgs = [np.random.default_rng(i).integers(0, 256, (16, 24, 3), dtype=np.uint8) for i in range(2)]
    t = bridge.to_tensor(imgs)
    assert t.shape == (2, 3, 16, 24) and t.dtype == torch.float32
    assert float(t.min()) >= 0.0 and float(t.max()) <= 1.0
    back = bridge.to_uint8(t)
    assert all(np.array_equal(a, b) for a, b in zip(imgs, back, strict=True))


def test_pattern_moves_and_carries_its_counter() -> None:
    src = PatternSource()
    src.open(96, 64)
    a, b = src.read(), src.read()
    assert a.shape == (64, 96, 3) and a.dtype == np.uint8
    assert not np.array_equal(a, b)
    assert decode_counter(a) == 0 and decode_counter(b) == 1
    img = np.zeros((8, 80, 3), np.uint8)
    encode_counter(img, 40321)
    assert decode_counter(img) == 40321
    narrow = np.full((4, 22, 3), 9, np.uint8)  # room for 5 whole cells and half a sixth
    encode_counter(narrow, 0b101101)
    want = np.repeat(np.array([255, 0, 255, 255, 0, 255], np.uint8), 4)[:22]
    assert (narrow == want[None, :, None]).all()


def test_the_cards_circle_and_counter_are_drawn_as_cv2_and_encode_counter_draw_them() -> None:
    """The card is drawn with numpy from shapes made at open(); outside the frame-number box it is
    the card cv2 draws (the circle) with the counter cells, at every orbit position tried."""
    import math

    import cv2

    from bridge.sources.pattern import _card

    for w, h in ((64, 64), (96, 64), (512, 288)):
        src = PatternSource(fps=30.0)
        src.open(w, h)
        label_top = h - 2 - src._digits.height
        for k in range(0, 400, 13):
            src._count = k
            img = src.read()
            ref = _card(w, h)
            t, r = k / 30.0, min(w, h) / 3
            centre = (int(w / 2 + r * math.cos(t)), int(h / 2 + r * math.sin(t)))
            cv2.circle(ref, centre, max(2, min(w, h) // 10), (255, 255, 255), -1)
            encode_counter(ref, k)
            assert np.array_equal(img[:label_top], ref[:label_top]), (w, h, k)
            box = img[label_top + 1 : h - 1, 2:20]
            assert box.max() > 200 and (box.max(axis=2) < 30).mean() > 0.5  # white digits on black


def test_download_waits_in_the_reader_and_matches_to_uint8() -> None:
    """`download` returns at once; the pixels are converted by `images()` (a sink's thread)."""
    bridge = TensorBridge("cpu")
    t = torch.rand(2, 3, 16, 24, generator=torch.Generator().manual_seed(0))
    pending = bridge.download(t)
    assert pending.count == 2 and pending.shape == (16, 24, 3) and pending.ready()
    got: list[list[np.ndarray]] = []
    reader = threading.Thread(target=lambda: got.append(pending.images()))
    reader.start()
    reader.join(10)
    expected = np.clip(t.permute(0, 2, 3, 1).numpy() * 255.0, 0, 255) + 0.5
    assert all(np.array_equal(a, b) for a, b in zip(got[0], expected.astype(np.uint8), strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(got[0], bridge.to_uint8(t), strict=True))


def test_non_finite_output_raises_from_images_and_lazy_frames_fall_back_once() -> None:
    bridge = TensorBridge("cpu")
    bad = torch.rand(2, 3, 8, 8)
    bad[1, 0, 3, 3] = float("nan")
    with pytest.raises(FloatingPointError, match="NaN or inf"):
        bridge.download(bad).images()
    with pytest.raises(FloatingPointError):
        bridge.to_uint8(torch.full((1, 3, 8, 8), float("inf")))
    inputs = [np.full((8, 8, 3), 7 + i, np.uint8) for i in range(2)]
    errors: list[BaseException] = []
    lazy = bridge.download(bad).lazy(inputs, errors.append)
    assert lazy[0].shape == (8, 8, 3) and lazy[0].ndim == 3  # known before the pixels arrive
    frames = [Frame(img, i, 0.0) for i, img in enumerate(lazy)]
    assert frames[0].pending and frames[1].pending
    assert np.array_equal(frames[1].image, inputs[1]) and np.array_equal(frames[0].image, inputs[0])
    assert not frames[0].pending and len(errors) == 1  # one report per bad batch


def test_frame_image_resolves_its_pending_pixels_on_first_read() -> None:
    bridge = TensorBridge("cpu")
    t = torch.rand(1, 3, 8, 8)
    frame = Frame(bridge.download(t).lazy([np.zeros((8, 8, 3), np.uint8)], print)[0], 3, 1.5, {"a": 1.0})
    assert frame.pending and frame.index == 3 and frame.times == {"a": 1.0}
    assert np.array_equal(frame.image, bridge.to_uint8(t)[0]) and not frame.pending
    frame.image = np.ones((2, 2, 3), np.uint8)
    assert frame.image.shape == (2, 2, 3) and Frame(frame.image, 0, 0.0).times == {}


class _CountingEngine:
    """The real engine, plus a host-read counter pushed on the engine thread from its third call
    on (it then stays pushed, so it sees the whole loop: conversions, hand-off, control, capture)."""

    def __init__(self, engine, reads) -> None:
        self._engine, self._reads, self._calls = engine, reads, 0

    def __getattr__(self, name: str):
        return getattr(self._engine, name)

    def __call__(self, frames):
        self._calls += 1
        if self._calls == 3:
            self._reads.thread = threading.get_ident()
            self._reads.__enter__()
        return self._engine(frames)


class _StillSource(PatternSource):
    """The pattern's first frame, over and over (so the similarity filter skips)."""

    def read(self) -> np.ndarray:
        if not hasattr(self, "_still"):
            self._still = super().read()
        return self._still.copy()


@pytest.fixture(scope="module")
def tiny_models():
    from engine import EngineConfig
    from engine.models import load_models

    return load_models(EngineConfig(model="random:tiny", width=64, height=64))


@pytest.mark.parametrize("similarity_filter", [False, True], ids=["filter-off", "filter-on"])
@pytest.mark.parametrize("cfg_type", ["none", "full", "self", "initialize"])
def test_the_runtimes_engine_thread_never_reads_the_device(tiny_models, cfg_type, similarity_filter):
    """Issue 16: N frames through the real runtime (source, StreamEngine, TensorBridge, sinks):
    the engine thread makes no scalar read, no download, no `.numpy()`; a sink thread takes
    the pixels, and they reach the sink."""
    from daemon_helpers import ListSink, wait_for

    from bridge.runtime import Runtime, RuntimeOptions
    from engine import EngineConfig
    from engine.stream import StreamEngine
    from tests.engine.host_reads import HostReads

    config = EngineConfig(
        model="random:tiny",
        width=64,
        height=64,
        t_index_list=[20, 35],
        cfg_type=cfg_type,
        guidance_scale=1.5,
        similarity_filter=similarity_filter,
        similarity_threshold=0.5,
        max_skip_frame=4,
    )
    engine = StreamEngine(tiny_models, config)
    reads = HostReads()
    sink = ListSink()
    source = _StillSource(fps=120.0) if similarity_filter else PatternSource(fps=120.0)
    rt = Runtime(source, [sink], _CountingEngine(engine, reads), config, options=RuntimeOptions(fps=120.0))
    with reads.python_escapes():
        rt.start()
        try:
            assert wait_for(lambda: engine.stats()["frames"] >= 14 and len(sink.frames) >= 10, 60)
        finally:
            rt.stop()
    assert reads.reads() == {"scalar_reads": 0, "to_host": 0, "host_calls": 0}
    assert rt.faults["engine"] == 0 and sink.frames[-1].shape == (64, 64, 3)
    assert (engine.stats()["skipped"] > 0) == similarity_filter


def test_a_new_prompt_is_encoded_off_the_engine_thread(tiny_models):
    """Issue 16.6: the runtime's engines encode prompts on their own worker thread, so a prompt sent
    over OSC never runs the text encoder on the engine loop (a lost frame per prompt on a GPU)."""
    from daemon_helpers import ListSink, wait_for

    from bridge.control.store import ParamStore
    from bridge.runtime import Runtime, RuntimeOptions
    from engine import EngineConfig
    from engine.stream import StreamEngine

    config = EngineConfig(model="random:tiny", width=64, height=64, prompt="a red fox")
    engine = StreamEngine(tiny_models, config)
    threads: list[str] = []
    hook = engine.text_encoder.register_forward_hook(
        lambda *_: threads.append(threading.current_thread().name)
    )
    store, sink = ParamStore(), ListSink()
    rt = Runtime(
        PatternSource(fps=60.0), [sink], engine, config, store=store, options=RuntimeOptions(fps=60.0)
    )
    rt.start()
    try:
        assert wait_for(lambda: len(sink.frames) >= 3, 60)
        before = engine.stats()["prompt_encodes"]
        store.set("prompt", "a blue whale in the snow")
        assert wait_for(
            lambda: engine.stats()["prompt_encodes"] > before and engine.prompt != "a red fox", 60
        )
    finally:
        rt.stop()
        hook.remove()
    assert engine.encode_in_background
    assert threads and not [t for t in threads if t == "sd-bridge-engine"], threads
