"""Frame conversion, done once and vectorised.

Between the stages of the daemon a frame is a uint8 numpy array shaped (H, W, 3), RGB. Sources
convert into that once (from BGRA, BGR, RGBA), sinks convert out of it once. Only the engine loop
crosses into tensors: `to_tensor` stacks a batch, uploads it (pinned memory and a non-blocking copy
on CUDA, so the upload overlaps with the previous frame's compute) and scales to [0, 1];
`to_uint8` does the opposite with a single device-side scale and cast before the download.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import cv2
import numpy as np

if TYPE_CHECKING:
    import torch

Fit = Literal["crop", "letterbox", "stretch"]
FITS: tuple[str, ...] = ("crop", "letterbox", "stretch")


@dataclass
class Frame:
    """An RGB uint8 image plus the times it passed each stage (time.perf_counter seconds)."""

    image: np.ndarray
    index: int
    t_capture: float
    times: dict[str, float] = field(default_factory=dict)


def to_rgb(image: np.ndarray, order: str) -> np.ndarray:
    """Convert a HxWxC uint8 image in channel order `order` (BGRA, RGBA, BGR, RGB, GRAY) to RGB."""
    order = order.upper()
    if image.ndim == 2 or order == "GRAY":
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    codes = {
        "BGRA": cv2.COLOR_BGRA2RGB,
        "BGRX": cv2.COLOR_BGRA2RGB,
        "RGBA": cv2.COLOR_RGBA2RGB,
        "RGBX": cv2.COLOR_RGBA2RGB,
        "BGR": cv2.COLOR_BGR2RGB,
    }
    if order == "RGB":
        return np.ascontiguousarray(image)
    try:
        return cv2.cvtColor(image, codes[order])
    except KeyError:
        raise ValueError(f"unknown channel order {order!r}") from None


def from_rgb(image: np.ndarray, order: str) -> np.ndarray:
    """Convert an RGB uint8 image to `order` (BGRA, RGBA, BGR, RGB) for a sink."""
    order = order.upper()
    codes = {"BGRA": cv2.COLOR_RGB2BGRA, "RGBA": cv2.COLOR_RGB2RGBA, "BGR": cv2.COLOR_RGB2BGR}
    if order == "RGB":
        return image
    try:
        return cv2.cvtColor(image, codes[order])
    except KeyError:
        raise ValueError(f"unknown channel order {order!r}") from None


def fit(image: np.ndarray, width: int, height: int, mode: Fit = "crop") -> np.ndarray:
    """Scale an image to width x height keeping its aspect: crop the overflow, letterbox, or stretch."""
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    if mode == "stretch":
        return _resize(image, width, height)
    scale = max(width / w, height / h) if mode == "crop" else min(width / w, height / h)
    sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
    scaled = _resize(image, sw, sh)
    if mode == "crop":
        x, y = (sw - width) // 2, (sh - height) // 2
        return np.ascontiguousarray(scaled[y : y + height, x : x + width])
    out = np.zeros((height, width, image.shape[2]), dtype=image.dtype)
    x, y = (width - sw) // 2, (height - sh) // 2
    out[y : y + sh, x : x + sw] = scaled
    return out


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    shrinking = width * height < image.shape[0] * image.shape[1]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


class TensorBridge:
    """Moves batches of RGB uint8 frames to (N, 3, H, W) float tensors in [0, 1] and back.

    On CUDA, uint8 crosses the bus (a quarter of the float size): one memcpy into a pinned staging
    buffer, one non-blocking copy (it overlaps with work already queued on the GPU), then the
    cast-and-scale on the device; the way back casts to uint8 on the device before the copy.
    On the CPU the conversion is done in numpy, single-threaded: torch's intra-op thread pool
    contends with the capture and output threads and made these small ops ~30x slower on a busy
    2-core machine.
    Either way, non-finite engine output raises FloatingPointError (a black frame is worse than
    the unprocessed input, which the runtime then sends).
    """

    def __init__(self, device: torch.device | str, dtype: torch.dtype | None = None) -> None:
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.dtype = dtype or torch.float32
        self._cuda = self.device.type == "cuda"
        self._staging: torch.Tensor | None = None

    def to_tensor(self, images: list[np.ndarray]) -> torch.Tensor:
        torch = self.torch
        batch = np.stack(images) if len(images) > 1 else images[0][None]
        if not self._cuda:
            out = np.empty((batch.shape[0], 3, batch.shape[1], batch.shape[2]), np.float32)
            np.multiply(batch.transpose(0, 3, 1, 2), np.float32(1 / 255), out=out)
            t = torch.from_numpy(out)
            return (
                t
                if self.dtype == torch.float32 and self.device.type == "cpu"
                else t.to(self.device, self.dtype)
            )
        host = torch.from_numpy(batch)
        # The previous frame's download (to_uint8) has synchronised, so the staging buffer is free.
        if self._staging is None or self._staging.shape != host.shape:
            self._staging = torch.empty(host.shape, dtype=torch.uint8, pin_memory=True)
        self._staging.copy_(host)
        dev = self._staging.to(self.device, non_blocking=True)
        return dev.permute(0, 3, 1, 2).to(self.dtype).div_(255.0)

    def to_uint8(self, frames: torch.Tensor) -> list[np.ndarray]:
        torch = self.torch
        if frames.device.type == "cpu":
            a = frames.detach().permute(0, 2, 3, 1).float().numpy()
            if not np.isfinite(a).all():
                raise FloatingPointError("the engine returned NaN or inf values")
            out = np.empty(a.shape, np.float32)
            np.multiply(a, 255.0, out=out)
            np.clip(out, 0.0, 255.0, out=out)
            np.add(out, 0.5, out=out)
            host = out.astype(np.uint8)
        else:
            if not bool(torch.isfinite(frames).all()):
                raise FloatingPointError("the engine returned NaN or inf values")
            dev = frames.detach().permute(0, 2, 3, 1).mul(255.0).clamp_(0.0, 255.0).add_(0.5).to(torch.uint8)
            host = dev.contiguous().cpu().numpy()
        return [host[i] for i in range(host.shape[0])]
