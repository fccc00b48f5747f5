"""A moving test card, generated in code: the default source, needs no hardware."""

from __future__ import annotations

import math
import time

import cv2
import numpy as np

_BARS = np.array(
    [
        [235, 235, 235],
        [235, 235, 16],
        [16, 235, 235],
        [16, 235, 16],
        [235, 16, 235],
        [235, 16, 16],
        [16, 16, 235],
    ],
    dtype=np.uint8,
)


class PatternSource:
    """Colour bars, a gradient, a circle orbiting the centre and the frame number.

    The frame number is also written into the first row of pixels (`encode_counter`), so a test
    can read back which frame arrived.
    """

    name = "pattern"

    def __init__(self, fps: float = 30.0) -> None:
        self.fps = fps
        self._count = 0
        self._base: np.ndarray | None = None
        self._t0 = 0.0

    def open(self, width: int, height: int) -> None:
        self._base = _card(width, height)
        self._t0 = time.perf_counter()

    def read(self) -> np.ndarray:
        assert self._base is not None, "open() first"
        img = self._base.copy()
        h, w = img.shape[:2]
        t = self._count / (self.fps or 30.0)
        r = min(w, h) / 3
        cx, cy = int(w / 2 + r * math.cos(t)), int(h / 2 + r * math.sin(t))
        cv2.circle(img, (cx, cy), max(2, min(w, h) // 10), (255, 255, 255), -1)
        draw_label(img, str(self._count))
        encode_counter(img, self._count)
        self._count += 1
        return img

    def close(self) -> None:
        self._base = None


def draw_label(img: np.ndarray, text: str) -> None:
    """White text on a black box in the bottom-left corner: readable on the bars and the ramp alike."""
    h = img.shape[0]
    scale = max(0.35, h / 360)
    thickness = 1 if h < 400 else 2
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    pad = max(2, th // 4)
    x0, y1 = 2, h - 2
    cv2.rectangle(img, (x0, y1 - th - base - 2 * pad), (x0 + tw + 2 * pad, y1), (0, 0, 0), -1)
    org = (x0 + pad, y1 - base - pad)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA)


def _card(width: int, height: int) -> np.ndarray:
    img = np.empty((height, width, 3), dtype=np.uint8)
    top = height * 2 // 3
    bar = (np.arange(width) * len(_BARS) // max(width, 1)).clip(0, len(_BARS) - 1)
    img[:top] = _BARS[bar][None]
    ramp = np.linspace(0, 255, width, dtype=np.float32).astype(np.uint8)
    img[top:] = ramp[None, :, None]
    return img


COUNTER_BITS = 16
_BIT_SHIFTS = np.arange(COUNTER_BITS)


class _Cells(dict):
    """cell size -> a (2, cell) table of black and white cells, indexed by a bit."""

    def __missing__(self, cell: int) -> np.ndarray:
        table = self[cell] = np.array([[0] * cell, [255] * cell], np.uint8)
        return table


_CELLS = _Cells()


def encode_counter(img: np.ndarray, n: int, cell: int = 4) -> None:
    """Write n as COUNTER_BITS black/white cells of `cell` pixels in the top-left corner (one
    numpy assignment: the capture thread writes it on every frame)."""
    row = _CELLS[cell][(n >> _BIT_SHIFTS) & 1].reshape(-1)[: img.shape[1]]
    img[:cell, : row.shape[0]] = row[:, None] if img.ndim == 3 else row


def decode_counter(img: np.ndarray, cell: int = 4) -> int:
    """Read back what `encode_counter` wrote (survives mild blur and compression)."""
    n = 0
    for bit in range(COUNTER_BITS):
        block = img[:cell, bit * cell : (bit + 1) * cell]
        if block.mean() > 127:
            n |= 1 << bit
    return n
