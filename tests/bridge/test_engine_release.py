"""A replaced engine is freed (issue 19.2): no reference cycle keeps a StreamEngine alive, and the
runtime releases the old engine right after a model switch, with the memory measured (RSS)."""

from __future__ import annotations

import gc
import logging
import time
import weakref

import pytest
import torch
from daemon_helpers import ListSink, wait_for

from bridge.control.store import ParamStore
from bridge.runtime import Runtime, RuntimeOptions, build_engine
from bridge.runtime.rebuild import rss_bytes
from bridge.sources import open_source
from engine import EngineConfig
from engine.models import Models
from engine.random_models import build_random
from engine.stream import StreamEngine

TINY = EngineConfig(model="random:tiny", width=64, height=64, t_index_list=[35])
MID = "random-mid (test)"
"""A mid-size random model built by the test: random:tiny's text encoder and VAE, a wider UNet."""


def mid_engine(config: EngineConfig) -> StreamEngine:
    from diffusers import UNet2DConditionModel

    parts = build_random("tiny", torch.device("cpu"), torch.float32)
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=1,
        sample_size=8,
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=32,
    ).eval()
    unet.requires_grad_(False)
    models = Models(
        unet=unet,
        vae=parts.vae,
        text_encoder=parts.text_encoder,
        tokenizer=parts.tokenizer,
        scheduler=parts.scheduler,
        device=torch.device("cpu"),
        dtype=torch.float32,
        spec=MID,
        family="tiny",
    )
    return StreamEngine(models, config)


def factory(config: EngineConfig):
    return mid_engine(config) if config.model == MID else build_engine(config)


def _param_bytes(engine: StreamEngine) -> int:
    return sum(p.numel() * p.element_size() for p in engine.unet.parameters())


def test_a_stream_engine_is_freed_by_its_last_reference_alone() -> None:
    """No cycle: with the collector off, dropping the engine frees it (a bound method stored on
    the engine, as `unet_fn = self._torch_unet` was, kept it until a full collection)."""
    engine = build_engine(TINY)
    engine(torch.rand(1, 3, 64, 64))
    engine.update(prompt="a cat", guidance_scale=1.2)
    gc.collect()
    gc.disable()
    try:
        ref = weakref.ref(engine)
        del engine
        assert ref() is None, [type(r).__name__ for r in gc.get_referrers(ref())]
    finally:
        gc.enable()


def test_switching_models_returns_the_old_engines_memory(caplog: pytest.LogCaptureFixture) -> None:
    store = ParamStore()
    sink = ListSink()
    rt = Runtime(
        open_source("pattern", fps=30),
        [sink],
        build_engine(TINY),
        TINY,
        store=store,
        factory=factory,
        options=RuntimeOptions(fps=30.0, retry_s=0.05, allowed_models={MID}),
    )
    rt.start()
    try:
        with caplog.at_level(logging.INFO, logger="sd-bridge"):
            assert wait_for(lambda: len(sink.frames) >= 3, 30.0)
            n0, t0 = len(sink.frames), time.monotonic()
            time.sleep(1.0)
            normal = (len(sink.frames) - n0) / (time.monotonic() - t0)
            rss_start = rss_bytes()
            n0, t0 = len(sink.frames), time.monotonic()
            store.set("model", MID)
            assert wait_for(lambda: rt.rebuilds == 1, 120.0), rt.stats()
            building = (len(sink.frames) - n0) / (time.monotonic() - t0)
            assert rt.rebuild.wait_released(30.0)
            mid = weakref.ref(rt.engine)
            size = _param_bytes(rt.engine)
            n = len(sink.frames)
            assert wait_for(lambda: len(sink.frames) > n + 2, 60.0)  # the mid model serves
            rss_mid = rss_bytes()
            store.set("model", TINY.model)
            assert wait_for(lambda: rt.rebuilds == 2, 60.0), rt.stats()
            assert rt.rebuild.wait_released(30.0)
            rss_back = rss_bytes()
            n = len(sink.frames)
            assert wait_for(lambda: len(sink.frames) > n + 2, 30.0)
    finally:
        rt.stop()
    assert mid() is None, "the replaced engine is still alive"
    freed = rt.stats()["engine_freed"]
    assert freed["collected"] is True
    # the memory comes back: RSS falls by most of the model (half at least: a pytest process that ran
    # the whole suite keeps some heap), to near where it was before the switch
    assert rss_mid - rss_back >= 0.5 * size, (rss_start, rss_mid, rss_back, size)
    assert rss_back - rss_start <= 0.4 * size, (rss_start, rss_mid, rss_back, size)
    assert freed["rss_freed_mib"] >= 0.5 * size / 2**20
    released = [r.getMessage() for r in caplog.records if "released the replaced engine" in r.getMessage()]
    assert len(released) == 2 and "rss" in released[-1], released
    print(
        f"model switch: mid UNet {size / 2**20:.0f} MiB; RSS {rss_start / 2**20:.0f} MiB on random:tiny, "
        f"{rss_mid / 2**20:.0f} MiB serving the mid model, "
        f"{rss_back / 2**20:.0f} MiB after switching back; output {normal:.1f} fps before the switch, "
        f"{building:.1f} fps while the new engine was built"
    )
