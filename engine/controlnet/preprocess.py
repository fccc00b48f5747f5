"""Control images from video frames, on the device, in one pass of tensor ops (no host reads).

Every preprocessor takes frames (N, 3, H, W) in [0, 1] and returns a control image of the same
shape in [0, 1], which is what diffusers' ControlNets take as `controlnet_cond`.

- ``passthrough``: the frame itself (a depth, edge or pose render sent from TouchDesigner).
- ``canny``: Canny edges in torch: Gaussian blur, Sobel, non-maximum suppression along the
  gradient direction, then double threshold and hysteresis. Hysteresis here grows strong edges
  into weak ones by a fixed number of 3x3 dilations (`HYSTERESIS_STEPS`) instead of following
  chains to any length: a bounded cost and no data-dependent loop; a weak chain longer than that
  from any strong pixel is cut short. Thresholds are on the gradient magnitude of a [0, 1] image
  (Sobel / 4, so a full black-to-white step is about 1.0).
- ``softedge``: a weight-free stand-in for HED / PiDiNet soft edges: the blurred gradient
  magnitude, normalised per image to [0, 1]. Cheaper and cruder than a learned edge model.
- ``depth``: relative depth from a Depth Anything model (see `depth.py`), near = bright.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

HYSTERESIS_STEPS = 8
_LUMA = (0.299, 0.587, 0.114)


def luma(frames: torch.Tensor) -> torch.Tensor:
    w = torch.tensor(_LUMA, device=frames.device, dtype=frames.dtype).view(1, 3, 1, 1)
    return (frames * w).sum(1, keepdim=True)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, 1, H, W) with reflect padding."""
    radius = max(1, int(math.ceil(2.0 * sigma)))
    k = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-(k * k) / (2 * sigma * sigma))
    k = k / k.sum()
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), k.view(1, 1, -1, 1))


def sobel(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Horizontal and vertical gradients of (N, 1, H, W), scaled so a unit step gives 1."""
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=x.device, dtype=x.dtype)
    kernels = torch.stack([kx, kx.t()]).unsqueeze(1) / 4.0
    g = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernels)
    return g[:, :1], g[:, 1:]


def canny(frames: torch.Tensor, low: float = 0.1, high: float = 0.2, sigma: float = 1.0) -> torch.Tensor:
    """Canny edges (0 or 1) of frames (N, 3, H, W) in [0, 1], as a 3-channel image."""
    gray = gaussian_blur(luma(frames.float()), sigma)
    gx, gy = sobel(gray)
    mag = torch.sqrt(gx * gx + gy * gy)
    # gradient direction quantised to 0, 45, 90, 135 degrees; compare with both neighbours along it
    angle = torch.atan2(gy, gx) * (180.0 / math.pi) % 180.0
    sector = (((angle + 22.5) // 45.0) % 4).long()
    padded = F.pad(mag, (1, 1, 1, 1))
    h, w = mag.shape[-2:]

    def shifted(dy: int, dx: int) -> torch.Tensor:
        return padded[..., 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]

    offsets = ((0, 1), (1, 1), (1, 0), (1, -1))  # sector 0: left/right ... sector 3: the other diagonal
    keep = torch.zeros_like(mag, dtype=torch.bool)
    for s, (dy, dx) in enumerate(offsets):
        is_max = (mag >= shifted(dy, dx)) & (mag >= shifted(-dy, -dx))
        keep |= (sector == s) & is_max
    thin = mag * keep
    lo, hi = min(low, high), max(low, high)
    weak = (thin > lo).to(thin.dtype)
    edges = (thin > hi).to(thin.dtype)
    for _ in range(HYSTERESIS_STEPS):
        edges = torch.maximum(edges, F.max_pool2d(edges, 3, stride=1, padding=1) * weak)
    return edges.to(frames.dtype).expand(-1, 3, -1, -1)


def softedge(frames: torch.Tensor, sigma: float = 1.5) -> torch.Tensor:
    """Soft edges in [0, 1]: the blurred gradient magnitude normalised per image."""
    gray = gaussian_blur(luma(frames.float()), 1.0)
    gx, gy = sobel(gray)
    mag = gaussian_blur(torch.sqrt(gx * gx + gy * gy), sigma)
    peak = mag.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-6)
    return (mag / peak).clamp_(0.0, 1.0).to(frames.dtype).expand(-1, 3, -1, -1)


def passthrough(frames: torch.Tensor) -> torch.Tensor:
    return frames


def as_control_image(image: torch.Tensor, height: int, width: int, device, dtype) -> torch.Tensor:
    """Any image tensor (3, H, W) / (N, 3|4|1, H, W), uint8 or float, into (N, 3, height, width) in
    [0, 1]: resized when its size differs, NaN and inf made 0, values clamped. Never raises on values."""
    x = image
    if x.ndim == 2:
        x = x.unsqueeze(0)
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4:
        raise ValueError(f"a control image must be (3, H, W) or (N, 3, H, W), got shape {tuple(image.shape)}")
    if x.shape[1] not in (1, 3, 4) and x.shape[-1] in (1, 3, 4):
        x = x.permute(0, 3, 1, 2)  # (N, H, W, C) as frames come from video
    if x.shape[1] not in (1, 3, 4):
        raise ValueError(f"a control image needs 1, 3 or 4 channels, got shape {tuple(image.shape)}")
    if x.shape[1] == 4:
        x = x[:, :3]
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    floats = x.dtype != torch.uint8
    x = x.to(device=device, dtype=torch.float32)
    if not floats:
        x = x / 255.0
    x = torch.nan_to_num(x, nan=0.0, posinf=1.0, neginf=0.0).clamp_(0.0, 1.0)
    if x.shape[-2:] != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False).clamp_(0.0, 1.0)
    return x.to(dtype)
