"""Mask preparation, fusion weights and embedding mixing, as pure functions."""

import math
import warnings

import numpy as np
import pytest
import torch

from engine.regions import (
    Brush,
    MaskError,
    as_brushes,
    as_mask,
    fuse_groups,
    gaussian_blur,
    mix_embeddings,
    prepare_mask,
    region_weights,
    stack_conditions,
)


def half_mask(h=8, w=8, left=True):
    m = torch.zeros(h, w)
    if left:
        m[:, : w // 2] = 1
    else:
        m[:, w // 2 :] = 1
    return m


def test_blur_zero_alpha_one_gives_exactly_the_mask():
    g = torch.Generator().manual_seed(0)
    m = torch.rand(8, 12, generator=g)
    out = prepare_mask(as_mask(m), (8, 12), blur=0.0, alpha=1.0)
    assert torch.equal(out, m)


def test_alpha_scales_and_blur_softens_the_edge():
    m = half_mask()
    out = prepare_mask(m, (8, 8), blur=0.0, alpha=0.25)
    assert torch.equal(out, m * 0.25)
    blurred = prepare_mask(m, (8, 8), blur=8.0)  # one latent pixel of std. dev.
    row = blurred[0]
    assert row[0] > 0.99 and row[-1] < 0.01
    assert 0.5 < row[3] < 1.0 and 0.0 < row[4] < 0.5  # soft edge where it was hard
    assert torch.all(row[:-1] >= row[1:])  # still monotone


def test_blur_keeps_a_full_mask_full():
    ones = torch.ones(6, 10)
    assert torch.allclose(gaussian_blur(ones, 3.0), ones, atol=1e-6)


def test_wrong_size_is_resized_to_the_latent():
    big = torch.zeros(64, 64)
    big[:, :32] = 1
    out = prepare_mask(as_mask(big), (8, 8))
    assert out.shape == (8, 8)
    assert torch.equal(out, half_mask())
    small = prepare_mask(as_mask(torch.ones(2, 3)), (8, 8))
    assert small.shape == (8, 8) and torch.allclose(small, torch.ones(8, 8))


@pytest.mark.parametrize(
    "bad, message",
    [
        (torch.full((4, 4), math.nan), "all NaN"),
        (torch.tensor([[0.0, math.inf], [0.0, 0.0]]), "1 NaN/inf"),
        ([[0.0, 1.0]], "expected a torch tensor or numpy array"),
        ("mask.png", "expected a torch tensor or numpy array"),
        (torch.zeros(2, 3, 4), "expected a 2-D mask"),
        (torch.zeros(4), "expected a 2-D mask"),
        (np.zeros((4, 4), dtype=np.int64), "dtype int64 is not a mask dtype"),
        (torch.zeros(4, 4, dtype=torch.int32), "dtype torch.int32 is not a mask dtype"),
        (torch.full((4, 4), 255.0), r"values must lie in \[0, 1\], got \[255, 255\]"),
        (torch.zeros(0, 4), "empty mask"),
    ],
)
def test_bad_masks_are_rejected_with_a_clear_error(bad, message):
    with pytest.raises(MaskError, match=message):
        as_mask(bad)
    with pytest.raises(MaskError, match="region 0: brush mask: " + message):
        as_brushes([{"prompt": "x", "mask": bad}])


def test_masks_of_every_accepted_kind():
    assert torch.equal(as_mask(np.array([[0, 255]], dtype=np.uint8)), torch.tensor([[0.0, 1.0]]))
    assert torch.equal(as_mask(np.array([[True, False]])), torch.tensor([[1.0, 0.0]]))
    assert as_mask(torch.ones(1, 3, 5, dtype=torch.float16)).shape == (3, 5)
    assert as_mask(np.ones((3, 5, 1))).dtype == torch.float32
    frozen = np.ones((3, 5), np.float32)
    frozen.setflags(write=False)  # as MaskLibrary hands out its cached masks
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert as_mask(frozen).sum() == 15


def test_brush_validates_its_numbers():
    with pytest.raises(ValueError, match=r"brush alpha must be a number in \[0, 1\]"):
        Brush("x", torch.ones(2, 2), alpha=1.5)
    with pytest.raises(ValueError, match="brush blur"):
        Brush("x", torch.ones(2, 2), blur=math.nan)
    with pytest.raises(ValueError, match="unknown region keys"):
        as_brushes([{"prompt": "x", "mask": torch.ones(2, 2), "colour": 3}])
    with pytest.raises(ValueError, match="at most 8 regions"):
        as_brushes([{"prompt": "x", "mask": torch.ones(2, 2)}] * 9)


def test_weights_background_fills_what_brushes_leave_and_overlaps_share():
    a = torch.tensor([[1.0, 0.5, 0.0, 1.0]])
    b = torch.tensor([[0.0, 0.0, 0.0, 1.0]])
    w = region_weights(torch.stack([a, b]))
    assert torch.allclose(w.sum(0), torch.ones(1, 4))
    assert w[:, 0, 0].tolist() == [0.0, 1.0, 0.0]  # brush a alone
    assert w[:, 0, 1].tolist() == [0.5, 0.5, 0.0]  # half a, half background
    assert w[:, 0, 2].tolist() == [1.0, 0.0, 0.0]  # background only
    assert w[:, 0, 3].tolist() == [0.0, 0.5, 0.5]  # overlap normalised


def test_fusion_full_mask_is_the_brush_and_zero_mask_is_the_background():
    g = torch.Generator().manual_seed(1)
    pred = torch.randn(2, 3, 4, 8, 8, generator=g)  # 2 prompts x 3 stream rows
    full = fuse_groups(pred, region_weights(torch.ones(1, 8, 8)))
    assert torch.equal(full, pred[1])
    none = fuse_groups(pred, region_weights(torch.zeros(1, 8, 8)))
    assert torch.equal(none, pred[0])


def test_fusion_disjoint_masks_pick_each_prompts_prediction():
    g = torch.Generator().manual_seed(2)
    pred = torch.randn(3, 2, 4, 8, 8, generator=g)
    masks = torch.stack([half_mask(left=True), half_mask(left=False)])
    fused = fuse_groups(pred, region_weights(masks))
    assert torch.equal(fused[..., :4], pred[1, ..., :4])
    assert torch.equal(fused[..., 4:], pred[2, ..., 4:])


def test_strength_mixes_embeddings():
    bg = torch.zeros(2, 3, 4)
    brush = torch.ones(1, 3, 4)
    assert torch.equal(mix_embeddings(bg, brush, 1.0), torch.ones(2, 3, 4))
    assert torch.equal(mix_embeddings(bg, brush, 0.0), bg)
    assert torch.allclose(mix_embeddings(bg, brush, 0.25), torch.full((2, 3, 4), 0.25))
    cond = stack_conditions(bg, [brush, 2 * brush], [1.0, 0.5])
    assert cond.shape == (6, 3, 4)
    assert cond[:2].eq(0).all() and cond[2:4].eq(1).all() and cond[4:].eq(1).all()
