"""Live ControlNet values (no rebuild), external control images, and bad inputs that change nothing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cn_helpers import canny_spec, recording

from engine import EngineConfig, EngineError, load_engine
from engine.controlnet import ControlNetSpec


def test_scale_and_preprocessor_change_live_without_rebuilding(make_engine, frames):
    eng = make_engine([canny_spec()], cfg_type="none", t_index_list=[30])
    stack, net = eng.controlnets, eng.controlnets.units[0].net
    a = eng(frames[0])
    eng.update(controlnets=[{"scale": 0.3}])
    b = eng(frames[0])
    eng.update(controlnets=[{"preprocessor": "softedge"}])
    c = eng(frames[0])
    assert eng.controlnets is stack and stack.units[0].net is net  # same nets, same buffers
    assert not torch.equal(a, b) and not torch.equal(b, c)
    eng.update(controlnets=[{"enabled": False}])
    plain = make_engine(cfg_type="none", t_index_list=[30])
    assert torch.equal(eng(frames[0]), plain(frames[0]))
    eng.update(controlnets=[{"enabled": True, "scale": 0.3, "preprocessor": "canny"}])
    assert torch.equal(eng(frames[0]), b)  # back to the same values: the same image


def test_switching_to_depth_live_loads_the_depth_model_once(make_engine, frames):
    eng = make_engine([canny_spec()], cfg_type="none", t_index_list=[30])
    assert eng.controlnets.depth is None  # not loaded until a slot needs it
    eng.update(controlnets=[{"preprocessor": "depth"}])
    depth = eng.controlnets.depth
    assert depth is not None
    out = eng(frames[0])
    eng.update(controlnets=[{"preprocessor": "canny"}])
    eng.update(controlnets=[{"preprocessor": "depth"}])
    assert eng.controlnets.depth is depth and torch.isfinite(out).all()


def test_an_external_control_image_is_used_and_held(make_engine, frames):
    eng = make_engine([canny_spec(preprocessor="passthrough")], cfg_type="none", t_index_list=[30])
    (net,) = [u.net for u in eng.controlnets.units]
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    image[:, 32:] = 255
    eng.update(control_image=image)
    with recording(net) as (calls,):
        first = eng(frames[0])
        second = eng(frames[0])
    cond = calls.kwargs[0]["controlnet_cond"]
    assert (
        torch.equal(cond[0, :, :, 32:], torch.ones_like(cond[0, :, :, 32:])) and cond[0, :, :, :32].max() == 0
    )
    assert torch.equal(first, second)  # the image is held for every following frame
    eng.update(control_image=255 - image)
    assert not torch.equal(eng(frames[0]), first)


def test_wrong_size_and_nan_control_images_are_repaired(make_engine, frames):
    eng = make_engine([canny_spec(preprocessor="passthrough")], cfg_type="none", t_index_list=[30])
    (net,) = [u.net for u in eng.controlnets.units]
    eng.update(control_image=np.full((30, 100, 3), 200, dtype=np.uint8))
    with recording(net) as (calls,):
        eng(frames[0])
    assert calls.kwargs[0]["controlnet_cond"].shape == (1, 3, 64, 64)
    eng.update(control_image=torch.full((1, 3, 64, 64), float("nan")))
    out = eng(frames[0])
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(
    "params, match",
    [
        ({"controlnets": [{"scale": float("nan")}]}, "finite"),
        ({"controlnets": [{"scale": 9.0}]}, r"\[0, 2\]"),
        ({"controlnets": [{"preprocessor": "pose"}]}, "canny, depth, softedge, passthrough"),
        ({"controlnets": [{"bogus": 1}]}, "unknown key"),
        ({"controlnets": "loud"}, "list"),
        ({"control_image": "not an image"}, "image"),
        ({"control_image": np.zeros((2, 2, 2, 2, 2), dtype=np.uint8)}, "shape"),
    ],
)
def test_bad_values_raise_one_line_and_change_nothing(make_engine, frames, params, match):
    eng = make_engine([canny_spec(scale=0.4)], cfg_type="none", t_index_list=[30])
    before = eng(frames[0])
    with pytest.raises(ValueError, match=match):
        eng.update(guidance_scale=3.0, **params)
    assert eng.guidance_scale == 1.2 and eng.controlnets.units[0].live["scale"] == 0.4
    assert torch.equal(eng(frames[0]), before)


def test_a_net_for_another_base_model_is_refused_naming_both(tmp_path, tiny_models):
    from diffusers import ControlNetModel

    other = ControlNetModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        cross_attention_dim=768,
        attention_head_dim=4,
        norm_num_groups=8,
        conditioning_embedding_out_channels=(8, 8, 16, 16),
    )
    folder = tmp_path / "sd15-net"
    other.save_pretrained(folder)
    config = EngineConfig(
        model="random:tiny", width=64, height=64, controlnets=[ControlNetSpec(model=str(folder))]
    )
    with pytest.raises(EngineError) as info:
        load_engine(config)
    text = str(info.value)
    assert "\n" not in text and "sd15" in text and "cross_attention_dim 768" in text
    assert "cross_attention_dim 32" in text and "random:tiny" in text


def test_a_saved_net_loads_from_its_folder_and_bad_paths_are_one_line(tmp_path, tiny_models, frames):
    from engine.controlnet.nets import load_controlnet, random_controlnet

    net = random_controlnet(tiny_models.unet)
    net.save_pretrained(tmp_path / "net")
    loaded = load_controlnet(str(tmp_path / "net"), tiny_models)
    assert torch.equal(loaded.controlnet_mid_block.weight, net.controlnet_mid_block.weight)
    with pytest.raises(EngineError, match="no ControlNet folder"):
        load_controlnet(str(tmp_path / "missing"), tiny_models)
    with pytest.raises(EngineError, match="pickled"):
        load_controlnet(str(tmp_path / "net.ckpt"), tiny_models)


def test_load_engine_builds_the_stack_from_the_config(frames):
    config = EngineConfig(
        model="random:tiny",
        width=64,
        height=64,
        cfg_type="none",
        t_index_list=[30],
        controlnets=[{"preprocessor": "depth", "scale": 0.5}, ControlNetSpec(preprocessor="canny")],
    )
    eng = load_engine(config)
    assert [u.live["preprocessor"] for u in eng.controlnets.units] == ["depth", "canny"]
    assert eng.controlnets.depth is not None  # a depth slot loads the depth model at build
    eng(frames[0])
    assert eng.stats()["controlnet_calls"] == [1, 1]
    with pytest.raises(EngineError, match="at most 4"):
        load_engine(config.with_changes(controlnets=[ControlNetSpec()] * 5))


def test_txt2img_nets_wait_for_an_external_image(make_engine):
    eng = make_engine(
        [canny_spec(preprocessor="passthrough")], mode="txt2img", cfg_type="none", t_index_list=[30]
    )
    eng()
    assert eng.stats()["controlnet_calls"] == [0]  # no input frame, no control image: not called
    eng.update(control_image=torch.rand(3, 64, 64))
    eng()
    eng()
    assert eng.stats()["controlnet_calls"] == [2]


def test_each_net_takes_its_image_from_its_source(make_engine, frames):
    """Canny on the video next to a depth render from the control source: `source` per net."""
    specs = [canny_spec(preprocessor="passthrough", source="input"), canny_spec(preprocessor="passthrough")]
    specs.append(canny_spec(preprocessor="passthrough", source="control"))
    eng = make_engine(specs, cfg_type="none", t_index_list=[30])
    nets = [u.net for u in eng.controlnets.units]
    eng(frames[0])
    assert eng.stats()["controlnet_calls"] == [1, 1, 0]  # `control` waits for the control source
    render = torch.zeros(3, 64, 64)
    render[:, :, 40:] = 1.0
    eng.update(control_image=render)
    with recording(*nets) as calls:
        eng(frames[1])
    conds = [c.kwargs[0]["controlnet_cond"][0] for c in calls]
    assert torch.equal(conds[0], frames[1][0])  # input: the video frame
    assert torch.equal(conds[1], render) and torch.equal(conds[2], render)  # auto and control: the render
    eng.update(controlnets=[{"source": "control"}, {"source": "input"}])
    with recording(*nets) as calls:
        eng(frames[2])
    conds = [c.kwargs[0]["controlnet_cond"][0] for c in calls]
    assert torch.equal(conds[0], render) and torch.equal(conds[1], frames[2][0])


def test_a_depth_model_that_cannot_load_refuses_only_that_value(tiny_models, frames, monkeypatch, tmp_path):
    from engine.controlnet import build_stack
    from engine.stream import StreamEngine

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache: nothing is there
    config = EngineConfig(
        model="random:tiny", width=64, height=64, cfg_type="none", t_index_list=[30],
        controlnets=[canny_spec()], depth_model="someone/missing-depth",
    )  # fmt: skip
    eng = StreamEngine(tiny_models, config)
    eng.set_controlnets(build_stack(tiny_models, config))
    before = eng(frames[0])
    with pytest.raises(
        ValueError, match="depth preprocessor cannot load its model.*someone/missing-depth"
    ) as info:
        eng.update(controlnets=[{"preprocessor": "depth"}])
    assert "sd-bridge fetch --preset NAME" in str(info.value) and "sd-bridge fetch someone" not in str(
        info.value
    )
    assert eng.controlnets.units[0].live["preprocessor"] == "canny" and eng.controlnets.depth is None
    assert torch.equal(eng(frames[0]), before)


def test_an_engine_with_nets_is_freed_by_its_last_reference_alone(make_engine, frames):
    """Like tests/bridge/test_engine_release.py for a plain engine: the ControlNet stack (nets, depth
    model, held control image) adds no reference cycle, so a replaced engine with nets is freed at once."""
    import gc
    import weakref

    eng = make_engine([canny_spec(), canny_spec(preprocessor="depth")], cfg_type="none", t_index_list=[30])
    eng.update(control_image=np.zeros((64, 64, 3), np.uint8), controlnets=[{"scale": 0.5}])
    eng(frames[0])
    gc.collect()
    gc.disable()
    try:
        ref, stack = weakref.ref(eng), weakref.ref(eng.controlnets)
        del eng
        assert ref() is None and stack() is None, [type(r).__name__ for r in gc.get_referrers(ref())]
    finally:
        gc.enable()
