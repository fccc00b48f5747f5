"""Where region masks come from: PNG files, a channel of a second video source, simple shapes.

Every function returns a float32 numpy array (H, W) with values in [0, 1], ready to be a
`engine.regions.Brush` mask. Frames follow the project's convention: (H, W, 3) RGB or
(H, W, 4) RGBA, uint8 (or float in [0, 1]). Errors are `MaskSourceError` (a ValueError) with a
one-line message.
"""

from __future__ import annotations

import math
import os
import threading
from pathlib import Path
from typing import Literal

import numpy as np

Channel = Literal["luma", "red", "green", "blue", "alpha"]
CHANNELS: tuple[str, ...] = ("luma", "red", "green", "blue", "alpha")
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


class MaskSourceError(ValueError):
    """A mask source that cannot give a mask; the message says why."""


def _check_channel(channel: str, allowed: tuple[str, ...] = CHANNELS) -> str:
    if channel not in allowed:
        raise MaskSourceError(f"unknown mask channel {channel!r}; use one of {', '.join(allowed)}")
    return channel


def mask_from_frame(
    frame: np.ndarray, channel: str = "alpha", order: Literal["RGB", "BGR"] = "RGB"
) -> np.ndarray:
    """One channel of a video frame as a mask: e.g. TouchDesigner's alpha sent over Spout or NDI.

    `frame` is (H, W), (H, W, 3) or (H, W, 4); `order` says whether colour channels are RGB(A)
    or BGR(A) (OpenCV's order). A grey frame is its own mask whatever the channel.
    """
    _check_channel(channel)
    if not isinstance(frame, np.ndarray):
        raise MaskSourceError(f"mask frame must be a numpy array, got {type(frame).__name__}")
    if frame.ndim not in (2, 3) or (frame.ndim == 3 and frame.shape[2] not in (1, 3, 4)) or 0 in frame.shape:
        raise MaskSourceError(f"mask frame must be H x W, H x W x 3 or H x W x 4, got shape {frame.shape}")
    if frame.dtype == np.uint8:
        scale = 1.0 / 255.0
    elif np.issubdtype(frame.dtype, np.floating):
        scale = 1.0
    else:
        raise MaskSourceError(f"mask frame must be uint8 or float, got {frame.dtype}")
    if frame.ndim == 2 or frame.shape[2] == 1:
        out = frame.reshape(frame.shape[0], frame.shape[1]).astype(np.float32) * scale
    elif channel == "alpha":
        if frame.shape[2] != 4:
            raise MaskSourceError(
                "mask channel 'alpha' needs a frame with 4 channels (RGBA), got 3: use an ndi:, spout: "
                "or image: mask source (they carry alpha), or source:luma / a colour channel"
            )
        out = frame[:, :, 3].astype(np.float32) * scale
    else:
        rgb = frame[:, :, :3] if order == "RGB" else frame[:, :, 2::-1]
        if channel == "luma":
            out = rgb.astype(np.float32) @ _LUMA * scale
        else:
            out = rgb[:, :, ("red", "green", "blue").index(channel)].astype(np.float32) * scale
    if not np.isfinite(out).all():
        raise MaskSourceError("mask frame holds NaN or infinite values")
    return np.clip(out, 0.0, 1.0, out=out)


def mask_from_png(path: str | os.PathLike[str], channel: str = "auto") -> np.ndarray:
    """A mask from an image file (PNG, or anything OpenCV reads).

    channel ``auto``: a grey image is used as is; an image with a non-opaque alpha channel
    gives its alpha; otherwise the luma (white = brush, black = none).
    """
    import cv2

    _check_channel(channel, ("auto", *CHANNELS))
    p = Path(path)
    if not p.is_file():
        raise MaskSourceError(f"mask file not found: {p}")
    img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise MaskSourceError(f"cannot read {p} as an image")
    if img.dtype == np.uint16:
        img = img.astype(np.float32) / 65535.0
    if img.ndim == 3 and channel == "auto":
        has_alpha = img.shape[2] == 4 and img[:, :, 3].min() < (255 if img.dtype == np.uint8 else 1.0)
        channel = "alpha" if has_alpha else "luma"
    elif channel == "auto":
        channel = "luma"
    return mask_from_frame(img, channel, order="BGR")


def _coverage(start: float, stop: float, n: int) -> np.ndarray:
    """How much of each of n unit cells [i, i+1) lies inside [start, stop)."""
    i = np.arange(n, dtype=np.float32)
    return np.clip(np.minimum(i + 1, stop) - np.maximum(i, start), 0.0, 1.0)


def _norm4(values: tuple[float, float, float, float], what: str) -> tuple[float, float, float, float]:
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise MaskSourceError(f"{what} expects four finite numbers, got {values!r}")
        out.append(float(v))
    return out[0], out[1], out[2], out[3]


def mask_from_rect(x: float, y: float, w: float, h: float, size: tuple[int, int]) -> np.ndarray:
    """A rectangle in normalised coordinates (0..1, origin top-left) drawn on a (H, W) grid.

    Edges that fall inside a pixel cover it partly, so a rectangle moving over OSC glides
    instead of jumping a whole latent pixel at a time. Parts outside the frame are cut off.
    """
    x, y, w, h = _norm4((x, y, w, h), "rect")
    if w < 0 or h < 0:
        raise MaskSourceError(f"rect width and height must be >= 0, got {w:g} x {h:g}")
    height, width = size
    cols = _coverage(x * width, (x + w) * width, width)
    rows = _coverage(y * height, (y + h) * height, height)
    return np.outer(rows, cols).astype(np.float32)


def mask_from_ellipse(cx: float, cy: float, rx: float, ry: float, size: tuple[int, int]) -> np.ndarray:
    """An ellipse (centre and radii in normalised coordinates) with a one-pixel soft edge."""
    cx, cy, rx, ry = _norm4((cx, cy, rx, ry), "ellipse")
    if rx <= 0 or ry <= 0:
        raise MaskSourceError(f"ellipse radii must be > 0, got {rx:g}, {ry:g}")
    height, width = size
    yy = (np.arange(height, dtype=np.float32) + 0.5) / height
    xx = (np.arange(width, dtype=np.float32) + 0.5) / width
    d = np.sqrt(((xx[None, :] - cx) / rx) ** 2 + ((yy[:, None] - cy) / ry) ** 2)
    # distance from the edge in pixels, along the shorter axis' scale
    edge_px = (1.0 - d) * min(rx * width, ry * height)
    return np.clip(edge_px + 0.5, 0.0, 1.0).astype(np.float32)


class MaskLibrary:
    """PNG masks from one folder, by plain file name, cached until the file changes.

    Names never hold a path (an OSC message cannot make us read elsewhere).
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self._cache: dict[tuple[str, str], tuple[int, np.ndarray]] = {}
        self._lock = threading.Lock()

    def path(self, name: str) -> Path:
        check_mask_name(name)
        return self.folder / name

    def load(self, name: str, channel: str = "auto") -> np.ndarray:
        p = self.path(name)
        try:
            mtime = p.stat().st_mtime_ns
        except OSError:
            raise MaskSourceError(f"mask {name!r} not found in {self.folder}") from None
        key = (name, channel)
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and hit[0] == mtime:
            return hit[1]
        mask = mask_from_png(p, channel)
        mask.setflags(write=False)
        with self._lock:
            self._cache[key] = (mtime, mask)
        return mask


def check_mask_name(name: str) -> str:
    """Refuse anything but a plain image file name (no folders, no hidden files)."""
    if (
        not isinstance(name, str)
        or not name
        or name.startswith(".")
        or "/" in name
        or "\\" in name
        or "\x00" in name
        or not name.lower().endswith((".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"))
    ):
        raise MaskSourceError(f"mask name must be a plain image file name like 'left.png', got {name!r}")
    return name
