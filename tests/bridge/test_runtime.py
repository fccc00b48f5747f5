"""The runtime with real threads, real files and small engines: flow, order, faults, live control."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
from daemon_helpers import FlakySource, InvertEngine, ListSink, wait_for

from bridge.control.params import ParamError
from bridge.control.store import Failure, ParamStore
from bridge.runtime import PassthroughEngine, Runtime, RuntimeOptions
from bridge.sinks import make_sink
from bridge.sources import open_source
from bridge.sources.pattern import decode_counter
from engine import EngineConfig

CFG = EngineConfig(model="random:tiny", width=64, height=64, t_index_list=[35])


def make_runtime(source, sinks, engine=None, **kw) -> Runtime:
    opts = RuntimeOptions(fps=kw.pop("fps", 60.0), retry_s=0.05, max_frames=kw.pop("max_frames", None))
    for k in ("allowed_models", "presets_folder"):
        if k in kw:
            setattr(opts, k, kw.pop(k))
    cls = kw.pop("cls", Runtime)
    return cls(source, sinks, engine or PassthroughEngine(64, 64), kw.pop("config", CFG), options=opts, **kw)


def run_until(rt: Runtime, cond, timeout: float = 15.0) -> None:
    rt.start()
    try:
        assert wait_for(cond, timeout), f"condition not met; stats: {rt.stats()}"
    finally:
        rt.stop()


def test_pattern_to_file_has_the_right_frame_count_in_order(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    rt = make_runtime(open_source("pattern", fps=60), [make_sink(f"file:{path}")], max_frames=24)
    rt.start()
    assert rt.wait(20.0), "the runtime did not stop after --frames"
    rt.stop()
    cap = cv2.VideoCapture(str(path))
    counters = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        assert img.shape == (64, 64, 3)
        counters.append(decode_counter(cv2.cvtColor(img, cv2.COLOR_BGR2RGB)))
    assert len(counters) == 24
    assert counters == sorted(counters) and len(set(counters)) == 24
    s = rt.stats()
    assert s["frames_out"] == 24
    assert s["latency_ms"]["e2e"]["p50"] > 0 and s["latency_ms"]["engine"]["p99"] >= 0
    assert set(s) >= {"fps", "dropped", "dropped_by_stage", "skip_rate", "latency_p95_ms", "faults"}
    assert s["latency_p50_ms"] == s["latency_ms"]["e2e"]["p50"]

    from bridge.control import osc_stats  # the OSC status reply reads these same keys

    fps, p50, p95, skip, dropped, source_down = osc_stats.status_args(s)
    assert p50 == s["latency_p50_ms"] and p95 == s["latency_p95_ms"] and dropped == s["dropped"]
    assert source_down == 0  # the pattern never went away


def test_faults_do_not_stop_the_show(caplog: pytest.LogCaptureFixture) -> None:
    """A source that raises, an engine that raises every 10th frame, a sink that fails once."""
    engine = InvertEngine(fail_every=10)
    flaky_sink = ListSink("flaky-sink", fail_on=3)
    good_sink = ListSink("good-sink")
    src = FlakySource(fail_every=7, fail_open=1)
    rt = make_runtime(src, [flaky_sink, good_sink], engine)
    with caplog.at_level(logging.WARNING, logger="sd-bridge"):
        run_until(rt, lambda: len(good_sink.frames) >= 40 and len(flaky_sink.frames) >= 20)
    s = rt.stats()
    assert s["faults"]["source"] >= 3 and s["faults"]["engine"] >= 2 and s["faults"]["sink"] == 1
    assert src.opens >= 3  # reopened after each failure
    assert len(flaky_sink.opens) == 2  # reopened once after its failure
    # processed frames are inverted; the ones where the engine raised went out as the input
    bottom_left = [int(f[-1, 0].mean()) for f in good_sink.frames]  # the ramp starts black
    assert any(v > 128 for v in bottom_left) and any(v < 128 for v in bottom_left)
    # each fault was logged once, not once per frame
    engine_lines = [r for r in caplog.records if "engine error" in r.getMessage()]
    assert len(engine_lines) <= 2, [r.getMessage() for r in engine_lines]


@pytest.mark.parametrize(
    "engine", [InvertEngine(fail_every=1), InvertEngine(nan=True)], ids=["raises", "nan"]
)
def test_engine_errors_output_the_input(engine: InvertEngine) -> None:
    sink = ListSink()
    rt = make_runtime(open_source("pattern", fps=60), [sink], engine)
    run_until(rt, lambda: len(sink.frames) >= 5)
    counters = [decode_counter(f) for f in sink.frames]
    assert counters == sorted(counters) and counters[-1] > 0  # the raw pattern, in order
    assert rt.stats()["faults"]["engine"] >= 5


def test_live_control_maps_onto_the_engine(caplog: pytest.LogCaptureFixture) -> None:
    engine = InvertEngine()
    store = ParamStore()
    sink = ListSink()
    rt = make_runtime(open_source("pattern", fps=60), [sink], engine, store=store)
    rt.start()
    try:
        assert wait_for(lambda: len(sink.frames) >= 2)
        store.set("transition", 1.0)
        store.set("prompts", ["a cat", 1.0, "a dog", 0.5])
        store.set("seeds", [1, 1.0, 7, 2.0])
        store.set("guidance", 3.0)
        store.set("filter.threshold", 0.9)
        assert wait_for(lambda: "seed" in engine.params and "guidance_scale" in engine.params)
        assert engine.params["prompt"] == [("a cat", 1.0), ("a dog", 0.5)]
        assert engine.params["seed"] == [(1, 1.0), (7, 2.0)]
        assert engine.params["similarity_threshold"] == 0.9
        assert engine.params["transition_frames"] >= 1  # 1 s at the measured fps
        # a value the engine refuses: logged once, the loop and the earlier state intact
        with caplog.at_level(logging.WARNING, logger="sd-bridge"):
            store.set("guidance", 15.0)
            store.set("delta", 0.5)
            assert wait_for(lambda: engine.params.get("delta") == 0.5)
            store.set("guidance", 15.0)
            n = len(sink.frames)
            assert wait_for(lambda: len(sink.frames) > n + 3)
        assert engine.params["guidance_scale"] == 3.0
        refused = [r for r in caplog.records if "refused guidance_scale" in r.getMessage()]
        assert len(refused) == 1
        # bypass: frames go out unprocessed (the pattern's counter is readable again)
        store.set("bypass", True)
        assert wait_for(lambda: sink.frames[-1][-1, 0].mean() < 128)  # not inverted any more
        n = decode_counter(sink.frames[-1])
        assert wait_for(lambda: decode_counter(sink.frames[-1]) > n)
        # pause: the last output is held
        store.set("pause", True)
        wait_for(lambda: rt.pause)
        held = len(sink.frames)
        assert wait_for(lambda: len(sink.frames) > held + 3)
        tail = sink.frames[-3:]
        assert all(np.array_equal(tail[0], f) for f in tail)
    finally:
        rt.stop()


def test_resolution_rebuilds_in_the_background() -> None:
    import threading

    gate = threading.Event()
    built = []

    def factory(config: EngineConfig) -> PassthroughEngine:
        gate.wait(10)  # the old engine must keep serving meanwhile
        built.append(config)
        return PassthroughEngine(config.width, config.height)

    store = ParamStore()
    sink = ListSink()
    rt = make_runtime(open_source("pattern", fps=60), [sink], store=store, factory=factory)
    rt.start()
    try:
        assert wait_for(lambda: len(sink.frames) >= 2)
        store.set("resolution", [96, 80])
        assert wait_for(lambda: rt.stats()["rebuilding"])
        n = len(sink.frames)
        assert wait_for(lambda: len(sink.frames) > n + 5)  # still serving at the old size
        assert sink.frames[-1].shape == (64, 64, 3)
        gate.set()
        assert wait_for(lambda: sink.frames[-1].shape == (80, 96, 3))
        assert built[0].width == 96 and rt.stats()["rebuilds"] == 1
        assert sink.opens[-1][:2] == (96, 80)  # the sink was reopened at the new size
    finally:
        gate.set()
        rt.stop()


def test_failed_rebuild_keeps_serving_and_model_allow_list(caplog: pytest.LogCaptureFixture) -> None:
    def factory(config: EngineConfig) -> PassthroughEngine:
        raise OSError(f"cannot load {config.model}")

    store = ParamStore()
    sink = ListSink()
    rt = make_runtime(
        open_source("pattern", fps=60), [sink], store=store, factory=factory, allowed_models={"random:sd15"}
    )
    changes: list[tuple[str, object, object]] = []
    store.subscribe(lambda name, value, origin: changes.append((name, value, origin)))
    rt.start()
    try:
        assert wait_for(lambda: len(sink.frames) >= 2)
        # a model nobody configured is refused by the store itself: nothing changes, no rebuild
        with pytest.raises(ParamError, match="'evil/not-allowed' is not allowed here; allowed: .*sd15"):
            store.set("model", "evil/not-allowed")
        assert store.get("model") == "random:tiny" and changes == []
        with caplog.at_level(logging.INFO, logger="sd-bridge"):
            store.set("model", "random:sd15")
            assert wait_for(lambda: rt.stats()["faults"]["rebuild"] == 1)
            n = len(sink.frames)
            assert wait_for(lambda: len(sink.frames) > n + 3)
        msgs = " ".join(r.getMessage() for r in caplog.records)
        assert "rebuild failed" in msgs
        assert rt.stats()["model"] == "random:tiny"
        # the store (and so /sd/get and every controller's echo) goes back to what is serving
        assert wait_for(lambda: store.get("model") == "random:tiny")
        why = [
            o.message for n, v, o in changes if n == "model" and v == "random:tiny" and isinstance(o, Failure)
        ]
        assert why and why[0].startswith("rebuild failed: cannot load random:sd15")
        serving = store.get("resolution")
        store.set("resolution", [rt.config.width + 64, rt.config.height])  # this rebuild fails as well
        assert wait_for(lambda: rt.stats()["faults"]["rebuild"] == 2)
        assert wait_for(lambda: store.get("resolution") == serving)
        assert rt.stats()["rebuilding"] is False and rt.running
    finally:
        rt.stop()


def test_preset_by_name_live_and_paths_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "calm.toml").write_text('prompt = "a calm lake"\nguidance = 2.5\nseed = 9\n')
    (tmp_path / "broken.toml").write_text("guidance = [unclosed\n")
    engine = InvertEngine()
    store = ParamStore()
    sink = ListSink()
    rt = make_runtime(open_source("pattern", fps=60), [sink], engine, store=store, presets_folder=tmp_path)
    rt.start()
    try:
        assert wait_for(lambda: len(sink.frames) >= 2)
        with caplog.at_level(logging.WARNING, logger="sd-bridge"):
            for bad in ("../calm", "/etc/passwd", "sub/calm", ".."):
                with pytest.raises(ParamError):  # the parameter table refuses paths
                    store.set("preset", bad)
        # a missing or unreadable preset is refused before the store changes (OSC: /sd/error at once)
        with pytest.raises(ParamError, match="preset 'nope' not found .*available: broken, calm"):
            store.set("preset", "nope")
        with pytest.raises(ParamError, match="broken.toml"):
            store.set("preset", "broken")
        assert store.get("preset") == ""
        assert "prompt" not in engine.params
        store.set("preset", "calm")
        assert wait_for(lambda: engine.params.get("prompt") == "a calm lake")
        assert engine.params["guidance_scale"] == 2.5 and engine.params["seed"] == 9
        assert store.get("guidance") == 2.5  # the store (and so OSC status) shows the preset's values
    finally:
        rt.stop()


def test_a_preset_loads_whole_or_not_at_all(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Issue 14.10: a preset whose model cannot load applies none of its values (an /sd/error says
    why); one whose model builds applies its values only once the new engine serves."""
    import threading

    (tmp_path / "broken-model.toml").write_text(
        'model = "nobody/no-such-model"\nprompt = "a half preset"\nguidance = 2.5\n'
        'seed = 9\nfit = "stretch"\n'
    )
    (tmp_path / "other.toml").write_text(
        'model = "other/model"\nprompt = "the other model"\nguidance = 3.5\n'
    )
    gate = threading.Event()

    class FirstCallEngine(InvertEngine):
        """Remembers the live values it had when it made its first frame."""

        first: dict | None = None

        def __call__(self, frames=None):  # noqa: ANN001, ANN204 - the engine protocol
            if self.first is None:
                self.first = dict(self.params)
            return super().__call__(frames)

    def factory(config: EngineConfig) -> InvertEngine:
        if config.model == "nobody/no-such-model":
            raise OSError("nobody/no-such-model is not on the Hub")
        gate.wait(10)
        return FirstCallEngine(config.width, config.height)

    engine = InvertEngine()
    store = ParamStore()
    sink = ListSink()
    rt = make_runtime(
        open_source("pattern", fps=60), [sink], engine, store=store, factory=factory, presets_folder=tmp_path
    )
    changes: list[tuple[str, object, object]] = []
    store.subscribe(lambda name, value, origin: changes.append((name, value, origin)))
    rt.start()
    try:
        assert wait_for(lambda: len(sink.frames) >= 2)
        before = store.snapshot()
        with caplog.at_level(logging.WARNING, logger="sd-bridge"):
            store.set("preset", "broken-model")
            assert wait_for(lambda: rt.stats()["faults"]["rebuild"] == 1)
            assert wait_for(lambda: store.get("preset") == "")
        n = len(sink.frames)
        assert wait_for(lambda: len(sink.frames) > n + 3)  # still serving, nothing of the preset
        assert "prompt" not in engine.params and "guidance_scale" not in engine.params
        after = store.snapshot()
        assert {k: after[k] for k in before if k != "preset"} == {
            k: before[k] for k in before if k != "preset"
        }
        assert rt._fit == "crop" and rt.config.model == "random:tiny"
        errors = [o.message for _, _, o in changes if isinstance(o, Failure)]
        assert errors and "preset broken-model not applied" in errors[0], errors
        assert "cannot load" in errors[0] or "not on the Hub" in errors[0]
        # a preset whose model builds: its values wait for the new engine, then all apply
        store.set("preset", "other")
        assert wait_for(lambda: rt.stats()["rebuilding"])
        n = len(sink.frames)
        assert wait_for(lambda: len(sink.frames) > n + 3)
        assert store.get("guidance") == before["guidance"] and "prompt" not in engine.params
        gate.set()
        assert wait_for(lambda: rt.config.model == "other/model")
        assert wait_for(lambda: rt.engine.params.get("prompt") == "the other model")
        assert rt.engine.params["guidance_scale"] == 3.5 and store.get("guidance") == 3.5
        assert wait_for(lambda: rt.engine.first is not None)  # its very first frame had the preset's values
        assert rt.engine.first.get("prompt") == "the other model" and rt.engine.first["guidance_scale"] == 3.5
        assert store.get("preset") == "other"
    finally:
        gate.set()
        rt.stop()
