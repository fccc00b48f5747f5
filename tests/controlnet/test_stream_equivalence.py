"""ControlNet inside the stream batch equals diffusers' ControlNetModel + UNet called by hand."""

from __future__ import annotations

import torch
from cn_helpers import canny_spec, recording
from diffusers.models.controlnets import MultiControlNetModel

from engine.controlnet import ControlNetSpec


def _nets(engine):
    return [u.net for u in engine.controlnets.units]


def test_scale_zero_and_disabled_equal_no_controlnet_bit_for_bit(make_engine, frames):
    cfg = dict(cfg_type="self", t_index_list=[20, 35], guidance_scale=1.4)
    plain = make_engine(**cfg)
    zero = make_engine([canny_spec(scale=0.0)], **cfg)
    off = make_engine([canny_spec(enabled=False), canny_spec(scale=0.0)], **cfg)
    live = make_engine([canny_spec()], **cfg)
    for f in frames:
        a, b, c, d = plain(f), zero(f), off(f), live(f)
        assert torch.equal(a, b) and torch.equal(a, c)
    assert not torch.allclose(a, d, atol=1e-4)  # a live net does change the image
    assert zero.stats()["controlnet_calls"] == [0]  # and a silent one is never called
    assert off.stats()["controlnet_calls"] == [0, 0]
    assert live.stats()["controlnet_calls"] == [len(frames)]


def test_one_net_matches_diffusers_by_hand(make_engine, tiny_models, frames):
    """fbs 1, one step, cfg none: residuals and prediction equal ControlNetModel + UNet by hand."""
    eng = make_engine([canny_spec(preprocessor="passthrough", scale=0.7)], cfg_type="none", t_index_list=[30])
    (net,) = _nets(eng)
    with recording(tiny_models.unet, net) as (unet_calls, net_calls):
        eng(frames[0])
    (x, t), kw = unet_calls.args[0], unet_calls.kwargs[0]
    e = kw["encoder_hidden_states"]
    with torch.no_grad():
        down, mid = net(
            x,
            t,
            encoder_hidden_states=e,
            controlnet_cond=frames[0],
            conditioning_scale=0.7,
            return_dict=False,
        )
        pred = tiny_models.unet(
            x,
            t,
            encoder_hidden_states=e,
            down_block_additional_residuals=down,
            mid_block_additional_residual=mid,
        ).sample
    assert len(net_calls.args) == 1
    for ours, theirs in zip(kw["down_block_additional_residuals"], down, strict=True):
        assert torch.equal(ours, theirs)
    assert torch.equal(kw["mid_block_additional_residual"], mid)
    assert torch.equal(unet_calls.out[0][0], pred)


def test_two_nets_sum_like_multicontrolnet(make_engine, tiny_models, frames):
    specs = [canny_spec(preprocessor="passthrough", scale=0.8), canny_spec(preprocessor="canny", scale=0.5)]
    eng = make_engine(specs, cfg_type="none", t_index_list=[30])
    nets = _nets(eng)
    with recording(tiny_models.unet) as (unet_calls,):
        eng(frames[1])
    (x, t), kw = unet_calls.args[0], unet_calls.kwargs[0]
    from engine.controlnet.preprocess import canny

    multi = MultiControlNetModel(nets)
    with torch.no_grad():
        down, mid = multi(
            x,
            t,
            encoder_hidden_states=kw["encoder_hidden_states"],
            controlnet_cond=[frames[1], canny(frames[1], 0.1, 0.2)],
            conditioning_scale=[0.8, 0.5],
            return_dict=False,
        )
    for ours, theirs in zip(kw["down_block_additional_residuals"], down, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    torch.testing.assert_close(kw["mid_block_additional_residual"], mid, rtol=0, atol=0)


def test_full_cfg_uncond_rows_get_residuals_like_diffusers_pipelines(make_engine, tiny_models, frames):
    """cfg full: the batch is [uncond rows | text rows]; the net sees the same latents, the negative and
    positive embeddings and the control image twice, as StableDiffusionControlNetPipeline does."""
    eng = make_engine(
        [canny_spec(preprocessor="passthrough")], cfg_type="full", guidance_scale=2.0, t_index_list=[30]
    )
    (net,) = _nets(eng)
    with recording(tiny_models.unet, net) as (unet_calls, net_calls):
        eng(frames[2])
    (x, t), kw = unet_calls.args[0], unet_calls.kwargs[0]
    e = kw["encoder_hidden_states"]
    assert x.shape[0] == 2 and torch.equal(x[0], x[1]) and not torch.equal(e[0], e[1])
    assert torch.equal(net_calls.kwargs[0]["controlnet_cond"], torch.cat([frames[2]] * 2))
    with torch.no_grad():
        down, mid = net(
            x, t, encoder_hidden_states=e, controlnet_cond=torch.cat([frames[2]] * 2), return_dict=False
        )
    for ours, theirs in zip(kw["down_block_additional_residuals"], down, strict=True):
        assert torch.equal(ours, theirs)
    assert not torch.equal(mid[0], mid[1])  # uncond and text rows differ through the embeddings


def test_initialize_cfg_uncond_rows_are_the_newest_stage(make_engine, tiny_models, frames):
    eng = make_engine(
        [canny_spec(preprocessor="passthrough")],
        cfg_type="initialize",
        guidance_scale=2.0,
        t_index_list=[20, 35],
    )
    (net,) = _nets(eng)
    with recording(net) as (net_calls,):
        eng(frames[0])
        eng(frames[1])
    cond = net_calls.kwargs[1]["controlnet_cond"]
    # [uncond of stage 0 | stage 0 | stage 1]: frame 1, frame 1, frame 0
    assert cond.shape[0] == 3
    assert torch.equal(cond[0], frames[1][0]) and torch.equal(cond[1], frames[1][0])
    assert torch.equal(cond[2], frames[0][0])


def test_each_row_sees_its_own_frames_control_image(make_engine, frames):
    """Three stages: row i holds the frame that entered i calls ago, and so does its control image;
    the first frame fills every row (nothing older exists)."""
    eng = make_engine([canny_spec(preprocessor="passthrough")], cfg_type="none", t_index_list=[10, 25, 40])
    (net,) = _nets(eng)
    with recording(net) as (net_calls,):
        for f in frames[:4]:
            eng(f)
    conds = [kw["controlnet_cond"] for kw in net_calls.kwargs]
    assert all(torch.equal(conds[0][i], frames[0][0]) for i in range(3))
    for k in range(2, 4):
        for i in range(3):
            assert torch.equal(conds[k][i], frames[k - i][0]), (k, i)


def test_sequential_mode_uses_the_same_assignment(make_engine, frames):
    eng = make_engine(
        [canny_spec(preprocessor="passthrough")],
        cfg_type="none",
        t_index_list=[10, 40],
        use_denoising_batch=False,
    )
    (net,) = _nets(eng)
    with recording(net) as (net_calls,):
        eng(frames[0])
        eng(frames[1])
    conds = [kw["controlnet_cond"] for kw in net_calls.kwargs]
    assert len(conds) == 4  # one call per stage
    # the second call: stage 0 holds frame 1, stage 1 holds frame 0
    assert torch.equal(conds[2][0], frames[1][0]) and torch.equal(conds[3][0], frames[0][0])


def test_start_end_leave_stages_out(make_engine, tiny_models, frames):
    """end 0.5 over two stages: stage 0 (the first half of the schedule) is steered, stage 1 is not."""
    eng = make_engine(
        [canny_spec(preprocessor="passthrough", end=0.5)], cfg_type="none", t_index_list=[20, 35]
    )
    with recording(tiny_models.unet) as (unet_calls,):
        eng(frames[0])
    res = unet_calls.kwargs[0]["down_block_additional_residuals"]
    assert all(r[1].abs().max() == 0 for r in res) and res[0][0].abs().max() > 0
    late = make_engine([canny_spec(start=0.5, end=0.5)], cfg_type="none", t_index_list=[20, 35])
    late(frames[0])
    assert late.stats()["controlnet_calls"] == [0]  # an empty window never calls the net


def test_random_controlnet_is_built_from_the_unet(make_engine, tiny_models):
    eng = make_engine([ControlNetSpec(model="auto", preprocessor="canny")])
    (net,) = _nets(eng)
    assert eng.controlnets.units[0].model == "random:controlnet"
    unet = tiny_models.unet.config
    assert tuple(net.config.block_out_channels) == tuple(unet.block_out_channels)
    assert net.config.cross_attention_dim == unet.cross_attention_dim
    # the encoder half starts from the UNet's own weights (ControlNetModel.from_unet)
    assert torch.equal(net.conv_in.weight, tiny_models.unet.conv_in.weight)
    assert any(p.abs().max() > 0 for p in net.controlnet_down_blocks.parameters())
