"""The fusion around a real (tiny, random-weight) diffusers UNet and CLIP text encoder.

Checks that one batched UNet call over 1 + K prompts, folded by the fusion, gives each
prompt's own prediction where its mask is, as separate single-prompt calls would.
"""

import json

import diffusers
import pytest
import torch
import transformers

from engine.regions import Brush, RegionalPrompts


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tok")
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in letters:
        vocab[ch] = len(vocab)
        vocab[ch + "</w>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tok = transformers.CLIPTokenizer(
        str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77
    )
    text = transformers.CLIPTextModel(
        transformers.CLIPTextConfig(
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            max_position_embeddings=77,
            vocab_size=len(vocab),
        )
    ).eval()
    unet = diffusers.UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=8,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=8,
    ).eval()

    def encode(prompt: str) -> torch.Tensor:
        ids = tok(prompt, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
        return text(ids)[0]

    return encode, unet


def run(unet, x, t, cond):
    with torch.no_grad():
        return unet(x, t, encoder_hidden_states=cond, return_dict=False)[0]


def regional(encode, unet, brushes, x, t, background):
    rp = RegionalPrompts(encode, (8, 8))
    rp.set(brushes)
    active = rp.snapshot()
    pred = run(
        unet, rp.expand_rows(active, x), rp.expand_rows(active, t), rp.expand_conditions(active, background)
    )
    assert pred.shape[0] == x.shape[0] * rp.prompts  # one batched call for all prompts
    return rp.fuse(active, pred)


def test_full_frame_brush_equals_plain_prompting(tiny):
    encode, unet = tiny
    x, t = torch.randn(2, 4, 8, 8), torch.tensor([999, 500])
    with torch.no_grad():
        bg, fire = encode("a city"), encode("fire")
    fused = regional(encode, unet, [Brush("fire", torch.ones(8, 8))], x, t, bg.repeat(2, 1, 1))
    plain = run(unet, x, t, fire.repeat(2, 1, 1))
    assert torch.allclose(fused, plain, atol=1e-5)
    other = run(unet, x, t, bg.repeat(2, 1, 1))
    assert not torch.allclose(plain, other, atol=1e-3)  # the prompts really differ


def test_zero_mask_leaves_the_background(tiny):
    encode, unet = tiny
    x, t = torch.randn(1, 4, 8, 8), torch.tensor([700])
    with torch.no_grad():
        bg = encode("a city")
    fused = regional(encode, unet, [Brush("fire", torch.zeros(8, 8))], x, t, bg)
    assert torch.allclose(fused, run(unet, x, t, bg), atol=1e-5)


def test_disjoint_masks_follow_their_own_prompts(tiny):
    encode, unet = tiny
    x, t = torch.randn(2, 4, 8, 8), torch.tensor([900, 300])
    with torch.no_grad():
        bg, fire, ice = encode("a city"), encode("fire"), encode("ice")
    left = torch.zeros(8, 8)
    left[:, :4] = 1
    top = torch.zeros(8, 8)
    top[:2, 4:] = 1  # top of the right half; the rest of the right half stays background
    fused = regional(encode, unet, [Brush("fire", left), Brush("ice", top)], x, t, bg.repeat(2, 1, 1))
    p_fire = run(unet, x, t, fire.repeat(2, 1, 1))
    p_ice = run(unet, x, t, ice.repeat(2, 1, 1))
    p_bg = run(unet, x, t, bg.repeat(2, 1, 1))
    assert torch.allclose(fused[..., :4], p_fire[..., :4], atol=1e-5)
    assert torch.allclose(fused[..., :2, 4:], p_ice[..., :2, 4:], atol=1e-5)
    assert torch.allclose(fused[..., 2:, 4:], p_bg[..., 2:, 4:], atol=1e-5)
    assert not torch.allclose(fused[..., :4], p_bg[..., :4], atol=1e-3)


def test_strength_zero_brush_is_the_background_prompt(tiny):
    encode, unet = tiny
    x, t = torch.randn(1, 4, 8, 8), torch.tensor([600])
    with torch.no_grad():
        bg = encode("a city")
    fused = regional(encode, unet, [Brush("fire", torch.ones(8, 8), strength=0.0)], x, t, bg)
    assert torch.allclose(fused, run(unet, x, t, bg), atol=1e-5)
