"""The on-device preprocessors: canny, soft edge, depth (random Depth Anything), passthrough."""

from __future__ import annotations

import torch

from engine.controlnet.depth import RANDOM_DEPTH, DepthEstimator
from engine.controlnet.preprocess import as_control_image, canny, passthrough, softedge


def _square(size: int = 64) -> torch.Tensor:
    img = torch.full((1, 3, size, size), 0.1)
    img[:, :, 16:48, 16:48] = 0.9
    return img


def test_canny_finds_the_square_outline_and_nothing_in_flat_areas():
    edges = canny(_square())
    assert edges.shape == (1, 3, 64, 64) and set(edges.unique().tolist()) <= {0.0, 1.0}
    e = edges[0, 0]
    assert e[5:12, 5:60].sum() == 0 and e[24:40, 24:40].sum() == 0  # flat: no edge
    assert e[14:19, 20:44].sum(0).min() >= 1  # every column crosses the top side
    assert e[20:44, 14:19].sum(1).min() >= 1  # every row crosses the left side
    assert e[14:19, 30].sum() <= 2  # thin: non-maximum suppression leaves one or two pixels


def test_canny_thresholds_decide_which_edges_survive():
    img = _square()
    img[:, :, 52:60, 52:60] = 0.25  # a faint square: weak gradient
    low = canny(img, 0.02, 0.04)[0, 0]
    high = canny(img, 0.1, 0.2)[0, 0]
    assert low[50:62, 50:62].sum() > 0 and high[50:62, 50:62].sum() == 0
    assert high.sum() < low.sum()


def test_hysteresis_grows_strong_edges_into_weak_ones_a_bounded_distance():
    """A horizontal edge whose contrast fades from left to right: the part above `high` is kept,
    its weak continuation grows from it by up to HYSTERESIS_STEPS pixels, weak parts alone vanish."""
    from engine.controlnet.preprocess import HYSTERESIS_STEPS

    img = torch.full((1, 3, 64, 64), 0.1)
    img[:, :, 32:, :] = torch.linspace(0.9, 0.2, 64)  # contrast 0.8 -> 0.1 across the columns
    strong_only = canny(img, 0.3, 0.3)[0, 0].amax(0)  # low = high: no hysteresis
    grown = canny(img, 0.05, 0.3)[0, 0].amax(0)
    last_strong = int(strong_only.nonzero().max())
    last_grown = int(grown.nonzero().max())
    assert last_strong < last_grown <= last_strong + HYSTERESIS_STEPS
    weak_only = img.clone()
    weak_only[:, :, 32:, :] = 0.1 + (weak_only[:, :, 32:, :] - 0.1) * 0.3  # every part below high
    assert canny(weak_only, 0.05, 0.3).sum() == 0


def test_softedge_and_passthrough():
    soft = softedge(_square())
    assert soft.shape == (1, 3, 64, 64) and soft.min() >= 0 and soft.max() == 1.0
    assert soft[0, 0, 32, 16] > 0.5 > soft[0, 0, 32, 32]  # edge bright, interior dark
    img = _square()
    assert passthrough(img) is img


def test_random_depth_anything_gives_a_normalised_depth_map():
    est = DepthEstimator(RANDOM_DEPTH, torch.device("cpu"), torch.float32)
    assert type(est.model).__name__ == "DepthAnythingForDepthEstimation"
    assert DepthEstimator.input_size(64, 64) == (70, 70) and DepthEstimator.input_size(512, 1024) == (
        252,
        518,
    )
    depth = est(torch.rand(2, 3, 64, 96))
    assert depth.shape == (2, 3, 64, 96) and depth.min() == 0 and depth.max() == 1
    again = DepthEstimator(RANDOM_DEPTH, torch.device("cpu"), torch.float32)
    x = torch.rand(1, 3, 64, 64)
    assert torch.equal(est(x), again(x))  # fixed seed: the same model every time


def test_control_images_of_any_size_and_kind_become_valid():
    import numpy as np

    u8 = np.zeros((30, 50, 3), dtype=np.uint8)
    u8[:, 25:] = 255
    out = as_control_image(torch.from_numpy(u8), 64, 64, torch.device("cpu"), torch.float32)
    assert out.shape == (1, 3, 64, 64) and out.max() == 1.0 and out[0, 0, 0, 0] == 0.0
    bad = torch.full((3, 64, 64), float("nan"))
    bad[0, 0, 0] = float("inf")
    clean = as_control_image(bad, 64, 64, torch.device("cpu"), torch.float32)
    assert torch.isfinite(clean).all() and clean.max() <= 1.0
    rgba = torch.rand(1, 4, 64, 64)
    assert as_control_image(rgba, 64, 64, torch.device("cpu"), torch.float32).shape == (1, 3, 64, 64)


def test_a_depth_model_loads_from_a_folder(tmp_path):
    from engine.controlnet.depth import random_depth_model

    random_depth_model().save_pretrained(tmp_path / "depth")
    from_folder = DepthEstimator(str(tmp_path / "depth"), torch.device("cpu"), torch.float32)
    built = DepthEstimator(RANDOM_DEPTH, torch.device("cpu"), torch.float32)
    x = torch.rand(1, 3, 64, 64)
    assert torch.equal(from_folder(x), built(x))
