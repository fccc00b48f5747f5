"""Mask validation and preparation for regional prompts, as pure torch functions.

A brush's mask arrives at any size as a tensor or numpy array (H x W, values 0..1, or uint8
0..255, or bool). It is checked once (`as_mask`), then prepared for the latent (`prepare_mask`):
resized to the latent grid, blurred with a Gaussian, scaled by the brush's alpha.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


class MaskError(ValueError):
    """A mask that cannot be used; the message says what was wrong and what is expected."""


_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _dtype_error(name: str, dtype: object) -> str:
    return f"{name}: dtype {dtype} is not a mask dtype (use bool, uint8 or float in [0, 1])"


def as_mask(mask: Any, name: str = "mask") -> torch.Tensor:
    """Check a mask and return it as a float32 (H, W) CPU tensor in [0, 1].

    Accepts a torch tensor or numpy array shaped (H, W), (1, H, W) or (H, W, 1); dtype bool,
    uint8 (divided by 255) or float (values must lie in [0, 1]). Anything else raises
    `MaskError` with a one-line reason.
    """
    if isinstance(mask, np.ndarray):
        ok = mask.dtype == np.bool_ or mask.dtype == np.uint8 or np.issubdtype(mask.dtype, np.floating)
        if not ok:
            raise MaskError(_dtype_error(name, mask.dtype))
        arr = np.ascontiguousarray(mask)
        t = torch.from_numpy(arr if arr.flags.writeable else arr.copy())
    elif isinstance(mask, torch.Tensor):
        t = mask.detach()
    else:
        raise MaskError(f"{name}: expected a torch tensor or numpy array (H x W), got {type(mask).__name__}")

    if t.ndim == 3 and 1 in (t.shape[0], t.shape[-1]):
        t = t.squeeze(0) if t.shape[0] == 1 else t.squeeze(-1)
    if t.ndim != 2:
        raise MaskError(f"{name}: expected a 2-D mask (H x W), got shape {tuple(t.shape)}")
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise MaskError(f"{name}: empty mask, shape {tuple(t.shape)}")

    if t.dtype == torch.bool:
        return t.to(device="cpu", dtype=torch.float32)
    if t.dtype == torch.uint8:
        return t.to(device="cpu", dtype=torch.float32) / 255.0
    if t.dtype not in _FLOAT_DTYPES:
        raise MaskError(_dtype_error(name, t.dtype))
    t = t.to(device="cpu", dtype=torch.float32)
    finite = torch.isfinite(t)
    if not bool(finite.all()):
        bad = "all NaN/inf" if not bool(finite.any()) else f"{int((~finite).sum())} NaN/inf values"
        raise MaskError(f"{name}: {bad}; a mask must hold finite values in [0, 1]")
    lo, hi = float(t.min()), float(t.max())
    if lo < 0.0 or hi > 1.0:
        raise MaskError(
            f"{name}: values must lie in [0, 1], got [{lo:g}, {hi:g}] (pass uint8 for 0..255 masks)"
        )
    return t


def resize_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize an (H, W) mask to `size` (h, w): area average when shrinking, bilinear when growing.

    A mask already of that size is returned unchanged (bit for bit).
    """
    if tuple(mask.shape) == tuple(size):
        return mask
    x = mask[None, None]
    shrinking = mask.shape[0] >= size[0] and mask.shape[1] >= size[1]
    if shrinking:
        y = F.interpolate(x, size=size, mode="area")
    else:
        y = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return y[0, 0].clamp_(0.0, 1.0)


def gaussian_kernel1d(sigma: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A normalised 1-D Gaussian kernel reaching 3 sigma each side (at least one tap each side)."""
    radius = max(1, math.ceil(3.0 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).to(dtype)


def gaussian_blur(mask: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of an (H, W) mask with edge replication (a full mask stays full).

    sigma <= 0 returns the mask unchanged.
    """
    if sigma <= 0:
        return mask
    k = gaussian_kernel1d(sigma, mask.dtype).to(mask.device)
    r = (k.numel() - 1) // 2
    x = mask[None, None]
    x = F.pad(x, (r, r, 0, 0), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1))
    x = F.pad(x, (0, 0, r, r), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, -1, 1))
    return x[0, 0].clamp_(0.0, 1.0)


def prepare_mask(
    mask: torch.Tensor,
    latent_size: tuple[int, int],
    blur: float = 0.0,
    alpha: float = 1.0,
    pixels_per_latent: int = 8,
) -> torch.Tensor:
    """Turn a checked (H, W) mask into the latent-size weight map a brush paints with.

    `blur` is the Gaussian's standard deviation in output-image pixels (applied on the latent
    grid as blur / pixels_per_latent); `alpha` scales the result. With blur 0 and alpha 1 a mask
    that already has the latent size comes back exactly as given.
    """
    m = resize_mask(mask, latent_size)
    m = gaussian_blur(m, blur / pixels_per_latent)
    if alpha != 1.0:
        m = m * alpha
    return m
