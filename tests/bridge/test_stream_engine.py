"""The runtime around the real StreamDiffusion engine (random:tiny weights, CPU)."""

from __future__ import annotations

from daemon_helpers import ListSink, wait_for

from bridge.control.store import ParamStore
from bridge.runtime import Runtime, RuntimeOptions, build_engine, factory_for
from bridge.sources import open_source
from engine import EngineConfig


def test_live_params_and_a_background_resolution_rebuild_on_random_tiny() -> None:
    config = EngineConfig(model="random:tiny", width=64, height=64, t_index_list=[20, 35])
    engine = build_engine(config)
    store = ParamStore()
    sink = ListSink()
    rt = Runtime(
        open_source("pattern", fps=30),
        [sink],
        engine,
        config,
        store=store,
        factory=factory_for("stream"),
        options=RuntimeOptions(fps=30, profile=True),
        engine_name="stream",
    )
    rt.start()
    try:
        assert wait_for(lambda: len(sink.frames) >= 3, 60)
        store.update(
            {"prompt": "a b c", "guidance": 2.0, "seed": 5, "filter.enabled": True, "transition": 0.2}
        )
        store.set("resolution", [80, 64])
        assert wait_for(lambda: sink.frames[-1].shape == (64, 80, 3), 60), rt.stats()
        n = len(sink.frames)
        assert wait_for(lambda: len(sink.frames) > n + 3, 60)
        s = rt.stats()
        assert s["faults"]["engine"] == 0 and s["rebuilds"] == 1 and s["width"] == 80
        assert s["engine_stats"]["frames"] > 0
        assert s["latency_ms"]["engine.unet"]["p50"] > 0  # the engine's own stages, with --profile
    finally:
        rt.stop()
