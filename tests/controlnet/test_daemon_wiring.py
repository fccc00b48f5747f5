"""ControlNet in the running daemon: OSC to the next frame's scales, a control source over real NDI
(held when it stops), presets adding a net by a background rebuild, bad nets that leave it serving."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import cn_helpers  # noqa: F401  (puts the bridge suite's daemon_helpers on the path)
import cv2
import numpy as np
from daemon_helpers import ListSink, wait_for
from pythonosc.udp_client import SimpleUDPClient

from bridge.control.controlnet_params import CONTROL_SOURCE
from bridge.control.osc import OscServer
from bridge.control.store import ParamStore
from bridge.runtime import Runtime, RuntimeOptions, build_engine
from bridge.runtime.engines import factory_for
from bridge.sources import open_source
from engine import EngineConfig
from engine.controlnet import ControlNetSpec

CN = ControlNetSpec(model="random:controlnet", preprocessor="passthrough")
CONFIG = EngineConfig(model="random:tiny", width=64, height=64, t_index_list=[30], cfg_type="none")


def _still(tmp_path: Path) -> str:
    """A still input image (so the output changes only with the control image)."""
    img = np.zeros((64, 64, 3), np.uint8)
    img[16:48, 16:48] = (200, 120, 40)
    path = tmp_path / "still.png"
    cv2.imwrite(str(path), img)
    return f"image:{path}"


def _runtime(engine, config, tmp_path, store=None, control_source=None, factory=None):
    sink = ListSink()
    rt = Runtime(
        open_source(_still(tmp_path), fps=30),
        [sink],
        engine,
        config,
        store=store or ParamStore(),
        factory=factory,
        options=RuntimeOptions(fps=30, presets_folder=tmp_path),
        engine_name="stream",
        aux_sources={CONTROL_SOURCE: control_source} if control_source else None,
    )
    return rt, sink


def _calls(rt) -> int:
    return sum(rt.engine.stats().get("controlnet_calls", [0]))


def test_osc_messages_reach_the_next_frames_scales(tmp_path):
    config = CONFIG.with_changes(controlnets=[CN, CN])
    store = ParamStore()
    rt, sink = _runtime(build_engine(config), config, tmp_path, store)
    server = OscServer(store, port=0, advertise=False)
    server.start()
    rt.start()
    units = rt.engine.controlnets.units
    try:
        assert wait_for(lambda: len(sink.frames) >= 2, 30)
        client = SimpleUDPClient(*server.address)
        client.send_message("/sd/controlnet/0/scale", 0.25)
        client.send_message("/sd/controlnet/1/scale/norm", 0.75)  # 0..1 onto 0..2
        client.send_message("/sd/controlnet/1/preprocessor", "softedge")
        assert wait_for(lambda: units[0].live["scale"] == 0.25 and units[1].live["scale"] == 1.5, 30)
        assert wait_for(lambda: units[1].live["preprocessor"] == "softedge", 30)
        client.send_message("/sd/controlnet/0/enabled", 0)
        client.send_message("/sd/controlnet/1/scale", 0.0)
        assert wait_for(lambda: not rt.engine.controlnets.active, 30)
        calls = _calls(rt)
        n = len(sink.frames)
        assert wait_for(lambda: len(sink.frames) > n + 3, 30)
        assert _calls(rt) == calls  # silent nets are not called
        assert rt.engine.controlnets.units is units and rt.rebuilds == 0  # live: no rebuild
        client.send_message("/sd/controlnet/1/preprocessor", "pose")  # refused with one line
        client.send_message("/sd/controlnet/1/scale", 0.5)
        assert wait_for(lambda: units[1].live["scale"] == 0.5, 30)
        assert units[1].live["preprocessor"] == "softedge" and rt.stats()["faults"]["engine"] == 0
    finally:
        rt.stop()
        server.stop()


def test_a_control_image_over_real_ndi_changes_the_frames_and_is_held_when_it_stops(ndi_sender, tmp_path):
    uid = f"c{os.getpid()}"
    config = CONFIG.with_changes(controlnets=[CN])
    rt, sink = _runtime(build_engine(config), config, tmp_path, control_source=open_source(f"ndi:ctl-{uid}"))
    rt.start()
    try:
        assert wait_for(lambda: len(sink.frames) >= 3, 30)
        before = sink.frames[-1]  # the input frame is its own control image (no control frame yet)
        assert not rt.engine.controlnets.has_external_image
        sender = ndi_sender(f"sdbt-ctl-{uid}", 64, 64, 60.0)
        assert wait_for(lambda: rt.engine.controlnets.has_external_image, 40)
        n = len(sink.frames)
        assert wait_for(lambda: len(sink.frames) > n + 3, 30)
        assert not np.array_equal(sink.frames[-1], before)  # the control image steers the next frames
        sender.terminate()
        sender.wait(10)
        time.sleep(1.0)  # let the last control frames through
        n = len(sink.frames)
        assert wait_for(lambda: len(sink.frames) > n + 5, 30)
        held = sink.frames[-5:]
        assert all(np.array_equal(f, held[0]) for f in held)  # the last image is held: a still output
        assert not np.array_equal(held[0], before)  # ... and it is still the control source's image
        assert rt.stats()["faults"]["engine"] == 0
    finally:
        rt.stop()


def test_a_preset_adds_a_depth_net_by_a_background_rebuild(tmp_path):
    (tmp_path / "depth.toml").write_text(
        'model = "random:tiny"\n[[controlnets]]\npreprocessor = "depth"\nscale = 0.7\n', encoding="utf-8"
    )
    store = ParamStore()
    rt, sink = _runtime(build_engine(CONFIG), CONFIG, tmp_path, store, factory=factory_for("stream"))
    rt.start()
    try:
        assert wait_for(lambda: len(sink.frames) >= 2, 30)
        store.set("preset", "depth")
        assert wait_for(lambda: rt.rebuilds == 1, 60)
        unit = rt.engine.controlnets.units[0]
        assert unit.live["preprocessor"] == "depth" and unit.live["scale"] == 0.7
        assert wait_for(lambda: store.get("controlnet.0.scale") == 0.7, 30)
        assert wait_for(lambda: _calls(rt) > 2, 30)
        # the same nets with another scale: applied live, no second rebuild
        (tmp_path / "depth-soft.toml").write_text(
            'model = "random:tiny"\n[[controlnets]]\npreprocessor = "depth"\nscale = 0.3\n', encoding="utf-8"
        )
        store.set("preset", "depth-soft")
        assert wait_for(lambda: rt.engine.controlnets.units[0].live["scale"] == 0.3, 30)
        assert rt.rebuilds == 1 and rt.stats()["faults"]["engine"] == 0
    finally:
        rt.stop()


def test_a_net_for_another_base_model_leaves_the_daemon_serving(tmp_path, caplog):
    from diffusers import ControlNetModel

    ControlNetModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        cross_attention_dim=1024,
        attention_head_dim=4,
        norm_num_groups=8,
        conditioning_embedding_out_channels=(8, 8, 16, 16),
    ).save_pretrained(tmp_path / "sd21-net")
    (tmp_path / "wrong.toml").write_text(
        f'model = "random:tiny"\n[[controlnets]]\nmodel = "{tmp_path / "sd21-net"}"\nscale = 0.4\n',
        encoding="utf-8",
    )
    config = CONFIG.with_changes(controlnets=[CN])
    store = ParamStore()
    rt, sink = _runtime(build_engine(config), config, tmp_path, store, factory=factory_for("stream"))
    serving = rt.engine
    rt.start()
    try:
        assert wait_for(lambda: len(sink.frames) >= 2, 30)
        with caplog.at_level(logging.WARNING):
            store.set("preset", "wrong")
            assert wait_for(lambda: rt.faults["rebuild"] == 1, 60)
        n = len(sink.frames)
        assert wait_for(lambda: len(sink.frames) > n + 3, 30)  # still serving, the same engine
        assert rt.engine is serving
        # whole or nothing: the failed preset's slot values never reached the store or the serving net
        assert store.get("controlnet.0.scale") == 1.0 and serving.controlnets.units[0].live["scale"] == 1.0
        failed = [r.getMessage() for r in caplog.records if "rebuild failed" in r.getMessage()]
        assert failed and "cross_attention_dim 1024" in failed[0] and "cross_attention_dim 32" in failed[0]
    finally:
        rt.stop()


def test_a_control_source_of_another_size_steers_without_faults(tmp_path):
    """A 30x20 image: source steers a 64x64 stream (fitted, then checked again by the engine)."""
    small = np.zeros((20, 30, 3), np.uint8)
    small[:, 15:] = 255
    cv2.imwrite(str(tmp_path / "small.png"), small)
    config = CONFIG.with_changes(controlnets=[CN])
    control = open_source(f"image:{tmp_path / 'small.png'}", fps=10)
    rt, sink = _runtime(build_engine(config), config, tmp_path, control_source=control)
    rt.start()
    try:
        assert wait_for(lambda: rt.engine.controlnets.has_external_image, 30)
        n = len(sink.frames)
        assert wait_for(lambda: len(sink.frames) > n + 3, 30)
        assert sink.frames[-1].shape == (64, 64, 3) and _calls(rt) > 0
        control = rt.stats()["aux_sources"][CONTROL_SOURCE]  # its own capture room, in the stats
        assert control["up"] and control["frames"] > 0
        assert rt.stats()["faults"] == {"source": 0, "engine": 0, "sink": 0, "rebuild": 0}
    finally:
        rt.stop()
