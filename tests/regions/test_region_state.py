"""RegionalPrompts: cached encodes, atomic swaps, batch widening and folding."""

import pytest
import torch

from engine.regions import Brush, MaskError, RegionalPrompts


def toy_encoder(calls):
    def encode(prompt: str) -> torch.Tensor:
        calls.append(prompt)
        return torch.full((1, 3, 4), float(len(prompt)))

    return encode


def left_half():
    m = torch.zeros(8, 8)
    m[:, :4] = 1
    return m


def test_prompts_are_encoded_once_and_masks_change_without_encoding():
    calls = []
    rp = RegionalPrompts(toy_encoder(calls), (8, 8))
    rp.set([Brush("fire", left_half()), {"prompt": "ice", "mask": left_half().flip(1)}])
    assert calls == ["fire", "ice"] and rp.count == 2 and rp.prompts == 3
    rp.set([Brush("fire", torch.ones(8, 8), blur=16.0), Brush("ice", left_half(), alpha=0.5)])
    assert calls == ["fire", "ice"]
    assert torch.allclose(rp.masks[0], torch.ones(8, 8), atol=1e-6)
    assert torch.equal(rp.masks[1], left_half() * 0.5)
    rp.set([Brush("smoke", left_half())])
    assert calls == ["fire", "ice", "smoke"] and rp.count == 1


def test_zero_masks_leave_the_batch_and_bad_input_keeps_the_old_state():
    rp = RegionalPrompts(toy_encoder([]), (8, 8))
    rp.set([Brush("fire", left_half()), Brush("void", torch.zeros(8, 8)), Brush("off", left_half(), alpha=0)])
    assert rp.count == 1
    before = rp.snapshot()
    with pytest.raises(MaskError, match="region 1"):
        rp.set([Brush("a", left_half()), {"prompt": "b", "mask": torch.full((8, 8), float("nan"))}])
    assert rp.snapshot() is before
    rp.set(None)
    assert rp.count == 0


def test_step_helpers_widen_and_fold_the_batch():
    rp = RegionalPrompts(toy_encoder([]), (8, 8))
    rp.set([Brush("ab", left_half(), strength=0.5)])
    active = rp.snapshot()
    x = torch.randn(2, 4, 8, 8)
    t = torch.tensor([10, 20])
    cond = torch.zeros(2, 3, 4)
    assert rp.expand_rows(active, x).shape == (4, 4, 8, 8)
    assert rp.expand_rows(active, t).tolist() == [10, 20, 10, 20]
    wide = rp.expand_conditions(active, cond)
    assert wide.shape == (4, 3, 4) and wide[2:].eq(1.0).all()  # half of len("ab")
    pred = torch.cat([torch.zeros(2, 4, 8, 8), torch.ones(2, 4, 8, 8)])
    fused = rp.fuse(active, pred)
    assert fused.shape == (2, 4, 8, 8)
    assert fused[..., :4].eq(1).all() and fused[..., 4:].eq(0).all()


def test_no_regions_is_a_no_op():
    rp = RegionalPrompts(toy_encoder([]), (8, 8))
    active = rp.snapshot()
    x = torch.randn(2, 4, 8, 8)
    assert rp.expand_rows(active, x) is x
    assert rp.fuse(active, x) is x
