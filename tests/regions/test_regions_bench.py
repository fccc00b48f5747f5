"""The benchmark hook runs the engine with 0..K stripe brushes and reports rates (no speed asserts)."""

import torch

from engine.regions.bench import brush_scaling, stripe_regions


def test_stripes_tile_the_frame():
    regions = stripe_regions(3, 8, 9)
    total = sum(r["mask"] for r in regions)
    assert torch.equal(total, torch.ones(8, 9))
    assert len({r["prompt"] for r in regions}) == 3


def test_brush_scaling_reports_each_count_and_clears(make_engine):
    eng = make_engine(t_index_list=[30])
    calls = []
    inner = eng.unet_fn
    eng.unet_fn = lambda x, t, e: (calls.append(x.shape[0]), inner(x, t, e))[1]
    result = brush_scaling(eng, counts=(0, 2), frames=2, warmup=1)
    assert sorted(result) == [0, 2]
    assert all(r["fps"] > 0 and r["ms_per_frame"] > 0 for r in result.values())
    assert calls == [1] * 3 + [3] * 3  # rows grow with the brushes, one call per frame
    assert eng.stats()["unet_batch"] == 1  # regions cleared afterwards
