"""Masks from PNG files, from a channel of a second source's frame, and from shapes."""

import cv2
import numpy as np
import pytest

from bridge.masks import (
    MaskLibrary,
    MaskSourceError,
    mask_from_ellipse,
    mask_from_frame,
    mask_from_png,
    mask_from_rect,
)


def rgba_frame():
    f = np.zeros((4, 6, 4), dtype=np.uint8)
    f[..., 0] = 255  # red everywhere
    f[:, :3, 3] = 255  # alpha on the left half
    f[0, 0, 1] = 51  # one green pixel
    return f


def test_frame_channels():
    f = rgba_frame()
    alpha = mask_from_frame(f, "alpha")
    assert alpha.dtype == np.float32 and alpha.shape == (4, 6)
    assert alpha[:, :3].min() == 1.0 and alpha[:, 3:].max() == 0.0
    assert mask_from_frame(f, "red").min() == 1.0
    assert mask_from_frame(f, "green")[0, 0] == pytest.approx(0.2)
    assert mask_from_frame(f[..., 2::-1].copy(), "red", order="BGR").min() == 1.0
    assert mask_from_frame(f[..., :3], "luma")[1, 1] == pytest.approx(0.299, abs=1e-3)


@pytest.mark.parametrize(
    "frame, channel, message",
    [
        (np.zeros((4, 6, 3), np.uint8), "alpha", "needs a frame with 4 channels"),
        (np.zeros((4, 6, 4), np.uint8), "hue", "unknown mask channel 'hue'"),
        (np.zeros((4, 6, 2), np.uint8), "red", "must be H x W"),
        (np.zeros((4, 6, 4), np.int32), "red", "must be uint8 or float"),
        (np.full((4, 6), np.nan, np.float32), "luma", "NaN"),
        ([[1, 2]], "luma", "must be a numpy array"),
    ],
)
def test_bad_frames(frame, channel, message):
    with pytest.raises(MaskSourceError, match=message):
        mask_from_frame(frame, channel)


def test_png_auto_channel_and_library(tmp_path):
    grey = np.zeros((8, 8), np.uint8)
    grey[:, :4] = 255
    cv2.imwrite(str(tmp_path / "left.png"), grey)
    assert mask_from_png(tmp_path / "left.png")[:, :4].min() == 1.0

    bgra = np.full((8, 8, 4), 255, np.uint8)
    bgra[:, 4:, 3] = 0  # transparent right half -> alpha is used
    cv2.imwrite(str(tmp_path / "cut.png"), bgra)
    m = mask_from_png(tmp_path / "cut.png")
    assert m[:, :4].min() == 1.0 and m[:, 4:].max() == 0.0
    assert mask_from_png(tmp_path / "cut.png", "luma").min() == 1.0

    lib = MaskLibrary(tmp_path)
    first = lib.load("left.png")
    assert lib.load("left.png") is first  # cached
    with pytest.raises(MaskSourceError, match="not found"):
        lib.load("missing.png")
    for bad in ("../etc/passwd.png", "/abs.png", ".hidden.png", "notes.txt", ""):
        with pytest.raises(MaskSourceError, match="plain image file name"):
            lib.load(bad)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(MaskSourceError, match="cannot read"):
        lib.load("broken.png")


def test_rect_covers_partial_pixels():
    m = mask_from_rect(0.25, 0.0, 0.3125, 0.5, (4, 8))
    assert m.shape == (4, 8)
    assert m[0].tolist() == [0, 0, 1, 1, 0.5, 0, 0, 0]
    assert m[2:].max() == 0
    assert mask_from_rect(0, 0, 1, 1, (3, 5)).min() == 1.0
    assert mask_from_rect(0.9, 0.9, 0.5, 0.5, (10, 10)).sum() == pytest.approx(1.0)  # clipped at the edge
    with pytest.raises(MaskSourceError, match=">= 0"):
        mask_from_rect(0, 0, -0.1, 1, (4, 4))


def test_ellipse():
    m = mask_from_ellipse(0.5, 0.5, 0.25, 0.25, (16, 16))
    assert m[8, 8] == 1.0 and m[0, 0] == 0.0 and m[8, 0] == 0.0
    assert 0.1 < m.mean() < 0.3  # about pi/16 of the area
    with pytest.raises(MaskSourceError, match="radii"):
        mask_from_ellipse(0.5, 0.5, 0, 0.2, (4, 4))
