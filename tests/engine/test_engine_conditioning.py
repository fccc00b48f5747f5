"""The conditioning seam regional prompts plug into: several text groups in one UNet batch."""

from __future__ import annotations

import pytest
import torch
from engine_helpers import Recorder


class PickGroup:
    """Two text groups (the prompt and a fixed other embedding); fuse keeps only one of them."""

    groups = 2

    def __init__(self, other: torch.Tensor, keep: int) -> None:
        self.other, self.keep = other, keep

    def embeds(self, prompt_embeds):
        return torch.cat([prompt_embeds, self.other])

    def fuse(self, pred):
        return pred[self.keep]


@pytest.mark.parametrize("cfg_type", ["self", "full"])
def test_groups_share_one_unet_call_and_fuse(make_engine, frames, cfg_type):
    common = dict(cfg_type=cfg_type, t_index_list=[20, 35], guidance_scale=1.5)
    plain = make_engine(prompt="a blue whale", **common)
    grouped = make_engine(prompt="a red fox", **common)
    grouped.set_conditioning(PickGroup(grouped._encoder.encode("a blue whale"), keep=1))
    rec = Recorder(grouped)
    for f in frames[:3]:
        torch.testing.assert_close(grouped(f), plain(f), atol=1e-5, rtol=1e-4)
    assert len(rec.unet_in) == 3  # one batched call per frame
    rows = 2 * 2 + (2 if cfg_type == "full" else 0)
    assert rec.unet_in[0][0].shape[0] == rows == grouped.stats()["unet_batch"]


def test_bad_conditioning_refused(make_engine, frames):
    eng = make_engine()
    with pytest.raises(ValueError, match="conditioning"):
        eng.set_conditioning(object())
    assert eng(frames[0]).shape == (1, 3, 64, 64)
