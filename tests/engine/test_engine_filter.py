"""The stochastic similarity filter, alone and in the engine."""

from __future__ import annotations

import torch

from engine.similarity import SimilarityFilter


def _run(filt: SimilarityFilter, frames) -> list[bool]:
    return [filt.should_skip(f) for f in frames]


def test_identical_frames_mostly_skipped_never_more_than_max_in_row():
    frame = torch.rand(3, 32, 32) * 2 - 1
    skips = _run(SimilarityFilter(0.98, max_skip_frame=50), [frame] * 200)
    assert sum(skips) >= 0.9 * len(skips)
    skips = _run(SimilarityFilter(0.98, max_skip_frame=3), [frame] * 60)
    run = longest = 0
    for s in skips:
        run = run + 1 if s else 0
        longest = max(longest, run)
    assert longest == 3


def test_independent_random_frames_never_skipped():
    g = torch.Generator().manual_seed(0)
    frames = [torch.rand(3, 32, 32, generator=g) * 2 - 1 for _ in range(100)]
    assert not any(_run(SimilarityFilter(0.98, 10), frames))


def test_threshold_one_never_skips():
    frame = torch.ones(3, 8, 8)
    assert not any(_run(SimilarityFilter(1.0, 10), [frame] * 20))


def test_engine_skip_returns_previous_output_and_counts(make_engine):
    eng = make_engine(similarity_filter=True, similarity_threshold=0.9, max_skip_frame=100)
    still = torch.rand(1, 3, 64, 64)
    outs = [eng(still) for _ in range(40)]
    s = eng.stats()
    assert s["frames"] == 40 and s["skipped"] >= 30
    assert s["unet_calls"] == 40 - s["skipped"]
    assert outs[-1] is outs[-2]  # a skip hands back the previous output at once
    eng.update(prompt="a new look")  # a parameter change gets through a still input
    out = eng(still)
    assert out is not outs[-1] and not torch.allclose(out, outs[-1])


def test_filter_toggled_live(make_engine):
    eng = make_engine()
    still = torch.rand(1, 3, 64, 64)
    for _ in range(5):
        eng(still)
    assert eng.stats()["skipped"] == 0
    eng.update(similarity_filter=True, similarity_threshold=0.5)
    for _ in range(10):
        eng(still)
    assert eng.stats()["skipped"] > 0
