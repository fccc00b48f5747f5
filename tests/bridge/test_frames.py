from __future__ import annotations

import numpy as np
import pytest
import torch

from bridge.frames import TensorBridge, fit, from_rgb, to_rgb
from bridge.sources.pattern import PatternSource, decode_counter, encode_counter


def test_fit_modes_keep_aspect() -> None:
    wide = np.zeros((100, 200, 3), np.uint8)
    wide[:, :50] = 255  # white left quarter
    crop = fit(wide, 64, 64, "crop")
    box = fit(wide, 64, 64, "letterbox")
    stretch = fit(wide, 64, 64, "stretch")
    assert crop.shape == box.shape == stretch.shape == (64, 64, 3)
    # crop keeps the middle: the white quarter is cut away entirely
    assert crop.max() == 0
    # letterbox keeps everything: black bars top and bottom, the white quarter visible on the left
    assert box[:10].max() == 0 and box[-10:].max() == 0 and box[32, 2].min() == 255
    # stretch keeps the white quarter as a quarter
    assert stretch[:, :14].min() == 255 and stretch[:, 20:].max() == 0


def test_channel_orders_round_trip() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    for order in ("BGRA", "RGBA", "BGR", "RGB"):
        assert np.array_equal(to_rgb(from_rgb(rgb, order), order), rgb)
    assert np.array_equal(from_rgb(rgb, "BGR")[..., 0], rgb[..., 2])
    with pytest.raises(ValueError, match="channel order"):
        to_rgb(rgb, "YUV")


def test_tensor_bridge_round_trip_is_exact() -> None:
    bridge = TensorBridge("cpu")
    imgs = [np.random.default_rng(i).integers(0, 256, (16, 24, 3), dtype=np.uint8) for i in range(2)]
    t = bridge.to_tensor(imgs)
    assert t.shape == (2, 3, 16, 24) and t.dtype == torch.float32
    assert float(t.min()) >= 0.0 and float(t.max()) <= 1.0
    back = bridge.to_uint8(t)
    assert all(np.array_equal(a, b) for a, b in zip(imgs, back, strict=True))


def test_pattern_moves_and_carries_its_counter() -> None:
    src = PatternSource()
    src.open(96, 64)
    a, b = src.read(), src.read()
    assert a.shape == (64, 96, 3) and a.dtype == np.uint8
    assert not np.array_equal(a, b)
    assert decode_counter(a) == 0 and decode_counter(b) == 1
    img = np.zeros((8, 80, 3), np.uint8)
    encode_counter(img, 40321)
    assert decode_counter(img) == 40321
