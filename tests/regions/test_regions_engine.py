"""Regional prompts in the StreamDiffusion engine (tiny random model, CPU)."""

from __future__ import annotations

import pytest
import torch

from engine.regions import Brush, MaskError, RegionalConditioning

from .conftest import left_half

GUIDED = dict(t_index_list=[20, 35], guidance_scale=1.5)


def record_unet(engine):
    calls = []
    inner = engine.unet_fn

    def unet_fn(x, t, e):
        calls.append(x.shape[0])
        return inner(x, t, e)

    engine.unet_fn = unet_fn
    return calls


def record_latents(engine):
    seen = []
    inner = engine.vae_decode_fn

    def decode(latents):
        seen.append(latents.clone())
        return inner(latents)

    engine.vae_decode_fn = decode
    return seen


@pytest.mark.parametrize("cfg_type", ["self", "full", "initialize", "none"])
def test_full_frame_brush_equals_plain_prompting(make_engine, frames, cfg_type):
    plain = make_engine(prompt="fire", cfg_type=cfg_type, **GUIDED)
    painted = make_engine(prompt="a city", cfg_type=cfg_type, **GUIDED)
    painted.update(regions=[Brush("fire", torch.ones(64, 64))])
    calls = record_unet(painted)
    for f in frames[:3]:
        torch.testing.assert_close(painted(f), plain(f), atol=1e-5, rtol=1e-4)
    uncond = {"full": 2, "initialize": 1}.get(cfg_type, 0)
    assert calls == [2 * 2 + uncond] * 3  # one batched UNet call per frame, rows x (1 + K) prompts
    assert painted.stats()["unet_batch"] == 2 * 2 + uncond


def test_plain_prompt_differs_so_the_test_above_means_something(make_engine, frames):
    a, b = make_engine(prompt="fire", **GUIDED), make_engine(prompt="a city", **GUIDED)
    assert not torch.allclose(a(frames[0]), b(frames[0]), atol=1e-3)


@pytest.mark.parametrize("cfg_type", ["self", "full"])
def test_disjoint_masks_each_region_follows_its_own_prompt(make_engine, frames, cfg_type):
    # One denoising stage, so every latent pixel of the output is a pointwise function of the
    # prediction at that pixel: inside each mask the fused result must equal that prompt's run.
    common = dict(cfg_type=cfg_type, t_index_list=[30], guidance_scale=1.5)
    runs = {}
    for prompt in ("fire", "ice", "a city"):
        eng = make_engine(prompt=prompt, **common)
        latents = record_latents(eng)
        for f in frames[:2]:
            eng(f)
        runs[prompt] = latents
    painted = make_engine(prompt="a city", **common)
    top_right = torch.zeros(8, 8)
    top_right[:3, 4:] = 1
    painted.update(regions=[Brush("fire", left_half()), {"prompt": "ice", "mask": top_right}])
    latents = record_latents(painted)
    for f in frames[:2]:
        painted(f)
    for got, fire, ice, city in zip(latents, runs["fire"], runs["ice"], runs["a city"], strict=True):
        torch.testing.assert_close(got[..., :4], fire[..., :4], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(got[..., :3, 4:], ice[..., :3, 4:], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(got[..., 3:, 4:], city[..., 3:, 4:], atol=1e-5, rtol=1e-4)
        assert not torch.allclose(fire[..., :4], city[..., :4], atol=1e-3)


def test_all_zero_mask_leaves_the_background(make_engine, frames):
    plain = make_engine(**GUIDED)
    painted = make_engine(**GUIDED)
    painted.update(regions=[Brush("fire", torch.zeros(64, 64)), Brush("ice", left_half(), alpha=0.0)])
    assert painted.stats()["unet_batch"] == 2  # empty brushes cost nothing
    half = make_engine(**GUIDED)
    half.update(regions=[Brush("fire", left_half(), strength=0.0)])  # in the batch, but no prompt change
    assert half.stats()["unet_batch"] == 4
    for f in frames[:3]:
        expected = plain(f)
        torch.testing.assert_close(painted(f), expected, atol=1e-6, rtol=0)
        torch.testing.assert_close(half(f), expected, atol=1e-5, rtol=1e-4)


def test_blur_zero_alpha_one_gives_exactly_the_mask_in_the_engine(make_engine):
    eng = make_engine()
    g = torch.Generator().manual_seed(3)
    mask = torch.rand(8, 8, generator=g)
    eng.update(regions=[Brush("fire", mask, blur=0.0, alpha=1.0)])
    cond = eng.conditioning
    assert isinstance(cond, RegionalConditioning)
    assert torch.equal(cond.masks[0], mask)
    eng.update(regions=[Brush("fire", mask, blur=8.0, alpha=0.5)])
    assert not torch.equal(eng.conditioning.masks[0], mask)
    assert float(eng.conditioning.masks.max()) <= 0.5


def test_changes_apply_live_without_rebuild_or_reencoding(make_engine, frames):
    eng = make_engine(**GUIDED)
    eng.update(regions=[Brush("fire", left_half(64, 64))])
    first = eng(frames[0])
    encodes = eng.stats()["prompt_encodes"]
    x_before = eng._batch.x.clone()
    eng.update(regions=[Brush("fire", left_half(64, 64).flip(1), blur=4.0)])  # new mask, same prompt
    assert eng.stats()["prompt_encodes"] == encodes
    assert torch.equal(eng._batch.x, x_before)  # in-flight frames kept: no rebuild
    moved = eng(frames[0])
    assert not torch.allclose(first, moved, atol=1e-4)
    eng.update(regions=[Brush("fire", left_half(64, 64)), Brush("ice", left_half(64, 64).flip(1))])
    assert eng.stats()["prompt_encodes"] == encodes + 1  # only the new prompt
    assert eng.stats()["unet_batch"] == 2 * 3
    eng.update(regions=[Brush("fire", left_half(64, 64)), Brush("ice", left_half(64, 64).flip(1))])
    assert eng.stats()["prompt_encodes"] == encodes + 1  # cached
    eng.update(regions=[])
    assert eng.stats()["unet_batch"] == 2
    assert eng(frames[1]).shape == (1, 3, 64, 64)


def test_bad_regions_are_refused_and_change_nothing(make_engine, frames):
    eng = make_engine(**GUIDED)
    eng.update(regions=[Brush("fire", left_half())])
    before = eng.conditioning
    bad = [
        [{"prompt": "ice", "mask": torch.full((8, 8), float("nan"))}],
        [{"prompt": "ice", "mask": "left.png"}],
        [{"prompt": "ice", "mask": torch.ones(2, 2, 2)}],
        [{"prompt": "ice"}],
        "fire",
        [{"prompt": "ice", "mask": torch.ones(8, 8)}] * 9,
    ]
    for regions in bad:
        with pytest.raises(ValueError, match="region"):
            eng.update(guidance_scale=3.0, regions=regions)
        assert eng.conditioning is before and eng.guidance_scale == 1.5
    with pytest.raises(MaskError, match="region 0: brush mask: all NaN"):
        eng.update(regions=[{"prompt": "ice", "mask": torch.full((8, 8), float("nan"))}])
    assert eng(frames[0]).shape == (1, 3, 64, 64)


def test_prompt_transition_and_regions_together(make_engine, frames):
    eng = make_engine(transition_frames=2, **GUIDED)
    eng.update(regions=[Brush("fire", left_half())])
    eng.update(prompt="a forest")  # the background morphs; the brush stays mixed with it
    for f in frames:
        out = eng(f)
    assert torch.isfinite(out).all()
    assert torch.equal(eng.conditioning.embeds(eng.prompt_embeds)[0], eng.prompt_embeds[0])


def test_sequential_denoising_also_fuses(make_engine, frames):
    plain = make_engine(prompt="fire", use_denoising_batch=False, **GUIDED)
    painted = make_engine(use_denoising_batch=False, **GUIDED)
    painted.update(regions=[Brush("fire", torch.ones(8, 8))])
    for f in frames[:2]:
        torch.testing.assert_close(painted(f), plain(f), atol=1e-5, rtol=1e-4)
