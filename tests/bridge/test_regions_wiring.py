"""Regions reach the running daemon: over real OSC, from a preset, and from a mask source."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from daemon_helpers import ListSink, wait_for
from pythonosc.udp_client import SimpleUDPClient

from bridge.control.osc import OscServer
from bridge.control.store import ParamStore
from bridge.runtime import Runtime, RuntimeOptions, build_engine
from bridge.sources import open_source
from engine import EngineConfig

CONFIG = EngineConfig(model="random:tiny", width=64, height=64, t_index_list=[30], cfg_type="none")


@pytest.fixture(scope="module")
def tiny_engine():
    return build_engine(CONFIG)


def _unet_rows(rt: Runtime) -> int:
    return int(rt.engine.stats()["unet_batch"])


def _runtime(engine, store: ParamStore, tmp_path: Path, mask_source=None) -> tuple[Runtime, ListSink]:
    engine.update(regions=[])
    sink = ListSink()
    rt = Runtime(
        open_source("pattern", fps=30),
        [sink],
        engine,
        CONFIG,
        store=store,
        options=RuntimeOptions(fps=30, presets_folder=tmp_path),
        engine_name="stream",
        mask_source=mask_source,
    )
    return rt, sink


def test_osc_region_messages_add_a_brush_to_the_unet_batch(tiny_engine, tmp_path):
    store = ParamStore()
    rt, sink = _runtime(tiny_engine, store, tmp_path)
    server = OscServer(store, port=0, advertise=False)
    server.start()
    rt.start()
    try:
        assert wait_for(lambda: len(sink.frames) >= 2, 30)
        plain = _unet_rows(rt)
        client = SimpleUDPClient(*server.address)
        client.send_message("/sd/region/0/prompt", "fire")
        client.send_message("/sd/region/0/rect", [0.0, 0.0, 0.5, 1.0])
        client.send_message("/sd/region/0/enabled", 1)
        assert wait_for(lambda: _unet_rows(rt) == 2 * plain, 30), rt.engine.stats()
        n = len(sink.frames)
        assert wait_for(lambda: len(sink.frames) > n + 2, 30)
        client.send_message("/sd/region/0/enabled", 0)
        assert wait_for(lambda: _unet_rows(rt) == plain, 30)
        assert rt.stats()["faults"]["engine"] == 0
    finally:
        rt.stop()
        server.stop()


def test_a_preset_with_regions_paints_when_loaded_live(tiny_engine, tmp_path):
    (tmp_path / "two-brushes.toml").write_text(
        'prompt = "a city"\n'
        '[[regions]]\nprompt = "fire"\nrect = [0.0, 0.0, 0.5, 1.0]\n'
        '[[regions]]\nprompt = "ice"\nrect = [0.5, 0.0, 0.5, 1.0]\nblur = 2.0\n',
        encoding="utf-8",
    )
    store = ParamStore()
    rt, sink = _runtime(tiny_engine, store, tmp_path)
    rt.start()
    try:
        assert wait_for(lambda: len(sink.frames) >= 2, 30)
        plain = _unet_rows(rt)
        store.set("preset", "two-brushes")
        assert wait_for(lambda: _unet_rows(rt) == 3 * plain, 30), rt.engine.stats()
        assert store.get("region.1.prompt") == "ice"
    finally:
        rt.stop()


def test_a_mask_source_frame_paints_a_brush(tiny_engine, tmp_path):
    mask = np.zeros((64, 64, 3), np.uint8)
    mask[:, :32] = 255  # left half white: the brush paints there
    path = tmp_path / "mask.png"
    cv2.imwrite(str(path), mask)
    store = ParamStore()
    rt, sink = _runtime(tiny_engine, store, tmp_path, mask_source=open_source(f"image:{path}", fps=10))
    rt.start()
    try:
        assert wait_for(lambda: len(sink.frames) >= 2, 30)
        plain = _unet_rows(rt)
        store.update({"region.0.prompt": "fire", "region.0.mask": "source:luma", "region.0.enabled": True})
        assert wait_for(lambda: _unet_rows(rt) == 2 * plain, 30), rt.engine.stats()
        assert rt.stats()["faults"]["source"] == 0
    finally:
        rt.stop()


def test_source_alpha_takes_the_mask_from_the_mask_sources_transparency(tiny_engine, tmp_path):
    rgba = np.full((64, 64, 4), 255, np.uint8)  # all white: its luma would paint everywhere
    rgba[:, 32:, 3] = 0  # transparent right half: the alpha paints only the left
    path = tmp_path / "alpha.png"
    cv2.imwrite(str(path), rgba)
    store = ParamStore()
    source = open_source(f"image:{path}", fps=10, keep_alpha=True)  # as `run --mask-source` opens it
    rt, sink = _runtime(tiny_engine, store, tmp_path, mask_source=source)
    rt.start()
    try:
        assert wait_for(lambda: len(sink.frames) >= 2, 30)
        brush = {"region.0.prompt": "fire", "region.0.mask": "source:alpha", "region.0.blur": 0.0}
        store.update({**brush, "region.0.enabled": True})
        assert wait_for(lambda: hasattr(rt.engine.conditioning, "masks"), 30), rt.engine.stats()
        mask = rt.engine.conditioning.masks[0].float().squeeze()
        half = mask.shape[-1] // 2
        assert mask[..., :half].min() > 0.99 and mask[..., half:].max() < 0.01, mask
        assert rt.stats()["faults"]["source"] == 0
    finally:
        rt.stop()
