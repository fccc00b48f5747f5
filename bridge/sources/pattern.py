"""A moving test card, generated in code: the default source, needs no hardware."""

from __future__ import annotations

import functools
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
    on_demand = True
    """Reading it less often loses nothing (bridge/runtime/pacing.py): the next card is drawn then."""

    def __init__(self, fps: float = 30.0) -> None:
        self.fps = fps
        self._count = 0
        self._base: np.ndarray | None = None
        self._disc: np.ndarray | None = None
        self._digits: Digits | None = None
        self._t0 = 0.0

    def open(self, width: int, height: int) -> None:
        self._base = _card(width, height)
        self._disc = _disc(max(2, min(width, height) // 10))
        self._digits = Digits(height)
        self._t0 = time.perf_counter()

    def read(self) -> np.ndarray:
        """The next card, drawn with numpy from shapes made once in `open()`: no cv2 call per frame.
        Each cv2 call lets go of the GIL, and on a small machine every such hand-off to the engine
        thread and back costs more than the drawing (the capture thread used half the CPU without
        them, issue 16)."""
        assert self._base is not None and self._disc is not None and self._digits is not None, "open() first"
        img = self._base.copy()
        h, w = img.shape[:2]
        t = self._count / (self.fps or 30.0)
        r = min(w, h) / 3
        cx, cy = int(w / 2 + r * math.cos(t)), int(h / 2 + r * math.sin(t))
        _stamp(img, self._disc, cx, cy)
        self._digits.draw(img, self._count)
        encode_counter(img, self._count)
        self._count += 1
        return img

    def close(self) -> None:
        self._base = None


def _disc(radius: int) -> np.ndarray:
    """A filled white circle of `radius` on black, (2r+1, 2r+1, 1), as `cv2.circle` draws it."""
    disc = np.zeros((2 * radius + 1, 2 * radius + 1, 1), np.uint8)
    cv2.circle(disc, (radius, radius), radius, 255, -1)
    return disc


def _stamp(img: np.ndarray, disc: np.ndarray, cx: int, cy: int) -> None:
    """Paint the white `disc` centred on (cx, cy), clipped to the image (white over anything is
    the larger value, so one `np.maximum` paints it)."""
    radius = disc.shape[0] // 2
    h, w = img.shape[:2]
    x0, y0 = max(0, cx - radius), max(0, cy - radius)
    x1, y1 = min(w, cx + radius + 1), min(h, cy + radius + 1)
    if x0 < x1 and y0 < y1:
        mx, my = x0 - (cx - radius), y0 - (cy - radius)
        window = img[y0:y1, x0:x1]
        np.maximum(window, disc[my : my + y1 - y0, mx : mx + x1 - x0], out=window)


class Digits:
    """A frame number in white on a black box in the bottom-left corner, readable on the bars and
    the ramp alike: the ten digits are drawn once (cv2, anti-aliased, Hershey simplex, whose digits
    share one advance) and each frame's number is put together from them."""

    def __init__(self, height: int) -> None:
        scale = max(0.35, height / 360)
        thickness = 1 if height < 400 else 2
        font = cv2.FONT_HERSHEY_SIMPLEX
        (one, th), base = cv2.getTextSize("0", font, scale, thickness)
        ten = cv2.getTextSize("0" * 10, font, scale, thickness)[0][0]
        self.advance = max(1, round((ten - one) / 9))
        self.pad = max(2, th // 4)
        self.height = th + base + 2 * self.pad + 1
        glyph_w = max(one, self.advance) + 1
        self._glyphs = np.zeros((10, self.height, glyph_w, 3), np.uint8)
        for d in range(10):
            org = (0, self.height - 1 - base - self.pad)
            cv2.putText(self._glyphs[d], str(d), org, font, scale, (255, 255, 255), thickness, cv2.LINE_AA)
        self._prefix: str | None = None
        self._prefix_box = np.zeros((self.height, 0, 3), np.uint8)

    def draw(self, img: np.ndarray, n: int) -> None:
        text = str(n)
        box = self._box(text[:-1]).copy()  # all but the last digit change once in ten frames
        self._paste(box, len(text) - 1, text[-1])
        h, w = img.shape[:2]
        y1, x0 = h - 2, 2
        y0 = max(0, y1 + 1 - self.height)
        x1 = min(w, x0 + box.shape[1])
        if y0 <= y1 and x0 < x1:
            img[y0 : y1 + 1, x0:x1] = box[self.height - (y1 + 1 - y0) :, : x1 - x0]

    def _box(self, prefix: str) -> np.ndarray:
        """The black box for a number of len(prefix) + 1 digits with `prefix` drawn (the last one made)."""
        if self._prefix != prefix:
            width = self.advance * len(prefix) + self._glyphs.shape[2] + 2 * self.pad
            box = np.zeros((self.height, width, 3), np.uint8)
            for i, ch in enumerate(prefix):
                self._paste(box, i, ch)
            self._prefix, self._prefix_box = prefix, box
        return self._prefix_box

    def _paste(self, box: np.ndarray, i: int, digit: str) -> None:
        """Draw `digit` as the i-th character of `box` (white over black: the larger value wins)."""
        x = self.pad + i * self.advance
        cell = box[:, x : x + self._glyphs.shape[2]]
        np.maximum(cell, self._glyphs[ord(digit) - 48], out=cell)


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


@functools.cache
def _cells(cell: int) -> np.ndarray:
    """A (2, cell) table of a black and a white cell, indexed by a bit."""
    return np.array([[0] * cell, [255] * cell], np.uint8)


def encode_counter(img: np.ndarray, n: int, cell: int = 4) -> None:
    """Write n as COUNTER_BITS black/white cells of `cell` pixels in the top-left corner (one
    numpy assignment: the capture thread writes it on every frame)."""
    row = _cells(cell)[(n >> _BIT_SHIFTS) & 1].reshape(-1)[: img.shape[1]]
    img[:cell, : row.shape[0]] = row[:, None] if img.ndim == 3 else row


def decode_counter(img: np.ndarray, cell: int = 4) -> int:
    """Read back what `encode_counter` wrote (survives mild blur and compression)."""
    n = 0
    for bit in range(COUNTER_BITS):
        block = img[:cell, bit * cell : (bit + 1) * cell]
        if block.mean() > 127:
            n |= 1 << bit
    return n
