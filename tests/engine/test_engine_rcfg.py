"""Residual CFG: none / full / self / initialize, and their live changes."""

from __future__ import annotations

import pytest
import torch
from engine_helpers import Recorder


def _coefficients(scheduler, t_index):
    scheduler.set_timesteps(50)
    t = scheduler.timesteps[t_index]
    abar = scheduler.alphas_cumprod[t]
    c_skip, c_out = scheduler.get_scalings_for_boundary_condition_discrete(t)
    return abar.sqrt(), (1 - abar).sqrt(), c_skip, c_out


def _step(x, eps, a, b, c_skip, c_out):
    return c_out * (x - b * eps) / a + c_skip * x


def test_full_with_guidance_one_equals_none(make_engine, frames):
    none = make_engine(cfg_type="none", t_index_list=[20, 35])
    full = make_engine(cfg_type="full", t_index_list=[20, 35], guidance_scale=1.0)
    guided = make_engine(cfg_type="full", t_index_list=[20, 35], guidance_scale=2.0)
    for f in frames[:3]:
        a, b, c = none(f), full(f), guided(f)
        assert torch.equal(a, b)
    assert not torch.allclose(a, c, atol=1e-4)


def test_self_matches_hand_computation(make_engine, tiny_models, frames):
    """One stage, two frames: frame 1 has no residual yet; frame 2's virtual negative is the
    residual noise left by frame 1 (x_t's noise plus the step's correction), times delta."""
    g, delta, seed = 1.8, 0.7, 3
    eng = make_engine(cfg_type="self", t_index_list=[30], guidance_scale=g, delta=delta, seed=seed)
    rec = Recorder(eng)
    eng(frames[0])
    eng(frames[1])
    a, b, c_skip, c_out = _coefficients(tiny_models.scheduler, 30)
    noise = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(seed))
    stock = torch.zeros_like(noise)
    for k in range(2):
        x = a * rec.encoded[k] + b * noise
        torch.testing.assert_close(rec.unet_in[k][0], x, atol=1e-6, rtol=1e-5)
        text = rec.unet_out[k]
        eps = delta * stock + g * (text - delta * stock)
        torch.testing.assert_close(
            rec.decoded_in[k], _step(x, eps, a, b, c_skip, c_out), atol=1e-5, rtol=1e-4
        )
        stock = noise + _step(b * stock, eps, a, b, c_skip, c_out)
    assert eng.stats()["unet_batch"] == 1  # self-CFG costs no extra UNet rows


def test_initialize_matches_hand_computation(make_engine, tiny_models, frames):
    """Two stages: the newest frame's row gets a real unconditional prediction (one extra UNet row,
    with the negative prompt); eps = u + g (c - u) with u = delta * that prediction."""
    g, delta = 1.5, 0.9
    eng = make_engine(cfg_type="initialize", t_index_list=[20, 35], guidance_scale=g, delta=delta)
    rec = Recorder(eng)
    eng(frames[0])
    latents, t, emb = rec.unet_in[0]
    assert latents.shape[0] == 3  # 1 uncond + 2 stages
    torch.testing.assert_close(latents[0], latents[1])
    neg = eng._encoder.encode("blurry")
    torch.testing.assert_close(emb[0], neg[0])
    torch.testing.assert_close(emb[1], eng.prompt_embeds[0])
    pred = rec.unet_out[0]
    a, b, c_skip, c_out = _coefficients(tiny_models.scheduler, 20)
    u = delta * pred[0]
    eps = u + g * (pred[1] - u)
    x0_stage0 = _step(latents[1], eps, a, b, c_skip, c_out)
    # the stage-0 x0 is re-noised into the second row for the next call
    a1, b1, _, _ = _coefficients(tiny_models.scheduler, 35)
    noise = torch.randn((2, 4, 8, 8), generator=torch.Generator().manual_seed(3))
    eng(frames[1])
    torch.testing.assert_close(rec.unet_in[1][0][2], a1 * x0_stage0 + b1 * noise[1], atol=1e-5, rtol=1e-4)


def test_full_uses_negative_rows_and_prompt_update_keeps_them(make_engine, frames):
    eng = make_engine(cfg_type="full", t_index_list=[20, 35], guidance_scale=1.7)
    rec = Recorder(eng)
    eng(frames[0])
    neg = eng._encoder.encode("blurry")[0]
    emb = rec.unet_in[-1][2]
    assert emb.shape[0] == 4 and torch.equal(emb[0], neg) and torch.equal(emb[1], neg)
    eng.update(prompt="a blue whale")
    eng(frames[1])
    emb = rec.unet_in[-1][2]
    assert emb.shape[0] == 4  # the unconditional rows survive a prompt change
    assert torch.equal(emb[0], neg) and torch.equal(emb[1], neg)
    torch.testing.assert_close(emb[2], eng._encoder.encode("a blue whale")[0])


@pytest.mark.parametrize("cfg_type", ["full", "initialize", "self", "none"])
def test_live_guidance_across_one(make_engine, frames, cfg_type):
    base = make_engine(cfg_type=cfg_type, t_index_list=[20, 35], guidance_scale=0.8)
    live = make_engine(cfg_type=cfg_type, t_index_list=[20, 35], guidance_scale=0.8)
    for f in frames[:2]:
        base(f)
        live(f)
    live.update(guidance_scale=2.5)
    a, b = base(frames[2]), live(frames[2])
    if cfg_type == "none":
        assert torch.equal(a, b)  # no guidance at all
    else:
        assert not torch.allclose(a, b, atol=1e-5)
    live.update(guidance_scale=1.0)
    assert live(frames[3]).shape == (1, 3, 64, 64)


def test_live_negative_prompt_changes_output_without_reset(make_engine, frames):
    a = make_engine(cfg_type="full", t_index_list=[20, 35], guidance_scale=2.0)
    b = make_engine(cfg_type="full", t_index_list=[20, 35], guidance_scale=2.0)
    for f in frames[:2]:
        a(f)
        b(f)
    b.update(negative_prompt="dark, noisy")
    assert b.stats()["calls"] == 2  # the stream kept its frames
    assert not torch.allclose(a(frames[2]), b(frames[2]), atol=1e-5)


def test_live_t_index_same_and_other_length(make_engine, frames):
    a = make_engine(t_index_list=[20, 35])
    b = make_engine(t_index_list=[20, 35])
    for f in frames[:2]:
        a(f)
        b(f)
    b.update(t_index_list=[15, 40])
    assert not torch.allclose(a(frames[2]), b(frames[2]), atol=1e-5)
    b.update(t_index_list=[10, 25, 40])
    assert b.stats()["lag"] == 2
    outs = [b(f) for f in frames[3:6]]
    assert outs[-1].shape == (1, 3, 64, 64) and torch.isfinite(outs[-1]).all()
    b.update(strength=0.5)
    assert b.t_index_list == [25, 33, 42]


def test_full_matches_hand_computation(make_engine, tiny_models, frames):
    """Full CFG: a negative-prompt row per latent, eps = u + g (c - u); delta plays no part."""
    g = 1.7
    eng = make_engine(cfg_type="full", t_index_list=[30], guidance_scale=g, delta=0.4)
    rec = Recorder(eng)
    eng(frames[0])
    latents, _, emb = rec.unet_in[0]
    assert latents.shape[0] == 2 and torch.equal(latents[0], latents[1])
    u, c = rec.unet_out[0]
    a, b, c_skip, c_out = _coefficients(tiny_models.scheduler, 30)
    expected = _step(latents[1:], u + g * (c - u), a, b, c_skip, c_out)
    torch.testing.assert_close(rec.decoded_in[0], expected, atol=1e-5, rtol=1e-4)
